"""Save a screenshot of the published leaderboard (site/index.html) for the README.

    python scripts/site_screenshot.py [--site site] [--out docs/leaderboard.png]

Uses Debian's chromium + chromedriver headless through selenium, from file:// (no server).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path


def main() -> int:
    """Write the PNG; exit 2 if chromium or chromedriver is missing."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--site", default="site")
    ap.add_argument("--out", default="docs/leaderboard.png")
    ap.add_argument("--page", default="index.html")
    ap.add_argument("--scroll-to", default=None,
                    help="id of an element to scroll to first (e.g. one table's heading)")
    args = ap.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        print("site_screenshot: install chromium and chromium-driver first")
        return 2
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    with tempfile.TemporaryDirectory() as profile:
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-dev-shm-usage", "--window-size=1500,1100",
                    f"--user-data-dir={profile}"):
            opts.add_argument(arg)
        drv = webdriver.Chrome(options=opts, service=Service(executable_path=driver_path))
        try:
            drv.get((Path(args.site).resolve() / args.page).as_uri())
            if args.scroll_to:
                drv.execute_script("document.getElementById(arguments[0]).scrollIntoView()",
                                   args.scroll_to)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            drv.save_screenshot(args.out)
        finally:
            drv.quit()
    print(f"screenshot: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
