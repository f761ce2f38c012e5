"""The library's own exception types: a fault of the input, not of unilandmark.

:class:`InputError` (a ``ValueError``) is raised for a bad file, record, argument or
config; its message is one sentence naming the file, the record and the fault. The CLI
prints it as one line with exit code 2, and a batch skips the one file it concerns. Any
other exception is a bug: the CLI shows its traceback and says so, and a batch stops.
Every error type of the package derives from :class:`InputError` (``ImageReadError``,
``ConfigError``, ``DatasetError``, ``ContractError``, ``SpecError``, ...).
"""

from __future__ import annotations


class InputError(ValueError):
    """A bad input (file, record, argument, config); the message says which and why."""


class UnknownNameError(InputError, KeyError):
    """An unknown name (model, dataset, protocol, split, ...); the message lists the known
    ones. A ``KeyError`` too, for callers that look names up."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown name"
