"""The volume review page in a real, headless Chromium, on real volumes with the built-in
``brain`` model: the three views carry the right anatomical letters (also for the Spinal
Cord Toolbox volume, stored with permuted axes), a landmark dragged in the coronal view
moves in that view's two axes only and is saved so (review table and Slicer markups), and
marking absent, undo and scrolling work from the keyboard and the wheel.

Skips with the reason where no Chromium/chromedriver or selenium is installed (Debian:
chromium and chromium-driver) and where ../shared/data is absent."""

from __future__ import annotations

import csv
import json
import shutil
import urllib.request

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the review app needs the 'serve' extra")

from benchmarks._browser import wait_for

from unilandmark.checkpoints.builtin import model_path
from unilandmark.data.markups import read_markups
from unilandmark.imageio.reorient import reoriented
from unilandmark.imageio.volume import read_volume
from unilandmark.serve import BackgroundServer, create_app

from .conftest import _require

AFIDS = "MNI152NLin6Asym.nii.gz"
SCT = "t2.nii.gz"
DRAG = (45, -36)  # screen pixels: right and up
LABELS = {"axial": ["R", "L", "A", "P"], "coronal": ["R", "L", "S", "I"],
          "sagittal": ["A", "P", "S", "I"]}


@pytest.fixture(scope="module")
def brain():
    from unilandmark.inference.volume_detector import VolumeDetector

    return VolumeDetector.from_checkpoint(model_path("brain"))


@pytest.fixture
def served(tmp_path, brain, browser):
    folder = tmp_path / "volumes"
    folder.mkdir()
    shutil.copy(_require("afids_templates") / "images" / AFIDS, folder / AFIDS)
    shutil.copy(_require("sct_t2") / SCT, folder / SCT)
    with BackgroundServer(create_app(folder, brain)) as url:
        yield folder, url


def open_volume(driver, url, name):
    driver.get(f"{url}/#{name}")
    wait_for(driver, "return document.body.dataset.state === 'ready' && "
                     f"document.body.dataset.image === '{name}' && "
                     f"document.body.dataset.views === '{name}'", timeout=60)


def views(driver):
    """Per view: the four edge letters as shown, the slice shape, the slice shown."""
    return driver.execute_script("""
        const out = {};
        for (const v of document.querySelectorAll('.view')) {
          const edge = (s) => v.querySelector('.edge-' + s).textContent;
          const canvas = v.querySelector('canvas.slice');
          out[v.dataset.view] = {labels: [edge('left'), edge('right'), edge('top'), edge('bottom')],
            shape: [canvas.height, canvas.width], slice: Number(v.dataset.slice),
            shown: canvas.classList.contains('shown')};
        }
        return out;""")


def fetch(url):
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read(), response.headers


def test_the_views_are_labelled_by_anatomy(browser, served):
    folder, url = served
    open_volume(browser, url, AFIDS)
    shown = views(browser)
    for view, letters in LABELS.items():
        assert shown[view]["labels"] == letters and shown[view]["shown"], view
    # AFIDs templates: 91 (L-R) x 109 (A-P) x 91 (S-I) voxels, stored LAS
    assert shown["axial"]["shape"] == [109, 91] and shown["coronal"]["shape"] == [91, 91]
    assert shown["sagittal"]["shape"] == [91, 109]

    # the Spinal Cord Toolbox volume is stored PSR (index x runs posterior, y superior,
    # z right): its views must still be axial = L-R x A-P, and so on
    browser.find_element("css selector", f'#images li[data-name="{SCT}"]').click()
    wait_for(browser, f"return document.body.dataset.views === '{SCT}' && "
                      "document.body.dataset.state === 'ready'", timeout=60)
    shown = views(browser)
    for view, letters in LABELS.items():
        assert shown[view]["labels"] == letters, view
    assert shown["axial"]["shape"] == [60, 52]  # A-P rows, R-L columns
    assert shown["coronal"]["shape"] == [55, 52] and shown["sagittal"]["shape"] == [55, 60]
    # what the views show is the anatomy: the axial slice equals SimpleITK's own LPS
    # reorientation of the file (an implementation apart from the app's)
    array, geometry = read_volume(folder / SCT)
    assert geometry.orientation_code() == "PSR"
    lps, _ = reoriented(array, geometry, "LPS")
    k = shown["axial"]["slice"]
    data, headers = fetch(f"{url}/api/volumes/{SCT}/slice/axial/{k}")
    rows, cols = map(int, headers["X-Slice-Shape"].split())
    np.testing.assert_array_equal(np.frombuffer(data, dtype="<i2").reshape(rows, cols), lps[k])
    j = shown["coronal"]["slice"]
    data, _ = fetch(f"{url}/api/volumes/{SCT}/slice/coronal/{j}")
    np.testing.assert_array_equal(np.frombuffer(data, dtype="<i2").reshape(55, 52),
                                  lps[::-1, j, :])


def page_state(driver):
    return driver.execute_script("""
        const a = window.unilandmark, c = a.views.coronal;
        return {points: a.points, cursor: a.cursor, selected: a.selected,
                to_world: a.meta.display.to_world, sx: c.sx, sy: c.sy, tx: c.tx, ty: c.ty,
                slice: Number(c.el.dataset.slice)};""")


def world_of(state, p):
    m = np.array(state["to_world"])
    return (m @ np.array([*p, 1.0]))[:3]


def saved_world(folder, stem):
    with open(folder / "landmarks_reviewed_volumes.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["image"] == stem]
    return {int(r["landmark"]): (np.array([float(r[c]) for c in ("x_mm", "y_mm", "z_mm")])
                                 if r["present"] == "1" else None) for r in rows}


def near_in_coronal(driver):
    """index -> screen centre of each landmark drawn on the coronal slice shown."""
    return {int(k): v for k, v in driver.execute_script("""
        const out = {}, box = document.getElementById('view-coronal').getBoundingClientRect();
        for (const g of document.querySelectorAll('#view-coronal g.landmark')) {
          if (g.style.display === 'none' || g.dataset.near !== '1') continue;
          const r = g.querySelector('circle.dot-mark').getBoundingClientRect();
          out[g.dataset.index] = [r.left + r.width / 2 - box.left, r.top + r.height / 2 - box.top];
        }
        return out;""").items()}


def test_a_coronal_drag_moves_two_axes_and_is_saved(browser, served):
    from selenium.webdriver.common.action_chains import ActionChains

    folder, url = served
    open_volume(browser, url, AFIDS)
    before_all = page_state(browser)
    # a landmark with room around it on its own coronal slice (the crosshair follows the
    # selected landmark, so selecting it brings its slice)
    chosen = None
    for k in range(len(before_all["points"])):
        browser.find_element("css selector", f'#landmarks tr[data-index="{k}"]').click()
        state = page_state(browser)
        assert state["selected"] == k
        np.testing.assert_allclose(state["cursor"], state["points"][k], atol=1e-9)
        assert state["slice"] == round(state["points"][k][1])  # coronal: display y
        drawn = near_in_coronal(browser)
        others = [np.hypot(*(np.subtract(v, drawn[k]))) for j, v in drawn.items() if j != k]
        if k in drawn and min(others, default=99) > 24:
            chosen = k
            break
    assert chosen is not None, "no landmark with room to grab in the coronal view"
    k = chosen
    before = page_state(browser)
    start = world_of(before, before["points"][k])
    handle = browser.find_element("css selector",
                                  f'#view-coronal g.landmark[data-index="{k}"] circle.hit')
    chain = ActionChains(browser).move_to_element(handle).click_and_hold()
    for _ in range(3):
        chain.move_by_offset(DRAG[0] // 3, DRAG[1] // 3)
    chain.release().perform()
    wait_for(browser, "return document.getElementById('status').textContent === 'reviewed'")
    after = page_state(browser)
    # coronal columns are display x, rows display z reversed: d(col, row) -> (dx, 0, -dz)
    d_display = np.array([DRAG[0] / before["sx"], 0.0, -DRAG[1] / before["sy"]])
    expected = start + np.array(before["to_world"])[:3, :3] @ d_display
    moved = world_of(after, after["points"][k])
    assert np.abs(moved - expected).max() < 2.0  # within a voxel (2 mm)
    assert abs(moved[1] - start[1]) < 1e-9  # not along the coronal slice axis

    browser.find_element("id", "save").click()
    wait_for(browser, "return document.body.dataset.saved && "
                      "document.getElementById('status').textContent === 'saved'")
    saved = saved_world(folder, "MNI152NLin6Asym")
    got = saved[k + 1]
    assert np.abs(got[[0, 2]] - expected[[0, 2]]).max() < 2.0  # the two axes of the view
    assert np.abs(got[[0, 2]] - start[[0, 2]]).min() > 4.0  # and it did move
    assert abs(got[1] - start[1]) < 1e-3  # not the third
    for j, p in enumerate(before_all["points"]):
        if j != k and p is not None:
            np.testing.assert_allclose(saved[j + 1], world_of(before_all, p), atol=1e-3)
    markups = read_markups(folder / "MNI152NLin6Asym.mrk.json")
    for j in range(len(markups)):
        np.testing.assert_allclose(markups.points_lps[j], saved[j + 1], atol=1e-3)


def test_absent_undo_and_scrolling_from_the_keys_and_the_wheel(browser, served):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.keys import Keys

    folder, url = served
    open_volume(browser, url, AFIDS)
    body = browser.find_element("tag name", "body")
    browser.find_element("css selector", '#landmarks tr[data-index="2"]').click()
    body.send_keys(Keys.ARROW_DOWN)  # landmark 4 (index 3): the crosshair follows
    assert browser.execute_script("return window.unilandmark.selected") == 3
    body.send_keys("v")
    assert browser.execute_script("return window.unilandmark.points[3]") is None
    body.send_keys(Keys.CONTROL, "z")
    assert browser.execute_script("return window.unilandmark.points[3]") is not None
    body.send_keys(Keys.CONTROL, Keys.SHIFT, "z")
    assert browser.execute_script("return window.unilandmark.points[3]") is None

    axial = browser.find_element("id", "view-axial")
    first = views(browser)["axial"]["slice"]
    ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(axial), 0, 120).perform()
    wait_for(browser, f"return Number(document.getElementById('view-axial').dataset.slice) "
                      f"!== {first}")
    ActionChains(browser).move_to_element(axial).perform()
    body.send_keys(Keys.PAGE_UP)
    wait_for(browser, f"return Number(document.getElementById('view-axial').dataset.slice) "
                      f"=== {first}")

    body.send_keys(Keys.CONTROL, "s")
    wait_for(browser, "return document.getElementById('status').textContent === 'saved'")
    assert saved_world(folder, "MNI152NLin6Asym")[4] is None  # present 0, no coordinates
    doc = json.loads((folder / "MNI152NLin6Asym.mrk.json").read_text())
    assert doc["markups"][0]["controlPoints"][3]["positionStatus"] == "undefined"
