"""Make docs/report.png: the report of a run over sample_images/, in the system Chromium.

python docs/report_screenshot.py [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "heatmaps"
        methods = ["--method", "guided", "--method", "gradcam"]
        command = [sys.executable, "-m", "saliency_cli", "explain", "sample_images", "--out",
                   str(out), *methods, "--report", "--quiet"]  # fmt: skip
        subprocess.run(command, check=True, cwd=ROOT)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=args.chromium, args=["--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.emulate_media(color_scheme="light")
            page.goto((out / "report.html").as_uri() + "#sort=p-desc")
            page.wait_for_function(
                "[...document.querySelectorAll('#cards img')].every(i => i.complete)"
            )
            page.screenshot(path=str(ROOT / "docs" / "report.png"))
            browser.close()


if __name__ == "__main__":
    main()
