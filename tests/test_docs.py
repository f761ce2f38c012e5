"""The docs reference what exists: no file outside the repository, every docs page and
figure they name is there (and small), and the default outputs are ignored by git."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
              *sorted((ROOT / "src").rglob("*.py"))]


def test_no_reference_to_files_outside_the_repository():
    cited = [f"{p.relative_to(ROOT)}: {name}" for p in TEXT_FILES
             for name in ("PROTOCOLS.md", "ARCHITECTURE.md") if name in p.read_text()]
    assert cited == []


def test_every_docs_page_named_exists():
    missing = sorted({f"{p.relative_to(ROOT)}: {m}" for p in TEXT_FILES
                      for m in re.findall(r"docs/[\w/-]+\.md", p.read_text())
                      if not (ROOT / m).is_file()})
    assert missing == []


def test_every_figure_in_the_docs_exists_and_is_small():
    for page in (ROOT / "docs").glob("*.md"):
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text()):
            path = (page.parent / target).resolve()
            assert path.is_file(), f"{page.name}: {target} missing"
            assert path.stat().st_size < 300_000, f"{page.name}: {target} over 300 KB"


def test_default_outputs_are_ignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    for output in ("/demo-out/", "/runs/", "/cache/"):
        assert output in ignored
