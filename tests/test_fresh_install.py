"""The README's first command on a fresh machine: every module the package imports is
declared, and the CLI's error handler matches the exceptions the installed typer raises.

The install itself (a new virtual environment, torch 2.13.0, the package without extras,
then ``--help``, ``models`` and one prediction) is ``.ci/fresh_install.sh``: CI runs it as
its own step; the slow-step test here runs it too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import typer

from unilandmark.cli.common import TYPER_EXITS, friendly

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "unilandmark"

#: import name -> distribution name, where they differ
DISTRIBUTION = {"yaml": "PyYAML", "SimpleITK": "SimpleITK", "PIL": "pillow"}
#: modules imported only by the optional parts (extras) or only inside a guarded import
OPTIONAL = {"onnx", "onnxruntime", "onnxscript", "fastapi", "uvicorn", "PIL", "httpx",
            "selenium", "starlette", "filelock"}


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported anywhere in the file (at module level or inside a function: a lazy
    import fails just the same on a fresh install), except under ``try`` (a guarded,
    optional import)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try)
               for body in t.body for n in ast.walk(body)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _declared() -> set[str]:
    requires = metadata.requires("unilandmark") or []
    return {r.split(";")[0].split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower()
            for r in requires if "extra ==" not in r}


def test_every_third_party_module_imported_at_module_level_is_declared():
    stdlib = set(sys.stdlib_module_names)
    declared = _declared()
    missing = {}
    for path in SOURCE.rglob("*.py"):
        if "serve" in path.relative_to(SOURCE).parts[:1] or "export" in path.parts:
            continue  # the optional extras' own packages
        for name in _top_level_imports(path) - stdlib - {"unilandmark", "__future__"}:
            if name in OPTIONAL:
                continue
            if DISTRIBUTION.get(name, name).lower() not in declared:
                missing.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"


def test_the_cli_lets_typers_own_exits_through():
    """With typer >= 0.20 (its own bundled click), its Exit/Abort/usage errors are not
    mistaken for failures: they keep their exit code and message."""
    assert typer.Exit in TYPER_EXITS and typer.Abort in TYPER_EXITS
    assert issubclass(typer.BadParameter, TYPER_EXITS)

    @friendly
    def usage_error():
        raise typer.BadParameter("not a size")

    @friendly
    def exit_three():
        raise typer.Exit(3)

    with pytest.raises(typer.BadParameter):
        usage_error()
    with pytest.raises(typer.Exit) as info:
        exit_three()
    assert info.value.exit_code == 3


@pytest.mark.slow
def test_the_readme_install_works_in_a_fresh_virtual_environment(tmp_path):
    """.ci/fresh_install.sh: new venv, torch 2.13.0, the package without extras, --help,
    models, one prediction (reuses pip's wheel cache; about 50 s on 2 cores)."""
    done = subprocess.run(["bash", str(ROOT / ".ci" / "fresh_install.sh"), str(tmp_path / "venv")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "work without extras" in done.stdout
