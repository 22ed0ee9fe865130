"""Take the screenshots of docs/studio.md with the browser the tests use:

    python -m tests.studio.screenshots RUNS_FOLDER docs/studio [DAMAGED_PICTURE]

Starts `ganvas studio RUNS_FOLDER` on a free port, opens each tab in headless chromium and
saves runs.png, run.png, generate.png, walk.png, rate.png and report.png (PNG, small); with
a picture and a restore run in the folder, restore.png too (the picture restored).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.studio.conftest import CHROMIUM, free_port, wait_for

WAIT_MS = 60_000


def shoot(runs: Path, out: Path, picture: Path | None = None) -> None:
    from playwright.sync_api import sync_playwright

    from ganvas.studio.report import write_report
    from ganvas.studio.runs import RunCatalog

    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "ganvas", "studio", str(runs), "--port",
                               str(port), "--device", "cpu"])  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/", server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=["--no-sandbox", "--disable-background-networking"])  # fmt: skip
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(url, wait_until="load")
            label = RunCatalog([runs]).labels()[0]
            table = page.locator("#runs-table")
            first = table.get_by_text(label, exact=True).filter(visible=True).first
            first.wait_for(timeout=WAIT_MS)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / "runs.png"))
            first.click()
            page.locator("#run-heading h3").wait_for(timeout=WAIT_MS)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / "run.png"), full_page=True)
            for tab, button, name in (("Generate", "#generate", "generate"),
                                      ("Walk", "#walk-go", "walk"),
                                      ("Rate", "#rate-start", "rate")):  # fmt: skip
                page.get_by_role("tab", name=tab, exact=True).click()
                page.locator(button).click()
                page.wait_for_timeout(4000)
                if name == "rate":
                    page.locator("#rate-yes").click()
                    page.wait_for_timeout(1500)
                page.screenshot(path=str(out / f"{name}.png"))
            if picture is not None:
                page.get_by_role("tab", name="Restore", exact=True).click()
                page.locator("#restore-input input[type=file]").set_input_files(str(picture))
                page.wait_for_timeout(1500)
                page.locator("#restore-go").click()
                page.locator("#restore-output img").first.wait_for(timeout=WAIT_MS)
                page.wait_for_timeout(1500)
                page.screenshot(path=str(out / "restore.png"), full_page=True)
            report = write_report(
                RunCatalog([runs]).resolve(label).path, Path(tempfile.mkdtemp()) / "report.html"
            )
            page.goto(report.as_uri(), wait_until="load")
            page.screenshot(path=str(out / "report.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    shoot(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else None)
