"""Shared pieces of the command line: consoles, error handling, option parsing."""

from __future__ import annotations

import functools
from pathlib import Path

import typer
import yaml

from ..console import make_console
from ..data.faults import DatasetError

console = make_console()  # results; never wraps tables when writing to a file or a pipe
err_console = make_console(stderr=True)


def friendly(fn):
    """Turn library errors into a clear message and a non-zero exit, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DatasetError as err:
            err_console.print(f"[red]error:[/red] {err}", markup=True, highlight=False)
            raise typer.Exit(1) from None
        except (ValueError, KeyError, FileNotFoundError) as err:
            msg = err.args[0] if isinstance(err, KeyError) and err.args else err
            err_console.print(f"[red]error:[/red] {msg}", markup=True, highlight=False)
            raise typer.Exit(2) from None

    return wrapper


def parse_options(options: list[str] | None) -> dict:
    """``key=value`` pairs; values parsed as YAML scalars, ``a,b`` as a tuple."""
    out = {}
    for item in options or []:
        if "=" not in item:
            raise ValueError(f"option {item!r}: expected key=value")
        key, value = item.split("=", 1)
        if "," in value:
            out[key.strip()] = tuple(yaml.safe_load(v) for v in value.split(","))
        else:
            out[key.strip()] = yaml.safe_load(value)
    return out


def build_spec(name: str, root: Path, annotator: str | None, options: list[str] | None):
    from ..data.catalog import build_dataset

    kwargs = parse_options(options)
    if annotator is not None:
        kwargs["annotator"] = annotator
    return build_dataset(name, root, **kwargs)


OPT_HELP = "Adapter option key=value (repeatable), e.g. wrist_pair=2,6 or domain=hand."


