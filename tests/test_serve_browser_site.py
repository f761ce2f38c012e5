"""The clinic's loop in a real, headless Chromium: correct two images from the keyboard,
save them, press "Train on the corrections"; once the adapted model is loaded, the next
image's prediction has moved toward the corrections, and the page shows the corrected
count and what the adaptation changed.

Skips (with the reason) only where no Chromium/chromedriver or selenium is installed;
``.ci/run`` installs them (Debian's chromium and chromium-driver)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the review app needs the 'serve' extra")

from benchmarks._browser import wait_for

from unilandmark.inference.detector import Detector
from unilandmark.serve import BackgroundServer, create_app

#: the correction of landmark k (original pixels, x right, y down): 4 px in its own
#: direction, k x 360/8 degrees, rounded to whole key presses
CORRECTION = [(4, 0), (3, 3), (0, 4), (-3, 3), (-4, 0), (-3, -3), (0, -4), (3, -3)]


def correct(driver, name: str, count: int) -> None:
    """Open ``name``, move landmark k by CORRECTION[k] with Shift+arrows, save."""
    from selenium.webdriver.common.keys import Keys

    wait_for(driver, f"return document.body.dataset.image === '{name}' && "
                     "document.body.dataset.state === 'ready'")
    body = driver.find_element("tag name", "body")
    for k in range(count):
        dx, dy = CORRECTION[k]
        driver.find_element("css selector", f'#landmarks tr[data-index="{k}"]').click()
        for _ in range(abs(dx)):
            body.send_keys(Keys.SHIFT, Keys.ARROW_RIGHT if dx > 0 else Keys.ARROW_LEFT)
        for _ in range(abs(dy)):
            body.send_keys(Keys.SHIFT, Keys.ARROW_DOWN if dy > 0 else Keys.ARROW_UP)
    body.send_keys(Keys.CONTROL, "s")
    wait_for(driver, "return document.getElementById('status').textContent === 'saved'")


def test_correct_two_images_train_and_the_next_prediction_moves(browser, trained_run,
                                                                phantoms, tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    names = [f"head_000{i}.png" for i in range(3)]
    for name in names:
        shutil.copy(phantoms / "head" / "images" / name, folder)
    detector = Detector.from_checkpoint(trained_run.best_path)
    count = len(detector.domains["head"]["landmark_names"])
    before = detector.predict(folder / names[2], "head").points
    app = create_app(folder, detector, "head", save="csv", checkpoint=trained_run.best_path,
                     adapt_settings={"threads": 1})
    with BackgroundServer(app) as url:
        browser.get(f"{url}/#{names[0]}")
        wait_for(browser, "return document.getElementById('site-count').textContent"
                          ".startsWith('0 corrected')")
        assert browser.find_element("id", "site-train").get_attribute("disabled")
        correct(browser, names[0], count)
        browser.find_element("tag name", "body").send_keys("]")  # next image
        correct(browser, names[1], count)
        wait_for(browser, "return document.getElementById('site-count').textContent"
                          ".startsWith('2 corrected')")
        button = browser.find_element("id", "site-train")
        wait_for(browser, "return !document.getElementById('site-train').disabled")
        button.click()
        wait_for(browser, "return document.getElementById('site-box').dataset.state "
                          "=== 'running'", timeout=30)
        wait_for(browser, "return document.body.dataset.adapted === '1'", timeout=600)
        summary = browser.find_element("id", "site-summary").get_attribute("textContent")
        assert summary.startswith("Last adaptation: 2 images")
        browser.find_element("tag name", "body").send_keys("]")  # the third image
        wait_for(browser, f"return document.body.dataset.image === '{names[2]}' && "
                          "document.body.dataset.state === 'ready'")
        after = np.array(browser.execute_script(
            "return window.unilandmark.state.predicted"), dtype=np.float64)
    moved = after - before
    fix = np.array(CORRECTION[:count], dtype=np.float64)
    toward = (moved * fix).sum(1) / np.linalg.norm(fix, axis=1)  # px along each correction
    assert toward.mean() > 1.5, np.round(moved, 2)
    # the prediction now lies nearer the corrected convention than before
    assert np.linalg.norm(after - (before + fix), axis=1).mean() < \
        np.linalg.norm(fix, axis=1).mean() - 1.0
