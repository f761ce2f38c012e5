"""The report as a PDF (matplotlib's PDF backend, A4 portrait): the first page holds the
header, the traced image and the landmark list, the analyses flow on after it (usually
two pages in all). Text is embedded as TrueType (``pdf.fonttype`` 42), so it can be
searched and copied (``pdftotext``)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from ..core.atomic import atomic_path
from ..core.version import __version__
from .content import PatientReport, Section, report_title
from .figure import FLAG_COLOUR, display_image, draw_traced
from .text import DISCLAIMER, sources, table_rows

A4 = (8.27, 11.69)  # inches, portrait
MARGIN = 0.55
#: average glyph width of DejaVu Sans in ems (for wrapping text to a width)
EM_WIDTH = 0.56
#: the table's columns: (heading, width in inches); the last takes what is left
COLUMNS = (("measurement", 1.7), ("value", 0.6), ("norm", 1.25), ("deviation", 0.6),
           ("meaning", None))
QC_COLOURS = {"pass": "#176b1a", "review": "#b35900", "fail": "#b00000"}


class _Flow:
    """Text laid out top to bottom on A4 pages, a new page when one is full."""

    def __init__(self, pdf):
        self.pdf, self.fig, self.y = pdf, None, 0.0
        self.new_page()

    def new_page(self) -> None:
        from matplotlib.figure import Figure

        if self.fig is not None:
            self.pdf.savefig(self.fig)
        self.fig, self.y = Figure(figsize=A4), MARGIN

    def close(self) -> None:
        self.pdf.savefig(self.fig)

    def room(self, height: float) -> None:
        """Start a new page unless ``height`` inches still fit on this one."""
        if self.y + height > A4[1] - MARGIN:
            self.new_page()

    def line(self, text: str, size: float = 8.0, x: float = MARGIN, **style) -> None:
        self.fig.text(x / A4[0], 1 - (self.y + size / 72.0) / A4[1], text, fontsize=size,
                      va="baseline", ha="left", **style)

    def paragraph(self, text: str, size: float = 8.0, indent: float = 0.0,
                  gap: float = 0.0, **style) -> None:
        width = A4[0] - 2 * MARGIN - indent
        for part in wrap(text, width, size):
            self.room(_lead(size))
            self.line(part, size, MARGIN + indent, **style)
            self.y += _lead(size)
        self.y += gap


def _lead(size: float) -> float:
    return size * 1.25 / 72.0


def wrap(text: str, width_in: float, size: float) -> list[str]:
    """``text`` broken into lines of at most ``width_in`` inches at ``size`` points."""
    chars = max(4, int(width_in * 72.0 / (size * EM_WIDTH)))
    return textwrap.wrap(text, chars) or [""]


def render_pdf(report: PatientReport, path: str | Path) -> Path:
    """Write the PDF of one report to ``path`` atomically."""
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages

    path = Path(path)
    style = {"pdf.fonttype": 42, "font.family": "DejaVu Sans"}
    with matplotlib.rc_context(style), atomic_path(path, suffix=".pdf") as tmp:
        with PdfPages(tmp, metadata={"Title": report_title(report),
                                     "Creator": f"unilandmark {__version__}"}) as pdf:
            flow = _Flow(pdf)
            _first_page(flow, report)
            for sec in report.sections:
                _section(flow, sec)
            if report.left_out:
                flow.room(4 * _lead(8))
                flow.paragraph("Analyses left out", 10, fontweight="bold", gap=0.03)
                for name, why in report.left_out:
                    flow.paragraph(f"{name}: {why}", 7.5)
            flow.y += 0.1
            flow.paragraph(DISCLAIMER, 7, color="0.3")
            flow.close()
    return path


def _first_page(flow: _Flow, report: PatientReport) -> None:
    flow.paragraph(report_title(report), 14, fontweight="bold", gap=0.05)
    meta = [("Image", report.image_path or report.image_id), ("Date", report.date),
            ("Model", report.model.words()), ("Pixel spacing", report.spacing_words),
            ("Orientation", "mirrored in the file; measured facing right"
             if report.orientation == "mirrored" else "as in the file (patient facing right)")]
    for key, value in meta:
        flow.paragraph(f"{key}: {value}", 8)
    flow.paragraph(f"Quality check: {report.qc_words}", 9, fontweight="bold",
                   color=QC_COLOURS.get(report.qc or "", "black"), gap=0.08)
    image, shape = display_image(report.image_path)
    h, w = shape
    width = 4.6
    height = min(width * h / max(w, 1), A4[1] - flow.y - MARGIN - 1.0)
    width = height * w / max(h, 1)
    ax = flow.fig.add_axes((MARGIN / A4[0], 1 - (flow.y + height) / A4[1], width / A4[0],
                            height / A4[1]))
    draw_traced(ax, report, image, shape, width * 72.0)
    _landmark_list(flow, report, MARGIN + width + 0.2)
    flow.y += height + 0.15


def _landmark_list(flow: _Flow, report: PatientReport, x: float) -> None:
    size = 7.0
    y0 = flow.y
    flow.line("#   landmark (confidence)", size, x, fontweight="bold")
    flow.y += _lead(size)
    room = A4[0] - MARGIN - x
    for k, name in enumerate(report.names):
        flagged = bool(report.flags[k])
        text = f"{k + 1:>2}  {name} ({report.confidence[k]:.2f})" + \
            ("  flagged" if flagged else "")
        for part in wrap(text, room, size):
            flow.line(part, size, x, color=FLAG_COLOUR if flagged else "black",
                      fontweight="bold" if flagged else "normal")
            flow.y += _lead(size)
    flow.y += 0.05
    for part in wrap("x: the model's point; a ring: a flagged landmark (check it); lines: "
                     "what the analyses measure.", room, 6.5):
        flow.line(part, 6.5, x, color="0.3")
        flow.y += _lead(6.5)
    flow.y = y0


def _section(flow: _Flow, sec: Section) -> None:
    spec = sec.spec
    flow.room(0.9)
    flow.paragraph(sec.title, 10.5, fontweight="bold", gap=0.02)
    if spec.description:
        flow.paragraph(spec.description, 7, gap=0.03)
    size = 7.0
    total = A4[0] - 2 * MARGIN
    widths = [w if w is not None else total - sum(c[1] for c in COLUMNS if c[1])
              for _, w in COLUMNS]
    _table_row(flow, [c[0] for c in COLUMNS], widths, size, fontweight="bold")
    for cells in table_rows(sec):
        _table_row(flow, list(cells), widths, size)
    flow.y += 0.04
    notes = []
    listed = sources(sec)
    if listed:
        notes.append("Norms: " + "; ".join(listed))
    if spec.source:
        notes.append(f"Analysis: {spec.source}")
    notes.append(f"Landmarks used: {', '.join(spec.landmarks_used())}")
    notes += [f"Substitution: {s.uses} for {s.landmark}: {s.note}" for s in spec.substitutions]
    notes += list(spec.notes)
    if spec.not_computed:
        notes.append("Not computed from these landmarks: " + "; ".join(
            f"{item.name} ({item.reason})" for item in spec.not_computed))
    for note in notes:
        flow.paragraph(note, 6, color="0.25")
    flow.y += 0.1


def _table_row(flow: _Flow, cells: list[str], widths: list[float], size: float,
               **style) -> None:
    parts = [wrap(text, width - 0.08, size) for text, width in zip(cells, widths, strict=True)]
    lines = max(len(p) for p in parts)
    flow.room(lines * _lead(size) + 0.02)
    x = MARGIN
    for part, width in zip(parts, widths, strict=True):
        for i, text in enumerate(part):
            flow.fig.text(x / A4[0], 1 - (flow.y + size / 72.0 + i * _lead(size)) / A4[1],
                          text, fontsize=size, va="baseline", ha="left", **style)
        x += width
    flow.y += lines * _lead(size) + 0.02
    y = 1 - (flow.y - 0.01) / A4[1]
    flow.fig.add_artist(_rule(y))


def _rule(y: float):
    from matplotlib.lines import Line2D

    return Line2D([MARGIN / A4[0], 1 - MARGIN / A4[0]], [y, y], lw=0.3, color="0.7")
