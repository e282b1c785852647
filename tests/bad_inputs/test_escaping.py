"""Bad inputs: Markdown and HTML injection. A file name, a clinical value, a patient id or report text that
carries link, image or HTML syntax is shown literally on every page (``mrrp.ui.md_escape`` for Markdown,
``mrrp.ui.html_escape`` for HTML), never as a live link or an image the browser would fetch.

The Markdown checks parse the escaped text with a CommonMark parser (markdown-it-py, the tables and
strikethrough of GitHub's dialect switched on) and then apply what Streamlit's renderer adds on top:
remark-gfm's bare-URL and e-mail links found in the text after escapes are resolved, emoji shortcodes,
``:name[…]`` directives and ``:material/…:`` icons.
"""

from __future__ import annotations

import csv
import html
import io
import re
from pathlib import Path

import pytest
from conftest import CLINICAL_RECORD, REPO
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from mrrp.dashboard.charts import highlighted_sentences_html
from mrrp.explain.types import SentenceAttribution
from mrrp.io.manifest import write_manifest
from mrrp.ui import html_escape, md_code, md_escape

TIMEOUT_S = 300  # AppTest waits for each run this long: generous for a loaded CI machine

BEACON = "![x](http://evil.example/b.png)"
LINK = "[click](http://evil.example)"
TAG = "<img src=x onerror=alert(1)>"
REPORT = f"Invasive carcinoma of no special type {BEACON}. Grade 2 {LINK}. {TAG} Margins clear."
# Upload names lose folders and "<>:*|" on saving (mrrp._uploads.safe_filename); what is left still links
FILE_NAME = "![x](beacon.png) [click](evil.example) **bold** _it_ `code`"
PAYLOADS = [
    BEACON,
    LINK,
    TAG,
    "https://evil.example/beacon.png",
    "see www.evil.example now",
    "write to a@evil.example",
    "<http://evil.example>",
    "[ref]: http://evil.example\n[ref]",
    ":red[alarm] :material/warning: :smile: :streamlit:",
    "$\\href{http://evil.example}{x}$",
    "**bold** *it* _it_ ~~gone~~ ~s~ `code`",
    "# heading",
    "- item\n+ item\n1. item\n2) item\n> quote\n    code block\n---\n***\n___",
    "title\n===\nsub\n---",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "&lt;script&gt; &#x3C;img&#x3E; &copy;",
    "```\nfence\n```\n~~~",
    "<div>\n\n![x](http://evil.example/b.png)\n\n</div>",
    "C:\\Users\\x_y\\new folder\\",
    "trailing backslash \\",
    "patient_01 (scan) #3.png",
    "ER 95% | PR 40% [IHC]",
    "\u202eevil\u202c.png",
]

FORBIDDEN_TOKENS = {
    "link_open",
    "image",
    "html_inline",
    "html_block",
    "code_inline",
    "code_block",
    "fence",
    "em_open",
    "strong_open",
    "s_open",
    "heading_open",
    "bullet_list_open",
    "ordered_list_open",
    "blockquote_open",
    "hr",
    "table_open",
}
WJ = "\u2060"
_PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"])
# remark-gfm's autolink-literal pass (run by Streamlit's renderer on the text after escapes): its regexes
_BARE_URL = re.compile(r"(?i)(https?://|www(?=\.))[-.\w]+")
_EMAIL = re.compile(r"[-.\w+]+@[-\w]+(?:\.[-\w]+)+")
_EMOJI = re.compile(r":[\w+-]+:")


def _unescaped(source: str) -> str:
    """``source`` with every backslash escape removed (what is left can still start syntax)."""
    return re.sub(r"\\.", "", source, flags=re.S)


def live_syntax(source: str) -> list[str]:
    """Every piece of live Markdown that Streamlit would render from ``source`` (empty: shown literally)."""
    found = []
    tokens = _PARSER.parse(source)
    shown = []
    for tok in tokens:
        found += [tok.type] if tok.type in FORBIDDEN_TOKENS else []
        for child in tok.children or []:
            found += [child.type] if child.type in FORBIDDEN_TOKENS else []
            shown.append(child.content if child.type == "text" else " ")
    text = " ".join(shown)
    found += [f"bare link {m.group(0)!r}" for m in _BARE_URL.finditer(text)]
    found += [f"e-mail link {m.group(0)!r}" for m in _EMAIL.finditer(text)]
    found += [f"shortcode {m.group(0)!r}" for m in _EMOJI.finditer(text)]
    bare = _unescaped(source)
    found += [f"directive {m.group(0)!r}" for m in re.finditer(r":[A-Za-z][\w-]*[\[{]", bare)]
    found += ["material icon"] if ":material/" in source else []
    found += ["math"] if "$" in bare else []
    found += [f"entity {m.group(0)!r}" for m in re.finditer(r"(?i)&(#\d+|#x[0-9a-f]+|[a-z]+\d*);", bare)]
    return found


def shown_text(source: str) -> str:
    """The text a reader sees from ``source`` (CommonMark), whitespace collapsed, word joiners dropped."""
    parts = []
    for tok in _PARSER.parse(source):
        for child in tok.children or []:
            parts.append(child.content if child.type in ("text", "code_inline") else " ")
        parts.append(" ")
    return " ".join("".join(parts).replace(WJ, "").split())


# -- the helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS[:18])
def test_the_check_sees_each_raw_payload(payload: str) -> None:
    assert live_syntax(payload)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_is_shown_literally(payload: str) -> None:
    escaped = md_escape(payload)
    assert live_syntax(escaped) == [], escaped
    assert shown_text(escaped) == " ".join(payload.split()), escaped


@pytest.mark.parametrize(
    "embedded",
    [
        lambda p: f"The file {p} is not an image.",
        lambda p: f"H&E slide — invalid: {p}",
        lambda p: f":red-badge[:material/error: Slide: {p}]",
        lambda p: f"**Compensated:** {p}. The model filled in.",
    ],
)
@pytest.mark.parametrize("payload", [BEACON, LINK, TAG, "https://evil.example", ":red[x]"])
def test_payload_inside_the_pages_own_markdown_stays_text(embedded, payload: str) -> None:
    source = embedded(md_escape(payload))
    found = [f for f in live_syntax(source) if f not in ("strong_open", "directive ':red-badge['", "material icon")]
    assert found == [], source
    assert " ".join(payload.split()) in shown_text(source)


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.one_of(
            st.sampled_from(list("\n \t*_[]()!<>#|~$&:`\\-+=.1@/wh:ptsx{}^\"'")),
            st.characters(blacklist_categories=("Cs", "Cc")),
        ),
        max_size=60,
    )
)
def test_any_text_is_shown_literally(text: str) -> None:
    escaped = md_escape(text)
    assert live_syntax(escaped) == [], (text, escaped)
    assert shown_text(escaped) == " ".join(text.replace("\r", "\n").split()), (text, escaped)


@pytest.mark.parametrize("text", ["v1.2@abc", "a`b", "``x``", "`lead", "x\ny"])
def test_code_spans_cannot_be_closed_early(text: str) -> None:
    tokens = [c for t in _PARSER.parse(md_code(text)) for c in t.children or []]
    assert [t.type for t in tokens] == ["code_inline"] and tokens[0].content == text.replace("\n", " ")


@pytest.mark.parametrize("payload", [*PAYLOADS, "x\n\n<img src=x>"])
def test_html_escape_keeps_text_and_blocks_tags(payload: str) -> None:
    escaped = html_escape(payload)
    assert "<" not in escaped and ">" not in escaped and '"' not in escaped and "\n" not in escaped
    assert html.unescape(escaped) == re.sub(r"[\r\n]+", " ", payload)


def test_report_sentences_are_html_text() -> None:
    sentences = [SentenceAttribution(p, 0.1 * (i - 3)) for i, p in enumerate([BEACON, LINK, TAG, "Plain. "])]
    body = highlighted_sentences_html(sentences)
    assert "<img" not in body and "onerror" not in body.replace("onerror=alert(1)&gt;", "")
    shown = re.findall(r">([^<]*)</span>", body)
    assert [html.unescape(s) for s in shown] == [BEACON, LINK, TAG, "Plain. "]


# -- the pages -----------------------------------------------------------------------------------


def markdown_sources(at: AppTest) -> list[str]:
    """The source of every element Streamlit renders as Markdown on this run of the page."""
    out = []
    for kind in ("error", "warning", "info", "success", "markdown", "caption", "title", "header", "subheader"):
        out += [e.value for e in at.get(kind)]
    out += [img.caption for e in at.get("image") for img in e.proto.imgs if img.caption]
    out += [m.label for m in at.metric]
    out += [str(cell) for t in at.get("table") for cell in t.value.to_numpy().ravel()]  # st.table cells too
    return out


def assert_nothing_live(at: AppTest, *needles: str) -> None:
    """No element of the page renders live syntax, and each needle is shown (as text) in some element."""
    assert not at.exception, at.exception
    sources = markdown_sources(at)
    bad = {s: live_syntax(s) for s in sources}
    # the pages' own formatting: bold, icons, code, headings, badges/colours, the chips' separator
    allowed = {"strong_open", "material icon", "code_inline", "heading_open", "entity '&nbsp;'"}
    bad = {s: [f for f in found if f not in allowed and not f.startswith("directive ':")] for s, found in bad.items()}
    assert not {s: f for s, f in bad.items() if f}, bad
    shown = " ".join(shown_text(s) for s in sources)
    for needle in needles:
        assert needle in shown, (needle, sources)


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def review(dashboard_env: Path) -> AppTest:
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT_S)


def test_review_file_names_and_clinical_values_are_shown_literally(review: AppTest) -> None:
    at = _run(review)
    at.number_input(key="rv_clin_age_years").set_value(61)
    _run(at)
    at.file_uploader(key="rv_us_upload").upload(f"{FILE_NAME}.png", b"not an image", "image/png")
    at.file_uploader(key="rv_path_report_file").upload(f"{FILE_NAME}.txt", b"%PDF-1.5 binary\0\0", "text/plain")
    value = f"{TAG} {BEACON}"
    record = io.StringIO()
    csv.writer(record).writerows([["age_years", "menopausal_status"], ["61", value]])
    at.file_uploader(key="rv_clinical_file").upload("row.csv", record.getvalue().encode(), "text/csv")
    _run(at)
    at.button(key="rv_analyse").click()
    _run(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("None of the inputs could be used"), errors
    assert_nothing_live(at, "[click](evil.example)")
    assert at.number_input(key="rv_clin_age_years").value == 61  # the other inputs are kept

    # without the bad record the form's record is used, and a pasted report carries the payloads: a
    # prediction, the bad file named literally, the report's sentences shown as text
    at.file_uploader(key="rv_clinical_file").set_value(None)
    at.file_uploader(key="rv_path_report_file").set_value(None)
    at.text_area(key="rv_path_report_text").set_value(REPORT)
    _run(at)
    at.button(key="rv_analyse").click()
    _run(at)
    errors = [e.value for e in at.error]
    assert [e.split(" — ")[0] for e in errors] == ["Ultrasound images"], errors
    assert any(m.label.endswith("recurrence") for m in at.metric)  # the clinical record and report survived
    assert_nothing_live(at, "[click](evil.example)")
    bodies = [h.proto.body for h in at.get("html")]
    report = next(b for b in bodies if "evil.example" in b)
    assert not re.search(r"<(img|a|script)\b", report) and "onerror=alert(1)&gt;" in report
    assert "![x](http://evil.example/b.png)" in html.unescape(report)


def test_slide_viewer_file_name_is_shown_literally(dashboard_env: Path, testdata: Path) -> None:
    at = _run(AppTest.from_file(str(REPO / "pages" / "slide_viewer.py"), default_timeout=TIMEOUT_S))
    at.file_uploader[0].upload(f"{FILE_NAME}.svs", b"not a slide at all", "application/octet-stream")
    _run(at)
    assert len(at.error) == 1, [e.value for e in at.error]
    assert_nothing_live(at)  # (a saved slide is named by its format only: slide.svs, slide.png)
    # a readable slide (a plain PNG) under that name: its metadata table, resolution warning and captions
    at.file_uploader[0].set_value((f"{FILE_NAME}.png", (testdata / "boxes.png").read_bytes(), "image/png"))
    _run(at)
    assert not at.error, [e.value for e in at.error]
    assert_nothing_live(at)


def test_pcr_file_name_is_shown_literally(dashboard_env: Path) -> None:
    at = _run(AppTest.from_file(str(REPO / "pages" / "pcr.py"), default_timeout=TIMEOUT_S))
    at.number_input(key="pcr_clin_age_years").set_value(52.0)
    _run(at)
    at.file_uploader(key="pcr_mri_upload").upload(f"{FILE_NAME}.zip", b"PK\x03\x04" + b"\0" * 64, "application/zip")
    _run(at)
    assert len(at.error) == 1, [e.value for e in at.error]
    assert_nothing_live(at, "[click](evil.example)")
    assert at.number_input(key="pcr_clin_age_years").value == 52.0


def test_cohort_patient_ids_are_shown_literally(dashboard_env: Path) -> None:
    row = dict(CLINICAL_RECORD, site="internal", split="test", time_months=30.0, event=0)
    rows = [dict(row, patient_id=BEACON, histological_grade=7), dict(row, patient_id=TAG, age_years=300)]
    manifest = write_manifest(rows, dashboard_env / "bad.csv")  # two bad rows, each named by its patient id
    at = _run(AppTest.from_file(str(REPO / "pages" / "cohort.py"), default_timeout=TIMEOUT_S))
    at.text_input(key="batch_path").set_value(str(manifest))
    _run(at)
    at.button(key="batch_run").click()
    _run(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "bad row" in errors[0], errors
    assert_nothing_live(at, BEACON, TAG)


# -- the real renderer ---------------------------------------------------------------------------

RENDER_SCRIPT = """
import json, os
import streamlit as st
from mrrp.ui import md_escape
for i, p in enumerate(json.loads(os.environ["MRRP_TEST_PAYLOADS"])):
    (st.error if i % 2 else st.markdown)(f"row {i}: " + md_escape(p))
"""


@pytest.mark.e2e
def test_chromium_shows_every_payload_as_text(tmp_path: Path) -> None:
    """Streamlit's own renderer in chromium: no link, image or element from any payload, the text intact."""
    import json
    import os
    import shutil
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed (apt-get install chromium); .ci/run installs it")
    script = tmp_path / "render.py"
    script.write_text(RENDER_SCRIPT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MRRP_TEST_PAYLOADS": json.dumps(PAYLOADS)}
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.port",
        str(port),
        "--server.headless",
        "true",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180  # a busy CI machine
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        off_machine: list[str] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--headless=new", "--no-sandbox"])
            page = browser.new_page()
            page.on(
                "request",
                lambda r: None if "127.0.0.1" in r.url or r.url.startswith("data:") else off_machine.append(r.url),
            )
            page.goto(f"http://127.0.0.1:{port}")
            last = f"row {len(PAYLOADS) - 1}:"
            page.get_by_text(last).first.wait_for(timeout=60_000)
            containers = page.locator('[data-testid="stMarkdownContainer"]')
            rendered = {}
            for k in range(containers.count()):
                c = containers.nth(k)
                text = " ".join(c.inner_text().replace(WJ, "").split())
                if text.startswith("row "):
                    rendered[int(text.split(":")[0][4:])] = (
                        text,
                        c.locator("a, img, code, em, strong, h1, li, table").count(),
                    )
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert sorted(rendered) == list(range(len(PAYLOADS)))
    for i, payload in enumerate(PAYLOADS):
        text, elements = rendered[i]
        assert elements == 0, (payload, text)
        assert text == " ".join(f"row {i}: {payload}".split()), (payload, text)
    assert off_machine == []
