"""The review page in a real, headless Chromium: every landmark is drawn where the model put
it, a dragged point is saved at the moved coordinate in original pixels, hiding/undo work
from the keyboard, and a non-image upload gets a message while the server keeps going.

Skips (with the reason) only where no Chromium/chromedriver or selenium is installed;
``.ci/run`` installs them (Debian's chromium and chromium-driver)."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the review app needs the 'serve' extra")

from benchmarks._browser import wait_for

from unilandmark import csv_dataset, labelme_dataset
from unilandmark.inference.detector import Detector
from unilandmark.serve import BackgroundServer, create_app

DRAG = (60, -45)  # screen pixels


@pytest.fixture(scope="module")
def builtin():
    return Detector.from_checkpoint(None)


@pytest.fixture
def served(phantoms, tmp_path, builtin):
    folder = tmp_path / "review"
    folder.mkdir()
    for i in range(3):
        shutil.copy(phantoms / "head" / "images" / f"head_000{i}.png", folder)
    with BackgroundServer(create_app(folder, builtin)) as url:
        yield folder, url


def open_page(driver, url, name="head_0000.png"):
    driver.get(f"{url}/#{name}")
    wait_for(driver, "return document.body.dataset.state === 'ready' && "
                     f"document.body.dataset.image === '{name}'")
    wait_for(driver, "return document.getElementById('picture').classList.contains('shown')")


def drawn_points(driver):
    """Every drawn landmark: index -> (original x, y, screen centre x, y) from the page."""
    return driver.execute_script("""
        const out = {};
        const viewer = document.getElementById('viewer').getBoundingClientRect();
        for (const g of document.querySelectorAll('#points g.landmark')) {
          if (g.style.display === 'none') continue;
          const r = g.querySelector('circle.dot-mark').getBoundingClientRect();
          out[g.dataset.index] = [Number(g.dataset.x), Number(g.dataset.y),
            r.left + r.width / 2 - viewer.left, r.top + r.height / 2 - viewer.top];
        }
        return out;""")


def view(driver):
    return driver.execute_script("const v = window.unilandmark.view; "
                                 "return [v.scale, v.tx, v.ty];")


def saved_rows(folder, image):
    with open(folder / "landmarks_reviewed.csv", newline="") as fh:
        return {int(r["landmark"]): r for r in csv.DictReader(fh) if r["image"] == image}


def test_every_landmark_is_drawn_and_a_drag_is_saved_in_original_pixels(browser, served,
                                                                         builtin):
    from selenium.webdriver.common.action_chains import ActionChains

    folder, url = served
    open_page(browser, url)
    expected = builtin.predict(folder / "head_0000.png")
    drawn = drawn_points(browser)
    assert sorted(map(int, drawn)) == list(range(19))  # every landmark is on screen
    scale, tx, ty = view(browser)
    for k, (x, y, sx, sy) in drawn.items():
        np.testing.assert_allclose([x, y], expected.points[int(k)], atol=1e-6)
        assert abs(sx - (x * scale + tx)) < 1.0 and abs(sy - (y * scale + ty)) < 1.0
    labels = browser.execute_script(
        "return [...document.querySelectorAll('#points text')].map(t => t.textContent)")
    assert labels[0] == "1 sella" and len(labels) == 19

    # drag the landmark with the most room around it by a known screen offset
    def room(k):
        x, y = expected.points[k]
        nx, ny = x + DRAG[0] / scale, y + DRAG[1] / scale
        return min(nx, ny, 63 - nx, 63 - ny, x, y, 63 - x, 63 - y)

    k = max(range(19), key=room)
    assert room(k) > 1.0
    target = browser.find_element("css selector", f'g.landmark[data-index="{k}"] circle.hit')
    chain = ActionChains(browser).move_to_element(target).click_and_hold()
    for _ in range(3):
        chain.move_by_offset(DRAG[0] // 3, DRAG[1] // 3)
    chain.release().perform()
    moved = expected.points[k] + np.array(DRAG) / scale
    x, y, _, _ = drawn_points(browser)[str(k)]
    np.testing.assert_allclose([x, y], moved, atol=0.05)
    assert browser.find_element("id", "status").text == "reviewed"

    browser.find_element("id", "save").click()
    wait_for(browser, "return document.body.dataset.saved && "
                      "document.getElementById('status').textContent === 'saved'")
    rows = saved_rows(folder, "head_0000")
    assert len(rows) == 19
    got = np.array([float(rows[k + 1]["x"]), float(rows[k + 1]["y"])])
    assert np.abs(got - moved).max() < 1.0  # the moved coordinate, in original pixels
    for j in range(19):
        if j != k:
            np.testing.assert_allclose([float(rows[j + 1]["x"]), float(rows[j + 1]["y"])],
                                       expected.points[j], atol=1e-6)
    names = list(expected.names)
    for spec in (csv_dataset(folder / "landmarks_reviewed.csv", images=folder),
                 labelme_dataset(folder, landmarks=names)):
        (record,) = spec.records
        assert np.abs(record.points[k] - moved).max() < 1.0


def test_keyboard_hide_undo_and_a_bad_upload(browser, served, tmp_path):
    from selenium.webdriver.common.keys import Keys

    folder, url = served
    open_page(browser, url, "head_0001.png")
    body = browser.find_element("tag name", "body")
    browser.find_element("css selector", '#landmarks tr[data-index="2"]').click()
    body.send_keys(Keys.ARROW_DOWN)  # landmark 4 (index 3)
    assert browser.execute_script("return window.unilandmark.selected") == 3
    body.send_keys("v")  # not visible
    assert "3" not in drawn_points(browser)
    body.send_keys(Keys.CONTROL, "z")  # undo: visible again
    assert "3" in drawn_points(browser)
    body.send_keys(Keys.CONTROL, Keys.SHIFT, "z")  # redo: hidden again
    assert "3" not in drawn_points(browser)
    body.send_keys(Keys.CONTROL, "s")
    wait_for(browser, "return document.getElementById('status').textContent === 'saved'")
    row = saved_rows(folder, "head_0001")[4]
    assert row["x"] == "" and row["y"] == ""  # written as not visible
    body.send_keys(Keys.ARROW_RIGHT)  # next image
    wait_for(browser, "return document.body.dataset.image === 'head_0002.png' && "
                      "document.body.dataset.state === 'ready'")

    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    browser.find_element("id", "upload").send_keys(str(notes))
    message = wait_for(browser, "const e = document.querySelector('#toast div.error'); "
                                "return e && e.textContent;")
    assert "notes.txt" in message and "not an image" in message
    assert not (folder / "notes.txt").exists()
    browser.find_element("id", "prev-image").click()  # the server still answers
    wait_for(browser, "return document.body.dataset.image === 'head_0001.png' && "
                      "document.body.dataset.state === 'ready'")
    assert browser.find_element("id", "status").text == "saved"


def test_quality_flags_and_verdict_are_drawn(browser, phantoms, tmp_path, builtin):
    from types import SimpleNamespace

    class Flagging:
        domains, model_name = builtin.domains, builtin.model_name

        def predict(self, image, domain=None, spacing=None):
            result = builtin.predict(image, domain, spacing=spacing)
            flags = np.zeros(len(result.names), dtype=bool)
            flags[[1, 6]] = True
            return SimpleNamespace(**{**vars(result), "flags": flags, "qc": "review"})

    folder = tmp_path / "flagged"
    folder.mkdir()
    shutil.copy(phantoms / "head" / "images" / "head_0003.png", folder)
    with BackgroundServer(create_app(folder, Flagging())) as url:
        open_page(browser, url, "head_0003.png")
        rings = browser.execute_script(
            "return [...document.querySelectorAll('#points g.landmark')]"
            ".filter(g => g.querySelector('.flag-ring').style.display !== 'none')"
            ".map(g => Number(g.dataset.index))")
        assert rings == [1, 6]
        coloured = browser.execute_script(  # drawn in the flag colour, whatever the confidence
            "return [...document.querySelectorAll('#points g.landmark.flagged')]"
            ".map(g => Number(g.dataset.index))")
        assert coloured == [1, 6]
        assert browser.find_element("id", "qc").text == "QC: review"


def test_measurements_update_while_dragging(browser, served):
    pytest.importorskip("unilandmark.measure", reason="unilandmark.measure is not in this build")
    from selenium.webdriver.common.action_chains import ActionChains

    folder, url = served
    open_page(browser, url, "head_0002.png")
    rows = ("[...document.querySelectorAll('#measurements tr')]"
            ".map(r => [r.children[0].textContent, r.children[1].textContent])")
    assert browser.find_element("id", "measurements-box").is_displayed()
    before = dict(browser.execute_script(f"return {rows}"))
    assert "SNA" in before
    # sella, nasion or subspinale (all three define SNA): the one farthest from the other
    # landmarks, so that the mouse grabs that one and not a neighbour drawn over it
    drawn = {int(k): np.array(v[:2]) for k, v in drawn_points(browser).items()}

    def clearance(k):
        return min(np.linalg.norm(drawn[k] - p) for j, p in drawn.items() if j != k)

    grab = max((0, 1, 4), key=clearance)
    handle = browser.find_element("css selector", f'g.landmark[data-index="{grab}"] circle.hit')
    chain = ActionChains(browser).move_to_element(handle).click_and_hold()
    chain.move_by_offset(25, 0).move_by_offset(25, 0).perform()
    during = wait_for(browser, f"const t = Object.fromEntries({rows});"
                               f"return t.SNA !== {before['SNA']!r} && t.SNA;")
    ActionChains(browser).release().perform()
    assert during != before["SNA"]  # recomputed before the mouse button was released


def test_a_ruler_in_the_image_sets_its_spacing(browser, served):
    """Two clicks on the ends of a ruler and its length set the image's spacing: written
    beside it (NAME.spacing.json), shown, used by the millimetres of the saved table."""
    from selenium.webdriver.common.action_chains import ActionChains

    from unilandmark.imageio.spacing_file import read_spacing_file, spacing_file

    folder, url = served
    open_page(browser, url)
    line = browser.find_element("id", "spacing-line").text
    assert line.startswith("No spacing: distances in mm need one. Click Ruler (C)")
    scale, tx, ty = view(browser)
    ends = [(8.0, 10.0), (8.0, 50.0)]  # original pixels: a 40-pixel ruler
    viewer = browser.find_element("id", "viewer")
    size = viewer.size
    browser.find_element("id", "ruler").click()
    for x, y in ends:  # offsets from the viewer's centre (selenium 4)
        ActionChains(browser).move_to_element_with_offset(
            viewer, int(round(x * scale + tx - size["width"] / 2)),
            int(round(y * scale + ty - size["height"] / 2))).click().perform()
    wait_for(browser, "return document.getElementById('ruler-dialog').open")
    pixels = browser.find_element("id", "ruler-pixels").text
    length = browser.find_element("id", "ruler-length")
    length.clear()
    length.send_keys("20")
    browser.find_element("id", "ruler-ok").click()
    wait_for(browser, "return document.getElementById('spacing-line').textContent"
                      ".startsWith('Spacing ')")
    spacing, source = read_spacing_file(folder / "head_0000.png")
    px = float(pixels.split()[3])  # "The ruler spans N pixels."
    assert abs(px - 40.0) < 1.5 / scale + 0.5  # the clicks land within a screen pixel
    assert source == "ruler" and spacing[0] == spacing[1]
    assert abs(spacing[0] - 20.0 / px) < 1e-3
    assert "from a ruler in this image" in browser.find_element("id", "spacing-line").text
    assert spacing_file(folder / "head_0000.png").is_file()
    browser.find_element("id", "save").click()
    wait_for(browser, "return document.getElementById('status').textContent === 'saved'")
    rows = saved_rows(folder, "head_0000")
    x, x_mm = float(rows[1]["x"]), float(rows[1]["x_mm"])
    assert abs(x_mm - x * spacing[0]) < 0.01
