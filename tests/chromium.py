"""Headless Chromium through Selenium, as the browser tests start it.

Imported by status_page.py and browser_page.py (Python puts a script's own
directory on its path). One place for the flags: no sandbox (we run as
root), no GPU, no QUIC or background traffic (the machine has no network),
a throw-away profile directory that the caller removes with `cleanup`.
"""

import shutil
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def start(width, height):
    """A new headless Chromium of `width` x `height`; returns (driver, profile)."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="vigil-chromium-")
    for flag in [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--window-size={width},{height}",
        f"--user-data-dir={profile}",
    ]:
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts), profile


def cleanup(profile):
    """Removes the profile directory `start` made (after driver.quit())."""
    shutil.rmtree(profile, ignore_errors=True)
