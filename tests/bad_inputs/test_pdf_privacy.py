"""The PDF export: no request leaves the machine, a missing browser costs only the charts, and report
text the font cannot draw is neither logged nor silently lost.

Cases: kaleido's page and Chromium's switches (no remote URL, no MathJax); a full export inside a network
namespace with no network (``unshare -n``) that still embeds every chart; ``BROWSER_PATH`` at a file that
does not exist (bounded, the tables and the sentence that charts are missing); reports, identifiers and
statuses in CJK and emoji (nothing of them in any log record, the PDF says how many were not printed).
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from test_dashboard_export import make_review

from mrrp.dashboard import charts, export
from mrrp.dashboard.intake import InputStatus
from mrrp.explain.types import SentenceAttribution

REPO = Path(__file__).resolve().parents[2]
CJK_NAME = "王秀英"  # a patient's name, as it might appear in a pathology report
EMOJI = "🙂"


def _pdf_text_and_images(pdf: bytes) -> tuple[str, int]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf))
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    return text, sum(len(page.images) for page in reader.pages)


@pytest.fixture
def fresh_browser(monkeypatch: pytest.MonkeyPatch):
    """A process-wide browser state of our own, so a case can start (or fail to start) it afresh."""
    monkeypatch.setattr(export, "_BROWSER", {"browser": None, "failed": False})
    yield
    browser = export._BROWSER["browser"]
    if browser is not None:
        browser.close()


# -- no request leaves the machine -----------------------------------------------------------------


def test_kaleido_page_loads_only_local_files() -> None:
    page = export.kaleido_options()["page_generator"].generate_index()
    sources = re.findall(r'<script src="([^"]+)"', page)
    assert sources, page
    assert not re.search(r"https?://", page)  # no CDN plotly.js, no MathJax
    assert "mathjax" not in page.lower()
    for src in sources:
        assert src.startswith("file://"), src
        assert Path(src.removeprefix("file://")).is_file(), src
    assert export.plotly_js_path().as_uri() in sources


def test_chromium_is_started_with_every_offline_switch() -> None:
    from choreographer.browsers import Chromium

    options = export.kaleido_options()
    assert options["enable_extensions"] is False
    browser_cls = options["browser_cls"]
    assert issubclass(browser_cls, Chromium)
    for switch in (
        "--disable-background-networking",
        "--no-pings",
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ):
        assert switch in export.OFFLINE_CHROMIUM_ARGS, switch
    assert any("DnsOverHttps" in a for a in export.OFFLINE_CHROMIUM_ARGS if a.startswith("--disable-features="))


def _netns_available() -> bool:
    unshare = shutil.which("unshare")
    return bool(unshare) and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0


EXPORT_SCRIPT = """
import sys
from pathlib import Path
import numpy as np
sys.path.insert(0, {tests!r})
from test_dashboard_export import make_review
from mrrp.dashboard.export import pdf_report, png_bytes
heat = png_bytes(np.full((60, 80, 3), 200, np.uint8))
Path(sys.argv[1]).write_bytes(pdf_report(make_review(), model_label="bundled demo model", heatmap_png=heat))
"""


@pytest.mark.slow
@pytest.mark.skipif(not _netns_available(), reason="needs `unshare -n` (root or user namespaces)")
@pytest.mark.skipif(export.browser_path() is None, reason="no Chromium for kaleido on this machine")
def test_pdf_export_draws_every_chart_with_no_network_at_all(tmp_path: Path) -> None:
    out = tmp_path / "review.pdf"
    script = EXPORT_SCRIPT.format(tests=str(REPO / "tests"))
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", script, str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text, images = _pdf_text_and_images(out.read_bytes())
    assert images == 5  # survival, icon array, contributions, clinical bars (kaleido) and the heatmap
    assert "Recurrence-free survival" in text and "could not be drawn" not in text


# -- no browser: bounded, the report still comes ---------------------------------------------------


@pytest.mark.parametrize("browser", ["/nonexistent/chromium", "/dev/null", "/tmp"])
def test_missing_browser_costs_only_the_charts(browser: str, fresh_browser, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROWSER_PATH", browser)
    started = time.monotonic()
    pdf = export.pdf_report(make_review(), model_label="bundled demo model")
    assert time.monotonic() - started < export.KALEIDO_START_TIMEOUT_S
    text, images = _pdf_text_and_images(pdf)
    assert images == 0
    assert "Some charts could not be drawn on this computer" in text
    assert "Intermediate risk" in text and "30.0%" in text  # the numbers survived
    assert export._BROWSER["failed"] is True  # not tried again for every figure


def test_browser_that_never_answers_is_given_up_in_time(
    tmp_path: Path, fresh_browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    hung = tmp_path / "chromium"
    hung.write_text("#!/bin/sh\nexec sleep 600\n")
    hung.chmod(0o755)
    monkeypatch.setenv("BROWSER_PATH", str(hung))
    monkeypatch.setattr(export, "KALEIDO_START_TIMEOUT_S", 3.0)
    started = time.monotonic()
    assert export.figure_png(charts.icon_array_figure(0.2)) is None
    assert time.monotonic() - started < 30
    assert export._BROWSER["failed"] is True
    left = [p for p in Path("/proc").glob("[0-9]*") if str(hung).encode() in _cmdline(p)]
    assert not left  # the browser that never answered was ended, not left running


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


# -- text the font cannot draw: not logged, said in the PDF ----------------------------------------


def _unprintable_review():
    review = make_review()
    e = replace(
        review.explanation,
        path_report=[
            SentenceAttribution(f"Patient {CJK_NAME} has grade 3 invasive carcinoma {EMOJI}.", 0.2),
            SentenceAttribution("Margins clear.", -0.05),
        ],
        us_report=[SentenceAttribution("超声：左乳肿块。", 0.1)],  # 8 characters, full-width punctuation too
    )
    statuses = {
        **review.statuses,
        "path_report": InputStatus("path_report", "invalid", f"{CJK_NAME}.txt is not a text file."),
    }
    return replace(review, explanation=e, statuses=statuses)


@pytest.fixture
def pdf_and_log(caplog: pytest.LogCaptureFixture) -> tuple[str, list[logging.LogRecord]]:
    caplog.set_level(logging.DEBUG)
    pdf = export.pdf_report(
        _unprintable_review(), model_label="bundled demo model", with_charts=False, quote_report_sentences=True
    )
    text, _images = _pdf_text_and_images(pdf)
    return text, list(caplog.records)


@pytest.mark.parametrize("char", [*CJK_NAME, EMOJI, *"超声左乳肿块"])
def test_no_log_record_quotes_report_text(char: str, pdf_and_log) -> None:
    _text, records = pdf_and_log
    for record in records:
        assert char not in record.getMessage(), (record.name, record.getMessage())


@pytest.mark.parametrize(
    "sentence",
    [
        "4 characters in the pathology report could not be printed in this PDF (shown as □); see the dashboard.",
        "8 characters in the ultrasound report could not be printed in this PDF (shown as □); see the dashboard.",
        "3 characters in the inputs' status could not be printed in this PDF (shown as □); see the dashboard.",
    ],
)
def test_pdf_says_what_it_could_not_print(sentence: str, pdf_and_log) -> None:
    text, _records = pdf_and_log
    assert sentence in text
    assert "Patient □□□ has grade 3 invasive carcinoma □." in text  # the rest of the sentence is there
    assert CJK_NAME not in text


def test_printable_text_gets_no_note() -> None:
    pdf = export.pdf_report(make_review(), model_label="bundled demo model", with_charts=False)
    text, _images = _pdf_text_and_images(pdf)
    assert "could not be printed" not in text and "□" not in text


def test_fpdf_glyph_list_is_dropped_at_the_source(caplog: pytest.LogCaptureFixture) -> None:
    export._new_pdf()  # installs the filter
    caplog.set_level(logging.DEBUG)
    logging.getLogger("fpdf.output").warning(
        "Font %s is missing the following glyphs: %s", "dejavu", f"'{CJK_NAME[0]}' (\\u738b)"
    )
    logging.getLogger("fpdf.output").warning("an unrelated fpdf warning")
    messages = [r.getMessage() for r in caplog.records]
    assert not any(CJK_NAME[0] in m for m in messages)
    assert "an unrelated fpdf warning" in messages


@pytest.mark.parametrize(
    ("text", "expected", "count"),
    [
        ("Margins clear.", "Margins clear.", 0),
        (f"{CJK_NAME} ok", "□□□ ok", 3),
        (f"a{EMOJI}b", "a□b", 1),
        ("line one\nline two", "line one\nline two", 0),
        ("−5 µm ≤ 2 cm – ↑↓", "−5 µm ≤ 2 cm – ↑↓", 0),
        ("a\u3000b", "a b", 0),  # ideographic space: a space, not a lost character
    ],
)
def test_printable_replaces_only_what_the_font_cannot_draw(text: str, expected: str, count: int) -> None:
    cmap = export._new_pdf().fonts["dejavu"].cmap
    assert export._printable(text, cmap) == expected
    assert export.unprintable_count(text, cmap) == count
