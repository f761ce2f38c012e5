"""The ``unilandmark`` command: thin typer wrappers over the library functions.

One module per command group; this file only assembles them into ``app``.
"""

from __future__ import annotations

import sys

import typer

from .adapt import adapt_cmd
from .calibrate import calibrate_cmd
from .common import set_debug
from .conventions import conventions_cmd
from .convert import convert_cmd
from .datasets import datasets_app
from .evaluate import evaluate_cmd
from .export import export_cmd
from .measure import measure_cmd
from .models import demo_cmd, models_cmd, slim_cmd
from .predict import predict_cmd
from .report import report_cmd
from .serve import serve_cmd
from .train import train_cmd

#: plain (click) help formatting: typer's rich panels show a value placeholder after boolean
#: flags (``--resume <bool>``) in typer >= 0.2x, which reads as if the flag took a value;
#: sub-apps inherit this setting from the root app
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_show_locals=False,
                  help="Anatomical landmark detection: datasets, training, prediction, scoring. "
                       "File formats (prediction CSV, report JSON): docs/protocols.md.")


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"unilandmark {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of every "
                                                      "failure (also UNILANDMARK_DEBUG=1)."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Anatomical landmark detection: datasets, training, prediction, scoring. File formats
    (prediction CSV, report JSON): docs/protocols.md."""
    set_debug(debug)


app.add_typer(datasets_app, name="datasets")
app.command("train")(train_cmd)
app.command("adapt")(adapt_cmd)
app.command("predict")(predict_cmd)
app.command("evaluate")(evaluate_cmd)
app.command("calibrate")(calibrate_cmd)
app.command("conventions")(conventions_cmd)
app.command("measure")(measure_cmd)
app.command("report")(report_cmd)
app.command("models")(models_cmd)
app.command("slim")(slim_cmd)
app.command("convert")(convert_cmd)
app.command("export")(export_cmd)
app.command("demo")(demo_cmd)
app.command("serve")(serve_cmd)


def main() -> None:  # pragma: no cover - console entry for `python -m unilandmark.cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
