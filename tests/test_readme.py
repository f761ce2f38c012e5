"""The README runs as written: every fenced code block, in order, in a fresh folder.

Shell blocks are split into commands at ``&&``: ``unilandmark ...`` runs through the CLI
(the demo shortened to 2 epochs: the learning itself is tested in test_train.py),
``pip install`` lines must be the documented installs (this environment already has
them) and ``python -m pytest`` lines must be the steps `.ci/run` runs (this is one of
them). Python blocks run after the shell blocks before them, in the same folder.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from unilandmark.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
INSTALLS = {"pip install torch==2.13.0", "pip install -e .", 'pip install -e ".[dev]"'}
DEMO_EPOCHS = "2"


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block, in order."""
    return [(m.group(1), m.group(2))
            for m in re.finditer(r"^```([\w-]*)\n(.*?)^```", text, re.S | re.M)]


def shell_commands(code: str) -> list[str]:
    joined = code.replace("\\\n", " ")
    return [c.strip() for line in joined.splitlines() if line.strip()
            and not line.lstrip().startswith("#") for c in line.split("&&")]


def ci_pytest_commands() -> set[str]:
    text = (ROOT / ".ci" / "run").read_text()
    return {m.group(1).strip() for m in re.finditer(r"python3? (-m pytest[^\n]*)", text)}


def run_cli(command: str) -> str:
    args = shlex.split(command)[1:]
    if args[:1] == ["demo"]:
        args += ["--epochs", DEMO_EPOCHS]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"README command failed: {command}\n{result.output}"
    return result.output


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """Run the README in a fresh folder; returns (folder, {command or block: output})."""
    folder = tmp_path_factory.mktemp("readme")
    outputs: dict[str, str] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        for language, code in code_blocks(README.read_text()):
            if language == "bash":
                for command in shell_commands(code):
                    if command.startswith("pip "):
                        assert command in INSTALLS, f"README: unexpected install {command!r}"
                    elif command.startswith("python -m pytest"):
                        assert command.removeprefix("python ") in ci_pytest_commands(), (
                            f"README test step {command!r} is not what .ci/run runs")
                    elif command.startswith("unilandmark "):
                        outputs[command] = run_cli(command)
                    else:
                        raise AssertionError(f"README: teach test_readme.py to run {command!r}")
            elif language == "python":
                buffer = io.StringIO()
                with contextlib.redirect_stdout(buffer):
                    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
                outputs[code] = buffer.getvalue()
            else:
                raise AssertionError(f"README: code block without bash/python tag: {code!r}")
    return folder, outputs


def test_readme_blocks_run_as_written(readme_run):
    folder, outputs = readme_run
    commands = [c for c in outputs if c.startswith("unilandmark ")]
    assert any(c.startswith("unilandmark demo") for c in commands)
    assert any(c.startswith("unilandmark predict") and "--spacing" in c for c in commands)
    python = [out for c, out in outputs.items() if not c.startswith("unilandmark ")]
    assert python and "sella" in python[0]  # it printed the head's landmark names


def test_readme_predict_writes_millimetres_with_their_source(readme_run):
    folder, outputs = readme_run
    lines = (folder / "demo-out" / "head.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert header == ["image", "landmark", "x", "y", "name", "x_mm", "y_mm", "confidence",
                      "domain", "flag", "qc", "orientation", "spacing_x", "spacing_y",
                      "spacing_source"]
    cells = dict(zip(header, lines[1].split(","), strict=True))
    assert cells["spacing_source"] == "option" and float(cells["spacing_x"]) == 0.8
    assert float(cells["x_mm"]) == pytest.approx(0.8 * float(cells["x"]))
    assert len(lines) == 1 + 90 * 8  # 60/15/15 head phantoms, 8 landmarks


def test_demo_writes_its_report(readme_run):
    """The demo's outputs (formerly test_demo.py)."""
    folder, _ = readme_run
    out = folder / "demo-out"
    text = (out / "report.md").read_text()
    for domain in ("head", "hand", "chest"):
        assert f"## {domain}" in text
        assert (out / "predictions" / f"{domain}.csv").is_file()
        assert (out / "report" / domain / "report.json").is_file()
        assert (out / "report" / domain / "sdr_curve.png").is_file()
        assert (out / "report" / domain / "per_landmark_error.png").is_file()
    assert "What the confidence means" in text
    assert (out / "run" / "best.pt").is_file()
    assert (folder / "demo-out" / "head-figures" / "per_landmark_error.png").is_file()


def test_readme_documents_spacing_and_both_test_steps():
    text = README.read_text()
    assert "--spacing" in text and "--assume-training-spacing" in text
    steps = {c.removeprefix("python ") for lang, code in code_blocks(text) if lang == "bash"
             for c in shell_commands(code) if c.startswith("python -m pytest")}
    assert steps == ci_pytest_commands() and len(steps) == 2
