"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by selenium.

Used by tests/test_html.py, and to take docs/html-report.png:
``python -m tests.browser report.html docs/html-report.png``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Headless, and nothing of its own on the network (no updates, no sync, no first-run pages).
ARGUMENTS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium(width: int = 1280, height: int = 1000) -> Iterator[Any]:
    """A fresh browser (its own --user-data-dir) that keeps console and network logs."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="calo-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for argument in [*ARGUMENTS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]:
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page asked for since the last call (the performance log is read once)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def open_page(driver: Any, page: Path, fragment: str = "") -> list[str]:
    """Load ``page`` from file:// after a blank page (whose own requests are read off and dropped);
    returns the URLs loading it requested."""
    driver.get("about:blank")
    requested_urls(driver)
    driver.get_log("browser")
    driver.get(page.resolve().as_uri() + fragment)
    return requested_urls(driver)


def screenshot(page: Path, png: Path) -> None:
    """The top of the report, for the docs."""
    with chromium(1200, 1150) as driver:
        open_page(driver, page)
        driver.save_screenshot(str(png))


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
