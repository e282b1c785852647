"""One patient's review as files: a PDF report (numbers, figures, model version, notice) and the JSON
of the prediction.

PDF: fpdf2 (pure Python, well kept) with the DejaVu Sans font that ships with matplotlib, so "−", "≤",
"µ" and "–" print on any machine without a system font. A character DejaVu cannot draw (CJK, emoji)
prints as a box and the PDF says how many were not printed; fpdf never sees it, so never logs it.
Figures: the same plotly figures as on screen, rendered to PNG by kaleido. Kaleido 1.x drives a
headless Chromium; we point it at Debian's ``chromium`` (``BROWSER_PATH``) and keep one browser per
process, because starting it costs ~2 s and each later figure ~0.15 s. Its page loads only local
files and the browser runs with no network of its own (:func:`kaleido_options`). If no Chromium
starts within :data:`KALEIDO_START_TIMEOUT_S` the PDF is still written, with the tables and the slide
heatmap (drawn by numpy/PIL) and a line saying the charts could not be drawn: a missing browser must
not cost the clinician the report.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mrrp.ui import NOTICE
from mrrp.vocabulary import HEADLINE_HORIZON_MONTHS, MODALITY_INPUTS, horizon_years

_KALEIDO_LOCK = threading.Lock()  # one browser per process (like a cached model); one figure at a time
_BROWSER: dict[str, object] = {"browser": None, "failed": False}
FIGURE_SCALE = 2.0
KALEIDO_START_TIMEOUT_S = 30.0  # a browser that has not answered by then is given up: no charts, never a hang
FIGURE_TIMEOUT_S = 30.0

# Chromium reaches out on its own (DNS-over-HTTPS probes, component and variations updates, pings,
# safe-browsing lists). The figure page needs nothing but local files, so every switch that stops a
# request is on, and no host name resolves at all: a request that slipped through fails inside the
# browser, before DNS.
OFFLINE_CHROMIUM_ARGS: tuple[str, ...] = (
    "--disable-background-networking",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-default-apps",
    "--disable-features=DnsOverHttps,Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,"
    "CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def plotly_js_path() -> Path:
    """The plotly.js that ships inside the installed plotly package (the figures' own version)."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def browser_path() -> str | None:
    """The Chromium kaleido drives: ``BROWSER_PATH`` when set (even to nothing usable), else Debian's."""
    if os.environ.get("BROWSER_PATH"):
        return os.environ["BROWSER_PATH"]
    return shutil.which("chromium") or shutil.which("chromium-browser")


def kaleido_options() -> dict:
    """The keyword arguments of our ``kaleido.Kaleido``: local plotly.js, no MathJax, an offline Chromium.

    The page is built here rather than by kaleido's defaults, which load MathJax from a CDN and fall
    back to the plotly.js CDN when the local file is missing; a missing local file now means no charts.
    """
    from choreographer.browsers import Chromium
    from kaleido import PageGenerator

    class OfflineChromium(Chromium):
        def get_cli(self):
            return [*super().get_cli(), *OFFLINE_CHROMIUM_ARGS]

    return {
        "path": browser_path(),
        "n": 1,
        "timeout": FIGURE_TIMEOUT_S,
        "page_generator": PageGenerator(plotly=(plotly_js_path().as_uri(), "utf-8"), mathjax=False),
        "browser_cls": OfflineChromium,
        "enable_extensions": False,
    }


class _ChartBrowser:
    """One kaleido browser on its own event-loop thread; starting and each figure are bounded in time.

    kaleido's own sync server cannot report a browser that failed to start: its first figure then waits
    forever. Here a failed or slow start raises, and the export carries on without charts.
    """

    def __init__(self) -> None:
        import kaleido

        self._kaleido = kaleido.Kaleido(**kaleido_options())  # raises at once when there is no browser
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mrrp-kaleido", daemon=True)
        self._thread.start()
        self._opened = False
        try:
            self._run(self._kaleido.open(), KALEIDO_START_TIMEOUT_S)
        except BaseException:
            self.close()
            raise
        self._opened = True

    def _run(self, coroutine, timeout_s: float):
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout=timeout_s)
        except TimeoutError:
            future.cancel()
            raise

    def png(self, fig_dict: dict, width_px: int, height_px: int) -> bytes:
        opts = {"format": "png", "width": width_px, "height": height_px, "scale": FIGURE_SCALE}
        return self._run(self._kaleido.calc_fig(fig_dict, opts=opts), FIGURE_TIMEOUT_S + 5)

    def close(self) -> None:
        try:
            self._run(self._kaleido.close(), 10 if self._opened else 2)
        except BaseException:  # noqa: BLE001 - closing a browser that never opened, or has died
            pass
        process = getattr(self._kaleido, "subprocess", None)
        if process is not None and process.poll() is None:  # it did not answer the close: end its group
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)  # started in a session of its own by choreographer
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


def _chart_browser() -> _ChartBrowser | None:
    """The process's browser, started on first use; None (and not tried again) if it cannot run here."""
    if _BROWSER["browser"] is None and not _BROWSER["failed"]:
        try:
            _BROWSER["browser"] = _ChartBrowser()
        except BaseException:  # noqa: BLE001 - no browser, a crash or a timeout all mean "no charts"
            _BROWSER["failed"] = True
            return None
        atexit.register(_stop_kaleido)
    return _BROWSER["browser"]  # type: ignore[return-value]


def _stop_kaleido() -> None:
    with _KALEIDO_LOCK:
        browser, _BROWSER["browser"] = _BROWSER["browser"], None
    if browser is not None:
        browser.close()


def figure_png(fig, width_px: int = 900, height_px: int | None = None) -> bytes | None:
    """PNG bytes of a plotly figure (kaleido, offline), or None when kaleido's browser is not available."""
    height = height_px or int(fig.layout.height or 400)
    with _KALEIDO_LOCK:  # one browser tab at a time; concurrent sessions queue here
        browser = _chart_browser()
        if browser is None:
            return None
        try:
            return browser.png(fig.to_dict(), width_px, height)
        except TimeoutError:  # a browser that stopped answering would cost every later figure the same wait
            _BROWSER["browser"], _BROWSER["failed"] = None, True
            browser.close()
            return None
        except Exception:  # noqa: BLE001 - a figure that cannot be drawn is left out, the report still comes
            return None


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


# -- JSON -----------------------------------------------------------------------------------------


def prediction_json(review, *, model_label: str = "") -> bytes:
    """The prediction as JSON: numbers, inputs' status and hashes, explanation summary, version, notice."""
    from mrrp.dashboard.intake import INPUTS

    e = review.explanation
    doc = {
        "notice": NOTICE,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": model_label,
        "case_id": review.case_id,
        "prediction": review.prediction.to_dict(),  # the wire form: horizons keyed "36"/"60"/"84"
        "inputs": {key: review.statuses[key].text for key, _, _ in INPUTS if key in review.statuses},
        "input_sha256": review.input_hashes,
        "compensated": review.compensated,
        "validated_cindex": {
            "missing": list(review.pattern.missing),
            "by_split": review.pattern.cindex,
            "all_inputs": review.pattern.full_cindex,
            "validated": review.pattern.validated,
        },
        "explanation": {
            "shapley": e.shapley,
            "attention_share": e.attention_share,
            "counterfactual_log_risk": e.counterfactual,
            "reference_log_risk": e.reference_log_risk,
            "clinical": e.clinical,
        },
    }
    return (json.dumps(doc, indent=2, default=float) + "\n").encode("utf-8")


# -- PDF ------------------------------------------------------------------------------------------


UNPRINTABLE_MARK = "□"  # drawn instead of a character the embedded font has no glyph for


class _NoGlyphListFilter(logging.Filter):
    """Drops fpdf's "font is missing the following glyphs: …" record, which quotes the report's text."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "missing the following glyphs" not in str(record.msg)


_GLYPH_FILTER = _NoGlyphListFilter()


def _printable(text: str, cmap: dict[int, str]) -> str:
    """``text`` with every character the font cannot draw replaced by the mark (whitespace by a space)."""
    return "".join(
        ch if ch in "\n\r" or ord(ch) in cmap else (" " if ch.isspace() else UNPRINTABLE_MARK) for ch in text
    )


def unprintable_count(text: str, cmap: dict[int, str]) -> int:
    """How many characters of ``text`` (whitespace aside) the font with ``cmap`` cannot draw."""
    return sum(1 for ch in text if ord(ch) not in cmap and not ch.isspace())


@functools.cache
def _report_pdf_class():
    from fpdf import FPDF

    class ReportPDF(FPDF):
        """FPDF that never hands the font a character it has no glyph for.

        Every string fpdf lays out passes through ``normalize_text``; replacing what the current font
        cannot draw there means fpdf never meets a missing glyph, so it neither drops the character
        silently nor lists it (patient text) in its log.
        """

        def normalize_text(self, text: str) -> str:
            cmap = getattr(self.current_font, "cmap", None)
            return super().normalize_text(_printable(text, cmap) if cmap else text)

    return ReportPDF


def _new_pdf():
    for name in ("fpdf", "fpdf.output", "fpdf.fpdf", "fpdf.fonts"):  # the loggers that could quote text
        if _GLYPH_FILTER not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_GLYPH_FILTER)
    pdf = _report_pdf_class()(format="A4", unit="mm")
    fonts = _font_dir()
    pdf.add_font("DejaVu", "", str(fonts / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(fonts / "DejaVuSans-Bold.ttf"))
    pdf.add_font("DejaVu", "I", str(fonts / "DejaVuSans-Oblique.ttf"))
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_margins(15, 15, 15)
    return pdf


def _note_unprintable(pdf, texts: list[str], where: str) -> None:
    """Say, under what was printed, how many characters of ``where`` the PDF's font could not show."""
    n = sum(unprintable_count(t, pdf.fonts["dejavu"].cmap) for t in texts)
    if not n:
        return
    style, size = pdf.font_style, pdf.font_size_pt
    pdf.set_font("DejaVu", "I", 8)
    pdf.multi_cell(
        0,
        4,
        f"{n} character{'s' if n != 1 else ''} in {where} could not be printed in this PDF "
        f"(shown as {UNPRINTABLE_MARK}); see the dashboard.",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_font("DejaVu", style, size)


def _heading(pdf, text: str) -> None:
    pdf.ln(2)
    pdf.set_font("DejaVu", "B", 12)
    pdf.cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9.5)


def _image(pdf, png: bytes | None, width_mm: float) -> None:
    if png is None:
        return
    from PIL import Image

    w, h = Image.open(io.BytesIO(png)).size
    height_mm = width_mm * h / w
    if pdf.get_y() + height_mm > pdf.h - pdf.b_margin:
        pdf.add_page()
    pdf.image(io.BytesIO(png), x=pdf.l_margin, w=width_mm)
    pdf.ln(1)


def pdf_report(
    review,
    *,
    model_label: str,
    cutoff_text: str = "",
    record: dict | None = None,
    heatmap_png: bytes | None = None,
    ultrasound_pngs: list[bytes] | None = None,
    with_charts: bool = True,
    quote_report_sentences: bool = False,
) -> bytes:
    """A PDF of one patient's review.

    ``cutoff_text``: how the risk groups are defined (:func:`mrrp.dashboard.reference.group_description`);
    ``record``: the clinical record, to print values beside the attributions; ``heatmap_png`` /
    ``ultrasound_pngs``: images already drawn by the page. Report sentences are free text that can name the
    patient, so the PDF gives their place and effect only, unless ``quote_report_sentences`` (the clinician's
    choice on the page) quotes them.
    """
    p = review.prediction
    pdf = _new_pdf()
    pdf.set_title(f"mrrp recurrence-risk review {review.case_id or p.patient_id}")
    pdf.set_author("mrrp")
    pdf.set_creator("mrrp dashboard")
    pdf.add_page()
    _pdf_header(pdf, review, model_label)
    _pdf_result(pdf, p, cutoff_text)
    _pdf_inputs(pdf, review)
    if with_charts:
        _pdf_charts(pdf, review, record)
    if heatmap_png is not None:
        _heading(pdf, "Slide heatmap")
        _image(pdf, heatmap_png, 150)
    for i, png in enumerate(ultrasound_pngs or []):
        _heading(pdf, f"Ultrasound image {i + 1} (Grad-CAM)")
        _image(pdf, png, 90)
    _pdf_sentences(pdf, review.explanation, quote=quote_report_sentences)
    pdf.ln(4)
    pdf.set_font("DejaVu", "I", 7.5)
    pdf.multi_cell(0, 4, f"{NOTICE} Model version {p.model_version}.", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _pdf_header(pdf, review, model_label: str) -> None:
    """Title, patient, model and time, and the research notice in a box."""
    p = review.prediction
    pdf.set_font("DejaVu", "B", 16)
    pdf.cell(0, 9, "Recurrence-risk review", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    pdf.multi_cell(
        0,
        5,
        f"Patient / case: {p.patient_id}"
        + (f" (case {review.case_id})" if review.case_id else "")
        + f"\nModel: {model_label} — version {p.model_version}\nGenerated: {generated}",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    _note_unprintable(pdf, [p.patient_id, review.case_id or "", model_label], "the patient, case or model name")
    pdf.set_fill_color(255, 243, 205)
    pdf.set_font("DejaVu", "B", 9)
    pdf.multi_cell(0, 5, NOTICE, border=1, fill=True, new_x="LMARGIN", new_y="NEXT")


def _pdf_result(pdf, p, cutoff_text: str) -> None:
    """The group, log-risk with its interval, percentile, and the horizon table."""
    from mrrp.dashboard import charts

    _heading(pdf, "Result")
    pdf.set_font("DejaVu", "B", 13)
    pdf.cell(0, 8, f"{p.risk_group.capitalize()} risk", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9.5)
    lo, hi = p.log_risk_interval
    pdf.multi_cell(
        0,
        5,
        f"Log-risk {p.log_risk:+.2f} (95% interval {lo:+.2f} to {hi:+.2f}); higher than "
        f"{charts.percent_text(p.percentile)} of the reference cohort. {cutoff_text}".strip(),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(1)
    rows = charts.recurrence_rows(p)
    with pdf.table(col_widths=(30, 45, 45), text_align=("LEFT", "RIGHT", "RIGHT"), width=120, align="LEFT") as table:
        table.row(list(rows[0].keys()))
        for r in rows:
            table.row(list(r.values()))
    pdf.set_font("DejaVu", "I", 8)
    pdf.cell(0, 5, f"Interval method: {p.interval_method}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9.5)


def _pdf_inputs(pdf, review) -> None:
    """Each input's status, and what the model compensated with the validated performance sentence."""
    from mrrp.dashboard.intake import INPUTS

    _heading(pdf, "Inputs")
    with pdf.table(col_widths=(45, 135), text_align=("LEFT", "LEFT"), width=180, align="LEFT") as table:
        table.row(["Input", "Status"])
        for key, label, _ in INPUTS:
            if key in review.statuses:
                table.row([label, review.statuses[key].text])
    _note_unprintable(pdf, [s.text for s in review.statuses.values()], "the inputs' status")
    if review.compensated:
        names = ", ".join(MODALITY_INPUTS[m] for m in review.compensated)
        pdf.multi_cell(
            0, 5, f"Compensated by the model: {names}. {review.pattern.sentence()}", new_x="LMARGIN", new_y="NEXT"
        )
    else:
        pdf.multi_cell(0, 5, review.pattern.sentence(), new_x="LMARGIN", new_y="NEXT")


def _pdf_charts(pdf, review, record: dict | None) -> None:
    """The screen's figures as PNG (kaleido); a sentence when some cannot be drawn on this computer."""
    from mrrp.dashboard import charts

    p, e = review.prediction, review.explanation
    figures: list[tuple[str, object, int]] = [
        ("Recurrence-free survival", charts.survival_figure(p, review.reference), 900),
        (
            f"{horizon_years(HEADLINE_HORIZON_MONTHS)}-year recurrence in 100 patients like her",
            charts.icon_array_figure(p.at(HEADLINE_HORIZON_MONTHS).probability, HEADLINE_HORIZON_MONTHS),
            700,
        ),
        ("What each input contributed", charts.contributions_figure(e), 900),
    ]
    if any(e.clinical.values()):
        figures.append(("Clinical fields", charts.clinical_figure(e.clinical, record), 900))
    drawn = 0
    for title, fig, width in figures:
        png = figure_png(fig, width_px=width)
        if png is None:
            continue
        _heading(pdf, title)
        if title == "Recurrence-free survival":
            pdf.set_font("DejaVu", "I", 8)
            pdf.multi_cell(0, 4, review.reference.description, new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("DejaVu", "", 9.5)
        _image(pdf, png, 175 if width >= 900 else 130)
        drawn += 1
    if drawn < len(figures):
        pdf.set_font("DejaVu", "I", 8.5)
        pdf.multi_cell(
            0,
            5,
            "Some charts could not be drawn on this computer (no Chromium for kaleido); the numbers "
            "above are complete.",
            new_x="LMARGIN",
            new_y="NEXT",
        )


def _pdf_sentences(pdf, e, *, quote: bool) -> None:
    """The three report sentences of each report that moved the risk most: quoted, or by place only."""
    unquoted = False
    for title, items in (("Ultrasound report", e.us_report), ("Pathology report", e.path_report)):
        ranked = sorted(
            (i for i, s in enumerate(items) if getattr(s, "sentence", None)), key=lambda i: -abs(items[i].attribution)
        )[:3]
        if not ranked:
            continue
        _heading(pdf, f"{title}: sentences that moved the risk most")
        for i in ranked:
            a = float(items[i].attribution)
            what = items[i].sentence if quote else f"sentence {i + 1} of {len(items)}"
            pdf.multi_cell(0, 5, f"{'↑' if a > 0 else '↓'} {a:+.3f}  {what}", new_x="LMARGIN", new_y="NEXT")
        if quote:
            _note_unprintable(pdf, [items[i].sentence for i in ranked], f"the {title.lower()}")
        unquoted = unquoted or not quote
    if unquoted:
        pdf.set_font("DejaVu", "I", 8.5)
        pdf.multi_cell(
            0,
            5,
            "Report sentences are not quoted in this PDF because report text can identify the patient; "
            "they are on screen, or can be quoted by choosing so before downloading.",
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.set_font("DejaVu", "", 9.5)
