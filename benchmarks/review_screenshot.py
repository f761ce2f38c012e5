"""The docs figure of the review app: the page on a real ISBI 2015 image, built-in model.

Not a timing benchmark: it serves a copy of one ISBI Test1 image, opens the page in a
headless Chromium, corrects one landmark by dragging it (so the picture shows a predicted
image being reviewed: model points coloured by confidence, the moved one as placed by a
person) and writes a PNG (quantised to 256 colours to stay small).

    python benchmarks/review_screenshot.py --root ../shared/data/isbi2015 \\
        --out docs/figures/review_app.png
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np


def small_png(image):
    """256 colours that keep both the radiograph's greys and the interface's few hues: the
    most frequent coloured pixels take 64 palette entries, an even grey ramp the rest."""
    from PIL import Image

    rgb = np.asarray(image).reshape(-1, 3).astype(np.int16)
    coloured = rgb[(rgb.max(axis=1) - rgb.min(axis=1)) > 12]
    values, counts = np.unique(coloured, axis=0, return_counts=True)
    hues = values[np.argsort(counts)[::-1][:64]]
    greys = np.repeat(np.linspace(0, 255, 256 - len(hues)).round()[:, None], 3, axis=1)
    palette = np.concatenate([hues, greys]).astype(np.uint8)
    holder = Image.new("P", (1, 1))
    holder.putpalette(palette.reshape(-1).tolist())
    return image.quantize(palette=holder, dither=Image.Dither.NONE)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/isbi2015")
    p.add_argument("--image", default="Test1Data/151.jpg", help="under RawImage/")
    p.add_argument("--landmark", type=int, default=10, help="1-based landmark to drag")
    p.add_argument("--drag", type=int, nargs=2, default=(12, 9), help="screen pixels")
    p.add_argument("--size", type=int, nargs=2, default=(1440, 1080))
    p.add_argument("--out", default="docs/figures/review_app.png")
    p.add_argument("--checkpoint", default="head-mean",
                   help="the model (default: the built-in default, head-mean)")
    a = p.parse_args(argv)

    from PIL import Image
    from selenium.webdriver.common.action_chains import ActionChains

    from _browser import headless_chromium, wait_for
    from unilandmark.checkpoints.builtin import model_path
    from unilandmark.inference.detector import Detector
    from unilandmark.serve import BackgroundServer, create_app

    source = Path(a.root) / "RawImage" / a.image
    with tempfile.TemporaryDirectory(prefix="review-shot-") as tmp:
        folder = Path(tmp) / "isbi2015-test1"
        folder.mkdir()
        shutil.copy(source, folder / source.name)
        for neighbour in sorted(source.parent.iterdir())[1:5]:  # a few more in the list
            shutil.copy(neighbour, folder / neighbour.name)
        app = create_app(folder, Detector.from_checkpoint(a.checkpoint), spacing=(0.1, 0.1),
                         checkpoint=model_path(a.checkpoint))  # the panel "This site"
        with BackgroundServer(app) as url, headless_chromium(*a.size) as driver:
            driver.get(f"{url}/#{source.name}")
            wait_for(driver, "return document.body.dataset.state === 'ready' && "
                             "document.getElementById('picture').classList.contains('shown')",
                     timeout=120)
            k = a.landmark - 1
            driver.find_element("css selector", f'#landmarks tr[data-index="{k}"]').click()
            target = driver.find_element("css selector",
                                         f'g.landmark[data-index="{k}"] circle.hit')
            ActionChains(driver).move_to_element(target).click_and_hold() \
                .move_by_offset(*a.drag).release().perform()
            wait_for(driver, "return document.getElementById('status').textContent "
                             "=== 'reviewed'")
            driver.execute_script("document.getElementById('cursor').textContent = '';")
            shot = Path(tmp) / "shot.png"
            driver.save_screenshot(str(shot))
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        small_png(Image.open(shot).convert("RGB")).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
