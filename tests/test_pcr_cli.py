"""`mrrp pcr-synth`, `pcr-train`, `pcr-predict` from a shell: exit codes, one-line messages, a tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from test_pcr_train import planted_volumes, write_planted_nifti

from mrrp.cli import main
from mrrp.pcr.demo import ensure_pcr_demos
from mrrp.pcr.io import WORKING_SPACING_MM
from mrrp.pcr.manifest import write_pcr_manifest
from mrrp.ui import NOTICE


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str, fragment: str) -> None:
    assert code == 2, err
    assert fragment in err, err
    assert err.startswith("mrrp: ") and err.count("\n") == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    return next(iter(ensure_pcr_demos(tmp_path_factory.mktemp("cache")).values()))


def test_predict_prints_probability_stages_and_notice(capsys, demo, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "pcr-predict", "--mri", str(demo.mri), "--clinical", str(demo.clinical), "--json")
    assert code == 0
    result = json.loads(out)
    assert result["notice"] == NOTICE and result["attention_guided_by_mask"] is False
    lo, hi = result["interval95"]
    assert lo <= result["pcr_probability"] <= hi
    assert [s["stage"] for s in result["stages"]] == ["image_only", "guided", "with_clinical"]
    att = tmp_path / "att.nii.gz"
    code, out, _ = run(
        capsys, "pcr-predict", "--mri", str(demo.mri), "--mask", str(demo.mask), "--attention-nifti", str(att)
    )
    assert code == 0 and "pCR probability" in out and "guided at inference" in out and NOTICE in out
    assert att.is_file() and abs(float(np.asarray(nib.load(str(att)).dataobj).sum()) - 1) < 1e-4


def test_bad_inputs_exit_2_with_one_line(capsys, demo, tmp_path: Path) -> None:
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    _one_line_error(*run(capsys, "pcr-predict", "--mri", str(pdf))[::2], "is a PDF document, not an MRI")
    bad = tmp_path / "record.json"
    bad.write_text('{"ki67_percent": 150, "t_stage": "T9"}')
    _one_line_error(
        *run(capsys, "pcr-predict", "--mri", str(demo.mri), "--clinical", str(bad))[::2],
        "Ki-67: 150 % is outside 0–100 %",
    )
    _one_line_error(
        *run(capsys, "pcr-predict", "--mri", str(demo.mri), "--model", str(tmp_path / "none"))[::2], "was not found"
    )
    _one_line_error(
        *run(capsys, "pcr-predict", "--mri", str(demo.mri), "--attention-nifti", str(tmp_path / "a.png"))[::2],
        "must end in .nii or .nii.gz",
    )
    _one_line_error(*run(capsys, "pcr-synth", "--n", "3", "--out", str(tmp_path / "c"))[::2], "--n must be between")
    _one_line_error(
        *run(capsys, "pcr-train", "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "b"))[::2],
        "was not found",
    )
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def _planted_manifest(folder: Path, n: int = 56) -> Path:
    x, masks, labels = planted_volumes(n, 7)
    splits = ["train"] * 32 + ["val"] * 8 + ["external"] * (n - 40)
    for start in (0, 32, 40):  # both classes in every split
        labels[start], labels[start + 1] = 0, 1
        x[start, 2][masks[start]], x[start + 1, 2][masks[start + 1]] = 0.5, -0.5
    affine = np.diag([*WORKING_SPACING_MM, 1.0])
    rows = []
    for i in range(n):
        write_planted_nifti(folder / f"p{i}.nii", x[i])
        nib.save(nib.Nifti1Image(masks[i].astype(np.uint8), affine), str(folder / f"p{i}_mask.nii.gz"))
        rows.append(
            {
                "patient_id": f"P{i:02d}",
                "site": "x" if splits[i] == "external" else "a",
                "split": splits[i],
                "mri_path": f"p{i}.nii",
                "mask_path": f"p{i}_mask.nii.gz",
                "age_years": 40 + i,
                "pcr": int(labels[i]),
            }
        )
    return write_pcr_manifest(rows, folder / "manifest.csv")


def test_tiny_end_to_end_train_then_predict(capsys, tmp_path: Path) -> None:
    manifest = _planted_manifest(tmp_path)
    out = tmp_path / "models" / "tiny"
    code, stdout, err = run(
        capsys,
        "pcr-train",
        "--manifest",
        str(manifest),
        "--out",
        str(out),
        "--stage1-epochs",
        "1",
        "--stage2-epochs",
        "40",
        "--single-stage-epochs",
        "1",
        "--bootstrap",
        "50",
        "--workers",
        "1",
        "--json",
        "--report",
        str(tmp_path / "report"),
    )
    assert code == 0, err
    result = json.loads(stdout)
    assert result["evaluated_on"] == "external"
    assert result["external_auc"] > 0.75, {m: v["external"]["auc"] for m, v in result["models"].items()}
    assert result["attention_in_mask"] > 2 * result["baseline_attention_in_mask"]
    assert {p.name for p in out.iterdir()} >= {"model.pt", "config.json", "model_card.json", "checksums.json"}
    report = (tmp_path / "report.md").read_text()
    assert NOTICE in report and "Sensitivity at matched specificity" in report
    assert json.loads((tmp_path / "report.json").read_text())["external_auc"] == pytest.approx(
        result["external_auc"], abs=1e-4
    )
    code, stdout, _ = run(capsys, "pcr-predict", "--model", str(out), "--mri", str(tmp_path / "p45.nii"), "--json")
    assert code == 0 and 0.0 <= json.loads(stdout)["pcr_probability"] <= 1.0


def test_bad_manifest_lists_every_bad_row(capsys, tmp_path: Path) -> None:
    (tmp_path / "a.nii").write_bytes(b"x")
    (tmp_path / "m.csv").write_text(
        "patient_id,site,split,mri_path,mask_path,ki67_percent,pcr\n"
        "P1,a,train,a.nii,,20,1\n"
        "P2,a,training,a.nii,,20,0\n"
        "P3,a,val,missing.nii,,120,2\n"
        "P1,a,val,a.nii,,,0\n"
    )
    code, _, err = run(capsys, "pcr-train", "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "b"))
    _one_line_error(code, err, "has 3 bad row(s)")
    assert "row 3 (P2): split 'training' is not one of" in err
    assert "row 4 (P3): MRI 'missing.nii' not found; Ki-67: 120 % is outside 0–100 %; pcr '2' must be 1 or 0" in err
    assert "row 5 (P1): patient_id P1 appears twice" in err
