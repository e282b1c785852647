"""Several people on one dashboard at once, in a real browser (issue 13, under load).

One Streamlit server (the fixture of ``test_browser.py``), three browser contexts (three separate Streamlit
sessions, as three clinicians would have), each clicking a different demo patient at the same moment. Every
session must end with its own patient's heading and the risk group the library computes for that patient,
never another patient's id and never the generic apology; while it waits for the server's one turn at torch
(``mrrp._threads.torch_turn``) it may say it is queued (``BUSY_QUEUED``). No request may leave the machine.

Why three: the server runs the analyses one at a time (one turn at torch), so three sessions make two of
them queue, which is what is under test, while the run stays bounded on a 2-core CI box: three analyses one
after another plus three chromium renderers on two cores (eight, as in the issue, would take four-fold longer
without testing anything more). The library-level test with more sessions is
``tests/bad_inputs/test_concurrency.py``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import test_browser  # the module beside this one (pytest puts tests/e2e on sys.path)
from test_browser import CHROMIUM, CHROMIUM_ARGS, EXPECT_TIMEOUT_MS, _watch_requests

from mrrp._threads import BUSY_QUEUED
from mrrp.ui import UNEXPECTED
from mrrp.vocabulary import RISK_GROUPS

pytestmark = pytest.mark.e2e

# The same module-scoped server fixture as the browser test (a fresh server for this module).
server = test_browser.server

PATIENTS = ("DEMO-01", "DEMO-02", "DEMO-04")  # low, high, high without a slide (titles in mrrp/synth/demo.py)
ALL_DEMO_IDS = ("DEMO-01", "DEMO-02", "DEMO-03", "DEMO-04", "DEMO-05")
GROUP_HEADINGS = {f"{g.capitalize()} risk" for g in RISK_GROUPS}  # the result's "### :green[Low risk]"
# Generous, for a loaded 2-core CI box: three analyses run one after another (the first one also writes the
# demo files and loads the encoders); a hang fails here instead of blocking the suite.
ALL_DONE_S = 600
POLL_S = 2.0
CACHE = Path(os.environ["MRRP_CACHE_DIR"])  # the suite's shared cache (conftest), not the server's


@pytest.fixture(scope="module")
def expected_groups() -> dict[str, str]:
    """Each patient's risk group computed alone in this process (its own feature cache): the reference."""
    from mrrp.dashboard.intake import build_case, demo_inputs
    from mrrp.dashboard.models import BUNDLED_MODEL_DIR, load_model
    from mrrp.model.predict import predict_cases

    bundle = load_model(str(BUNDLED_MODEL_DIR))
    groups = {}
    for pid in PATIENTS:
        (prediction,) = predict_cases(bundle, [build_case(demo_inputs(CACHE, pid), cache_dir=CACHE).case])
        assert prediction.patient_id == pid
        groups[pid] = prediction.risk_group
    return groups


def _result_headings(page) -> list[str]:
    """The result headings on the page (``st.header`` is the page's only level-2 heading)."""
    return [t.strip() for t in page.get_by_role("heading", level=2).all_inner_texts()]


def test_three_sessions_analysing_at_once_each_get_their_own_result(expected_groups, server) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, _slides = server
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    off_machine: list[str] = []
    saw_queued: set[str] = set()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pages = {}
        for pid in PATIENTS:
            context = browser.new_context(viewport={"width": 1400, "height": 1800})  # its own cookies: a session
            page = context.new_page()
            page.set_default_timeout(EXPECT_TIMEOUT_MS)
            _watch_requests(page, off_machine)
            page.goto(url)
            pages[pid] = page
        for page in pages.values():
            expect(page.get_by_role("heading", name="Patient review")).to_be_visible(timeout=120_000)
            expect(page.get_by_role("button", name=PATIENTS[0], exact=True)).to_be_enabled(timeout=120_000)
        # start every analysis, then wait: the three runs overlap on the server
        for pid, page in pages.items():
            page.get_by_role("button", name=pid, exact=True).click(timeout=120_000)

        pending = set(PATIENTS)
        deadline = time.monotonic() + ALL_DONE_S
        while pending and time.monotonic() < deadline:
            for pid in sorted(pending):
                page = pages[pid]
                headings = _result_headings(page)
                others = [h for h in headings for other in ALL_DEMO_IDS if other != pid and other in h]
                assert not others, f"session of {pid} shows another patient's result: {others}"
                assert not page.get_by_text("Something went wrong").count(), f"{pid}: {UNEXPECTED}"
                failed = page.get_by_text("The analysis could not be completed")
                assert not failed.count(), f"{pid}: {page.get_by_test_id('stAlert').all_inner_texts()}"
                if page.get_by_text(BUSY_QUEUED).count():
                    saw_queued.add(pid)
                if any(h.startswith(f"{pid} — ") for h in headings):
                    pending.discard(pid)
            if pending:
                next(iter(pages.values())).wait_for_timeout(POLL_S * 1000)
        assert not pending, f"no result within {ALL_DONE_S} s for {sorted(pending)} (queued seen: {sorted(saw_queued)})"

        for pid, page in pages.items():
            headings = _result_headings(page)
            assert [h for h in headings if "DEMO-" in h] == [h for h in headings if h.startswith(f"{pid} — ")], (
                pid,
                headings,
            )
            group = f"{expected_groups[pid].capitalize()} risk"
            expect(page.get_by_role("heading", level=3, name=group, exact=True)).to_be_visible()
            shown = [t.strip() for t in page.get_by_role("heading", level=3).all_inner_texts()]
            assert [t for t in shown if t in GROUP_HEADINGS] == [group], (pid, shown)
            assert not page.get_by_text("Something went wrong").count(), pid
            expect(page.get_by_text("5-year recurrence").first).to_be_visible()
        browser.close()
    assert off_machine == [], f"requests left the machine: {off_machine[:5]}"
