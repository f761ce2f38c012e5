"""The report as one self-contained HTML page: the traced image embedded as a base64 PNG,
the styles inline, no script, no external resource (it opens offline, from an e-mail or
an archive, exactly as written). Every text from a file or a spec is escaped."""

from __future__ import annotations

import base64
from html import escape

from .content import PatientReport, report_title
from .text import DISCLAIMER, sources, table_rows

STYLE = """
body { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; margin: 2em auto;
       max-width: 60em; color: #111; line-height: 1.35; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #999; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.5em; text-align: left;
         vertical-align: top; }
th { background: #eee; }
td.num { text-align: right; white-space: nowrap; }
table.meta th { background: none; border: none; padding-right: 1em; }
table.meta td { border: none; }
.flag { color: #b35900; font-weight: bold; }
.qc-pass { color: #176b1a; font-weight: bold; }
.qc-review { color: #b35900; font-weight: bold; }
.qc-fail { color: #b00000; font-weight: bold; }
.note { color: #444; font-size: 0.9em; }
.layout { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.layout img { max-width: 36em; width: 100%; border: 1px solid #999; }
"""


def _cell(text: str, cls: str = "") -> str:
    return f"<td class=\"{cls}\">{escape(text)}</td>" if cls else f"<td>{escape(text)}</td>"


def render_html(report: PatientReport, png: bytes) -> str:
    """The page of one report; ``png``: the traced image (:func:`.figure.traced_png`)."""
    title = report_title(report)
    qc_class = f"qc-{report.qc}" if report.qc in ("pass", "review", "fail") else ""
    meta = [
        ("image", report.image_path or report.image_id),
        ("date", report.date),
        ("model", report.model.words()),
        ("pixel spacing", report.spacing_words),
        ("orientation", "mirrored (read as a left-right mirror; measured in the patient's "
                        "frame, facing right)" if report.orientation == "mirrored" else
         "as in the file (patient facing right)"),
    ]
    out = ["<!DOCTYPE html>", "<html lang=\"en\">", "<head>", "<meta charset=\"utf-8\">",
           f"<title>{escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
           f"<h1>{escape(title)}</h1>", "<table class=\"meta\">"]
    out += [f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in meta]
    out.append(f"<tr><th>quality check</th><td class=\"{qc_class}\">"
               f"{escape(report.qc_words)}</td></tr>")
    out.append("</table>")
    data = base64.b64encode(png).decode("ascii")
    out += ["<div class=\"layout\">",
            f"<img alt=\"{escape(report.image_id)} traced with its landmarks\" "
            f"src=\"data:image/png;base64,{data}\">", _landmarks(report), "</div>"]
    for sec in report.sections:
        out += _section(sec)
    if report.left_out:
        out.append("<h2>Analyses left out</h2><ul>")
        out += [f"<li>{escape(name)}: {escape(why)}</li>" for name, why in report.left_out]
        out.append("</ul>")
    out += [f"<p class=\"note\">{escape(DISCLAIMER)}</p>", "</body>", "</html>", ""]
    return "\n".join(out)


def _landmarks(report: PatientReport) -> str:
    rows = ["<table><tr><th>#</th><th>landmark</th><th>x</th><th>y</th>"
            "<th>confidence</th><th>flag</th></tr>"]
    for k, name in enumerate(report.names):
        x, y = report.points[k]
        flag = bool(report.flags[k])
        cls = " class=\"flag\"" if flag else ""
        rows.append(f"<tr{cls}><td class=\"num\">{k + 1}</td>{_cell(name)}"
                    f"{_cell(f'{x:.1f}', 'num')}{_cell(f'{y:.1f}', 'num')}"
                    f"{_cell(f'{report.confidence[k]:.2f}', 'num')}"
                    f"{_cell('flagged: check' if flag else '')}</tr>")
    rows.append("</table>")
    note = ("<p class=\"note\">x, y: original pixels (x right, y down). A ring on the image "
            "marks a flagged landmark.</p>")
    return "<div>" + "".join(rows) + note + "</div>"


def _section(sec) -> list[str]:
    spec = sec.spec
    out = [f"<h2>{escape(sec.title)}</h2>"]
    if spec.description:
        out.append(f"<p>{escape(spec.description)}</p>")
    out.append("<table><tr><th>measurement</th><th>value</th><th>norm</th>"
               "<th>deviation</th><th>meaning</th></tr>")
    for row, (name, value, norm, dev, meaning) in zip(sec.rows, table_rows(sec), strict=True):
        desc = row.reading.description
        label = f"<td title=\"{escape(desc)}\">{escape(name)}</td>" if desc else _cell(name)
        out.append(f"<tr>{label}{_cell(value, 'num')}{_cell(norm)}{_cell(dev, 'num')}"
                   f"{_cell(meaning)}</tr>")
    out.append("</table>")
    listed = sources(sec)
    if listed:
        out.append("<p class=\"note\">Norms: " + "; ".join(escape(s) for s in listed) +
                   "</p>")
    if spec.source:
        out.append(f"<p class=\"note\">Analysis: {escape(spec.source)}</p>")
    out.append(f"<p class=\"note\">Landmarks used: "
               f"{escape(', '.join(spec.landmarks_used()))}</p>")
    for sub in spec.substitutions:
        out.append(f"<p class=\"note\">Substitution: {escape(sub.uses)} for "
                   f"{escape(sub.landmark)}: {escape(sub.note)}</p>")
    for note in spec.notes:
        out.append(f"<p class=\"note\">{escape(note)}</p>")
    if spec.not_computed:
        out.append("<p class=\"note\">Not computed from these landmarks:</p><ul class=\"note\">")
        out += [f"<li>{escape(item.name)}: {escape(item.reason)}</li>"
                for item in spec.not_computed]
        out.append("</ul>")
    return out
