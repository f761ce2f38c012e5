"""``unilandmark demo``: phantoms -> universal training -> per-domain evaluation -> report.

Runs on a CPU in a few minutes and writes, under ``out``: ``data/`` (the phantoms),
``run/`` (checkpoints, metrics.jsonl), ``predictions/`` (prediction CSVs of the held-out
phantoms), ``report/`` (JSON reports, figures, overlays) and ``report.md``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..core.atomic import atomic_write_text
from ..data.adapters.catalog import synthetic_dataset
from ..data.synthetic import make_synthetic
from ..evaluation.protocols import native_protocol
from ..evaluation.report import (
    CONFIDENCE_NOTE,
    draw_figures,
    draw_overlay,
    markdown_table,
    summary_line,
    write_json,
)
from ..evaluation.scoring import evaluate
from ..inference.detector import Detector, result_rows
from ..predictions.table import read_predictions, write_predictions
from ..training.config import load_config
from ..training.fit import fit

DEMO_CONFIG = Path(__file__).parent / "configs" / "demo.yaml"


def run_demo(out: str | Path = "demo-out", epochs: int | None = None, seed: int = 0,
             progress: bool = True, log=print, threads: int | None = None) -> dict:
    """Run the whole demo; returns {domain: evaluation report}. ``threads``: torch threads
    for training (default: the cores other processes leave free, ``core.cpu``)."""
    out = Path(out)
    data = out / "data"
    log(f"[1/4] writing phantom domains to {data}")
    make_synthetic(data, train=60, val=15, test=15, size=(128, 128), seed=seed)
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["out_dir"] = str(out / "run")
    for d in raw["domains"]:
        d["root"] = str(data)
    raw["train"]["seed"] = seed
    if epochs is not None:
        raw["train"]["epochs"] = epochs
    if threads is not None:
        raw["train"]["threads"] = threads
    config = load_config(data=raw)
    log(f"[2/4] training a universal {config.model.name} on {len(config.domains)} domains "
        f"({config.train.epochs} epochs) into {out / 'run'}")
    result = fit(config, progress=progress, log=log)
    log(f"[3/4] predicting the held-out phantoms with {result.best_path}")
    detector = Detector.from_checkpoint(result.best_path)
    reports = {}
    lines = ["# unilandmark demo", "",
             f"Universal `{config.model.name}` trained once on {len(config.domains)} synthetic "
             f"domains ({config.train.epochs} epochs, best epoch chosen by validation MRE). "
             "Scores on the held-out test phantoms, original pixels x spacing.", ""]
    for dc in config.domains:
        spec = synthetic_dataset(data, dc.name)
        records = spec.split_records("test")
        results = detector.predict_many([r.image_path for r in records], dc.name)
        preds = out / "predictions" / f"{dc.name}.csv"
        preds.parent.mkdir(parents=True, exist_ok=True)
        write_predictions(preds, result_rows(results))
        report, errors, recs, pred = evaluate(read_predictions(preds), spec, "test",
                                              native_protocol(spec))
        folder = out / "report" / dc.name
        write_json(folder / "report.json", report)
        figures = draw_figures(report, errors, recs, pred, folder, worst=2)
        for r in results[:2]:
            figures.append(draw_overlay(r.image_path, r.points, None,
                                        folder / f"overlay_{r.id}.png",
                                        title=f"{r.id}: predicted landmarks", names=r.names,
                                        confidence=r.confidence))
        reports[dc.name] = report
        log(f"  {dc.name}: {summary_line(report)}")
        lines += [f"## {dc.name}", "", summary_line(report), "", markdown_table(report), ""]
        lines += [f"![{p.stem}]({p.relative_to(out)})" for p in figures] + [""]
    lines += ["## What the confidence means", "", CONFIDENCE_NOTE, ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    log(f"[4/4] report: {out / 'report.md'} (figures in {out / 'report'})")
    return reports
