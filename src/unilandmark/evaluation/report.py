"""Reports: a console/markdown table, the JSON report, and figures.

Figures: the SDR curve, per-landmark errors (box plots: they cannot go below zero), and
overlays of the worst images (prediction and ground truth drawn on the image, numbers in
outlined text beside the points, a legend of the landmark names).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.atomic import atomic_path, atomic_write_text
from ..core.jsontext import json_text
from ..core.types import Record


def write_json(path: str | Path, report: dict) -> None:
    """The JSON report, atomically; NaN (a landmark never visible) is written as null."""
    atomic_write_text(path, json_text(report))


def summary_line(report: dict) -> str:
    unit = report["unit"]
    sdr = ", ".join(f"SDR@{t}{unit} {v:.2f}%" for t, v in report["sdr"].items())
    return (f"{report['protocol']}: MRE {report['mre']:.3f} ± {report['sd']:.3f} {unit} "
            f"(median {report['median']:.3f}), {sdr}; {report['n_images']} images, "
            f"{report['n_points']} points")


def markdown_table(report: dict) -> str:
    """Per-landmark markdown table followed by the overall row."""
    unit = report["unit"]
    ts = list(report["sdr"])
    head = f"| landmark | name | MRE ({unit}) | SD | " + " | ".join(f"SDR@{t}" for t in ts) + " |"
    lines = [head, "|" + "---|" * (4 + len(ts))]
    for e in report["per_landmark"]:
        cells = " | ".join(f"{e['sdr'][t]:.1f}" for t in ts)
        lines.append(f"| {e['landmark']} | {e.get('name', '')} | {e['mre']:.3f} | "
                     f"{e['sd']:.3f} | {cells} |")
    cells = " | ".join(f"**{report['sdr'][t]:.2f}**" for t in ts)
    lines.append(f"| all | | **{report['mre']:.3f}** | {report['sd']:.3f} | {cells} |")
    return "\n".join(lines)


def print_report(report: dict, console=None) -> None:
    from rich.table import Table

    from ..core.console import make_console

    console = console or make_console()
    unit = report["unit"]
    ts = list(report["sdr"])
    table = Table(title=f"{report['dataset']} / {report['split']} — {report['protocol']}")
    for col in ["#", "landmark", f"MRE ({unit})", "SD", *[f"SDR@{t}" for t in ts]]:
        table.add_column(col, justify="right" if col not in ("landmark",) else "left")
    for e in report["per_landmark"]:
        table.add_row(str(e["landmark"]), str(e.get("name", "")), f"{e['mre']:.3f}",
                      f"{e['sd']:.3f}", *[f"{e['sdr'][t]:.1f}" for t in ts])
    table.add_row("", "all", f"{report['mre']:.3f}", f"{report['sd']:.3f}",
                  *[f"{report['sdr'][t]:.2f}" for t in ts], style="bold")
    console.print(table)
    console.print(summary_line(report))


def savefig(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")


#: what a landmark's confidence is, for reports and overlays (docs/training.md explains it)
CONFIDENCE_NOTE = (
    "Confidence is the height of the peak of the landmark's predicted heatmap, 0 to 1: the "
    "training target peaks at 1 on the landmark, so 0.9 means the network answers about as "
    "firmly as on its training images, while 0.2 means its strongest evidence reached only a "
    "fifth of that height (a blurred or doubled peak: look at that landmark). It is not a "
    "calibrated probability of being right; the quality flags will use a threshold "
    "calibrated on validation errors instead.")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_figures(report: dict, errors: np.ndarray, records: list[Record], pred: np.ndarray,
                 out_dir: str | Path, worst: int = 3) -> list[Path]:
    """SDR curve, per-landmark error plot and the ``worst`` images' overlays as PNGs."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unit = report["unit"]
    written = []
    finite = errors[np.isfinite(errors)]

    fig, ax = plt.subplots(figsize=(5, 3.5))
    top = float(max(np.percentile(finite, 99), max(float(t) for t in report["sdr"])) * 1.2)
    radii = np.linspace(0, top, 200)
    ax.plot(radii, [100.0 * np.mean(finite <= r) for r in radii], label=report["protocol"])
    for t, v in report["sdr"].items():
        ax.plot([float(t)], [v], "o", color="C1")
        ax.annotate(f"{v:.1f}%", (float(t), v), textcoords="offset points", xytext=(4, -12),
                    fontsize=8)
    ax.set(xlabel=f"radius ({unit})", ylabel="SDR (%)", ylim=(0, 101),
           title=f"SDR curve — {report['dataset']} {report['split']}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    written.append(out / "sdr_curve.png")
    savefig(fig, written[-1])
    plt.close(fig)

    written.append(draw_landmark_errors(report, errors, out / "per_landmark_error.png"))

    order = np.argsort([-np.nanmean(e) for e in errors])[:worst]
    names = [e.get("name", "") for e in report["per_landmark"]]
    for rank, n in enumerate(order, start=1):
        written.append(out / f"worst_{rank}_{records[n].id}.png")
        draw_overlay(records[n].image_path, pred[n], records[n].points, written[-1],
                     title=f"{records[n].id}: mean error {np.nanmean(errors[n]):.2f} {unit}",
                     names=names)
    return written


def draw_landmark_errors(report: dict, errors: np.ndarray, path: str | Path) -> Path:
    """Box plot of each landmark's radial errors (box: quartiles, line: median, whiskers:
    5th-95th percentile, dots beyond): it never goes below zero, unlike mean ± SD."""
    plt = _pyplot()
    fig = landmark_error_figure(report, errors)
    savefig(fig, Path(path))
    plt.close(fig)
    return Path(path)


def landmark_error_figure(report: dict, errors: np.ndarray):
    """The matplotlib figure of :func:`draw_landmark_errors` (errors (N, K), NaN = left out)."""
    plt = _pyplot()
    unit = report["unit"]
    per = report["per_landmark"]
    columns = [errors[:, k][np.isfinite(errors[:, k])] for k in range(errors.shape[1])]
    labels = [f"{k + 1} {e.get('name', '')}".strip() for k, e in enumerate(per)]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.42 * len(columns) + 1.5), 3.8))
    keep = [k for k, c in enumerate(columns) if c.size]
    ax.boxplot([columns[k] for k in keep], positions=[k + 1 for k in keep], widths=0.6,
               whis=(5, 95), patch_artist=True, medianprops={"color": "black"},
               boxprops={"facecolor": "#9ecae1", "edgecolor": "#3182bd"},
               flierprops={"marker": ".", "markersize": 3, "alpha": 0.5})
    ax.axhline(report["median"], color="C3", ls="--", lw=1)
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=60, ha="right", fontsize=7)
    ax.set_xlim(0.3, len(labels) + 0.7)
    # a few gross failures would squash every box: the axis ends a little above the highest
    # whisker, and the points beyond are counted at the top of their column
    whisker = max((float(np.percentile(columns[k], 95)) for k in keep), default=1.0)
    top = max(1.35 * whisker, 1.1 * float(report["median"]), 1e-6)
    beyond = 0
    for k in keep:
        n = int((columns[k] > top).sum())
        if n:
            beyond += n
            ax.annotate(f"{n}\u2191", (k + 1, top), xytext=(0, -9), textcoords="offset points",
                        ha="center", fontsize=7, color="C3")
    ax.set_ylim(0, top)
    title = (f"error per landmark (box: quartiles, whiskers: 5-95 %)\ndashed: median of all "
             f"points, {report['median']:.2f} {unit} (MRE {report['mre']:.2f})")
    if beyond:
        title += f"; {beyond} point(s) above {top:.3g} counted at the top (\u2191)"
    ax.set_title(title, fontsize=9)
    ax.set(ylabel=f"radial error ({unit})")
    ax.grid(axis="y", alpha=0.3)
    return fig


#: label offsets tried around a point, in typographic points (x right, y up)
#: label offsets tried, near first (typographic points from the landmark, y up); the far
#: ones get a leader line back to their landmark
_OFFSETS = ((7, 5), (7, -11), (-13, 5), (-13, -11), (9, -3), (-16, -3), (-3, 9), (-3, -16),
            (20, 14), (20, -22), (-26, 14), (-26, -22), (26, -3), (-32, -3), (-3, 24),
            (-3, -30))
#: a label further than this from its landmark (points) is joined to it by a leader line
LEADER_FROM_PT = 14.0


def label_offsets(points_pt: np.ndarray, size_pt: float = 9.0,
                  bounds_pt: tuple[float, float] | None = None) -> list[tuple[float, float]]:
    """Choose an offset per label (points (K, 2) in typographic points, y up) so that labels
    keep clear of the other landmarks and of the labels placed before them, and inside
    ``bounds_pt`` (W, H) of the image when given (a label over the title or off the image
    is a clash); greedy, in order, the offset with the fewest clashes wins (ties: the
    nearest, listed first)."""
    placed: list[np.ndarray] = []
    chosen = []
    finite = points_pt[np.all(np.isfinite(points_pt), axis=1)]
    for p in points_pt:
        if not np.all(np.isfinite(p)):
            chosen.append(_OFFSETS[0])
            continue
        best, best_cost = _OFFSETS[0], None
        for off in _OFFSETS:
            centre = p + np.array(off) + np.array([3.0, 3.0])  # centre of a short label
            cost = float(np.sum(np.linalg.norm(finite - centre, axis=1) < size_pt * 0.8))
            cost += 2.0 * sum(np.linalg.norm(q - centre) < size_pt * 1.3 for q in placed)
            if bounds_pt is not None:
                w, h = bounds_pt
                inside = 0 <= centre[0] - 4 and centre[0] + 6 <= w and 0 <= centre[1] - 5 \
                    and centre[1] + 5 <= h
                cost += 0.0 if inside else 3.0
            cost += 0.01 * float(np.hypot(*off))  # prefer the near offsets
            if best_cost is None or cost < best_cost:
                best, best_cost = off, cost
        chosen.append(best)
        placed.append(p + np.array(best) + np.array([3.0, 3.0]))
    return chosen


def draw_overlay(image_path: str, pred: np.ndarray, truth: np.ndarray | None, path: Path,
                 title: str = "", confidence: np.ndarray | None = None,
                 names: list[str] | tuple[str, ...] | None = None,
                 flags: np.ndarray | None = None, full_resolution: bool = False) -> Path:
    """Draw predicted (and ground-truth) landmarks on the image: numbers in outlined text
    placed off the points (a leader line where a label had to move away to stay clear of
    the others and inside the image), and a legend of the numbers' names (with each
    confidence).

    ``flags`` (K,) bool: flagged landmarks (docs/quality.md) get an orange ring, a ``!``
    in the legend and a "check:" line naming them. ``full_resolution``: the image is drawn
    at its own pixel size (one output pixel per image pixel; the legend beside it), else
    about 660 pixels wide.
    """
    from matplotlib import patheffects
    from matplotlib.lines import Line2D

    from ..imageio.read import read_image

    plt = _pyplot()
    image, _ = read_image(image_path)
    h, w = image.shape
    fig_w = 6.0
    fig, ax = plt.subplots(figsize=(fig_w, fig_w * h / max(w, 1)))
    ax.imshow(image, cmap="gray", interpolation="nearest" if full_resolution else "antialiased")
    handles = []
    flags = np.zeros(len(pred), bool) if flags is None else np.asarray(flags, bool)
    if truth is not None:
        ax.scatter(truth[:, 0], truth[:, 1], s=22, facecolors="none", edgecolors="lime",
                   linewidths=1.2)
        handles.append(Line2D([], [], ls="none", marker="o", mfc="none", mec="lime",
                              label="ground truth"))
        for p, g in zip(pred, truth, strict=True):
            if np.all(np.isfinite(g)) and np.all(np.isfinite(p)):
                ax.plot([p[0], g[0]], [p[1], g[1]], color="yellow", lw=0.8)
        handles.append(Line2D([], [], color="yellow", lw=0.8, label="error"))
    ax.scatter(pred[:, 0], pred[:, 1], s=18, c="red", marker="x", linewidths=1.2)
    handles.append(Line2D([], [], ls="none", marker="x", color="red", label="prediction"))
    if flags.any():
        ax.scatter(pred[flags, 0], pred[flags, 1], s=150, facecolors="none",
                   edgecolors="orange", linewidths=1.8)
        handles.append(Line2D([], [], ls="none", marker="o", mfc="none", mec="orange",
                              ms=9, mew=1.8, label="flagged: check"))
    outline = [patheffects.withStroke(linewidth=2.5, foreground="black")]
    points_per_px = fig_w * 72.0 / max(w, 1)
    pt = np.stack([pred[:, 0] * points_per_px, (h - pred[:, 1]) * points_per_px], axis=1)
    offsets = label_offsets(pt, bounds_pt=(w * points_per_px, h * points_per_px))
    for k, (p, off) in enumerate(zip(pred, offsets, strict=True)):
        if np.all(np.isfinite(p)):
            leader = dict(arrowstyle="-", color="white", lw=0.6, shrinkA=0, shrinkB=3) \
                if np.hypot(*off) > LEADER_FROM_PT else None
            ax.annotate(str(k + 1), p, xytext=off, textcoords="offset points",
                        color="orange" if flags[k] else "white", fontsize=8,
                        fontweight="bold", path_effects=outline, arrowprops=leader,
                        annotation_clip=False)
    labels = [names[k] if names is not None and k < len(names) else "" for k in range(len(pred))]
    width = max([len("landmark") - 3, *map(len, labels)])
    lines = [f"{k + 1:>2}{'!' if flags[k] else ' '}{name:<{width}}"
             + (f"  {float(confidence[k]):.2f}" if confidence is not None else "")
             for k, name in enumerate(labels)]
    header = f"{'landmark':<{width + 3}}" + ("  confidence" if confidence is not None else "")
    checks = [labels[k] or str(k + 1) for k in np.flatnonzero(flags)]
    if checks:
        lines += ["", f"! flagged, check: {len(checks)}"] + [f"  {c}" for c in checks]
    ax.text(1.02, 1.0, header + "\n" + "\n".join(lines), transform=ax.transAxes, va="top",
            ha="left", fontsize=7, family="monospace")
    if confidence is not None:
        ax.text(1.02, 0.0, "confidence: heatmap\npeak height, 0..1\n(see docs/training.md)",
                transform=ax.transAxes, va="bottom", ha="left", fontsize=6, color="0.35")
    ax.set_title(title, fontsize=9)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.01), ncol=3,
              fontsize=7, frameon=False)
    ax.axis("off")
    if full_resolution:  # the dpi at which the drawn image spans its own pixel width
        fig.canvas.draw()
        drawn_in = ax.get_window_extent().width / fig.dpi
        dpi = max(110.0, w / max(drawn_in, 1e-3))
        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi,
                        bbox_inches="tight")
        plt.close(fig)
        return Path(path)
    savefig(fig, Path(path))
    plt.close(fig)
    return Path(path)


