"""The studio's bounds: only its runs open, requests are limited, a corrupt run is a card,
and a burst of requests is answered or cleanly refused by the queue."""

from __future__ import annotations

import concurrent.futures
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from ganvas.studio.actions import (
    Studio,
    compare_runs,
    generate_images,
    parse_seeds,
    restore_labels,
    restore_picture,
    walk,
)
from ganvas.studio.runs import (
    MAX_IMAGES,
    MAX_RESTORE_SIDE,
    GeneratorCache,
    RequestTooLarge,
    RunCatalog,
    RunRefused,
    run_summary,
)
from tests.conftest import make_blobs


@pytest.fixture(scope="module")
def studio(studio_root: Path) -> Studio:
    return Studio(RunCatalog([studio_root / "runs"]))


def test_catalog_finds_runs_and_refuses_others(studio, studio_root):
    runs = studio.catalog.runs()
    assert sorted(Path(label).name for label in runs) == ["a", "broken", "restore-x2"]
    assert studio.run(str(studio_root / "runs" / "a")).path == (studio_root / "runs" / "a")
    for outside in [studio_root / "elsewhere" / "b", studio_root / "runs" / "a" / ".." / ".."
                    / "elsewhere" / "b", Path("/etc"), "", None, "a\x00b"]:  # fmt: skip
        with pytest.raises(RunRefused):
            studio.run(outside if outside is None else str(outside))


def test_requests_are_bounded(studio, studio_root):
    label = str(studio_root / "runs" / "a")
    with pytest.raises(RequestTooLarge):
        generate_images(studio, label, 0, MAX_IMAGES + 1)
    with pytest.raises(RequestTooLarge):
        generate_images(studio, label, -1, 4)
    with pytest.raises(RequestTooLarge):
        walk(studio, label, "0,1", 101)
    with pytest.raises(RequestTooLarge):
        compare_runs(studio, [label] * 5, 0, 1)
    with pytest.raises(RequestTooLarge):
        parse_seeds("1")
    assert generate_images(studio, label, 3, 4).shape == (4, 16, 16, 3)


def test_same_seed_same_images_as_the_library(studio, studio_root):
    import ganvas

    run = studio_root / "runs" / "a"
    expected = ganvas.load(run, device="cpu").sample_numpy(5, seed=11)
    assert (generate_images(studio, str(run), 11, 5) == expected).all()


def test_restore_tab_cleans_a_picture_as_the_library_does(studio, studio_root):
    """The Restore tab: only restore runs are offered; a picture of any size comes back ×2,
    exactly as `load_restorer(run).restore` makes it, beside its bicubic enlargement."""
    from PIL import Image

    from ganvas.restore import load_restorer
    from ganvas.studio.app import refresh_runs

    label = str(studio_root / "runs" / "restore-x2")
    assert restore_labels(studio) == [label]
    updates = refresh_runs(studio)  # table, thumbnails, then the run pickers of the tabs
    run_tab, gan_tabs, restore_tab = updates[2], updates[3:8], updates[8]
    assert label in run_tab["choices"] and restore_tab["choices"] == [label]
    assert all(label not in u["choices"] and len(u["choices"]) == 2 for u in gan_tabs)
    picture = Image.fromarray(make_blobs(1, 32)[0]).resize((21, 13)).convert("RGBA")
    restored, bicubic = restore_picture(studio, label, picture)
    assert restored.shape == bicubic.shape == (26, 42, 3) and restored.dtype == np.uint8
    expected = load_restorer(label, device="cpu").restore(np.asarray(picture.convert("RGB")))
    assert np.array_equal(restored, expected)
    with pytest.raises(RequestTooLarge):
        restore_picture(studio, label, Image.new("RGB", (MAX_RESTORE_SIDE + 1, 4)))
    with pytest.raises(ValueError, match="upload"):
        restore_picture(studio, label, None)
    with pytest.raises(ValueError, match="restore run"):  # a GAN run is no restorer
        restore_picture(studio, str(studio_root / "runs" / "a"), picture)


def test_generator_cache_is_bounded(studio_root):
    from ganvas.rundir import RunDir

    cache = GeneratorCache(max_items=1)
    first = cache.get(RunDir(studio_root / "runs" / "a"))
    assert cache.get(RunDir(studio_root / "runs" / "a")) is first and len(cache) == 1
    cache.get(RunDir(studio_root / "elsewhere" / "b"))
    assert len(cache) == 1 and cache.nbytes() > 0
    tiny = GeneratorCache(max_items=4, max_bytes=1)
    tiny.get(RunDir(studio_root / "runs" / "a"))
    tiny.get(RunDir(studio_root / "elsewhere" / "b"))
    assert len(tiny) == 1  # over the byte bound: only the newest is kept


def test_corrupt_run_is_a_card_not_a_crash(studio, studio_root):
    from ganvas.studio.app import show_run

    label = str(studio_root / "runs" / "broken")
    assert run_summary(label, studio.run(label))["state"].startswith("error:")
    heading = show_run(studio, label)[0]
    assert "cannot be shown" in heading


def test_warns_when_exposed_without_auth():
    from ganvas.studio.app import check_exposure

    assert check_exposure("127.0.0.1", None) is None
    assert check_exposure("0.0.0.0", ("u", "p")) is None
    assert "--auth" in check_exposure("0.0.0.0", None)


def call_generate(url: str, run: str, count: int = 4, seed: int = 0) -> dict:
    """POST /gradio_api/call/generate, then read its event stream: {'event', 'data'}."""
    body = json.dumps({"data": [run, seed, count, "all", 0.7, False]}).encode()
    request = urllib.request.Request(f"{url}/gradio_api/call/generate", body,
                                     {"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{url}/gradio_api/call/generate/{event_id}", timeout=120) as r:
        event = None
        for raw in r:
            line = raw.decode().strip()
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                return {"event": event, "data": line.split(":", 1)[1].strip()}
    return {"event": "none", "data": ""}


def test_http_request_for_a_path_outside_is_refused(studio_server, studio_root):
    url, _ = studio_server
    outside = studio_root / "elsewhere" / "b"
    for path in (str(outside), "runs/../elsewhere/b", "/etc"):
        result = call_generate(url, path)
        assert result["event"] == "error", result
    assert call_generate(url, "runs/a")["event"] == "complete"
    grid = outside / "samples" / "reals.png"
    for route in (f"/gradio_api/file={grid}", f"/file={grid}", "/gradio_api/file=/etc/passwd"):
        try:
            with urllib.request.urlopen(url + route, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as err:
            status = err.code
        assert status in (403, 404), (route, status)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def outcome(url: str, i: int) -> str:
    """'answered', 'refused' (the queue said it is full: HTTP 503) or what else happened."""
    try:
        result = call_generate(url, "runs/a", count=1, seed=i)
    except urllib.error.HTTPError as err:
        body = err.read().decode(errors="replace")
        return "refused" if err.code == 503 and "Queue is full" in body else f"http {err.code}"
    except OSError as err:
        return f"other: {err!r}"
    return "answered" if result["event"] == "complete" else f"event {result}"


@pytest.mark.slow
def test_200_concurrent_generate_requests(studio_server, record_property):
    url, process = studio_server
    n, rss_before, peak = 200, rss_mib(process.pid), 0.0
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(outcome, url, i) for i in range(n)]
        while not all(f.done() for f in futures):
            peak = max(peak, rss_mib(process.pid))
            time.sleep(0.1)
    seconds = time.perf_counter() - start
    outcomes = [f.result() for f in futures]
    answered, refused = outcomes.count("answered"), outcomes.count("refused")
    figures = {"requests": n, "answered": answered, "refused": refused, "seconds": round(seconds, 1),
               "rss_mib_before": round(rss_before), "rss_mib_peak": round(peak)}  # fmt: skip
    print("load test:", figures)
    for key, value in figures.items():
        record_property(key, value)
    assert answered + refused == n, [o for o in outcomes if o not in ("answered", "refused")][:3]
    assert answered >= 1
    assert call_generate(url, "runs/a")["event"] == "complete"  # still serving normally
    assert process.poll() is None
