"""Tables of measurement scores: the console (rich) and markdown."""

from __future__ import annotations

import math

from ..core.wording import plural

UNIT_TEXT = {"deg": "deg", "mm": "mm", "px": "px", "ratio": "ratio"}


def _num(value, spec: str) -> str:
    return format(value, spec) if value is not None and math.isfinite(value) else "-"


def _pct(value) -> str:
    return _num(100.0 * value if value is not None else None, ".1f")


def _counts(row: dict) -> str:
    counts = row.get("truth_counts") or {}
    return " ".join(f"{c}:{n}" for c, n in sorted(counts.items(), key=lambda kv: int(kv[0])))


def print_measurements(section: dict, console=None, title: str | None = None) -> None:
    """Per measurement: MAE ± SD (unit), accuracy, balanced SCR, ground-truth classes."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=title or f"measurements ({section['spec']}, coordinates "
                                 f"{section['coordinates']})")
    for col in ("measurement", "unit", "MAE ± SD", "acc. %", "SCR %", "n",
                "truth class:count"):
        table.add_column(col, justify="left" if col in ("measurement", "unit") else "right",
                         no_wrap=True)
    for r in section["measurements"]:
        digits = ".4f" if r["unit"] == "ratio" else ".3f"
        table.add_row(r["name"], UNIT_TEXT.get(r["unit"], r["unit"]),
                      f"{_num(r['mae'], digits)} ± {_num(r['sd'], digits)}",
                      _pct(r.get("accuracy")), _pct(r.get("scr")), str(r["n_compared"]),
                      _counts(r))
    table.add_row("mean", "", "", _pct(section["mean_accuracy"]),
                  _pct(section["mean_scr"]), "", "", style="bold")
    console.print(table)
    undefined = sum(r["undefined_prediction"] for r in section["measurements"])
    if undefined:
        console.print(f"{undefined} measurement(s) undefined in the prediction (a landmark "
                      "or the spacing missing): counted as misclassified, left out of MAE")


def markdown_rows(section: dict) -> list[str]:
    """``| name | unit | MAE | accuracy % | SCR % |`` rows (no header)."""
    out = []
    for r in section["measurements"]:
        digits = ".4f" if r["unit"] == "ratio" else ".3f"
        out.append(f"| {r['name']} | {r['unit']} | {_num(r['mae'], digits)} | "
                   f"{_pct(r.get('accuracy'))} | {_pct(r.get('scr'))} |")
    return out


def summary_lines(table, out) -> list[str]:
    """What ``measure`` wrote: counts, coordinates, orientation, then per measurement how
    many images have it and the class counts, each class with its words."""
    import numpy as np

    from .classes import class_labels
    from .scoring import COORDINATES

    spec = table.spec
    labels = class_labels(spec)
    mirrored = sum(img.mirrored for img in table.images)
    volumes = bool(table.images) and table.images[0].points.shape[-1] == 3
    no_spacing = 0 if volumes else sum(img.spacing is None for img in table.images)
    what = "volume" if volumes else "image"
    lines = [f"wrote {plural(len(table.images), what)} x {len(spec.names)} measurements "
             f"to {out} "
             + (f"(spec {spec.name}, coordinates world mm)" if volumes else
                f"(spec {spec.name}, coordinates {COORDINATES[table.truncate]}, {mirrored} "
                f"mirrored, {no_spacing} without spacing)")]
    if table.skipped:
        lines.append(f"skipped {len(table.skipped)} image(s) of another domain")
    width = max(8, *(len(n) for n in spec.names))
    for name in spec.names:
        values = table.values[name]
        defined = int(np.isfinite(values).sum())
        line = f"  {name:{width}s} {spec.unit(name):5s} defined for {defined}"
        if not defined and spec.unit(name) == "mm" and no_spacing:
            line += "   (in mm: needs a spacing; see --spacing)"
        elif name in table.classes:
            cls = table.classes[name]
            counts = {int(c): int((cls == c).sum()) for c in np.unique(cls[cls > 0])}
            words = labels.get(name, {})
            line += "   classes " + ", ".join(
                f"{c}{f' ({words[c]})' if c in words else ''}: {n}" for c, n in counts.items())
        lines.append(line)
    return lines
