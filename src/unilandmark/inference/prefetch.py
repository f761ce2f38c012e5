"""Read ahead: load the next inputs in a small thread pool while the caller works.

Image decoders (libjpeg-turbo, SimpleITK) and the model release the GIL, so reading the
next images in threads overlaps with the network on the current batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


def prefetch(load: Callable[[int, Any], Any], items: Iterable, workers: int = 2,
             ahead: int = 8) -> Iterator[tuple[int, Any, Any]]:
    """Yield ``(index, item, load(index, item))`` in input order, with up to ``ahead``
    loads running or done ahead of the consumer in ``workers`` threads.

    A load that raises yields its exception object in place of the value (the caller
    decides: report and go on, or raise), so one bad input never stops the others.
    ``workers`` 0 loads in the calling thread. Leaving the loop early cancels the loads
    not yet started.
    """
    if workers <= 0:
        for index, item in enumerate(items):
            yield index, item, _call(load, index, item)
        return
    pending: deque[tuple[int, Any, Future]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="read") as pool:
        try:
            for index, item in enumerate(items):
                pending.append((index, item, pool.submit(_call, load, index, item)))
                if len(pending) > max(ahead, 1):
                    i, it, future = pending.popleft()
                    yield i, it, future.result()
            while pending:
                i, it, future = pending.popleft()
                yield i, it, future.result()
        finally:
            for _, _, future in pending:
                future.cancel()


def _call(load, index, item):
    try:
        return load(index, item)
    except Exception as err:  # noqa: BLE001 - handed to the consumer, which decides
        return err
