"""A headless Chromium driving the review page: for the browser test, the latency benchmark
and the docs screenshot (test tooling, kept out of the installed package). Needs
``selenium`` (a dev dependency) and a Chromium with its driver (Debian: ``apt-get install
chromium chromium-driver``); nothing is downloaded.

``UNILANDMARK_CHROMIUM`` and ``UNILANDMARK_CHROMEDRIVER`` override where they are looked for.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator

#: flags for a quiet, sandbox-free headless browser that never reaches the network itself
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


class BrowserUnavailable(RuntimeError):
    """No usable headless browser here; the message says what is missing."""


def find_browser() -> tuple[str, str]:
    """``(chromium, chromedriver)`` executables; :class:`BrowserUnavailable` if absent."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        raise BrowserUnavailable("the Python package 'selenium' is not installed "
                                 "(pip install selenium)") from None
    browser = os.environ.get("UNILANDMARK_CHROMIUM") or next(
        (p for p in map(shutil.which, BROWSERS) if p), None)
    driver = os.environ.get("UNILANDMARK_CHROMEDRIVER") or shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver))
               if not path or not os.access(path, os.X_OK)]
    if missing:
        raise BrowserUnavailable(f"no {' or '.join(missing)} on this machine (Debian: "
                                 "apt-get install chromium chromium-driver)")
    return browser, driver


@contextlib.contextmanager
def headless_chromium(width: int = 1400, height: int = 900) -> Iterator:
    """A selenium WebDriver on a fresh headless Chromium profile, quit on exit."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = find_browser()
    with tempfile.TemporaryDirectory(prefix="unilandmark-chromium-") as profile:
        options = Options()
        options.binary_location = browser
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                     f"--window-size={width},{height}"):
            options.add_argument(flag)
        try:
            driver = webdriver.Chrome(service=Service(driver_path), options=options)
        except WebDriverException as err:
            raise BrowserUnavailable(f"{browser} did not start: {err.msg}") from None
        try:
            yield driver
        finally:
            driver.quit()


def wait_for(driver, script: str, timeout: float = 30.0, interval: float = 0.05):
    """Run ``script`` (JavaScript returning a value) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for: {script}")
        time.sleep(interval)
