"""The studio in a real browser (Playwright driving Debian's chromium)."""

from __future__ import annotations

import json

import pytest

TIMEOUT_MS = 60_000


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def test_runs_run_and_generate(page, studio_server):
    url, _ = studio_server
    page.goto(url, wait_until="load")
    table = page.locator("#runs-table")
    table.get_by_text("runs/a", exact=True).filter(visible=True).first.wait_for(timeout=TIMEOUT_MS)
    assert table.get_by_text("finished").count() >= 1
    assert table.get_by_text("error:", exact=False).count() >= 1  # the corrupt run, a row

    table.get_by_text("runs/a", exact=True).filter(visible=True).first.click()
    heading = page.locator("#run-heading")
    heading.get_by_text("dcgan on data", exact=False).wait_for(timeout=TIMEOUT_MS)

    open_tab(page, "Generate")
    page.locator("#generate").click()
    image = page.locator("#gen-gallery img").first
    image.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => { const i = document.querySelector('#gen-gallery img');"
        " return i && i.complete && i.naturalWidth > 0; }",
        timeout=TIMEOUT_MS,
    )
    size = image.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert size == [16, 16]  # the run's resolution
    assert page.external == []  # nothing fetched from the internet


def test_rate_five_images(page, studio_server, studio_root):
    url, _ = studio_server
    ratings = studio_root / "runs" / "a" / "ratings.jsonl"
    before = len(ratings.read_text().splitlines()) if ratings.is_file() else 0
    page.goto(url, wait_until="load")
    open_tab(page, "Rate")
    page.locator("#rate-start").click()
    progress = page.locator("#rate-progress")
    progress.get_by_text("0/10 rated", exact=False).wait_for(timeout=TIMEOUT_MS)
    for i, button in enumerate(["#rate-yes", "#rate-no", "#rate-yes", "#rate-yes", "#rate-no"]):
        page.locator(button).click()
        progress.get_by_text(f"{i + 1}/10 rated", exact=False).wait_for(timeout=TIMEOUT_MS)
    lines = [json.loads(line) for line in ratings.read_text().splitlines()][before:]
    assert len(lines) == 5
    assert [line["yes"] for line in lines] == [1, 0, 1, 1, 0]
    assert {"question", "step", "seed", "n", "yes", "accuracy", "ci95"} <= set(lines[0])
    assert [line["index"] for line in lines] == [0, 1, 2, 3, 4]


def test_walk_and_copies_tabs(page, studio_server):
    url, _ = studio_server
    page.goto(url, wait_until="load")
    open_tab(page, "Walk")
    page.locator("#walk-go").click()
    page.locator("img[alt='latent walk']").wait_for(timeout=TIMEOUT_MS)
    open_tab(page, "Copies")
    page.get_by_role("button", name="Show", exact=True).click()
    page.get_by_text("Not computed", exact=False).wait_for(timeout=TIMEOUT_MS)


def test_restore_tab_enlarges_an_uploaded_picture(page, studio_server, tmp_path):
    from PIL import Image

    from tests.conftest import make_blobs

    url, _ = studio_server
    picture = tmp_path / "old.png"
    Image.fromarray(make_blobs(1, 16)[0]).resize((12, 10)).save(picture)
    page.goto(url, wait_until="load")
    open_tab(page, "Restore")
    page.locator("#restore-input input[type=file]").set_input_files(str(picture))
    page.locator("#restore-input img").first.wait_for(timeout=TIMEOUT_MS)  # the upload shows
    page.locator("#restore-go").click()
    page.locator("#restore-info").get_by_text("24×20 px", exact=False).wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => { const i = document.querySelector('#restore-output img');"
        " return i && i.complete && i.naturalWidth > 0; }",
        timeout=TIMEOUT_MS,
    )
    size = page.locator("#restore-output img").first.evaluate(
        "i => [i.naturalWidth, i.naturalHeight]"
    )
    assert size == [24, 20]  # ×2, the run's factor
    assert page.external == []


@pytest.mark.slow
def test_report_page_images_load(browser, studio_root, tmp_path):
    from ganvas.studio.report import write_report

    path = write_report(studio_root / "runs" / "a", tmp_path / "report.html")
    context = browser.new_context()
    page = context.new_page()
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:"))
               else r.abort())  # fmt: skip
    page.goto(path.as_uri(), wait_until="load")
    images = page.locator("img")
    assert images.count() >= 4  # grids, reals, the animation, the curves
    broken = page.evaluate(
        "() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length"
    )
    assert broken == 0
    assert page.get_by_role("heading", name="Curves").count() == 1
    context.close()
