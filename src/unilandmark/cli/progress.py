"""Progress of a batch of images on stderr: a live bar with images per second on a terminal,
a plain line every ``every`` images (and at the end) when stderr is a file or a pipe."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """Items per second since the start, e.g. ``12.3 images/s`` (results arrive a batch at a
    time, so a rate over the last few updates would jump)."""

    def __init__(self, unit: str = "images"):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        if not task.completed or not elapsed:
            return Text(f"- {self.unit}/s", style="progress.data.speed")
        return Text(f"{task.completed / elapsed:.1f} {self.unit}/s", style="progress.data.speed")


@contextmanager
def image_progress(total: int, console: Console, label: str = "predicting",
                   every: int = 50) -> Iterator:
    """Yield ``advance(n=1)``; call it once per finished image."""
    start = time.perf_counter()
    done = 0
    if console.is_terminal:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   RateColumn(), TimeElapsedColumn(), TextColumn("left"),
                   TimeRemainingColumn())
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n=1: bar.advance(task, n)
        return

    def advance(n: int = 1) -> None:
        nonlocal done
        done += n
        if done // every > (done - n) // every or done == total:
            elapsed = time.perf_counter() - start
            console.print(f"{label}: {done}/{total} images, "
                          f"{done / max(elapsed, 1e-9):.1f} images/s, {elapsed:.0f} s",
                          highlight=False, markup=False)

    yield advance
