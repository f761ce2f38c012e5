"""ONNX against PyTorch for a volume model: landmark parity and prediction time per volume.

The model (default: the built-in ``brain`` cascade) is exported with ``unilandmark
export`` (its own check on a head phantom included, timed), then every AFIDs template in
``--root`` is predicted by ``VolumeDetector`` (PyTorch) and by ``OnnxVolumeDetector``
(onnxruntime, no torch), both on ``--threads`` threads. Per template: the largest and mean
difference of the landmarks in voxels of the template (and in mm, world LPS), the largest
confidence difference, whether every presence verdict agrees, and the time of one whole
prediction per backend (reading the file included; the best of ``--repeats`` after one
warm-up run). Beside them, each backend's networks alone: the coarse network on its grid and
one chunk of 16 cubes through the first patch stage.

    OMP_NUM_THREADS=1 python benchmarks/onnx_volume_parity.py \\
        --json docs/results/onnx_volume_parity.json

Output (``--json``): ``{"benchmark", "command", "argv", "date", "machine", "settings",
"export": {"seconds", "file_mb", "model_file_mb", "check_max_difference_voxel"},
"networks_s": {"coarse": {"torch", "onnx"}, "cubes_16": {"torch", "onnx"}},
"templates": [{"name", "size", "spacing_mm", "max_difference_voxel",
"mean_difference_voxel", "max_difference_mm", "max_confidence_difference",
"presence_agrees", "torch_s", "onnx_s"}], "summary": {"max_difference_voxel",
"mean_difference_voxel", "torch_s_mean", "onnx_s_mean"}}``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import cpu_model, machine, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = ROOT.parent / "shared" / "data" / "afids_templates"


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=str(DEFAULT_ROOT),
                   help="the AFIDs templates (images/*.nii*)")
    p.add_argument("--checkpoint", default="brain",
                   help="a volume model file or built-in name (default: brain)")
    p.add_argument("--threads", type=int, default=1, help="threads of both backends")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed predictions per volume and backend (the best is kept)")
    p.add_argument("--limit", type=int, default=None, help="the first N templates only")
    p.add_argument("--json", default=None, help="write the results here")
    return p.parse_args(argv)


def machine_info(threads: int) -> dict:
    import onnxruntime

    info = machine()
    info.update({"cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
                 "cpus_usable": len(os.sched_getaffinity(0))
                 if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                 "platform": platform.platform(), "numpy": np.__version__,
                 "onnxruntime": onnxruntime.__version__, "threads": threads,
                 # other jobs on a shared machine change the times, not the differences
                 "load_average_1min": round(os.getloadavg()[0], 2)})
    return info


def best_time(fn, repeats: int) -> tuple[float, object]:
    """(the best wall time of ``repeats`` calls after one warm-up, the last result)."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def compare(path: Path, torch_detector, onnx_detector, repeats: int) -> dict:
    """One template through both backends: differences and times."""
    torch_s, expected = best_time(lambda: torch_detector.predict(path), repeats)
    onnx_s, got = best_time(lambda: onnx_detector.predict(path), repeats)
    gaps = np.abs(got.voxels - expected.voxels).max(axis=-1)
    return {"name": path.name, "size": list(expected.geometry.size),
            "spacing_mm": [round(v, 4) for v in expected.geometry.spacing],
            "max_difference_voxel": float(gaps.max()),
            "mean_difference_voxel": float(gaps.mean()),
            "max_difference_mm": float(np.linalg.norm(got.world - expected.world,
                                                      axis=-1).max()),
            "max_confidence_difference": float(np.abs(got.confidence
                                                      - expected.confidence).max()),
            "presence_agrees": bool((got.present == expected.present).all()),
            "torch_s": round(torch_s, 4), "onnx_s": round(onnx_s, 4)}


def network_times(torch_detector, onnx_detector, domain: str, repeats: int) -> dict:
    """Each backend's networks alone, on zeros (seconds, best of ``repeats``): the coarse
    network on its grid and the first patch stage on one chunk of 16 cubes."""
    x, y, z = torch_detector.domains[domain]["input_size"]
    grid = np.zeros((z, y, x), dtype=np.float32)
    out = {"coarse": {"torch": best_time(lambda: torch_detector._coarse(domain)(grid),
                                         repeats)[0],
                      "onnx": best_time(lambda: onnx_detector.run(0, grid[None, None]),
                                        repeats)[0]}}
    steps = torch_detector.steps(domain)
    if steps:
        p = steps[0].patch_size
        cubes = np.zeros((16, 1, p, p, p), dtype=np.float32)
        n = next(i for i, stage in enumerate(onnx_detector.meta["stages"])
                 if i and stage.get("input"))  # the first refining stage in the file
        out["cubes_16"] = {"torch": best_time(lambda: steps[0].network(cubes), repeats)[0],
                           "onnx": best_time(lambda: onnx_detector.run(n, cubes), repeats)[0]}
    return {k: {b: round(t, 4) for b, t in v.items()} for k, v in out.items()}


def main(argv=None) -> dict:
    args = parse(argv)
    from unilandmark.checkpoints.builtin import model_path
    from unilandmark.export.exporter import export_onnx
    from unilandmark.export.volume_runner import OnnxVolumeDetector
    from unilandmark.inference.volume_detector import VolumeDetector

    paths = sorted((Path(args.root) / "images").glob("*.nii*"))[:args.limit]
    if not paths:
        raise SystemExit(f"no templates in {args.root}/images (../shared/data absent?)")
    torch.set_num_threads(args.threads)
    load_at_start = round(os.getloadavg()[0], 2)
    source = model_path(args.checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.onnx"
        start = time.perf_counter()
        summary = export_onnx(args.checkpoint, None, out)
        export = {"seconds": round(time.perf_counter() - start, 2),
                  "file_mb": round(out.stat().st_size / 2 ** 20, 2),
                  "model_file_mb": round(source.stat().st_size / 2 ** 20, 2),
                  "check_max_difference_voxel": summary.max_difference_voxel,
                  "check_volume": summary.check_volume}
        print(f"exported {source.name} in {export['seconds']} s ({export['file_mb']} MB); "
              f"check on a {summary.check_volume}: {summary.max_difference_voxel:.2g} voxel")
        torch_detector = VolumeDetector.from_checkpoint(source)
        onnx_detector = OnnxVolumeDetector(out, threads=args.threads)
        networks = network_times(torch_detector, onnx_detector, summary.domain,
                                 args.repeats)
        print(f"networks alone (s): {networks}")
        rows = []
        for path in paths:
            row = compare(path, torch_detector, onnx_detector, args.repeats)
            rows.append(row)
            print(f"{row['name']:24s} max {row['max_difference_voxel']:.2e} voxel, mean "
                  f"{row['mean_difference_voxel']:.2e}; PyTorch {row['torch_s']:.2f} s, "
                  f"ONNX {row['onnx_s']:.2f} s", flush=True)
    payload = {
        "benchmark": "onnx_volume_parity",
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "argv": sys.argv[1:],
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(args.threads),
        "settings": {"checkpoint": str(args.checkpoint), "root": str(args.root),
                     "repeats": args.repeats, "threads": args.threads,
                     "load_average_1min_at_start": load_at_start},
        "export": export, "networks_s": networks, "templates": rows,
        "summary": {"max_difference_voxel": max(r["max_difference_voxel"] for r in rows),
                    "mean_difference_voxel": float(np.mean([r["mean_difference_voxel"]
                                                            for r in rows])),
                    "torch_s_mean": float(np.mean([r["torch_s"] for r in rows])),
                    "onnx_s_mean": float(np.mean([r["onnx_s"] for r in rows]))}}
    write_json(args.json, payload)
    if args.json:
        print(f"wrote {args.json}")
    return payload


if __name__ == "__main__":
    main()
