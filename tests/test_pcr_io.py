"""Reading breast DCE-MRI: DICOM series and NIfTI agree, geometry is checked, every bad input has its message."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from mrrp.pcr import io as pio
from mrrp.pcr.synth import PatientSpec, dicom_series_files, render_mri, to_voxel_order

CLINICAL = {
    "age_years": 50,
    "menopausal_status": "pre",
    "er_percent": 0.0,
    "pr_percent": 0.0,
    "her2_status": "negative",
    "ki67_percent": 60.0,
    "histological_grade": 3,
    "t_stage": "T2",
    "n_stage": "N0",
    "molecular_subtype": "triple-negative",
}


def _spec(site: str = "site-c", seed: int = 5) -> PatientSpec:
    return PatientSpec(
        patient_id="T0001",
        site=site,
        split="train",
        seed=seed,
        subtype="triple-negative",
        clinical=CLINICAL,
        resistance=0.0,
        diameter_mm=30.0,
        heterogeneity=0.5,
        oedema=0.5,
        wash_in=1.2,
        washout_per_min=0.05,
        bpe=0.2,
        fgt_fraction=0.3,
    )


@pytest.fixture(scope="module")
def rendered():
    """One small patient (site C: 51 x 51 x 24 voxels, 2.5 x 2.5 x 4 mm, 3 phases)."""
    spec = _spec()
    return spec, render_mri(spec)


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray, dtype=np.int16) -> Path:
    nib.save(nib.Nifti1Image(data.astype(dtype), affine), str(path))
    return path


def _dicom_folder(folder: Path, spec, r, series_per_phase: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in dicom_series_files(r, spec, series_per_phase=series_per_phase):
        (folder / name).write_bytes(data)
    return folder


def test_dicom_folder_zip_and_nifti_give_the_same_volume(tmp_path: Path, rendered) -> None:
    spec, r = rendered
    # NIfTI stored in LPS voxel order: the reader must bring it back to RAS.
    lps, lps_affine = to_voxel_order(np.moveaxis(r.phases, 0, 3), r.affine, "LPS")
    nii = pio.read_mri(_nifti(tmp_path / "dce.nii.gz", np.round(lps), lps_affine))
    dcm = pio.read_mri(_dicom_folder(tmp_path / "dicom", spec, r))
    with zipfile.ZipFile(tmp_path / "series.zip", "w") as zf:
        for f in sorted((tmp_path / "dicom").iterdir()):
            zf.write(f, f"study/{f.name}")
    zipped = pio.read_mri(tmp_path / "series.zip")
    assert nii.source_format == "nifti-4d" and dcm.source_format == "dicom" == zipped.source_format
    for study in (nii, dcm, zipped):
        assert study.n_phases == 3 and study.shape == (51, 51, 24)
        assert study.orientation == "RAS"
        np.testing.assert_allclose(study.spacing_mm, (2.5, 2.5, 4.0), atol=1e-4)
        np.testing.assert_allclose(study.affine, nii.affine, atol=1e-3)
        np.testing.assert_array_equal(study.phases, np.round(r.phases).astype(np.float32))


def test_dicom_identifiers_are_stripped_and_phases_ordered_either_layout(tmp_path: Path, rendered) -> None:
    spec, r = rendered
    study = pio.read_mri(_dicom_folder(tmp_path / "d", spec, r, series_per_phase=True))
    assert {"PatientName", "PatientID", "PatientBirthDate", "InstitutionName"} <= set(study.removed_identifiers)
    assert "SYNTHETIC" not in repr(study.__dict__) and spec.patient_id not in repr(study.__dict__)
    # pre-contrast first: the tumour enhances afterwards
    m = r.mask
    assert study.phases[1][m].mean() > 1.5 * study.phases[0][m].mean()


def test_several_3d_nifti_in_given_order_and_mask(tmp_path: Path, rendered) -> None:
    _, r = rendered
    files = [_nifti(tmp_path / f"phase_{k}.nii", r.phases[k], r.affine) for k in range(3)]
    study = pio.read_mri(files)
    assert study.source_format == "nifti-3d" and study.n_phases == 3
    mask = pio.read_mask(_nifti(tmp_path / "mask.nii.gz", r.mask, r.affine, np.uint8), study)
    np.testing.assert_array_equal(mask, r.mask)


def test_working_grid_keeps_tumour_volume_and_place(tmp_path: Path, rendered) -> None:
    _, r = rendered
    study = pio.read_mri(_nifti(tmp_path / "dce.nii", np.moveaxis(r.phases, 0, 3), r.affine))
    work = pio.to_working(study, r.mask)
    assert work.channels.shape == (3, *pio.WORKING_SHAPE) and work.mask.shape == pio.WORKING_SHAPE
    native_ml = r.mask.sum() * np.prod((2.5, 2.5, 4.0)) / 1000
    working_ml = work.mask.sum() * np.prod(pio.WORKING_SPACING_MM) / 1000
    assert abs(working_ml - native_ml) / native_ml < 0.25
    centre_native = (r.affine @ np.r_[np.argwhere(r.mask).mean(0), 1])[:3]
    centre_working = (work.affine @ np.r_[np.argwhere(work.mask).mean(0), 1])[:3]
    assert np.linalg.norm(centre_native - centre_working) < 3.0  # mm
    # the early-enhancement channel is high in the tumour, ~0 in fat
    assert work.channels[1][work.mask].mean() > 0.5 > abs(float(np.median(work.channels[1][work.channels[0] > 0.8])))


# --------------------------------------------------------------------------------------------------
# Bad inputs: one typed error each, with a sentence a clinician can act on
# --------------------------------------------------------------------------------------------------


def _expect(exc_type, fragment: str, fn, *args):
    with pytest.raises(exc_type) as info:
        fn(*args)
    msg = str(info.value)
    assert fragment in msg, msg
    assert "Traceback" not in msg and "\n" not in msg
    return msg


def test_one_or_two_phases_are_refused(tmp_path: Path, rendered) -> None:
    _, r = rendered
    one = _nifti(tmp_path / "pre.nii.gz", r.phases[0], r.affine)
    _expect(pio.TooFewPhasesError, "Only one contrast phase", pio.read_mri, one)
    two = _nifti(tmp_path / "two.nii.gz", np.moveaxis(r.phases[:2], 0, 3), r.affine)
    _expect(pio.TooFewPhasesError, "Only 2 contrast phases", pio.read_mri, two)


def test_phases_on_different_grids_are_refused(tmp_path: Path, rendered) -> None:
    _, r = rendered
    shifted = r.affine.copy()
    shifted[:3, 3] += 10
    files = [_nifti(tmp_path / f"p{k}.nii", r.phases[k], shifted if k == 2 else r.affine) for k in range(3)]
    _expect(
        pio.PhaseGeometryError,
        "Phase 3 ('p2.nii') does not match phase 1 ('p0.nii'): it is shifted by 17.3 mm",
        pio.read_mri,
        files,
    )
    files[1] = _nifti(tmp_path / "p1.nii", r.phases[1][:, :, :20], r.affine)
    _expect(pio.PhaseGeometryError, "is 51 x 51 x 20 voxels instead of 51 x 51 x 24", pio.read_mri, files)


def test_mismatched_and_empty_masks_are_refused(tmp_path: Path, rendered) -> None:
    _, r = rendered
    study = pio.read_mri(_nifti(tmp_path / "dce.nii", np.moveaxis(r.phases, 0, 3), r.affine))
    small = _nifti(tmp_path / "m1.nii.gz", r.mask[:, :, :12], r.affine, np.uint8)
    _expect(pio.MaskMismatchError, "is 51 x 51 x 12 voxels instead of 51 x 51 x 24", pio.read_mask, small, study)
    coarse = np.diag([5.0, 5.0, 4.0, 1.0])
    bigvox = _nifti(tmp_path / "m2.nii.gz", r.mask, coarse, np.uint8)
    _expect(
        pio.MaskMismatchError, "has voxels of 5 x 5 x 4 mm instead of 2.5 x 2.5 x 4 mm", pio.read_mask, bigvox, study
    )
    empty = _nifti(tmp_path / "m3.nii.gz", np.zeros_like(r.mask), r.affine, np.uint8)
    _expect(pio.EmptyMaskError, "marks no voxel", pio.read_mask, empty, study)
    (tmp_path / "mask.txt").write_text("tumour at 3 o'clock")
    _expect(pio.UnsupportedMRIFormatError, "must be a NIfTI file", pio.read_mask, tmp_path / "mask.txt", study)


def test_non_mri_dicom_is_refused(tmp_path: Path, rendered) -> None:
    spec, r = rendered
    folder = _dicom_folder(tmp_path / "ct", spec, r)
    victim = sorted(folder.iterdir())[5]
    ds = pydicom.dcmread(victim)
    ds.Modality = "CT"
    ds.save_as(victim)
    _expect(pio.NotMRIError, "is a CT image (modality CT), not an MRI", pio.read_mri, folder)


def test_missing_slice_is_refused(tmp_path: Path, rendered) -> None:
    spec, r = rendered
    folder = _dicom_folder(tmp_path / "gap", spec, r)
    (folder / "p1_s010.dcm").unlink()
    _expect(pio.PhaseGeometryError, "missing or unevenly spaced slices", pio.read_mri, folder)


def test_corrupt_files_are_refused(tmp_path: Path, rendered) -> None:
    spec, r = rendered
    good = _nifti(tmp_path / "dce.nii.gz", np.moveaxis(r.phases, 0, 3), r.affine)
    data = good.read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    _expect(pio.CorruptMRIError, "truncated or damaged", pio.read_mri, tmp_path / "cut.nii.gz")
    folder = _dicom_folder(tmp_path / "dcm", spec, r)
    victim = sorted(folder.iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:700])
    _expect(pio.CorruptMRIError, "truncated", pio.read_mri, folder)
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    _expect(pio.CorruptMRIError, "zip file 'bad.zip' is damaged", pio.read_mri, tmp_path / "bad.zip")


def test_zip_bomb_and_huge_volumes_are_refused_before_unpacking(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("series/img.dcm", b"\0" * 50_000_000)  # 50 MB of zeros → ~50 kB
    assert bomb.stat().st_size < 200_000
    _expect(pio.MRITooLargeError, "looks like a zip bomb", pio.read_mri, bomb)
    # A header that claims 2000 x 2000 x 2000 voxels is refused from the header alone.
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((2000, 2000, 2000))
    hdr.set_data_dtype(np.int16)
    buf = io.BytesIO()
    buf.write(hdr.binaryblock)
    buf.write(b"\0" * 4)
    (tmp_path / "huge.nii.gz").write_bytes(gzip.compress(buf.getvalue()))
    _expect(pio.MRITooLargeError, "beyond the safe limit", pio.read_mri, tmp_path / "huge.nii.gz")


def test_wrong_kinds_of_file_are_refused(tmp_path: Path, rendered) -> None:
    _, r = rendered
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.7 not an image")
    _expect(
        pio.UnsupportedMRIFormatError,
        "'report.pdf' is a PDF document, not an MRI",
        pio.read_mri,
        tmp_path / "report.pdf",
    )
    (tmp_path / "empty.nii").write_bytes(b"")
    _expect(pio.EmptyMRIFileError, "is empty (0 bytes)", pio.read_mri, tmp_path / "empty.nii")
    _expect(pio.MRINotFoundError, "was not found", pio.read_mri, tmp_path / "nothing.nii")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _nifti(mixed / "dce.nii", np.moveaxis(r.phases, 0, 3), r.affine)
    spec, _ = rendered
    name, data = dicom_series_files(r, spec, series_per_phase=False)[0]
    (mixed / name).write_bytes(data)
    _expect(pio.UnsupportedMRIFormatError, "mixes DICOM and NIfTI", pio.read_mri, mixed)


def test_package_facade_is_complete_and_cheap_to_import() -> None:
    """``mrrp.pcr.io`` and ``mrrp.pcr.synth`` are packages of small steps; callers keep one import path, and
    importing either pulls in none of the heavy readers (they load inside the functions that use them)."""
    import subprocess
    import sys

    import mrrp.pcr.synth as synth

    assert {"read_mri", "read_mask", "to_working", "MRIStudy", "WorkingVolume", "MRIError"} <= set(pio.__all__)
    assert all(hasattr(pio, name) for name in pio.__all__)
    assert all(hasattr(synth, name) for name in synth.__all__)
    assert issubclass(pio.MaskMismatchError, pio.MaskError) and issubclass(pio.MaskError, pio.MRIError)
    heavy = ("torch", "nibabel", "pydicom", "scipy", "matplotlib")
    code = f"import sys, mrrp.pcr.io, mrrp.pcr.synth; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""
