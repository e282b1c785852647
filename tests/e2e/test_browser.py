"""The real dashboard in a real browser (Debian's chromium driven by Playwright).

Starts ``streamlit run app.py`` on a free loopback port, uploads a slide, computes features
and checks the heatmap appears, and that the page made no request off the machine.
Set MRRP_SCREENSHOT=path.png to save a screenshot (used for the README).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlparse

import pytest
from conftest import REPO, tissue_image, write_tiff_slide

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (apt-get install chromium); .ci/run installs it")
    tmp = tmp_path_factory.mktemp("e2e")
    slides = tmp / "slides"
    slides.mkdir()
    write_tiff_slide(
        slides / "demo.tiff", tissue_image(3000, 2000, [(300, 300, 2100, 1500), (2300, 400, 2800, 1200)]), mpp=0.5
    )
    port = _free_port()
    env = {**os.environ, "MRRP_CACHE_DIR": str(tmp / "cache"), "MRRP_SLIDE_DIR": str(slides)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start: " + proc.stdout.read().decode(errors="replace")[-2000:])
    yield url, slides
    proc.terminate()
    proc.wait(timeout=10)


def test_slide_to_heatmap_in_browser(server) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, _slides = server
    off_machine: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2600})
        page.on(
            "request",
            lambda req: (
                off_machine.append(req.url)
                if urlparse(req.url).hostname not in ("127.0.0.1", "localhost", None)
                and not req.url.startswith("data:")
                else None
            ),
        )
        page.goto(url)
        expect(page.get_by_text("not for clinical decisions").first).to_be_visible(timeout=30_000)
        page.get_by_text("Local slide folder").click()
        expect(page.get_by_role("button", name="Compute tile features")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("0.5 µm/pixel").first).to_be_visible()
        page.get_by_role("button", name="Compute tile features").click()
        expect(page.get_by_text("features from efficientnet-lite0-imagenet")).to_be_visible(timeout=90_000)
        expect(page.get_by_text("Highest-scoring tiles")).to_be_visible()
        page.get_by_role("tab", name="Tile grid").click()
        page.wait_for_timeout(500)
        shot = os.environ.get("MRRP_SCREENSHOT")
        if shot:
            page.screenshot(path=shot, full_page=True)
        browser.close()
    assert off_machine == [], f"requests left the machine: {off_machine[:5]}"
