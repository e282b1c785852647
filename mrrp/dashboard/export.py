"""One patient's review as files: a PDF report (numbers, figures, model version, notice) and the JSON
of the prediction.

PDF: fpdf2 (pure Python, well kept) with the DejaVu Sans font that ships with matplotlib, so "−", "≤",
"µ" and "–" print on any machine without a system font.
Figures: the same plotly figures as on screen, rendered to PNG by kaleido. Kaleido 1.x drives a
headless Chromium; we point it at Debian's ``chromium`` (``BROWSER_PATH``) and keep one kaleido
server per process, because starting the browser costs ~2 s and each later figure ~0.15 s. If no
Chromium can be started the PDF is still written, with the tables and the slide heatmap (drawn by
numpy/PIL) and a line saying the charts could not be drawn: a missing browser must not cost the
clinician the report.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mrrp.ui import NOTICE
from mrrp.vocabulary import HEADLINE_HORIZON_MONTHS, MODALITY_INPUTS, horizon_years

_KALEIDO_LOCK = threading.Lock()
_KALEIDO_STATE = {"started": False, "failed": False}  # one kaleido server per process (like a cached model)
FIGURE_SCALE = 2.0


def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _ensure_kaleido() -> bool:
    """Start kaleido's browser once per process; False if it cannot run here."""
    with _KALEIDO_LOCK:
        if _KALEIDO_STATE["started"]:
            return True
        if _KALEIDO_STATE["failed"]:
            return False
        if "BROWSER_PATH" not in os.environ:
            browser = shutil.which("chromium") or shutil.which("chromium-browser")
            if browser:
                os.environ["BROWSER_PATH"] = browser
        try:
            import kaleido

            kaleido.start_sync_server(silence_warnings=True)
        except Exception:  # noqa: BLE001 - any failure to start the browser means "no charts", never a crash
            _KALEIDO_STATE["failed"] = True
            return False
        _KALEIDO_STATE["started"] = True
        atexit.register(_stop_kaleido)
        return True


def _stop_kaleido() -> None:
    try:
        import kaleido

        kaleido.stop_sync_server(silence_warnings=True)
    except Exception:  # noqa: BLE001 - shutting down anyway
        pass


def figure_png(fig, width_px: int = 900, height_px: int | None = None) -> bytes | None:
    """PNG bytes of a plotly figure (kaleido), or None when kaleido's browser is not available."""
    if not _ensure_kaleido():
        return None
    import warnings

    height = height_px or int(fig.layout.height or 400)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "kopts ignored when using a server": expected
            with _KALEIDO_LOCK:  # one browser tab at a time; concurrent sessions queue here
                return fig.to_image(format="png", width=width_px, height=height, scale=FIGURE_SCALE)
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


def _new_pdf():
    from fpdf import FPDF

    pdf = FPDF(format="A4", unit="mm")
    fonts = _font_dir()
    pdf.add_font("DejaVu", "", str(fonts / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(fonts / "DejaVuSans-Bold.ttf"))
    pdf.add_font("DejaVu", "I", str(fonts / "DejaVuSans-Oblique.ttf"))
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_margins(15, 15, 15)
    return pdf


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
) -> bytes:
    """A PDF of one patient's review.

    ``cutoff_text``: how the risk groups are defined (:func:`mrrp.dashboard.reference.group_description`);
    ``record``: the clinical record, to print values beside the attributions; ``heatmap_png`` /
    ``ultrasound_pngs``: images already drawn by the page.
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
    _pdf_sentences(pdf, review.explanation)
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


def _pdf_sentences(pdf, e) -> None:
    """The three report sentences of each report that moved the risk most."""
    from mrrp.dashboard import charts

    for title, items in (("Ultrasound report", e.us_report), ("Pathology report", e.path_report)):
        top = charts.top_sentences(items, 3)
        if not top:
            continue
        _heading(pdf, f"{title}: sentences that moved the risk most")
        for text, a in top:
            pdf.multi_cell(0, 5, f"{'↑' if a > 0 else '↓'} {a:+.3f}  {text}", new_x="LMARGIN", new_y="NEXT")
