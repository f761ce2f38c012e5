"""The docs figure of ``unilandmark report``: page 1 of the PDF on a real ISBI 2015 image.

Not a timing benchmark: it reports one ISBI Test1 image with the built-in head model
(spacing 0.1 mm, as the challenge gives it), renders the PDF's first page with poppler's
``pdftoppm`` and writes it as a PNG quantised to 256 colours (small enough for the docs).

    python benchmarks/report_screenshot.py --root ../shared/data/isbi2015 \\
        --out docs/figures/report_page1.png
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/isbi2015")
    p.add_argument("--image", default="Test1Data/151.jpg", help="under RawImage/")
    p.add_argument("--dpi", type=int, default=80, help="resolution of the page picture")
    p.add_argument("--date", default="2025-01-02 10:00", help="the date printed")
    p.add_argument("--out", default="docs/figures/report_page1.png")
    p.add_argument("--checkpoint", default="head-mean",
                   help="the model (default and the docs figure: head-mean, the default)")
    a = p.parse_args(argv)

    from PIL import Image

    from unilandmark.reporting import report_images

    if shutil.which("pdftoppm") is None:
        print("pdftoppm not found: apt-get install -y poppler-utils", file=sys.stderr)
        return 2
    source = Path(a.root) / "RawImage" / a.image
    with tempfile.TemporaryDirectory(prefix="report-shot-") as tmp:
        outcome = report_images([source], tmp, checkpoint=a.checkpoint, spacing=(0.1, 0.1),
                                device="cpu", date=a.date)
        if outcome.failures:
            print(f"{outcome.failures[0][0]}: {outcome.failures[0][1]}", file=sys.stderr)
            return 2
        (_, _, pdf, report), = outcome.written
        subprocess.run(["pdftoppm", "-r", str(a.dpi), "-png", "-f", "1", "-l", "1",
                        "-singlefile", str(pdf), str(Path(tmp) / "page")], check=True)
        with Image.open(Path(tmp) / "page.png") as page:
            small = page.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        small.save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB): page 1 of the report of {source} "
          f"(QC {report.qc_words})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
