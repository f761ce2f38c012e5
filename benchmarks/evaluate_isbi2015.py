"""Score a checkpoint (or the built-in model) on ISBI 2015 test1 + test2 under every
head protocol: isbi2015-test1/-test2 (senior), isbi2015-mean-test1/-test2 and the pooled
gu2net-head. Predicts the 250 test images once, writes the prediction CSV and a JSON.
With ``--mirrored`` it also predicts every test2 image mirrored left-right and reports how
far the landmarks, mirrored back, lie from the original image's (MRE in mm, max per image)
and how many mirrored images were read as mirrored.

    python benchmarks/evaluate_isbi2015.py --checkpoint runs/isbi2015_cpu/best.pt \\
        --root ../shared/data/isbi2015 --json out/isbi_stage1.json --csv out/isbi_stage1.csv
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402
from unilandmark import isbi2015
from unilandmark.evaluation.protocols import PROTOCOLS
from unilandmark.evaluation.scoring import evaluate
from unilandmark.inference.detector import Detector, result_rows
from unilandmark.predictions.table import read_predictions, write_predictions

HEAD_PROTOCOLS = ("isbi2015-test1", "isbi2015-test2", "isbi2015-mean-test1",
                  "isbi2015-mean-test2", "gu2net-head")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="default: the built-in model")
    p.add_argument("--root", default="../shared/data/isbi2015")
    p.add_argument("--domain", default="head")
    p.add_argument("--csv", required=True, help="prediction CSV to write")
    p.add_argument("--json", default=None)
    p.add_argument("--mirrored", action="store_true",
                   help="also predict test2 mirrored left-right and compare")
    p.add_argument("--full-decode", action="store_true",
                   help="decode every JPEG whole (default: at the size the model needs)")
    a = p.parse_args(argv)
    senior = isbi2015(a.root, "senior")
    records = senior.split_records("test1") + senior.split_records("test2")
    detector = Detector.from_checkpoint(a.checkpoint)
    t0 = time.time()
    results = detector.predict_many([r.image_path for r in records], a.domain,
                                    reduced_decode=not a.full_decode)
    seconds = time.time() - t0
    write_predictions(a.csv, result_rows(results))
    table = read_predictions(a.csv)
    reports = {}
    for name in HEAD_PROTOCOLS:
        protocol = PROTOCOLS[name]
        spec = isbi2015(a.root, protocol.annotator)
        report, *_ = evaluate(table, spec, protocol.split, protocol)
        reports[name] = {k: report[k] for k in ("mre", "sd", "median", "sdr", "n_images",
                                                "n_points", "unit")}
        sdr = "  ".join(f"{t}:{v:.2f}%" for t, v in report["sdr"].items())
        print(f"{name:22s} MRE {report['mre']:.3f} ± {report['sd']:.3f} mm  median "
              f"{report['median']:.3f}  SDR {sdr}")
    print(f"predicted {len(records)} images in {seconds:.1f} s "
          f"({1000 * seconds / len(records):.0f} ms per image, reading included)")
    out = {"benchmark": "evaluate_isbi2015", "checkpoint": a.checkpoint or "built-in",
           "decode": "full" if a.full_decode else "reduced",
           "predict_s": seconds, "machine": machine(), "protocols": reports}
    if a.mirrored:
        out["mirrored_test2"] = mirrored_consistency(detector, senior.split_records("test2"),
                                                     a.domain)
    write_json(a.json, out)
    return reports


def mirrored_consistency(detector, records, domain) -> dict:
    """Predict each image and its left-right mirror (both as arrays, whole, spacing
    0.1 mm), mirror the mirror's points back, and compare: MRE and worst image in mm, and
    how many mirrors were read as mirrored."""
    import numpy as np

    from unilandmark import read_image

    gaps, read_mirrored = [], 0
    for record in records:
        array, _ = read_image(record.image_path)
        original = detector.predict(array, domain, spacing=(0.1, 0.1))
        result = detector.predict(np.ascontiguousarray(array[:, ::-1]), domain,
                                  spacing=(0.1, 0.1))
        back = result.points.astype(np.float64).copy()
        back[:, 0] = (array.shape[1] - 1) - back[:, 0]
        gaps.append(0.1 * np.linalg.norm(back - original.points, axis=-1).mean())
        read_mirrored += result.orientation == "mirrored"
    gaps = np.asarray(gaps)
    summary = {"n_images": len(gaps), "mre_mm": float(gaps.mean()),
               "max_image_mm": float(gaps.max()), "read_as_mirrored": int(read_mirrored)}
    print(f"test2 mirrored: landmarks mirrored back differ from the original's by "
          f"{summary['mre_mm']:.3f} mm MRE (worst image {summary['max_image_mm']:.3f} mm); "
          f"{read_mirrored} of {len(gaps)} read as mirrored")
    return summary


if __name__ == "__main__":
    main()
