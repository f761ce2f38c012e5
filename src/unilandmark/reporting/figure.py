"""The traced image of a report: the radiograph, the lines the analyses measure between
landmarks, each landmark numbered, and a ring around every flagged one.

Points are original pixels (x right, y down); the image is drawn as read (a mirrored
image stays mirrored on the page: only the measurements are taken in the patient's
frame). Large images are subsampled for display only (the points are not moved).
"""

from __future__ import annotations

import io

import numpy as np

from ..evaluation.report import label_offsets
from ..imageio.read import intensity_window, read_image
from ..measure.compute import normalise_name
from .content import PatientReport

#: the longest side of the image drawn on the page, in pixels (display only)
DISPLAY_PX = 1200
FLAG_COLOUR = "#ff8c00"
POINT_COLOUR = "#ff3030"
LINE_COLOUR = "#40c8ff"


def display_image(path: str) -> tuple[np.ndarray, tuple[int, int]]:
    """(the image to draw, subsampled to at most :data:`DISPLAY_PX` on its longest side;
    the original's (H, W))."""
    image, _ = read_image(path)
    step = max(1, int(np.ceil(max(image.shape) / DISPLAY_PX)))
    return image[::step, ::step], image.shape


def traced_segments(report: PatientReport) -> list[tuple[int, int]]:
    """(k, l) landmark index pairs of the lines the shown analyses measure (angles,
    distances, ratios, projections), where both landmarks are the model's."""
    index = {normalise_name(n): k for k, n in enumerate(report.names)}
    pairs: dict[tuple[int, int], None] = {}
    for sec in report.sections:
        spec = sec.spec
        for m in spec.measurements:
            for seg in _segments(m):
                a, b = (index.get(normalise_name(spec.resolve(p))) for p in seg)
                if a is not None and b is not None and a != b:
                    pairs.setdefault((min(a, b), max(a, b)), None)
    return list(pairs)


def _segments(m) -> list[tuple[str, str]]:
    out = []
    for key in ("angle", "signed_angle", "ratio", "projection"):
        value = getattr(m, key, None)
        if value is not None:
            out += [tuple(seg) for seg in value]
    if getattr(m, "distance", None) is not None:
        out.append(tuple(m.distance))
    if getattr(m, "line_distance", None) is not None:
        out.append(tuple(m.line_distance[1]))  # the line; the point is drawn as a landmark
    for term in getattr(m, "sum", None) or ():
        out += _segments(term)
    return out


def draw_traced(ax, report: PatientReport, image: np.ndarray, shape: tuple[int, int],
                width_pt: float, label_pt: float = 7.0) -> None:
    """Draw the traced image into ``ax`` (``width_pt``: the axes' width in typographic
    points, for placing the number labels; ``label_pt``: their size, the markers' with
    it)."""
    from matplotlib import patheffects

    h, w = shape
    lo, hi = intensity_window(image)
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1,
              extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="antialiased")
    pts = report.points
    for a, b in traced_segments(report):
        ax.plot(pts[[a, b], 0], pts[[a, b], 1], color=LINE_COLOUR, lw=0.7, alpha=0.75)
    ok = np.all(np.isfinite(pts), axis=1)
    grow = label_pt / 7.0
    ax.scatter(pts[ok, 0], pts[ok, 1], s=14 * grow ** 2, c=POINT_COLOUR, marker="x",
               linewidths=1.0 * grow, zorder=3)
    flagged = ok & report.flags
    if flagged.any():
        ax.scatter(pts[flagged, 0], pts[flagged, 1], s=160 * grow ** 2, facecolors="none",
                   edgecolors=FLAG_COLOUR, linewidths=1.8 * grow, zorder=4)
    scale = width_pt / max(w, 1)
    pt = np.stack([pts[:, 0] * scale, (h - pts[:, 1]) * scale], axis=1)
    outline = [patheffects.withStroke(linewidth=2.2, foreground="black")]
    for k, off in enumerate(label_offsets(pt, size_pt=max(9.0, label_pt),
                                          bounds_pt=(w * scale, h * scale))):
        if ok[k]:
            ax.annotate(str(k + 1), pts[k], xytext=off, textcoords="offset points",
                        color=FLAG_COLOUR if report.flags[k] else "white", fontsize=label_pt,
                        fontweight="bold", path_effects=outline)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.axis("off")


def traced_png(report: PatientReport, width_in: float = 6.0, dpi: int = 130,
               label_pt: float = 9.0) -> bytes:
    """The traced image alone as PNG bytes (for the HTML page)."""
    from matplotlib.figure import Figure

    image, shape = display_image(report.image_path)
    h, w = shape
    fig = Figure(figsize=(width_in, width_in * h / max(w, 1)))
    ax = fig.add_axes((0, 0, 1, 1))
    draw_traced(ax, report, image, shape, width_in * 72.0, label_pt)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
