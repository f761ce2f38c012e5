"""How well a prediction file's quality columns separate good points from bad ones.

For ``unilandmark evaluate`` (docs/quality.md): with the radius the dataset's largest SDR
threshold, a point is *wrong* when its error exceeds the radius. Reported: precision and
recall of the ``flag`` column for wrong points and the fraction flagged; per ``qc``
status the images, their MRE and error rate; the risk-coverage curve: the points ordered
from most to least trusted (by ``risk``, else by falling ``confidence``), the error rate
and MRE of the most trusted fraction kept, for every fraction.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core.types import Record
from ..quality.evidence import flag_scores

if TYPE_CHECKING:
    from ..predictions.table import PredictionTable

#: coverages (fractions of points kept) the JSON report lists
COVERAGES = tuple(round(0.05 * i, 2) for i in range(1, 21))


def quality_report(table: PredictionTable, records: list[Record], errors: np.ndarray,
                   radius: float, unit: str) -> dict | None:
    """The ``quality`` section of the evaluation report, or None when the file has no
    flag, risk or confidence columns."""
    keys, errs = [], []
    for record, row in zip(records, errors, strict=True):
        for k, e in enumerate(row):
            if np.isfinite(e):
                keys.append((record.id, k + 1))
                errs.append(float(e))
    if not keys or not (table.flags or table.risk or table.confidence):
        return None
    errs = np.asarray(errs)
    wrong = errs > radius
    out: dict = {"radius": float(radius), "unit": unit, "n_points": len(keys),
                 "n_wrong": int(wrong.sum())}
    if table.flags:
        flags = np.array([table.flags.get(key, False) for key in keys])
        out["flags"] = flag_scores(flags, wrong)
        out["flags"]["error_rate_unflagged"] = (float(wrong[~flags].mean())
                                                if (~flags).any() else float("nan"))
    if table.qc:
        out["qc"] = _qc_section(table, records, errors, radius)
    score, name = _trust_order(table, keys)
    if score is not None:
        out["risk_coverage"] = {"ordered_by": name, **risk_coverage(score, errs, radius)}
    return out


def _trust_order(table: PredictionTable, keys) -> tuple[np.ndarray | None, str]:
    """A score per point, low = most trusted: risk where every point has one, else minus
    the confidence."""
    if table.risk and all(k in table.risk for k in keys):
        return np.array([table.risk[k] for k in keys]), "risk"
    if table.confidence and all(k in table.confidence for k in keys):
        return -np.array([table.confidence[k] for k in keys]), "confidence"
    return None, ""


def risk_coverage(score: np.ndarray, errors: np.ndarray, radius: float) -> dict:
    """Error rate (% above ``radius``) and MRE of the most trusted points at each of
    :data:`COVERAGES`, the area under the error-rate curve (``aurc``, %; lower is better)
    and the same for the ideal order (by the errors themselves)."""
    order = np.argsort(score, kind="stable")
    rate, mre = _curves(errors[order], radius)
    ideal_rate, _ = _curves(np.sort(errors), radius)
    n = len(errors)
    at = [max(1, int(round(c * n))) - 1 for c in COVERAGES]
    return {"coverage": list(COVERAGES), "error_rate": [float(rate[i]) for i in at],
            "mre": [float(mre[i]) for i in at], "aurc": float(rate.mean()),
            "aurc_ideal": float(ideal_rate.mean())}


def _curves(sorted_errors: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    count = np.arange(1, len(sorted_errors) + 1)
    rate = 100.0 * np.cumsum(sorted_errors > radius) / count
    return rate, np.cumsum(sorted_errors) / count


def _qc_section(table: PredictionTable, records: list[Record], errors: np.ndarray,
                radius: float) -> dict:
    out = {}
    for status in ("pass", "review", "fail"):
        rows = [e[np.isfinite(e)] for r, e in zip(records, errors, strict=True)
                if table.qc.get(r.id) == status]
        flat = np.concatenate(rows) if rows else np.zeros(0)
        out[status] = {"images": len(rows),
                       "mre": float(flat.mean()) if flat.size else float("nan"),
                       "error_rate": float(100 * (flat > radius).mean()) if flat.size
                       else float("nan")}
    return out


def quality_lines(q: dict) -> list[str]:
    """Console lines for the ``quality`` section."""
    r, unit = q["radius"], q["unit"]
    lines = []
    if "flags" in q:
        f = q["flags"]
        lines.append(
            f"flags (wrong = error > {r:g} {unit}): {f['n_flagged']} of {f['n_points']} points "
            f"flagged ({_pct(f['flagged_fraction'])}); they catch {_pct(f['recall'])} of the "
            f"{f['n_wrong']} wrong points (recall), precision {_pct(f['precision'])}; "
            f"error rate of the unflagged points {_pct(f['error_rate_unflagged'])}")
    if "qc" in q:
        parts = [f"{s} {v['images']} images" + (f" (MRE {v['mre']:.2f} {unit}, "
                                                f"{v['error_rate']:.1f} % > {r:g} {unit})"
                                                if v["images"] else "")
                 for s, v in q["qc"].items()]
        lines.append("QC: " + ", ".join(parts))
    if "risk_coverage" in q:
        rc = q["risk_coverage"]
        at90 = rc["error_rate"][rc["coverage"].index(0.9)]
        lines.append(f"risk-coverage (ordered by {rc['ordered_by']}): keeping the 90 % most "
                     f"trusted points, {at90:.1f} % are wrong (all points: "
                     f"{rc['error_rate'][-1]:.1f} %); AURC {rc['aurc']:.2f} % (ideal "
                     f"{rc['aurc_ideal']:.2f} %)")
    return lines


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f} %"


def draw_risk_coverage(table: PredictionTable, records: list[Record], errors: np.ndarray,
                       radius: float, unit: str, path: str | Path) -> Path | None:
    """The risk-coverage figure: error rate and MRE of the kept points against the fraction
    kept (most trusted first), the ideal order, and the flags' operating point. None when
    the file has neither risk nor confidence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import savefig

    keys = [(r.id, k + 1) for r, row in zip(records, errors, strict=True)
            for k, e in enumerate(row) if np.isfinite(e)]
    errs = errors[np.isfinite(errors)]
    score, name = _trust_order(table, keys)
    if score is None or not len(errs):
        return None
    rate, mre = _curves(errs[np.argsort(score, kind="stable")], radius)
    ideal, _ = _curves(np.sort(errs), radius)
    coverage = np.arange(1, len(errs) + 1) / len(errs)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(100 * coverage, rate, color="C0", label=f"error rate, ordered by {name}")
    ax.plot(100 * coverage, ideal, color="C0", ls=":", lw=1, label="ideal order")
    if table.flags:
        flags = np.array([table.flags.get(k, False) for k in keys])
        kept = ~flags
        if kept.any():
            ax.plot([100 * kept.mean()], [100 * (errs[kept] > radius).mean()], "o", color="C3",
                    label=f"unflagged points ({100 * kept.mean():.1f} % kept)")
    ax.set(xlabel="points kept (%), most trusted first",
           ylabel=f"error rate (% > {radius:g} {unit})", xlim=(0, 100), ylim=(0, None),
           title="risk-coverage")
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    twin.plot(100 * coverage, mre, color="C2", lw=1, label=f"MRE ({unit})")
    twin.set(ylabel=f"MRE of kept points ({unit})", ylim=(0, None))
    lines = ax.get_legend_handles_labels()
    extra = twin.get_legend_handles_labels()
    ax.legend(lines[0] + extra[0], lines[1] + extra[1], fontsize=7, loc="upper left")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    savefig(fig, path)
    plt.close(fig)
    return path
