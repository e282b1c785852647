"""The validated Case and the one assembler: every file read and hashed once; the CLI and the dashboard give
the same result for the same partly bad patient; ``--strict`` refuses it."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mrrp._hashing
import mrrp.case
import mrrp.features.slide
import mrrp.io.reports
import mrrp.io.slides
import mrrp.io.ultrasound
from mrrp._uploads import UploadedFileData
from mrrp.case import Case, CaseInputs, assemble
from mrrp.cli import main
from mrrp.errors import InputError
from mrrp.io.manifest import read_manifest, write_manifest

RECORD = {"age_years": 61, "tumour_size_mm": 24, "histological_grade": 3, "ki67_percent": 30, "chemotherapy": "yes"}
PATH_REPORT = "Invasive carcinoma of no special type, grade 3. Two of twelve lymph nodes are positive. ER positive."


def _png(path: Path, seed: int, shape: tuple[int, int] = (96, 128)) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)).save(path)
    return path


def _png_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (80, 100), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts of every call that reads an ultrasound or report file, fingerprints a slide or hashes content,
    wherever mrrp looks the function up."""
    calls: Counter = Counter()

    def counting(name: str, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    for name, homes in {
        "read_ultrasound": (mrrp.io.ultrasound, mrrp.case),
        "slide_fingerprint": (mrrp.io.slides, mrrp.features.slide, mrrp.case),
        "sha256_file": (mrrp._hashing, mrrp.case),
        "sha256_bytes": (mrrp._hashing, mrrp.case),
        "read_report": (mrrp.io.reports, mrrp.case),
    }.items():
        wrapped = counting(name, getattr(homes[0], name))
        for module in homes:
            monkeypatch.setattr(module, name, wrapped)
    return calls


def test_every_input_is_read_and_hashed_once(tmp_path: Path, known_tissue_slide, counted: Counter) -> None:
    from mrrp.features.encoders import get_encoder
    from mrrp.features.text import get_sentence_encoder

    get_encoder(), get_sentence_encoder()  # loaded once per process, when they hash their own weights
    counted.clear()
    slide, known = known_tissue_slide
    inputs = CaseInputs(
        patient_id="ONCE-1",
        slide_path=slide,
        us_images=[_png(tmp_path / "a.png", 1), _png(tmp_path / "b.png", 2), UploadedFileData("c.png", _png_bytes(3))],
        us_report="Irregular hypoechoic mass of 24 mm. No suspicious axillary nodes.",
        path_report=tmp_path / "path.txt",
        clinical_form=RECORD,
    )
    (tmp_path / "path.txt").write_text(PATH_REPORT)
    case = Case.from_inputs(inputs, upload_dir=tmp_path / "uploads")
    assert dict(counted) == {
        "slide_fingerprint": 1,
        "read_ultrasound": 3,
        "sha256_file": 2,  # the two images given as files; the slide has its sampled fingerprint
        "sha256_bytes": 1,  # the uploaded image, hashed from the bytes in memory
        "read_report": 1,
    }
    assert all(s.state == "provided" for s in case.statuses.values())
    assert case.us_names == ["a.png", "b.png", "c.png"] and [u.image.shape for u in case.us_images][2] == (80, 100)
    assert case.input_hashes["slide"] == case.slide.fingerprint
    assert list((tmp_path / "uploads").iterdir()) == []  # the private copy of the upload is gone

    counted.clear()
    for fresh in (True, False):  # computing the features, then from the caches: nothing is read or hashed again
        out = assemble(case, cache_dir=tmp_path / "cache")
        assert dict(counted) == {}, dict(counted)
        assert out.slide is not None and out.slide.from_cache is not fresh
    f = out.features
    assert f.tiles.shape == (known["n_tiles"], 1280) and f.us_images.shape == (15, 1280)
    assert len(f.us_report_sentences) == 2 and f.path_report_sentences[0].startswith("Invasive carcinoma")
    assert f.present.all()


def test_assembled_tokens_equal_the_encoders_on_the_decoded_inputs(tmp_path: Path) -> None:
    """The assembler's ultrasound and report tokens are exactly the encoders' output (no other preprocessing)."""
    from mrrp.features.case import ultrasound_tokens
    from mrrp.features.encoders import get_encoder
    from mrrp.features.text import get_sentence_encoder
    from mrrp.io.ultrasound import read_ultrasound

    us = _png(tmp_path / "us.png", 5)
    case = Case.from_inputs(CaseInputs(patient_id="EQ", us_images=[us], path_report=PATH_REPORT))
    f = assemble(case, cache_dir=tmp_path / "cache").features
    np.testing.assert_array_equal(f.us_images, ultrasound_tokens(read_ultrasound(us).image, get_encoder()))
    np.testing.assert_array_equal(f.path_report, get_sentence_encoder().encode_report(PATH_REPORT).embeddings)
    cached = assemble(case, cache_dir=tmp_path / "cache").features
    np.testing.assert_array_equal(cached.us_images, f.us_images)
    assert cached.path_report_sentences == f.path_report_sentences and f.us_report.shape == (0, 384)


def test_statuses_and_strict_refusal(tmp_path: Path, testdata: Path) -> None:
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)  # a PNG signature and nothing decodable
    case = Case.from_inputs(
        CaseInputs(
            patient_id="S-1",
            slide_path=testdata / "unopenable.tiff",
            us_images=[_png(tmp_path / "ok.png", 0), bad],
            clinical_form={"age_years": 130},
        )
    )
    s = case.statuses
    assert s["slide"].state == "invalid" and case.slide is None and "slide" not in case.input_hashes
    assert s["us_images"].state == "provided" and s["us_images"].notes[0].startswith("1 of 2 images left out")
    assert s["clinical"].state == "invalid" and case.clinical is None
    assert (s["us_report"].state, s["path_report"].state) == ("missing", "missing")
    assert len(case.problems) == 3 and "scan.png" in case.problems[1]
    with pytest.raises(InputError, match=r"^Patient S-1: .*unopenable\.tiff"):
        assemble(case, cache_dir=tmp_path / "cache", strict=True)
    out = assemble(case, cache_dir=tmp_path / "cache")
    assert out.features.present.tolist() == [False, True, False, False] and out.slide is None


def test_a_slide_damaged_halfway_is_left_out_or_refused(tmp_path: Path, known_tissue_slide) -> None:
    """It opens (the Case accepts it) but a tile level is damaged: the assembler reports it like any bad input."""
    from conftest import damage_level

    slide, _ = known_tissue_slide
    damage_level(slide, level=1)
    case = Case.from_inputs(CaseInputs(patient_id="D-1", slide_path=slide, clinical_form=RECORD))
    assert case.statuses["slide"].state == "provided"
    out = assemble(case, cache_dir=tmp_path / "cache")
    assert out.case.statuses["slide"].state == "invalid" and "damaged" in out.case.statuses["slide"].reason
    assert out.case.slide is None and "slide" not in out.case.input_hashes and out.slide is None
    assert out.features.present.tolist() == [False, False, False, True]
    with pytest.raises(InputError, match=r"^Patient D-1: .*damaged"):
        assemble(case, cache_dir=tmp_path / "cache", strict=True)


# -- the CLI and the dashboard on the same partly bad patient -----------------------------------------


@pytest.fixture
def partly_bad(tmp_path: Path) -> dict:
    """A slide-less patient: one good and one corrupt ultrasound file, a valid pathology report and record."""
    good = _png(tmp_path / "good.png", 11)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(good.read_bytes()[:200])  # truncated mid-image
    (tmp_path / "path.txt").write_text(PATH_REPORT)
    row = {
        "patient_id": "PB-1",
        "site": "internal",
        "split": "predict",
        "us_image_paths": "good.png;corrupt.png",
        "path_report_path": "path.txt",
        **RECORD,
    }
    manifest = write_manifest([row], tmp_path / "manifest.csv")
    inputs = CaseInputs(
        patient_id="PB-1", us_images=[good, corrupt], path_report=tmp_path / "path.txt", clinical_form=RECORD
    )
    return {"manifest": manifest, "inputs": inputs, "root": tmp_path}


def _cli(capsys, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_cli_and_dashboard_agree_on_a_partly_bad_patient(partly_bad: dict, capsys) -> None:
    from mrrp.dashboard.intake import build_case
    from mrrp.dashboard.models import BUNDLED_MODEL_DIR
    from mrrp.model.bundle import load_bundle
    from mrrp.model.predict import predict_cases

    root = partly_bad["root"]
    # Separate caches: both routes compute the tokens themselves.
    code, out, err = _cli(
        capsys, "predict", "--manifest", partly_bad["manifest"], "--cache-dir", root / "cli-cache", "--json"
    )
    assert code == 0, err
    (cli,) = json.loads(out)["predictions"]

    intake = build_case(partly_bad["inputs"], cache_dir=root / "app-cache")
    (app,) = predict_cases(load_bundle(BUNDLED_MODEL_DIR), [intake.case])

    assert cli["patient_id"] == app.patient_id == "PB-1"
    assert cli["log_risk"] == pytest.approx(app.log_risk, abs=1e-5)
    assert cli["risk_group"] == app.risk_group and cli["compensated"] == app.compensated == ["slide"]
    assert cli["inputs"] == {k: s.to_dict() for k, s in intake.statuses.items()}
    us = cli["inputs"]["us_images"]
    assert us["state"] == "provided" and "1 of 2 images left out" in us["notes"][0] and "corrupt.png" in us["notes"][0]
    assert cli["inputs"]["slide"]["text"] == "missing (compensated)"
    assert [cli["inputs"][k]["state"] for k in ("us_report", "path_report", "clinical")] == [
        "missing",
        "provided",
        "provided",
    ]

    # The plain-text output names the file that was left out.
    code, out, _ = _cli(capsys, "predict", "--manifest", partly_bad["manifest"], "--cache-dir", root / "cli-cache")
    assert code == 0 and "Ultrasound images: 1 of 2 images left out" in out


@pytest.mark.parametrize("command", ["predict", "explain"])
def test_strict_cli_refuses_the_patient_in_one_line(partly_bad: dict, capsys, command: str) -> None:
    argv = [command, "--manifest", partly_bad["manifest"], "--cache-dir", partly_bad["root"] / "cache", "--strict"]
    if command == "explain":
        argv += ["--case", "PB-1", "--ig-steps", "4"]
    code, out, err = _cli(capsys, *argv, "--json")
    assert code == 2 and out == ""
    assert err.startswith("mrrp: Patient PB-1: ") and "corrupt.png" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_explain_carries_the_statuses_and_the_decoded_images(partly_bad: dict, capsys) -> None:
    code, out, err = _cli(
        capsys,
        "explain",
        "--manifest",
        partly_bad["manifest"],
        "--case",
        "PB-1",
        "--cache-dir",
        partly_bad["root"] / "cache",
        "--ultrasound-overlay",
        "--ig-steps",
        "4",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["inputs"]["us_images"]["notes"] and result["inputs"]["path_report"]["state"] == "provided"
    assert result["explanation"]["us_overlays"] == [[96, 128]]  # Grad-CAM on the one usable image


def test_batch_scoring_reports_and_compensates_or_refuses(partly_bad: dict) -> None:
    from mrrp.dashboard.batch import score_manifest
    from mrrp.dashboard.models import BUNDLED_MODEL_DIR
    from mrrp.model.bundle import load_bundle

    bundle = load_bundle(BUNDLED_MODEL_DIR)
    cache = partly_bad["root"] / "cache"
    result = score_manifest(bundle, partly_bad["manifest"], cache_dir=cache)
    (row,) = result.rows
    assert "corrupt.png" in row["inputs_left_out"] and row["compensated"] == "slide"
    with pytest.raises(InputError, match=r"^Patient PB-1: .*corrupt\.png"):
        score_manifest(bundle, partly_bad["manifest"], cache_dir=cache, strict=True)


def test_manifest_row_and_inputs_build_the_same_case(partly_bad: dict) -> None:
    (row,) = read_manifest(partly_bad["manifest"], require_outcomes=False)
    a, b = Case.from_manifest_row(row), Case.from_inputs(partly_bad["inputs"])
    assert a.patient_id == b.patient_id and dict(a.input_hashes) == dict(b.input_hashes)
    assert {k: s.to_dict() for k, s in a.statuses.items()} == {k: s.to_dict() for k, s in b.statuses.items()}
    assert a.clinical == b.clinical and a.path_report == b.path_report == PATH_REPORT
    np.testing.assert_array_equal(a.us_arrays[0], b.us_arrays[0])
