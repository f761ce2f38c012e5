"""Before/after pictures of the report's figures, for docs/figures.md.

Draws one overlay (from a finished demo folder) and the per-landmark error plot (from a
demo domain, or from any scored prediction file, e.g. the built-in model on ISBI test2,
whose few gross failures make the errors skewed) with the report code of an earlier
commit ("before") and with the current one ("after"):

    unilandmark demo --out demo-out
    unilandmark predict ../shared/data/isbi2015/RawImage/Test2Data --domain head --out test2.csv
    PYTHONPATH=src python docs/figures/make_figures.py demo-out docs/figures --domain hand \
        --predictions test2.csv --dataset isbi2015 --root ../shared/data/isbi2015 \
        --protocol isbi2015-test2

Writes overlay_before.png, overlay_after.png, per_landmark_before.png and
per_landmark_after.png into the output folder.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BEFORE_REV = "cb1e6fc"  # the last commit with the mean ± SD bars and unnamed numbers


def report_module_at(rev: str):
    """unilandmark/report.py as it was at ``rev``, loaded inside the installed package."""
    source = subprocess.run(["git", "show", f"{rev}:src/unilandmark/report.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    # the package was layered since: its relative imports name the modules' new homes
    source = source.replace("from .atomic ", "from .core.atomic ").replace(
        "from .types ", "from .core.types ")
    spec = importlib.util.spec_from_loader("unilandmark._report_before", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "unilandmark"
    sys.modules[spec.name] = module
    exec(compile(source, f"report.py@{rev}", "exec"), module.__dict__)
    return module


def main(argv=None) -> None:
    from unilandmark.data.adapters.catalog import synthetic_dataset
    from unilandmark.evaluation import report as after
    from unilandmark.evaluation.protocols import native_protocol
    from unilandmark.evaluation.scoring import evaluate
    from unilandmark.predictions.table import read_predictions

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("demo", type=Path, help="a folder written by `unilandmark demo --out`")
    p.add_argument("out", type=Path, help="where to write the four PNGs")
    p.add_argument("--domain", default="hand")
    p.add_argument("--before", default=BEFORE_REV, help="git revision of the 'before' code")
    p.add_argument("--predictions", type=Path, default=None,
                   help="per-landmark plot from this prediction CSV (default: the demo's)")
    p.add_argument("--dataset", default="isbi2015", help="adapter of --predictions")
    p.add_argument("--root", type=Path, default=None, help="dataset root of --predictions")
    p.add_argument("--protocol", default="isbi2015-test2", help="protocol of --predictions")
    a = p.parse_args(argv)
    before = report_module_at(a.before)
    spec = synthetic_dataset(a.demo / "data", a.domain)
    predictions = a.demo / "predictions" / f"{a.domain}.csv"
    report, errors, records, pred = evaluate(read_predictions(predictions), spec, "test",
                                             native_protocol(spec))
    with open(predictions, newline="") as fh:
        confidence = {(r["image"], int(r["landmark"])): float(r["confidence"])
                      for r in csv.DictReader(fh)}
    n = int(np.argmax(np.nanmean(errors, axis=1)))  # the worst test image
    record = records[n]
    conf = np.array([confidence[(record.id, k + 1)] for k in range(spec.num_landmarks)])
    a.out.mkdir(parents=True, exist_ok=True)
    # the demo's overlays as they were drawn: predicted points, numbers, a repeated title
    before.draw_overlay(record.image_path, pred[n], None, a.out / "overlay_before.png",
                        title=f"{a.domain} {record.id}: predicted landmarks")
    after.draw_overlay(record.image_path, pred[n], None, a.out / "overlay_after.png",
                       title=f"{record.id}: predicted landmarks", names=spec.landmark_names,
                       confidence=conf)
    if a.predictions is not None:
        from unilandmark.data.adapters.catalog import build_dataset
        from unilandmark.evaluation.protocols import PROTOCOLS, get_protocol

        other = build_dataset(a.dataset, a.root, annotator=PROTOCOLS[a.protocol].annotator)
        report, errors, records, pred = evaluate(read_predictions(a.predictions), other,
                                                 PROTOCOLS[a.protocol].split,
                                                 get_protocol(a.protocol, other))
    with tempfile.TemporaryDirectory() as tmp:
        before.draw_figures(report, errors, records, pred, tmp, worst=0)
        (a.out / "per_landmark_before.png").write_bytes(
            (Path(tmp) / "per_landmark_error.png").read_bytes())
    after.draw_landmark_errors(report, errors, a.out / "per_landmark_after.png")
    per = report["per_landmark"]
    below = [e["landmark"] for e in per if e["mre"] - e["sd"] < 0]
    print(f"overlay: {a.domain} {record.id}; per-landmark plot: {report['dataset']} "
          f"{report['split']}, landmarks whose mean - SD < 0: {below}")
    for name in ("overlay_before", "overlay_after", "per_landmark_before",
                 "per_landmark_after"):
        path = a.out / f"{name}.png"
        print(f"{path}: {path.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
