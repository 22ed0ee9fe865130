"""A tiny trained run, the studio serving it from a subprocess on a free 127.0.0.1 port, and
Debian's chromium driven by Playwright (headless, no sandbox, no background networking)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import TINY_MODELS, make_blobs, tiny_config, write_dataset

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def studio_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/runs/a (trained, 16 px), root/runs/restore-x2 (a restorer, 8 → 16 px),
    root/runs/broken (a corrupt config.yaml), root/elsewhere/b (a run outside the folder the
    studio is given)."""
    from ganvas.training.trainer import train

    root = tmp_path_factory.mktemp("studio")
    write_dataset(root / "data", make_blobs(64))
    train(tiny_config(root / "data"), root / "runs" / "a", progress=False)
    restore = tiny_config(root / "data", **TINY_MODELS["restore"], **{
        "model.family": "restore", "model.factor": 2, "train.batch_size": 4, "train.steps": 3,
        "train.n_samples": 2})  # fmt: skip
    train(restore, root / "runs" / "restore-x2", progress=False)
    broken = root / "runs" / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_text("model: [this is not: a config\n")
    (broken / "metrics.jsonl").write_text('{"step": 1, "kimg"')  # half-written line
    shutil.copytree(root / "runs" / "a", root / "elsewhere" / "b")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the studio exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the studio did not answer at {url} within {seconds} s")


@pytest.fixture(scope="session")
def studio_server(studio_root: Path):
    """(url, process) of `ganvas studio runs` started in studio_root."""
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"),
                                          os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    log = open(studio_root / "studio.log", "w")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", "ganvas", "studio", "runs", "--port", str(port), "--device", "cpu"],
        cwd=studio_root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/", process)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-background-networking"])  # fmt: skip
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, studio_server):
    """A fresh page; requests to anywhere but 127.0.0.1 are blocked and listed in
    `page.external` (the studio must work offline)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.external = []

    def route(request_route):
        url = request_route.request.url
        if url.startswith(("http://127.0.0.1", "data:", "blob:", "file:")):
            request_route.continue_()
        else:
            page.external.append(url)
            request_route.abort()

    page.route("**/*", route)
    yield page
    context.close()
