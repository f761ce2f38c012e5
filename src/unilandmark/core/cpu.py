"""How many CPU cores a run can use now: its allowed cores less those other processes keep
busy (``train.threads`` unset; docs/training.md, "Threads on a busy machine").

A torch run with more threads than free cores does not just share them: OpenMP's threads
wait for each other at every parallel region, so each step waits for the slowest thread,
which the system has paused for another process (the demo's epochs went from 3 s to 15-76
s beside three other jobs). Fewer threads than cores costs little on a busy machine and
avoids that. Torch-free: measured from ``/proc/stat`` (Linux) over a short sleep, during
which this process is idle, so what is busy is the others; elsewhere the system's
one-minute load average stands in.
"""

from __future__ import annotations

import os
import time

#: how long the busy cores are sampled (seconds)
SAMPLE_S = 0.5


def allowed_cores() -> int:
    """The cores this process may run on (its affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies summed over all cores from ``/proc/stat``, or None."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [float(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 4:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cores(sample_s: float = SAMPLE_S) -> float | None:
    """Cores kept busy by other processes now (0..cpu_count), or None when unknown."""
    first = _cpu_times()
    if first is not None:
        time.sleep(sample_s)
        second = _cpu_times()
        if second is not None and second[1] > first[1]:
            fraction = (second[0] - first[0]) / (second[1] - first[1])
            return max(0.0, fraction * (os.cpu_count() or 1))
    try:
        return max(0.0, os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def free_threads(busy: float | None = None, cores: int | None = None) -> int:
    """Threads for a run: the allowed cores less the busy ones (rounded), at least 1."""
    cores = allowed_cores() if cores is None else cores
    busy = busy_cores() if busy is None else busy
    if busy is None:
        return cores
    return max(1, min(cores, int(round(cores - busy))))
