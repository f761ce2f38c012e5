"""Reports: a console/markdown table, the JSON report, and figures.

Figures: the SDR curve, per-landmark errors (mean and SD), and overlays of the worst
images (prediction and ground truth drawn on the image, with a legend).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .atomic import atomic_path, atomic_write_text
from .types import Record


def write_json(path: str | Path, report: dict) -> None:
    atomic_write_text(path, json.dumps(report, indent=2, default=_json_default) + "\n")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


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
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
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


def _savefig(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")


def draw_figures(report: dict, errors: np.ndarray, records: list[Record], pred: np.ndarray,
                 out_dir: str | Path, worst: int = 3) -> list[Path]:
    """SDR curve, per-landmark error plot and the ``worst`` images' overlays as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    _savefig(fig, written[-1])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(5, 0.35 * errors.shape[1]), 3.5))
    per = report["per_landmark"]
    ax.bar(range(1, len(per) + 1), [e["mre"] for e in per], yerr=[e["sd"] for e in per],
           capsize=2, color="C0", alpha=0.8)
    ax.axhline(report["mre"], color="C3", ls="--", label=f"MRE {report['mre']:.2f} {unit}")
    ax.set(xlabel="landmark", ylabel=f"error ({unit})", title="per-landmark error (mean ± SD)")
    ax.set_xticks(range(1, len(per) + 1))
    ax.tick_params(axis="x", labelsize=7)
    ax.legend()
    written.append(out / "per_landmark_error.png")
    _savefig(fig, written[-1])
    plt.close(fig)

    order = np.argsort([-np.nanmean(e) for e in errors])[:worst]
    for rank, n in enumerate(order, start=1):
        written.append(out / f"worst_{rank}_{records[n].id}.png")
        draw_overlay(records[n].image_path, pred[n], records[n].points, written[-1],
                     title=f"{records[n].id}: mean error {np.nanmean(errors[n]):.2f} {unit}")
    return written


def draw_overlay(image_path: str, pred: np.ndarray, truth: np.ndarray | None, path: Path,
                 title: str = "", confidence: np.ndarray | None = None) -> Path:
    """Draw predicted (and ground-truth) landmarks on the image, numbered, with a legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import read_image

    image, _ = read_image(image_path)
    h, w = image.shape
    fig, ax = plt.subplots(figsize=(6, 6 * h / max(w, 1)))
    ax.imshow(image, cmap="gray")
    if truth is not None:
        ax.scatter(truth[:, 0], truth[:, 1], s=18, facecolors="none", edgecolors="lime",
                   linewidths=1.2, label="ground truth")
        for p, g in zip(pred, truth, strict=True):
            if np.all(np.isfinite(g)) and np.all(np.isfinite(p)):
                ax.plot([p[0], g[0]], [p[1], g[1]], color="yellow", lw=0.8)
    ax.scatter(pred[:, 0], pred[:, 1], s=14, c="red", marker="x", label="prediction")
    for k, p in enumerate(pred):
        if np.all(np.isfinite(p)):
            ax.annotate(str(k + 1), p, color="cyan", fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower left", fontsize=8)
    ax.axis("off")
    _savefig(fig, Path(path))
    plt.close(fig)
    return Path(path)
