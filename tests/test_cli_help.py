"""``--help`` reads well: every option of every command is described, boolean flags show no
value placeholder, `datasets list` points to the docs, and tables never wrap when the
output is a file or a pipe."""

from __future__ import annotations

import io
import re

import pytest
import typer
from typer.testing import CliRunner

from unilandmark.cli import app
from unilandmark.core.console import NO_WRAP_WIDTH, make_console


def _commands(command, path=()):
    """(path, click command) of every leaf command of the app."""
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name, sub in subcommands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, command


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_the_app_has_its_commands():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"train", "predict", "evaluate", "demo", "datasets list", "datasets check"} <= names


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_option_and_argument_is_described(path, command):
    assert (command.help or "").strip(), f"{' '.join(path)}: no command description"
    undocumented = [p.name for p in command.params
                    if not getattr(p, "hidden", False)
                    and not (getattr(p, "help", None) or "").strip()]
    assert undocumented == [], f"{' '.join(path)}: options without help: {undocumented}"


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_flags_render_as_flags(path, command):
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    for param in command.params:
        if getattr(param, "is_flag", False):
            for opt in param.opts + param.secondary_opts:
                # the flag is followed by a separator, another flag or its help, not a value
                line = next(ln for ln in result.output.splitlines()
                            if re.search(rf"(^|\s){re.escape(opt)}(\s|$)", ln))
                after = line.split(opt, 1)[1]
                assert not re.match(r"\s*[<A-Z{]", after.split("  ")[0]), line


def test_datasets_list_points_to_the_docs_not_the_source():
    result = CliRunner().invoke(app, ["datasets", "list"])
    assert result.exit_code == 0, result.output
    assert "docstring" not in result.output
    assert "docs/datasets.md" in result.output and "csv" in result.output


def test_tables_do_not_wrap_when_output_is_not_a_terminal():
    result = CliRunner().invoke(app, ["models", "--domains", "head=19,hand=37,chest=6"])
    assert result.exit_code == 0, result.output
    rows = [ln for ln in result.output.splitlines() if ln.startswith("│")]
    from unilandmark.checkpoints.builtin import BUILTIN_MODELS
    from unilandmark.models import MODELS

    # one line per model and per shipped trained model: nothing wrapped
    assert len(rows) == len(MODELS) + len(BUILTIN_MODELS)
    assert any("heatmap regression (plain U-Net, everything shared)" in r for r in rows)


def test_report_table_into_a_file_keeps_one_row_per_line():
    from unilandmark.evaluation.report import print_report

    names = [f"a_rather_long_landmark_name_{k}" for k in range(3)]
    sdr = {f"{t:.1f}": 99.0 for t in (2, 2.5, 3, 4, 6, 8, 10)}
    report = {"dataset": "d", "split": "test", "protocol": "p", "unit": "mm", "mre": 1.0,
              "sd": 0.5, "median": 0.9, "sdr": sdr, "n_images": 2, "n_points": 6,
              "per_landmark": [{"landmark": k + 1, "name": n, "mre": 1.0, "sd": 0.5,
                                "sdr": sdr} for k, n in enumerate(names)]}
    buffer = io.StringIO()
    console = make_console()
    console.file = buffer
    assert console.width == NO_WRAP_WIDTH
    print_report(report, console)
    lines = buffer.getvalue().splitlines()
    for name in names:
        assert sum(name in ln for ln in lines) == 1
    assert max(len(ln) for ln in lines) > 100  # wider than a terminal, not wrapped


def test_version_is_the_package_version():
    from importlib.metadata import version

    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"unilandmark {version('unilandmark')}"
