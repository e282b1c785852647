"""The real dashboard in a real browser (Debian's chromium driven by Playwright).

Starts ``streamlit run app.py`` on a free loopback port; reviews a demo patient (risk group, heatmap
image) and computes a slide's features in the slide viewer; checks that the page made no request off
the machine. Screenshots go to the test-artefacts folder (``MRRP_TEST_ARTEFACTS``, default
``test-artefacts/`` in the repository); ``MRRP_SCREENSHOT=path.png`` also saves the slide viewer's.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import REPO, tissue_image, write_tiff_slide

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


ARTEFACTS = Path(os.environ.get("MRRP_TEST_ARTEFACTS", str(REPO / "test-artefacts")))
# Waits sized for a CI machine whose cores are busy with other work: the server's start, and any
# expectation without its own timeout (Playwright's default is 5 s). Tests wait on what the page shows.
SERVER_START_S = 180
EXPECT_TIMEOUT_MS = 60_000


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
    env = {
        **os.environ,
        "MRRP_CACHE_DIR": str(tmp / "cache"),
        "MRRP_SLIDE_DIR": str(slides),
        "MRRP_HISTORY_DB": str(tmp / "history.sqlite"),
        "MRRP_MODELS_DIR": str(tmp / "models"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + SERVER_START_S
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


def test_deep_link_on_a_fresh_server_keeps_the_shell(server) -> None:
    """First request of the server is a deep link: the page still comes with the sidebar and the notice.

    (Streamlit runs a page file on its own when an app with a pages/ folder has not called st.navigation
    yet; mrrp.dashboard.shell.require_shell reruns it through app.py.) Runs first in this module, so the
    server is fresh.
    """
    from playwright.sync_api import expect

    url, _slides = server
    with _browser_page(height=1200, watch=False) as page:
        page.goto(f"{url}/patient_review")
        expect(page.get_by_role("heading", name="Patient review")).to_be_visible(timeout=30_000)
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar.get_by_text("not for clinical decisions")).to_be_visible()
        expect(sidebar.get_by_text("Version")).to_be_visible()
        expect(sidebar.get_by_role("link", name="Slide viewer")).to_be_visible()


def test_slide_to_heatmap_in_browser(server) -> None:
    from playwright.sync_api import expect

    url, _slides = server
    with _browser_page(height=2600) as page:
        page.goto(url)
        expect(page.get_by_text("not for clinical decisions").first).to_be_visible(timeout=30_000)
        page.get_by_role("link", name="Slide viewer").click()
        expect(page.get_by_role("heading", name="Slide viewer")).to_be_visible(timeout=30_000)
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


@contextmanager
def _browser_page(height: int, watch: bool = True) -> Iterator:
    """A 1400-px-wide chromium page; with ``watch``, fails if the page made any request off the machine."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    off_machine: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": height})
        page.set_default_timeout(EXPECT_TIMEOUT_MS)  # clicks and downloads without their own timeout
        if watch:
            _watch_requests(page, off_machine)
        yield page
        browser.close()
    assert off_machine == [], f"requests left the machine: {off_machine[:5]}"


def _watch_requests(page, off_machine: list[str]) -> None:
    page.on(
        "request",
        lambda req: (
            off_machine.append(req.url)
            if urlparse(req.url).hostname not in ("127.0.0.1", "localhost", None) and not req.url.startswith("data:")
            else None
        ),
    )


def test_demo_patient_review_in_browser(server) -> None:
    """One click on a demo patient gives the risk group, the probabilities and the slide heatmap."""
    from playwright.sync_api import expect

    url, _slides = server
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with _browser_page(height=1800) as page:
        page.goto(url)
        expect(page.get_by_role("heading", name="Patient review")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("not for clinical decisions").first).to_be_visible()
        # First use writes the demo patients and loads the encoders: allow for it.
        page.get_by_role("button", name="DEMO-02").click(timeout=120_000)
        expect(page.get_by_text("High risk", exact=True)).to_be_visible(timeout=180_000)
        expect(page.get_by_text("5-year recurrence").first).to_be_visible()
        expect(page.get_by_text("H&E slide: provided")).to_be_visible()
        page.mouse.move(5, 5)  # no hover tooltip over the picture
        page.wait_for_timeout(1500)  # let plotly finish drawing before the picture
        page.screenshot(path=str(ARTEFACTS / "patient_review.png"), full_page=False)
        page.get_by_role("tab", name="Slide heatmap").click()
        heatmap = page.locator('[data-testid="stImage"] img').first
        expect(heatmap).to_be_visible(timeout=60_000)
        natural = heatmap.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert natural[0] > 100 and natural[1] > 50, natural
        expect(page.get_by_text("Top tiles")).to_be_visible()
        heatmap.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTEFACTS / "patient_review_heatmap.png"))
        # one-click exports: the PDF is generated when clicked (kaleido draws its charts)
        page.get_by_role("tab", name="Export & history").click()
        with page.expect_download(timeout=120_000) as pdf_download:
            page.get_by_role("button", name="Download PDF report").click()
        pdf_path = ARTEFACTS / "patient_review.pdf"
        pdf_download.value.save_as(str(pdf_path))
        assert pdf_path.read_bytes().startswith(b"%PDF-") and pdf_path.stat().st_size > 50_000
        with page.expect_download(timeout=30_000) as json_download:
            page.get_by_role("button", name="Download prediction (JSON)").click()
        json_path = ARTEFACTS / "patient_review.json"
        json_download.value.save_as(str(json_path))
        doc = json.loads(json_path.read_text())
        assert doc["prediction"]["risk_group"] == "high" and "not for clinical decisions" in doc["notice"]


def test_pcr_demo_patient_in_browser(server) -> None:
    """The pCR page from the navigation: a demo MRI patient gives a probability, the stages and the attention map."""
    from playwright.sync_api import expect

    url, _slides = server
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with _browser_page(height=1600) as page:
        page.goto(url)
        page.get_by_role("link", name="pCR from MRI").click(timeout=60_000)
        expect(page.get_by_role("heading", name="pCR prediction from breast MRI")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("not for clinical decisions").first).to_be_visible()
        page.get_by_text("Demo MRI patient", exact=True).click()
        page.get_by_role("button", name="Use this demo MRI patient").click(timeout=120_000)
        expect(page.get_by_text("pCR probability")).to_be_visible(timeout=120_000)
        expect(page.get_by_text("Stage by stage")).to_be_visible()
        expect(page.get_by_text("Where the model looked")).to_be_visible()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(ARTEFACTS / "pcr_page.png"), full_page=False)
