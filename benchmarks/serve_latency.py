"""Review app latency: time to the first landmarks on screen, then per image after.

Serves a folder (by default a copy of the first 20 ISBI 2015 Test1 images) with the model
loaded once, then walks the images in order as a reviewer would with the arrow key:

- ``browser`` mode (headless Chromium, when installed): *first* is from opening the page
  to the first image's landmarks drawn and its picture shown; *per image* is from the
  key press to the next image's landmarks and picture on screen. The page prefetches the
  next image while one is shown; ``--dwell`` seconds on each image let that finish (0: the
  reviewer moves on at once, the worst case).
- ``api`` mode (no browser): the same sequence of requests the page makes (image header,
  display copy, landmarks), timed over HTTP.

    python benchmarks/serve_latency.py --root ../shared/data/isbi2015 --json out/serve.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402
from unilandmark.imageio.read import is_image_file


def isbi_folder(root: Path, count: int, into: Path) -> Path:
    """Copy the first ``count`` Test1 images of ISBI 2015 into ``into`` (the app lists a
    folder's own files only, never links that point elsewhere)."""
    source = root / "RawImage" / "Test1Data"
    files = sorted(p for p in source.iterdir() if is_image_file(p))[:count]
    if len(files) < count:
        raise SystemExit(f"{source}: expected {count} images, found {len(files)}")
    for f in files:
        shutil.copy(f, into / f.name)
    return into


def run_browser(url: str, names: list[str], dwell: float) -> dict:
    from selenium.webdriver.common.keys import Keys

    from _browser import headless_chromium, wait_for

    ready = ("return document.body.dataset.state === 'ready' && document.body.dataset.image "
             "=== '{}' && document.getElementById('picture').classList.contains('shown')")
    with headless_chromium(1400, 900) as driver:
        t0 = time.perf_counter()
        driver.get(f"{url}/#{urllib.parse.quote(names[0])}")
        wait_for(driver, ready.format(names[0]), timeout=120, interval=0.01)
        first = time.perf_counter() - t0
        per_image = []
        body = driver.find_element("tag name", "body")
        for name in names[1:]:
            time.sleep(dwell)
            t0 = time.perf_counter()
            body.send_keys(Keys.ARROW_RIGHT)
            wait_for(driver, ready.format(name), timeout=120, interval=0.01)
            per_image.append(time.perf_counter() - t0)
        marks = driver.execute_script("return window.unilandmark.timings")
    return {"first_s": first, "per_image_s": per_image, "page_marks_ms": marks}


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.read()


def run_api(url: str, names: list[str], dwell: float) -> dict:
    def open_image(name: str) -> None:
        base = f"{url}/api/images/{urllib.parse.quote(name)}"
        json.loads(_get(base))
        _get(base + "/display")
        state = json.loads(_get(base + "/landmarks"))
        assert len(state["points"]) > 0

    t0 = time.perf_counter()
    _get(url + "/")
    json.loads(_get(url + "/api/info"))
    json.loads(_get(url + "/api/images"))
    open_image(names[0])
    first = time.perf_counter() - t0
    per_image = []
    for name in names[1:]:
        time.sleep(dwell)
        t0 = time.perf_counter()
        open_image(name)
        per_image.append(time.perf_counter() - t0)
    return {"first_s": first, "per_image_s": per_image}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/isbi2015", help="ISBI 2015 folder")
    p.add_argument("--folder", default=None, help="serve this folder instead of ISBI images")
    p.add_argument("--images", type=int, default=20)
    p.add_argument("--checkpoint", default=None, help="default: the built-in model")
    p.add_argument("--domain", default=None)
    p.add_argument("--spacing", type=float, default=0.1, help="mm per pixel (ISBI: 0.1)")
    p.add_argument("--mode", choices=("auto", "browser", "api"), default="auto")
    p.add_argument("--dwell", type=float, default=0.0, help="seconds on each image")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)

    from _browser import BrowserUnavailable, find_browser
    from unilandmark.inference.detector import Detector
    from unilandmark.serve import BackgroundServer, create_app

    mode = a.mode
    if mode == "auto":
        try:
            find_browser()
            mode = "browser"
        except BrowserUnavailable as err:
            print(f"no browser ({err}); timing the API instead")
            mode = "api"
    with tempfile.TemporaryDirectory(prefix="serve-latency-") as tmp:
        folder = Path(a.folder) if a.folder else isbi_folder(Path(a.root), a.images, Path(tmp))
        t0 = time.perf_counter()
        detector = Detector.from_checkpoint(a.checkpoint, device=a.device)
        load_s = time.perf_counter() - t0
        app = create_app(folder, detector, a.domain,
                         spacing=(a.spacing, a.spacing) if a.spacing else None)
        names = app.state.store.folder.names()[: a.images]
        if len(names) < 2:
            raise SystemExit(f"{folder}: needs at least 2 images, found {len(names)}")
        with BackgroundServer(app) as url:
            result = (run_browser if mode == "browser" else run_api)(url, names, a.dwell)
    per = result["per_image_s"]
    summary = {"mode": mode, "images": len(names), "model_load_s": load_s,
               "first_s": result["first_s"], "per_image_median_s": statistics.median(per),
               "per_image_max_s": max(per)}
    print(f"{'mode':8s} {'images':>6s} {'model load':>10s} {'first':>8s} "
          f"{'per image (median)':>18s} {'max':>7s}")
    print(f"{mode:8s} {len(names):>6d} {load_s:>9.2f}s {result['first_s']:>7.2f}s "
          f"{summary['per_image_median_s']:>17.2f}s {summary['per_image_max_s']:>6.2f}s")
    write_json(a.json, {"benchmark": "serve_latency", "machine": machine(), "args": vars(a),
                        **summary, **result})
    return summary


if __name__ == "__main__":
    main()
