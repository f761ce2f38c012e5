"""``unilandmark conventions``: where a site's habits differ from a model's, before adapting.

A site's labelled images (any dataset adapter, a split) are predicted by the model as
``predict`` would; per landmark, the mean offset of the model from the site's points (the
convention), the spread around it and whether the offset exceeds its own uncertainty
(:mod:`..evaluation.conventions`). Beside it the whole error (MRE) and the MRE once every
landmark's mean offset is removed: what adapting the domain to the site can remove at most
is the difference (docs/adapt.md).
"""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError
from ..core.metrics import radial_errors
from ..core.types import error_scale, error_unit, truth_points
from ..evaluation.conventions import SIGNIFICANT_SE, convention_offsets, convention_table


def convention_report(detector, domain: str, spec, split: str, batch_size: int = 4) -> dict:
    """The convention report of ``detector``'s ``domain`` on ``spec``'s ``split``:
    ``{"domain", "dataset", "split", "n_images", "unit", "mre", "mre_offset_removed",
    "mean_offset", "landmarks": [row, ...] (largest offset first, see
    evaluation.conventions.convention_table)}``; mm where every image has a spacing."""
    if domain not in detector.domains:
        raise InputError(f"--domain {domain}: the model knows {sorted(detector.domains)}")
    names = list(detector.domains[domain]["landmark_names"])
    if list(spec.landmark_names) != names:
        raise InputError(f"{spec.name}: its landmarks ({len(spec.landmark_names)}: "
                         f"{', '.join(spec.landmark_names[:4])}, ...) differ from domain "
                         f"{domain}'s ({len(names)}: {', '.join(names[:4])}, ...); a "
                         "convention report compares the same landmarks")
    records = spec.split_records(split)
    if len(records) < 2:
        raise InputError(f"{spec.name}: split {split!r} has {len(records)} image(s); a "
                         "convention (a mean offset and its spread) needs at least 2")
    unit, scale = error_unit(records), error_scale(records)
    results = detector.predict_many([r.image_path for r in records], domain,
                                    batch_size=batch_size, orientation="original")
    pred, truth = np.stack([r.points for r in results]), truth_points(records)
    offsets = convention_offsets(pred, truth, scale)
    removed = pred - offsets["mean_px"][None]
    return {"domain": domain, "dataset": spec.name, "split": split, "n_images": len(records),
            "unit": unit, "mre": float(np.nanmean(radial_errors(pred, truth, scale))),
            "mre_offset_removed": float(np.nanmean(radial_errors(removed, truth, scale))),
            "mean_offset": float(np.nanmean(offsets["magnitude"])),
            "significant_se": SIGNIFICANT_SE,
            "landmarks": convention_table(offsets, names, unit)}


def report_markdown(report: dict) -> str:
    """The report as a Markdown table with a headline."""
    u = report["unit"]
    rows = ["| landmark | dx | dy | offset | spread | n | convention? |",
            "|---|---|---|---|---|---|---|"]
    for r in report["landmarks"]:
        rows.append(f"| {r['landmark']} | {r['dx']:+.2f} | {r['dy']:+.2f} | {r['offset']:.2f} "
                    f"| {r['spread']:.2f} | {r['n']} | {'yes' if r['significant'] else 'no'} |")
    return (f"# Conventions: {report['dataset']} {report['split']} against domain "
            f"{report['domain']}\n\n{headline(report)}\n\nOffsets in {u} (model minus the "
            f"site's points; x right, y down); spread: the per-image scatter around the "
            f"mean offset; convention: the offset exceeds {report['significant_se']:g} "
            "standard errors.\n\n" + "\n".join(rows) + "\n")


def headline(report: dict) -> str:
    u, n = report["unit"], sum(r["significant"] for r in report["landmarks"])
    return (f"On {report['n_images']} images the model misses the site's points by "
            f"{report['mre']:.2f} {u} (MRE); {n} of {len(report['landmarks'])} landmarks "
            f"are offset by a convention (mean {report['mean_offset']:.2f} {u}); with each "
            f"landmark's mean offset removed the MRE would be {report['mre_offset_removed']:.2f}"
            f" {u}: adapting the domain to the site (`unilandmark adapt --domain "
            f"{report['domain']}`) can remove at most the difference.")
