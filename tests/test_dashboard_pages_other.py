"""The slide viewer's deep zoom, the tumor board, cohort & performance (with batch scoring) and the model
card, driven as a user drives them (Streamlit AppTest), and the modules behind them.

Patients here have a clinical record only (no slide, ultrasound or reports), so the bundled model scores
them in milliseconds and the tests stay fast; the slide paths of the pipeline are covered by test_app.py
and test_deepzoom.py.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, damage_level, tissue_image, write_tiff_slide
from streamlit.testing.v1 import AppTest

from mrrp.dashboard.batch import RESULT_COLUMNS, save_uploaded_manifest, score_manifest
from mrrp.dashboard.history import CaseHistory
from mrrp.dashboard.modelcard import model_card_markdown, model_card_view
from mrrp.dashboard.performance import (
    cindex_text,
    find_evaluation,
    km_figure,
    missing_pattern_table,
    parse_report,
    site_table,
    td_auc_figure,
)
from mrrp.dashboard.tumorboard import case_card, is_bundled_version, ordinal
from mrrp.errors import InputError
from mrrp.io.manifest import ManifestError, write_manifest
from mrrp.model.bundle import bundle_checksum, load_bundle
from mrrp.model.predict import Prediction
from mrrp.ui import NOTICE
from mrrp.vocabulary import HORIZONS_MONTHS, horizon_key

TIMEOUT_S = 120
BUNDLED = REPO / "assets" / "models" / "mrrp-demo"
REPORT = json.loads((REPO / "docs" / "model_report.json").read_text())
BAD_SLIDES = {
    "unreadable.svs": "could not be read",
    "unopenable.tiff": "cannot be opened",
    "COPYING.LESSER": "not a slide format",
}


# -- patients ------------------------------------------------------------------------------------


def clinical_rows(n: int, seed: int = 0, prefix: str = "P", report_dir: Path | None = None) -> list[dict[str, object]]:
    """``n`` manifest rows with a clinical record (and, given ``report_dir``, a short pathology report);
    larger, higher-grade, node-positive tumours recur sooner."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        size = float(rng.uniform(6, 60))
        grade = int(rng.integers(1, 4))
        nodes = int(rng.poisson(1.5))
        ki67 = float(rng.uniform(3, 60))
        hazard = 0.004 * np.exp(0.03 * size + 0.5 * grade + 0.25 * nodes + 0.02 * ki67)
        t_event, t_censor = rng.exponential(1 / hazard), rng.uniform(24, 120)
        rows.append(
            {
                "patient_id": f"{prefix}-{i + 1:03d}",
                "site": "internal",
                "split": "train" if i < 0.6 * n else "test",
                "age_years": int(rng.integers(32, 80)),
                "menopausal_status": "post",
                "tumour_size_mm": round(size, 1),
                "histological_grade": grade,
                "positive_lymph_nodes": nodes,
                "er_percent": 90,
                "pr_percent": 60,
                "ki67_percent": round(ki67, 1),
                "lymphovascular_invasion": "yes" if nodes > 2 else "no",
                "histological_type": "invasive carcinoma of no special type",
                "endocrine_therapy": "yes",
                "chemotherapy": "yes" if nodes > 1 else "no",
                "radiotherapy": "yes",
                "time_months": round(max(0.5, float(min(t_event, t_censor))), 1),
                "event": int(t_event <= t_censor),
            }
        )
        if report_dir is not None:
            report = report_dir / f"{prefix}-{i + 1:03d}.txt"
            report.write_text(
                f"Invasive carcinoma of no special type, grade {grade}, {size:.0f} mm. "
                f"{nodes} of 12 lymph nodes positive. Ki-67 {ki67:.0f}%."
            )
            rows[-1]["path_report_path"] = str(report)
    return rows


@pytest.fixture(scope="session")
def bundle():
    from mrrp._threads import torch_threads

    with torch_threads(1):
        return load_bundle(BUNDLED)


def page(name: str) -> AppTest:
    return AppTest.from_file(str(REPO / "pages" / f"{name}.py"), default_timeout=TIMEOUT_S)


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, str, str | None]]:
    """(data, mimetype, file name) of every file a page hands to the browser (download buttons, images)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    seen: list[tuple[bytes, str, str | None]] = []
    original = MemoryMediaFileStorage.load_and_get_id

    def spy(self, path_or_data, mimetype, kind, filename=None):
        if isinstance(path_or_data, bytes):
            seen.append((path_or_data, mimetype, filename))
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)
    return seen


def site_bundle(root: Path, name: str = "site-a") -> Path:
    """A site's own bundle: the demo weights with the site's model card, re-checksummed (so a new checksum)."""
    out = root / name
    shutil.copytree(BUNDLED, out)
    card = json.loads((out / "model_card.json").read_text())
    card.update(name=name, intended_use="Research at site A.", notice="Site A validation pending.")
    (out / "model_card.json").write_text(json.dumps(card, indent=2))
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "name": name}, indent=2))
    sums = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir()) if p.name != "checksums.json"
    }
    (out / "checksums.json").write_text(json.dumps(sums, indent=2))
    return out


# -- performance ---------------------------------------------------------------------------------


def test_bundled_model_finds_its_report_and_formats_it(bundle, tmp_path: Path) -> None:
    ev, reason = find_evaluation(bundle, tmp_path)
    assert ev is not None and reason is None and ev.checksum == bundle.checksum
    test = REPORT["evaluation"]["test"]
    lo, hi = test["ci95"]["harrell_c"]
    assert cindex_text(ev, "test") == f"{test['harrell_c']:.3f} ({lo:.3f}–{hi:.3f})"
    rows = site_table(ev)
    assert [r["Site"] for r in rows] == ["Internal test set", "External site"]
    assert rows[0]["Patients"] == test["n"] and rows[0]["Recurrences"] == test["events"]
    assert rows[0]["AUC at 5 years"].startswith(f"{test['td_auc']['60']:.3f} (")
    assert rows[0]["Best achievable C (true hazard)"] == f"{REPORT['oracle_cindex_internal']:.3f}"
    missing = missing_pattern_table(ev)
    assert missing[0]["Internal test set"] == round(test["harrell_c"], 3)
    assert missing[1]["Data available"] == "Without h&e slide (compensated)"
    assert missing[1]["External site"] == round(
        REPORT["evaluation"]["external"]["cindex_by_missing_pattern"]["without_slide"], 3
    )


def test_figures_draw_the_report(bundle, tmp_path: Path) -> None:
    ev, _ = find_evaluation(bundle, tmp_path)
    km = km_figure(ev, "external")
    curves = REPORT["evaluation"]["external"]["km_by_group"]["curves"]
    assert [t.name.split(" ")[0] for t in km.data] == ["low", "intermediate", "high"]
    for trace, group in zip(km.data, ("low", "intermediate", "high"), strict=True):
        assert trace.line.shape == "hv" and trace.y[0] == 1.0  # a KM curve starts at 100% and steps down
        assert list(trace.y[1:]) == curves[group]["survival"]
        assert trace.x[-1] == pytest.approx(curves[group]["time_months"][-1] / 12)
        assert f"n={curves[group]['n']}" in trace.name
    auc = td_auc_figure(ev)
    test = REPORT["evaluation"]["test"]
    assert list(auc.data[0].y) == [test["td_auc"][horizon_key(h)] for h in HORIZONS_MONTHS]  # the report's keys
    assert auc.data[0].error_y.array[1] == pytest.approx(test["ci95"]["td_auc.60"][1] - test["td_auc"]["60"])


def test_a_report_of_another_model_is_never_used(bundle, tmp_path: Path) -> None:
    site = site_bundle(tmp_path)
    other = load_bundle(site)
    assert other.checksum != bundle.checksum
    assert find_evaluation(other, tmp_path / "cache") == (None, None)  # docs/model_report.json is the demo's
    stale = {**REPORT["evaluation"], "checksum": "0" * 64}
    (site / "evaluation.json").write_text(json.dumps(stale))
    ev, reason = find_evaluation(other, tmp_path / "cache")
    assert ev is None and "another version of this model" in reason and "000000000000" in reason
    (site / "evaluation.json").write_text(json.dumps({**stale, "checksum": other.checksum}))
    ev, reason = find_evaluation(other, tmp_path / "cache")
    assert reason is None and ev.splits["test"]["harrell_c"] == REPORT["evaluation"]["test"]["harrell_c"]
    with pytest.raises(InputError):
        parse_report({"checksum": "x"}, "empty.json")


# -- batch scoring -------------------------------------------------------------------------------


def test_score_manifest_matches_predict_and_reports_progress(bundle, tmp_path: Path) -> None:
    from mrrp.case import case_features
    from mrrp.io.manifest import read_manifest
    from mrrp.model.predict import predict_cases

    manifest = write_manifest(clinical_rows(20), tmp_path / "cohort.csv")
    calls: list[tuple[int, int]] = []
    result = score_manifest(
        bundle, manifest, cache_dir=tmp_path / "cache", notice=NOTICE, progress=lambda d, t, w: calls.append((d, t))
    )
    assert [c[0] for c in calls] == list(range(21)) + [21] and {c[1] for c in calls} == {21}
    direct = predict_cases(bundle, [case_features(r, cache_dir=tmp_path / "cache") for r in read_manifest(manifest)])
    assert [r["patient_id"] for r in result.rows] == [f"P-{i:03d}" for i in range(1, 21)]
    for row, p in zip(result.rows, direct, strict=True):
        assert row["risk_group"] == p.risk_group and row["recurrence_5y"] == round(p.at(60).probability, 4)
        assert row["recurrence_5y_lower"] <= row["recurrence_5y"] <= row["recurrence_5y_upper"]
        assert row["compensated"] == "slide;ultrasound;path_report"
    parsed = list(csv.DictReader(io.StringIO(result.to_csv().decode())))
    assert len(parsed) == 20 and list(parsed[0]) == [*RESULT_COLUMNS, "notice"]
    assert parsed[3]["notice"] == NOTICE and float(parsed[3]["percentile"]) == result.rows[3]["percentile"]
    assert len({r["risk_group"] for r in result.rows}) >= 2  # the cohort spans risk groups


def test_bad_manifest_lists_every_bad_row_before_any_work(bundle, tmp_path: Path) -> None:
    rows = clinical_rows(6)
    rows[1]["split"] = "validation"
    rows[4]["er_percent"] = 150
    manifest = write_manifest(rows, tmp_path / "bad.csv")
    calls: list[int] = []
    with pytest.raises(ManifestError) as err:
        score_manifest(bundle, manifest, progress=lambda d, t, w: calls.append(d))
    message = str(err.value)
    assert "2 bad row(s)" in message and "line 3 (P-002)" in message and "line 6 (P-005)" in message
    assert calls == []


def test_uploaded_manifest_paths_resolve_against_the_chosen_folder(tmp_path: Path) -> None:
    data = (
        b"patient_id,slide_path,us_image_paths,us_report_path,path_report_path,note\n"
        b'A,a/slide.svs,"a/us 1.png;/abs/us2.png",,/abs/path.txt,"keeps, commas"\n'
    )
    saved = save_uploaded_manifest(data, "site cohort.csv", tmp_path / "slides", tmp_path / "uploads")
    row = next(csv.DictReader(saved.open()))
    assert saved.name == "site cohort.csv"
    assert row["slide_path"] == str(tmp_path / "slides" / "a" / "slide.svs")
    assert row["us_image_paths"] == f"{tmp_path / 'slides' / 'a' / 'us 1.png'};/abs/us2.png"
    assert row["path_report_path"] == "/abs/path.txt" and row["us_report_path"] == ""
    assert row["note"] == "keeps, commas"


# -- model card ----------------------------------------------------------------------------------


def test_model_card_view_from_the_bundle(bundle, tmp_path: Path) -> None:
    ev, _ = find_evaluation(bundle, tmp_path)
    view = model_card_view(bundle, ev, NOTICE)
    assert view.checksum == bundle_checksum(BUNDLED) and view.version == f"mrrp-demo@{view.checksum[:12]}"
    sums = json.loads((BUNDLED / "checksums.json").read_text())
    assert {w["File"]: w["sha256"] for w in view.weights} == sums
    assert [e["Input"] for e in view.encoders] == ["Slide tiles", "Ultrasound images", "Report sentences"]
    assert view.encoders[2]["Weights sha256"] == bundle.config["encoders"]["text"]["sha256"]
    assert ("Internal test set: Harrell's C (95% CI)", cindex_text(ev, "test")) in view.metrics
    assert f"{bundle.cutoffs.low_upper:.3f}" in view.risk_groups
    assert view.limitations == bundle.model_card["limitations"]
    md = model_card_markdown(view)
    assert view.checksum in md and NOTICE in md and sums["fold_0.pt"] in md


# -- pages: model card and cohort ----------------------------------------------------------------


def test_model_card_page_shows_checksum_hashes_and_metrics(dashboard_env: Path, downloads) -> None:
    at = page("model_card").run()
    assert not at.exception
    assert [c.value for c in at.code] == [bundle_checksum(BUNDLED)]
    assert any("not for clinical decisions" in w.value for w in at.warning)
    metrics = at.table[1].value
    test = REPORT["evaluation"]["test"]
    assert f"{test['harrell_c']:.3f} (" in " ".join(map(str, metrics.to_numpy().ravel()))
    weights = at.dataframe[1].value
    assert "fold_0.pt" in set(weights["File"]) and len(weights) == len(
        json.loads((BUNDLED / "checksums.json").read_text())
    )
    md = [d for d in downloads if d[1].startswith("text/markdown")]
    assert md and bundle_checksum(BUNDLED) in md[-1][0].decode()


def test_cohort_page_shows_the_reports_numbers(dashboard_env: Path) -> None:
    at = page("cohort").run()
    assert not at.exception and not at.error
    ev = REPORT["evaluation"]
    assert [m.value for m in at.metric] == [f"{ev['test']['harrell_c']:.3f}", f"{ev['external']['harrell_c']:.3f}"]
    lo, hi = ev["external"]["ci95"]["harrell_c"]
    assert any(f"{ev['external']['harrell_c']:.3f} ({lo:.3f}–{hi:.3f})" in c.value for c in at.caption)
    sites = at.dataframe[0].value
    assert list(sites["Patients"]) == [ev["test"]["n"], ev["external"]["n"]]
    assert any("not for clinical decisions" in w.value for w in at.warning)


def test_batch_scoring_downloads_one_row_per_patient(dashboard_env: Path, bundle, downloads) -> None:
    manifest = write_manifest(clinical_rows(12, seed=3, prefix="B"), dashboard_env / "batch.csv")
    at = page("cohort").run()
    at.text_input(key="batch_path").set_value(str(manifest)).run()
    at.button(key="batch_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "12 patients scored from batch.csv" in at.success[0].value
    assert at.download_button(key="batch_download").label == "Download the results (CSV)"
    csvs = [d for d in downloads if d[1] == "text/csv"]
    assert csvs and csvs[-1][2].startswith("mrrp_scores_batch_")
    rows = list(csv.DictReader(io.StringIO(csvs[-1][0].decode())))
    assert [r["patient_id"] for r in rows] == [f"B-{i:03d}" for i in range(1, 13)]
    assert {r["notice"] for r in rows} == {NOTICE}
    assert all(r["model_version"] == f"mrrp-demo@{bundle.checksum[:12]}" for r in rows)
    shown = at.dataframe[-1].value
    assert list(shown["risk_group"]) == [r["risk_group"] for r in rows]


def test_bad_manifest_shows_one_message_and_the_page_keeps_working(dashboard_env: Path) -> None:
    rows = clinical_rows(5)
    rows[0]["histological_grade"] = 7
    rows[3]["event"] = 2
    bad = write_manifest(rows, dashboard_env / "bad.csv")
    at = page("cohort").run()
    at.text_input(key="batch_path").set_value(str(bad)).run()
    at.button(key="batch_run").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "2 bad row(s)" in errors[0]
    assert "line 2 (P-001)" in errors[0] and "line 5 (P-004)" in errors[0] and "Traceback" not in errors[0]
    assert not at.get("download_button")
    at.text_input(key="batch_path").set_value(str(dashboard_env / "missing.csv")).run()
    at.button(key="batch_run").click().run()
    assert [e.value for e in at.error] == ["The manifest 'missing.csv' was not found."]
    good = write_manifest(clinical_rows(3), dashboard_env / "good.csv")
    at.text_input(key="batch_path").set_value(str(good)).run()
    at.button(key="batch_run").click().run()
    assert not at.error and "3 patients scored" in at.success[0].value


def test_uploaded_manifest_is_scored_with_paths_from_the_chosen_folder(dashboard_env: Path, downloads) -> None:
    reports = dashboard_env / "site-data"
    reports.mkdir()
    rows = clinical_rows(4, seed=8, prefix="U", report_dir=reports)
    for r in rows:
        r["path_report_path"] = Path(str(r["path_report_path"])).name  # relative, as a site's manifest has them
    manifest = write_manifest(rows, dashboard_env / "elsewhere" / "upload.csv")
    at = page("cohort").run()
    at.radio(key="batch_source").set_value("Upload a CSV").run()
    at.file_uploader(key="batch_upload").upload("upload.csv", manifest.read_bytes(), "text/csv").run()
    at.button(key="batch_run").click().run()
    errors = [e.value for e in at.error]
    # relative paths start from the local slide folder by default, and the message says where it looked
    assert len(errors) == 1 and f"path_report_path '{dashboard_env / 'slides' / 'U-001.txt'}' not found" in errors[0]
    at.text_input(key="batch_base").set_value(str(reports)).run()
    at.button(key="batch_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    rows_out = list(csv.DictReader(io.StringIO([d for d in downloads if d[1] == "text/csv"][-1][0].decode())))
    assert [r["patient_id"] for r in rows_out] == ["U-001", "U-002", "U-003", "U-004"]
    assert {r["compensated"] for r in rows_out} == {"slide;ultrasound"}  # the pathology reports were read


def test_site_model_without_report_is_evaluated_on_a_manifest(dashboard_env: Path) -> None:
    site = site_bundle(dashboard_env / "models")
    # a report besides the record: the evaluation hides each modality from everyone in turn
    manifest = write_manifest(clinical_rows(60, seed=5, report_dir=dashboard_env), dashboard_env / "site.csv")
    at = page("cohort")
    at.session_state["model_path"] = str(site)
    at.run()
    assert not at.exception and not at.metric
    assert any("No evaluation of this model was found" in i.value for i in at.info)
    assert not any("not for clinical decisions" in w.value for w in at.warning)  # a site model
    at.text_input(key="eval_manifest").set_value(str(manifest)).run()
    at.number_input(key="eval_boot").set_value(50).run()
    at.button(key="eval_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    saved = json.loads((site / "evaluation.json").read_text())
    assert saved["checksum"] == bundle_checksum(site) and saved["test"]["n"] == 24
    assert [m.value for m in at.metric] == [f"{saved['test']['harrell_c']:.3f}"]
    assert 0.5 < saved["test"]["harrell_c"] <= 1.0  # the clinical record carries the simulated risk


# -- pages: tumor board --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory):
    """Four clinical-only patients, predicted and explained with the bundled model."""
    from mrrp._threads import torch_threads
    from mrrp.case import case_features
    from mrrp.explain.explain import explain_case
    from mrrp.io.manifest import read_manifest
    from mrrp.model.predict import predict_cases

    root = tmp_path_factory.mktemp("board")
    rows = read_manifest(write_manifest(clinical_rows(4, seed=11, prefix="TB"), root / "m.csv"))
    with torch_threads(1):
        b = load_bundle(BUNDLED)
        cases = [case_features(r, cache_dir=root / "cache") for r in rows]
        preds = predict_cases(b, cases)
        expls = [explain_case(b, c, ig_steps=8) for c in cases]
    return preds, expls


def _record_all(path: Path, reviewed) -> list[str]:
    preds, expls = reviewed
    history = CaseHistory(path)
    return [
        history.record(p, {"clinical": f"sha-{p.patient_id}"}, explanation=e.to_dict())
        for p, e in zip(preds, expls, strict=True)
    ]


def test_case_card_words() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "101st",
        "111th",
    ]
    assert is_bundled_version("mrrp-demo@1ada8474e016") and not is_bundled_version("site-a@1ada8474e016")


def test_tumor_board_shows_the_recorded_cases(dashboard_env: Path, reviewed) -> None:
    ids = _record_all(dashboard_env / "history.sqlite", reviewed)
    preds, _ = reviewed
    at = page("tumor_board").run()
    assert not at.exception and not at.error
    assert any("not for clinical decisions" in w.value for w in at.warning)
    latest = CaseHistory(dashboard_env / "history.sqlite").list_cases()
    assert at.multiselect(key="board_cases").value == [r.case_id for r in latest[:3]]
    boards = [m.value for m in at.markdown if 'class="mrrp-board"' in m.value]
    assert len(boards) == 3
    for html, record in zip(boards, latest[:3], strict=True):
        card = case_card(record)
        p = Prediction.from_dict(record.prediction)
        assert f"{card.risk_group.capitalize()} risk" in html
        assert f"{100 * p.at(60).probability:.0f}% (" in html and "Recurrence within 5 years" in html
        assert f"{ordinal(round(p.percentile))} percentile" in html
        assert "Compensated: H&amp;E slide, ultrasound, pathology report" in html
        assert 'Largest contribution</div><div class="small">Clinical record, towards' in html
        assert record.model_version in html
    at.multiselect(key="board_cases").set_value(ids).run()
    assert len([m for m in at.markdown if 'class="mrrp-board"' in m.value]) == 4
    assert {b.key for b in at.button} == {f"open::{i}" for i in ids}
    # the history keeps pseudonymous ids: the board shows case ids, never the manifest's patient ids
    assert {r.prediction["patient_id"] for r in latest} == set(ids)
    shown = " ".join(m.value for m in at.markdown)
    assert all(i in shown for i in ids) and not any(p.patient_id in shown for p in preds)


def test_tumor_board_with_no_history_points_to_the_review(dashboard_env: Path) -> None:
    at = page("tumor_board").run()
    assert not at.exception and not at.error
    assert "No reviewed cases yet" in at.info[0].value and "Patient review" in at.info[0].value


def test_tumor_board_opens_a_case_in_the_patient_review(dashboard_env: Path, reviewed) -> None:
    ids = _record_all(dashboard_env / "history.sqlite", reviewed)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT_S).run()
    at.switch_page("pages/tumor_board.py").run()
    assert not at.exception and at.title[0].value == "Tumor board"
    at.button(key=f"open::{ids[-1]}").click().run()
    assert not at.exception
    assert at.title[0].value == "Patient review"
    assert at.session_state["review_title"].startswith(f"Case {ids[-1]} from the history")


# -- pages: slide viewer deep zoom ---------------------------------------------------------------


def _image_captions(at: AppTest) -> list[str]:
    return [img.proto.imgs[0].caption for img in at.get("image")]


def test_slide_viewer_bad_files_then_zoom_and_pan(dashboard_env: Path, testdata: Path) -> None:
    at = page("slide_viewer").run()
    for name, expected in BAD_SLIDES.items():
        upload = name if name != "COPYING.LESSER" else "licence.svs"
        at.file_uploader[0].upload(upload, (testdata / name).read_bytes(), "application/octet-stream").run()
        assert not at.exception, name
        errors = [e.value for e in at.error]
        assert len(errors) == 1 and expected in errors[0] and "Traceback" not in errors[0], (name, errors)
    # a plain PNG (OpenSlide's ImageSlide): asks for the resolution, then the deep zoom shows it whole
    at.file_uploader[0].upload("boxes.png", (testdata / "boxes.png").read_bytes(), "image/png").run()
    assert not at.exception and not at.error
    at.number_input[0].set_value(0.5).run()
    assert not at.exception and not at.error
    assert "The whole slide fits in the view at full resolution." in [c.value for c in at.caption]
    assert any(c.startswith("0.5 µm/px · 0.15 × 0.12 mm · 2 deep-zoom tiles") for c in _image_captions(at))
    slide = write_tiff_slide(dashboard_env / "s.tiff", tissue_image(4000, 3000, [(448, 448, 2688, 1792)]), mpp=0.5)
    at.file_uploader[0].upload("s.tiff", slide.read_bytes(), "application/octet-stream").run()
    assert not at.exception and not at.error
    zoom = at.select_slider(key="dz_zoom")
    assert zoom.options == ["4 µm/px", "2 µm/px", "1 µm/px", "0.5 µm/px"]  # whole slide in view … full resolution
    assert any(c.startswith("4 µm/px · 2.00 × 1.50 mm") for c in _image_captions(at))
    start = int(zoom.value)
    at.button(key="dz_in").click().run()
    at.button(key="dz_in").click().run()
    assert at.session_state["dz_zoom"] == start + 2
    assert any(c.startswith("1 µm/px · 1.02 × 0.64 mm") for c in _image_captions(at))
    x_before = at.session_state["dz_x"]
    at.button(key="dz_right").click().run()
    assert at.session_state["dz_x"] == pytest.approx(x_before + 50 * 1024 / 2000)  # half a view to the right
    at.slider(key="dz_y").set_value(0.0).run()
    assert not at.exception and at.session_state["dz_y"] == 0.0
    assert "overlay a heatmap" in " ".join(c.value for c in at.caption)  # no scores yet


def test_slide_viewer_damaged_full_resolution_gives_one_message_and_other_zooms_work(dashboard_env: Path) -> None:
    """Level 0 zeroed: the whole-slide view (from level 2) works, full resolution says the file is damaged."""
    slide = write_tiff_slide(dashboard_env / "dmg.tiff", tissue_image(2048, 1536, [(256, 256, 1536, 1024)]), mpp=0.5)
    damage_level(slide, 0)
    at = page("slide_viewer").run()
    at.file_uploader[0].upload("dmg.tiff", slide.read_bytes(), "application/octet-stream").run()
    assert not at.exception and not at.error
    assert any(c.startswith("2 µm/px") for c in _image_captions(at))
    at.select_slider(key="dz_zoom").set_value(11).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "damaged or incomplete" in errors[0]
    at.select_slider(key="dz_zoom").set_value(10).run()  # level 1 is intact
    assert not at.exception and not at.error
    assert any(c.startswith("1 µm/px") for c in _image_captions(at))


def test_slide_viewer_overlays_the_reviewed_cases_tile_attributions(dashboard_env: Path, reviewed) -> None:
    from mrrp.io.slides import slide_fingerprint

    slide = write_tiff_slide(dashboard_env / "s.tiff", tissue_image(2048, 1536, [(256, 256, 1536, 1024)]), mpp=0.5)
    preds, expls = reviewed
    coords = np.array([[256 + 256 * i, 256 + 256 * j] for j in range(3) for i in range(5)])
    ig = np.linspace(-1, 1, 15)
    ig[7] = 3.0  # the highest-scoring tile: level-0 (768, 512)
    explanation = expls[0].to_dict() | {
        "tiles": {
            "coords_l0": coords.tolist(),
            "tile_size_l0": 256,
            "attention": (np.ones(15) / 15).tolist(),
            "integrated_gradients": ig.tolist(),
        },
    }
    case_id = CaseHistory(dashboard_env / "history.sqlite").record(
        preds[0], {"slide": slide_fingerprint(slide)}, explanation=explanation
    )
    at = page("slide_viewer").run()
    at.file_uploader[0].upload("s.tiff", slide.read_bytes(), "application/octet-stream").run()
    at.toggle(key="dz_overlay").set_value(True).run()
    assert not at.exception
    who = preds[0].patient_id if preds[0].patient_id.startswith("DEMO-") else case_id
    assert at.selectbox(key="dz_score").options == [
        f"Integrated gradients, case {who} (red raises risk)",
        f"Attention, case {who}",
    ]
    at.slider(key="dz_alpha").set_value(0.8).run()
    at.button(key="dz_goto").click().run()
    assert not at.exception and not at.error
    assert at.session_state["dz_zoom"] == 11  # full resolution: 2048 px = 2^11
    assert any("not for clinical decisions" in w.value for w in at.warning)  # the demo model's attributions
    assert at.session_state["dz_x"] == pytest.approx(100 * (768 + 128) / 2048)
    assert at.session_state["dz_y"] == pytest.approx(100 * (512 + 128) / 1536)
    assert len(at.get("image")) >= 3  # view, colour bar, map of where the view is
