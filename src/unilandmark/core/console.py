"""Rich consoles for the command line and reports: wrapped to the terminal when writing to
one, never wrapped when writing to a file or a pipe (tables keep one row per line)."""

from __future__ import annotations

from rich.console import Console, ConsoleDimensions

#: the width used when output is not a terminal: wide enough that no table wraps
NO_WRAP_WIDTH = 1000


class OutputConsole(Console):
    """A ``rich.console.Console`` whose width is the terminal's when it writes to one and
    ``NO_WRAP_WIDTH`` otherwise (decided at each print, so redirection is honoured)."""

    @property
    def size(self) -> ConsoleDimensions:
        dims = super().size
        if self._width is None and not self.is_terminal:
            return ConsoleDimensions(NO_WRAP_WIDTH, dims.height)
        return dims


def make_console(stderr: bool = False) -> Console:
    """Console for results (stdout) or messages and progress (``stderr=True``)."""
    return OutputConsole(stderr=stderr, soft_wrap=True)
