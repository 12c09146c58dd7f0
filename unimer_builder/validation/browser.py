"""A real headless browser for checking HTML the builder writes: Debian's Chromium driven by selenium
through Debian's chromedriver (nothing is downloaded: selenium is given both binaries, so its own
driver manager never runs).

Install the browser with ``apt-get install -y chromium chromium-driver`` (``.ci/run`` does). Each
session gets a fresh profile folder, so no state leaks between runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMEDRIVER_NAMES = ("chromedriver",)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary on PATH (or ``$CHROMIUM``), None if there is none."""
    env = os.environ.get("CHROMIUM")
    if env and Path(env).is_file():
        return env
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def find_chromedriver() -> str | None:
    env = os.environ.get("CHROMEDRIVER")
    if env and Path(env).is_file():
        return env
    return next((p for p in map(shutil.which, CHROMEDRIVER_NAMES) if p), None)


@contextlib.contextmanager
def headless_chromium(width: int = 1280, height: int = 1000) -> Iterator:
    """A selenium ``WebDriver`` on headless Chromium with a fresh ``--user-data-dir``; browser console
    messages are kept (``driver.get_log("browser")``). Raises ``FileNotFoundError`` naming what is missing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_bin = find_chromium(), find_chromedriver()
    if chromium is None:
        raise FileNotFoundError(f"no Chromium binary ({', '.join(CHROMIUM_NAMES)}) on PATH; "
                                "apt-get install -y chromium chromium-driver")
    if driver_bin is None:
        raise FileNotFoundError("chromedriver not on PATH; apt-get install -y chromium-driver")
    profile = tempfile.mkdtemp(prefix="unimer-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium's driver manager must never go online
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=driver_bin))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list[dict]:
    """Browser console entries of level SEVERE (JavaScript errors, failed loads) since the last call."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def broken_images(driver, wait_s: float = 20.0) -> list[str]:
    """``src`` of every <img> on the page that did not load. Lazy images are made eager first, and each is given
    up to ``wait_s`` seconds to finish (load or fail): an image still loading is not broken, and on a busy
    machine the eager ones were checked before they had loaded (three flow images of the CI's report)."""
    driver.execute_script("document.querySelectorAll('img').forEach(function (i) { i.loading = 'eager'; });")
    end = time.monotonic() + wait_s
    while time.monotonic() < end and driver.execute_script(
            "return Array.from(document.images).some(function (i) { return !i.complete; });"):
        time.sleep(0.1)
    return driver.execute_script(
        "return Array.from(document.images).filter(function (i) {"
        " return !(i.complete && i.naturalWidth > 0); }).map(function (i) { return i.getAttribute('src'); });")


def full_page_screenshot(driver, path: Path | str, max_height: int = 4000) -> Path:
    """A PNG of the whole page (the window is resized to the page's height, at most ``max_height``)."""
    width = driver.execute_script("return document.documentElement.scrollWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(max(width, 800), min(height + 100, max_height))
    path = Path(path)
    path.write_bytes(driver.get_screenshot_as_png())
    return path
