"""Review app latency on a CT-sized volume: time to the first view, then per slice.

A synthetic CT (default 512 x 512 x 400 voxels of 0.5 mm, int16 Hounsfield-like values:
the phantom of ``benchmarks/volume_memory.py``, an ellipsoid of soft tissue in air with
bone spheres and noise) is written into a temporary folder (``--format`` ``.nii.gz``, the
default, or ``.mha``; the writing is not timed). The review app is started on that folder
with a volume model (default the built-in ``brain``; its load time is reported apart),
and then, over HTTP, as the page does:

- **first view**: from the first request after the server started to the page's first
  three slices received: ``GET /api/volumes/NAME`` (reads the volume into memory and
  computes its window: the file's decoding is in this time) and the axial, coronal and
  sagittal slices through the centre, requested at once as the page requests them;
- **per slice**: ``--slices`` (50) requests in each view, scrolling from the centre one
  slice at a time as the wheel does (each a slice not asked before), each timed from
  request to last byte; median and 95th percentile per view;
- **first landmarks** (unless ``--no-landmarks``): ``GET /api/volumes/NAME/landmarks``
  once, the model's prediction on the volume already in memory (the page shows the views
  while it runs).

    OMP_NUM_THREADS=1 python benchmarks/serve_volume_latency.py \\
        --json docs/results/serve_volume_latency.json

Output (``--json``): ``{"benchmark", "command", "date", "machine", "settings", "volume":
{"size", "spacing_mm", "format", "bytes_on_disk", "bytes_int16"}, "model", "model_load_s",
"first_view_s", "volume_info_s", "first_slices_s", "per_slice": {view: {"n", "median_ms",
"p95_ms", "max_ms", "bytes"}}, "landmarks_s"}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_json  # noqa: E402
from volume_memory import command_line, machine_info, phantom_layout, write_phantom  # noqa: E402

VIEWS = ("axial", "coronal", "sagittal")


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, nargs=3, default=(512, 512, 400), metavar=("X", "Y", "Z"))
    p.add_argument("--spacing", type=float, default=0.5, help="mm per voxel (isotropic)")
    p.add_argument("--format", choices=("nii.gz", "mha"), default="nii.gz")
    p.add_argument("--checkpoint", default="brain", help="a volume model (default: brain)")
    p.add_argument("--slices", type=int, default=50, help="requests per view")
    p.add_argument("--no-landmarks", action="store_true",
                   help="do not time the model's first answer")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def timed_get(url: str) -> tuple[float, bytes, object]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as response:
        data = response.read()
        headers = response.headers  # case-insensitive
    return time.perf_counter() - t0, data, headers


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main(argv=None) -> dict:
    a = parse(argv)
    import torch

    torch.set_num_threads(a.threads)
    from unilandmark.checkpoints.builtin import model_path
    from unilandmark.inference.volume_detector import VolumeDetector
    from unilandmark.serve import BackgroundServer, create_app

    with tempfile.TemporaryDirectory(prefix="serve-volume-") as tmp:
        folder = Path(tmp)
        name = f"ct_volume.{a.format}"
        path = folder / name
        t0 = time.perf_counter()
        fov = np.array(a.size) * a.spacing
        write_phantom(path, a.size, a.spacing, phantom_layout(fov, None),
                      np.random.default_rng(a.seed))
        print(f"wrote {name}: {' x '.join(map(str, a.size))} voxels, "
              f"{path.stat().st_size / 2**20:.0f} MiB on disk ({time.perf_counter() - t0:.0f} s)")
        t0 = time.perf_counter()
        detector = VolumeDetector.from_checkpoint(model_path(a.checkpoint))
        load_s = time.perf_counter() - t0
        app = create_app(folder, detector)
        with BackgroundServer(app) as url:
            base = f"{url}/api/volumes/{name}"
            t0 = time.perf_counter()
            info_s, data, _ = timed_get(base)
            meta = json.loads(data)
            centre = [v["count"] // 2 for v in meta["views"].values()]
            with ThreadPoolExecutor(3) as pool:
                firsts = list(pool.map(
                    lambda vi: timed_get(f"{base}/slice/{vi[0]}/{vi[1]}")[0],
                    zip(VIEWS, centre, strict=True)))
            first_view_s = time.perf_counter() - t0
            per_slice = {}
            for view, start in zip(VIEWS, centre, strict=True):
                count = meta["views"][view]["count"]
                times, size = [], 0
                for i in range(1, a.slices + 1):
                    index = (start + i) % count
                    seconds, data, headers = timed_get(f"{base}/slice/{view}/{index}")
                    rows, cols = map(int, headers["X-Slice-Shape"].split())
                    assert len(data) == rows * cols * 2, (view, len(data))
                    times.append(seconds)
                    size = len(data)
                per_slice[view] = {"n": len(times), "median_ms": statistics.median(times) * 1e3,
                                   "p95_ms": percentile(times, 95) * 1e3,
                                   "max_ms": max(times) * 1e3, "bytes": size}
            landmarks_s = None
            if not a.no_landmarks:
                landmarks_s, data, _ = timed_get(f"{base}/landmarks")
                assert len(json.loads(data)["points"]) > 0
        result = {
            "benchmark": "serve_volume_latency", "command": command_line(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(), "settings": vars(a),
            "volume": {"size": list(a.size), "spacing_mm": a.spacing, "format": a.format,
                       "bytes_on_disk": path.stat().st_size,
                       "bytes_int16": int(np.prod(a.size)) * 2},
            "model": a.checkpoint, "model_load_s": load_s, "first_view_s": first_view_s,
            "volume_info_s": info_s, "first_slices_s": firsts, "per_slice": per_slice,
            "landmarks_s": landmarks_s}
    print(f"model load {load_s:.2f} s; first view {first_view_s:.2f} s "
          f"(volume read + window {info_s:.2f} s, three slices "
          f"{', '.join(f'{t * 1e3:.0f}' for t in firsts)} ms)")
    for view, row in per_slice.items():
        print(f"  {view:9s} per slice: median {row['median_ms']:.1f} ms, "
              f"p95 {row['p95_ms']:.1f} ms, max {row['max_ms']:.1f} ms "
              f"({row['bytes'] / 1024:.0f} KiB)")
    if landmarks_s is not None:
        print(f"first landmarks (the model on the volume in memory): {landmarks_s:.2f} s")
    write_json(a.json, result)
    return result


if __name__ == "__main__":
    main()
