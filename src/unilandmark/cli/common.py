"""Shared pieces of the command line: consoles, the error policy, option parsing.

Error policy (docs/refusals.md): every expected failure (bad input, a refused argument,
a missing or unwritable file) is one line on stderr and exit code 2; a dataset's faults
keep their full list. A traceback is shown only for a real bug (an exception of an
unexpected kind), or for every failure with the global ``--debug`` option (or
``UNILANDMARK_DEBUG=1``).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import typer
import yaml
from rich.markup import escape

from ..core.console import make_console
from ..core.errors import InputError
from ..data.faults import DatasetError

#: the exceptions typer raises for its own exits and usage errors; they pass through
#: ``friendly`` untouched. Taken from typer itself: typer >= 0.20 bundles its own copy of
#: click (``typer._click``) and no longer installs ``click``, so naming ``click`` here would
#: both fail to import on a fresh install and miss typer's exceptions.
TYPER_EXITS: tuple[type[BaseException], ...] = (
    typer.Exit,
    typer.Abort,
    next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"),
)

console = make_console()  # results; never wraps tables when writing to a file or a pipe
err_console = make_console(stderr=True)

#: set by the global ``--debug`` option: show tracebacks for expected failures too
DEBUG = {"on": os.environ.get("UNILANDMARK_DEBUG", "") not in ("", "0")}

#: exit code of an expected failure (bad input or argument)
EXIT_INPUT = 2


def expected_failure(err: BaseException) -> str | None:
    """The one-line message of an expected failure, or None for a bug.

    Expected: the library's own errors (``core.errors.InputError`` and every error type
    derived from it: ImageReadError, ConfigError, DatasetError, ContractError, ...),
    pydantic's ValidationError, OSError (a missing, unreadable or unwritable file), YAML
    errors and MemoryError. Anything else, a bare ``ValueError`` or ``KeyError`` from
    deeper code included, is a bug and keeps its traceback.
    """
    from pydantic import ValidationError

    if isinstance(err, ValidationError):
        return "; ".join(f"{'.'.join(str(v) for v in e['loc']) or 'value'}: {e['msg']}"
                         for e in err.errors())
    if isinstance(err, yaml.YAMLError):
        from ..training.config import yaml_problem

        mark = getattr(err, "problem_mark", None)
        name = getattr(mark, "name", None)
        return f"{name + ': ' if name and not name.startswith('<') else ''}{yaml_problem(err)}"
    if isinstance(err, InputError):
        return str(err)
    if isinstance(err, OSError):
        if err.filename is not None:
            return f"{err.filename}: {err.strerror or err}"
        return str(err)
    if isinstance(err, MemoryError):
        return ("out of memory (an image or a batch too large for this machine; try a "
                "smaller --batch-size or a smaller image)")
    return None


#: the last line of the traceback of a failure that is not an input fault
BUG_NOTE = ("this is a bug in unilandmark, not a fault of your input: please report it "
            "with the traceback above (unilandmark --version, the command, the files)")


def report_failure(err: BaseException) -> int | None:
    """Print an expected failure; returns its exit code, or None when it is a bug."""
    if isinstance(err, DatasetError):
        err_console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False)
        return EXIT_INPUT
    message = expected_failure(err)
    if message is None:
        return None
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return EXIT_INPUT


def friendly(fn):
    """Turn expected failures into one clear line and exit code 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TYPER_EXITS:
            raise  # typer's own exits and usage errors (exit code 2 with the usage line)
        except Exception as err:  # noqa: BLE001 - sorted into expected failures and bugs
            if DEBUG["on"]:
                raise
            code = report_failure(err)
            if code is None:  # a bug: the full traceback, ending in what it means
                if hasattr(err, "add_note"):  # Python >= 3.11
                    err.add_note(BUG_NOTE)
                else:
                    err_console.print(f"[red]note:[/red] {escape(BUG_NOTE)}", highlight=False)
                raise
            raise typer.Exit(code) from None

    return wrapper


def set_debug(on: bool) -> None:
    DEBUG["on"] = bool(on) or os.environ.get("UNILANDMARK_DEBUG", "") not in ("", "0")


def parse_options(options: list[str] | None) -> dict:
    """``key=value`` pairs; values parsed as YAML scalars, ``a,b`` as a tuple."""
    out = {}
    for item in options or []:
        if "=" not in item:
            raise InputError(f"--opt {item!r}: expected key=value")
        key, value = item.split("=", 1)
        try:
            if "," in value:
                out[key.strip()] = tuple(yaml.safe_load(v) for v in value.split(","))
            else:
                out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise InputError(f"--opt {item!r}: the value is not a plain value") from None
    return out


def parse_size(text: str, option: str = "--size") -> tuple[int, int]:
    """``WxH`` -> ``(W, H)`` positive integers."""
    parts = text.lower().replace(" ", "").split("x")
    try:
        w, h = (int(v) for v in parts)
    except ValueError:
        raise InputError(f"{option} {text!r}: expected WIDTHxHEIGHT, e.g. 192x192") from None
    if w <= 0 or h <= 0:
        raise InputError(f"{option} {text!r}: width and height must be positive")
    return w, h


def parse_domain_counts(text: str, option: str = "--domains") -> dict[str, int]:
    """``head=19,hand=37`` -> ``{"head": 19, "hand": 37}`` (names unique, counts >= 1)."""
    out: dict[str, int] = {}
    for item in text.split(","):
        name, sep, count = item.partition("=")
        name = name.strip()
        try:
            k = int(count)
        except ValueError:
            k = 0
        if not sep or not name or k < 1:
            raise InputError(f"{option} {text!r}: expected name=landmarks pairs with at least "
                             f"one landmark, e.g. head=19,hand=37 (bad item {item!r})")
        if name in out:
            raise InputError(f"{option} {text!r}: domain {name!r} given twice")
        out[name] = k
    return out


def build_spec(name: str, root: Path, annotator: str | None, options: list[str] | None):
    from ..data.adapters.catalog import build_dataset

    kwargs = parse_options(options)
    if annotator is not None:
        kwargs["annotator"] = annotator
    return build_dataset(name, root, **kwargs)


OPT_HELP = "Adapter option key=value (repeatable), e.g. wrist_pair=2,6 or domain=hand."
