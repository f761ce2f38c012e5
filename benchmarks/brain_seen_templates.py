"""A volume model on the four AFIDs templates it was trained on: a soundness check.

The built-in ``brain`` model has seen all four templates, so this is *not* an accuracy:
its held-out figure is the recipe's, leave one template out (``benchmarks/afids.py``).
It is the check that a retrained or re-slimmed model file predicts its own training
volumes as well as the file it replaces (a broken export, a wrong stage chain or a
coarse stage out of step with its cubes shows here at once). Per template and over all:
the mean, median and largest world (LPS) error to the AFIDs consensus, in mm.

    python benchmarks/brain_seen_templates.py --checkpoint brain \\
        --json docs/results/brain_seen_templates.json
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np

from _common import machine, write_json

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "afids_templates"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="brain", help="a model file or built-in name")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="the afids_templates folder")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="write the numbers here")
    a = p.parse_args(argv)

    import torch

    from unilandmark.checkpoints.builtin import model_path
    from unilandmark.checkpoints.checkpoint import load_checkpoint
    from unilandmark.data.adapters.volumes import afids_templates
    from unilandmark.inference.volume_detector import VolumeDetector

    torch.set_num_threads(a.threads)
    path = model_path(a.checkpoint)
    detector = VolumeDetector.from_checkpoint_state(load_checkpoint(path), "cpu", str(path))
    rows, errors = [], []
    for record in afids_templates(a.data).split_records("all"):
        t0 = time.perf_counter()
        result = detector.predict(record.image_path)
        seconds = time.perf_counter() - t0
        e = np.linalg.norm(np.asarray(result.world) - record.meta["world_lps"], axis=1)
        errors.append(e)
        rows.append({"template": record.id, "mre": float(e.mean()),
                     "median": float(np.median(e)), "max": float(e.max()),
                     "seconds": round(seconds, 2)})
        print(f"{record.id:18s} MRE {e.mean():5.2f} mm  median {np.median(e):5.2f}  "
              f"max {e.max():5.2f}  ({seconds:.1f} s)")
    every = np.concatenate(errors)
    summary = {"mre": float(every.mean()), "median": float(np.median(every)),
               "max": float(every.max()), "n_points": int(every.size)}
    print(f"all {every.size} points: MRE {summary['mre']:.2f} mm, median "
          f"{summary['median']:.2f}, max {summary['max']:.2f} (seen data: not an accuracy)")
    write_json(a.json, {"benchmark": "brain_seen_templates",
                        "command": "python benchmarks/brain_seen_templates.py " +
                                   shlex.join(argv if argv is not None else sys.argv[1:]),
                        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
                        "checkpoint": str(path), "templates": rows, "summary": summary})


if __name__ == "__main__":
    main()
