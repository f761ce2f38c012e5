"""Shared helpers for the benchmarks: device choice, synchronisation, JSON output."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from unilandmark.core.jsontext import json_text

#: the published GU2Net input sizes (W, H) and landmark counts
PAPER_DOMAINS = {"head": ((416, 512), 19), "hand": ((368, 512), 37), "chest": ((512, 512), 6)}


def devices(requested: str) -> list[str]:
    if requested == "all":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return [requested]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cpu_threads": torch.get_num_threads(), "processor": platform.processor()}
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or platform.processor() where unreadable."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_json(path: str | None, payload: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json_text(payload))


def print_rows(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """Print benchmark rows: model, domain, device, input, batch, then ``columns``
    given as (header, key, format spec)."""
    print(f"{'model':8s} {'domain':6s} {'device':6s} {'input':>9s} {'batch':>5s} " +
          " ".join(f"{h:>9s}" for h, _, _ in columns))
    for r in rows:
        print(f"{r['model']:8s} {r['domain']:6s} {r['device']:6s} "
              f"{r['input'][0]:>4d}x{r['input'][1]:<4d} {r['batch']:>5d} " +
              " ".join(format(r[k], f">9{spec}") for _, k, spec in columns))
