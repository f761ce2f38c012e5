"""The docs figure of the volume review page: an AFIDs template with the built-in model.

Not a timing benchmark: it serves copies of an AFIDs MNI template and of the Spinal Cord
Toolbox T2 volume (so the list holds two), opens the template in a headless Chromium with
the built-in ``brain`` model, selects a landmark (the crosshair follows it into all three
views), drags it in the coronal view (so the picture shows a predicted volume being
reviewed: model points coloured by confidence, the moved one as placed by a person, the
landmarks off each slice faded) and writes a PNG (quantised to 256 colours to stay small).

    python benchmarks/review_volume_screenshot.py --root ../shared/data \\
        --out docs/figures/review_volume.png
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data", help="the shared data folder")
    p.add_argument("--template", default="MNI152NLin6Asym.nii.gz",
                   help="under afids_templates/images/")
    p.add_argument("--landmark", type=int, default=19, help="1-based landmark to drag")
    p.add_argument("--drag", type=int, nargs=2, default=(10, -8),
                   help="screen pixels in the coronal view")
    p.add_argument("--size", type=int, nargs=2, default=(1440, 900))
    p.add_argument("--out", default="docs/figures/review_volume.png")
    a = p.parse_args(argv)

    from PIL import Image
    from selenium.webdriver.common.action_chains import ActionChains

    from _browser import headless_chromium, wait_for
    from review_screenshot import small_png
    from unilandmark.checkpoints.builtin import model_path
    from unilandmark.inference.volume_detector import VolumeDetector
    from unilandmark.serve import BackgroundServer, create_app

    root = Path(a.root)
    source = root / "afids_templates" / "images" / a.template
    with tempfile.TemporaryDirectory(prefix="review-volume-shot-") as tmp:
        folder = Path(tmp) / "brain-mri"
        folder.mkdir()
        shutil.copy(source, folder / source.name)
        sct = root / "sct_t2" / "t2.nii.gz"
        if sct.is_file():
            shutil.copy(sct, folder / "sct_t2.nii.gz")
        app = create_app(folder, VolumeDetector.from_checkpoint(model_path("brain")))
        with BackgroundServer(app) as url, headless_chromium(*a.size) as driver:
            driver.get(f"{url}/#{source.name}")
            wait_for(driver, "return document.body.dataset.state === 'ready' && "
                             f"document.body.dataset.views === '{source.name}'", timeout=120)
            k = a.landmark - 1
            driver.find_element("css selector", f'#landmarks tr[data-index="{k}"]').click()
            target = driver.find_element(
                "css selector", f'#view-coronal g.landmark[data-index="{k}"] circle.hit')
            ActionChains(driver).move_to_element(target).click_and_hold() \
                .move_by_offset(*a.drag).release().perform()
            wait_for(driver, "return document.getElementById('status').textContent "
                             "=== 'reviewed'")
            shot = Path(tmp) / "shot.png"
            driver.save_screenshot(str(shot))
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        small_png(Image.open(shot).convert("RGB")).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
