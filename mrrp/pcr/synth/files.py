"""Writing a rendered patient as a hospital would send them: DICOM series (folder or zip), 4D or 3D NIfTI, a NIfTI mask."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from mrrp.pcr.synth.phantom import RenderedMRI, render_mri
from mrrp.pcr.synth.specs import SITES, PatientSpec


def to_voxel_order(volume: np.ndarray, affine: np.ndarray, orientation: str) -> tuple[np.ndarray, np.ndarray]:
    """RAS-ordered (X, Y, Z[, P]) data → LPS voxel order (x and y reversed) with the matching affine, or unchanged."""
    if orientation == "RAS":
        return volume, affine
    flipped = volume[::-1, ::-1]
    aff = affine.copy()
    nx, ny = volume.shape[:2]
    aff[:3, 3] = (affine @ np.array([nx - 1, ny - 1, 0, 1.0]))[:3]
    aff[:3, 0], aff[:3, 1] = -affine[:3, 0], -affine[:3, 1]
    return np.ascontiguousarray(flipped), aff


def _save_nifti(data: np.ndarray, affine: np.ndarray, path: Path, dtype: type) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(data.astype(dtype), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))


def dicom_series_files(rendered: RenderedMRI, spec: PatientSpec, series_per_phase: bool) -> list[tuple[str, bytes]]:
    """Classic single-frame MR images, axial (rows → posterior, columns → left), with fake identifiers."""
    import io

    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    def uid(*parts: object) -> str:
        return generate_uid(entropy_srcs=[str(spec.seed), *map(str, parts)])

    site = SITES[spec.site]
    sx, sy, sz = site.spacing_mm
    _, nx, ny, nz = rendered.phases.shape
    x_max = rendered.affine[0, 3] + (nx - 1) * sx
    y_max = rendered.affine[1, 3] + (ny - 1) * sy
    study_uid = uid("study")
    out = []
    for p, t in enumerate(rendered.times_min):
        series_uid = uid("series", p if series_per_phase else 0)
        volume = np.clip(np.round(rendered.phases[p]), 0, 65535).astype(np.uint16)
        for k in range(nz):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = MRImageStorage
            meta.MediaStorageSOPInstanceUID = uid("sop", p, k)
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
            ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
            ds.Modality = "MR"
            ds.PatientName = f"SYNTHETIC^{spec.patient_id}"  # fake identifiers: the reader must strip them
            ds.PatientID = f"SYN-{spec.seed % 10**8:08d}"
            ds.PatientBirthDate = "19700101"
            ds.StudyDate = "20250101"
            ds.AcquisitionTime = f"1200{p:02d}.000000"
            ds.InstitutionName = f"Synthetic hospital {spec.site}"
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
            ds.SeriesNumber = 100 + (p if series_per_phase else 0)
            ds.InstanceNumber = k + 1 + (0 if series_per_phase else p * nz)
            ds.TemporalPositionIdentifier = p + 1
            ds.NumberOfTemporalPositions = len(rendered.times_min)
            ds.TriggerTime = float(t * 60_000.0)  # ms after injection
            ds.SeriesDescription = "DCE pre" if p == 0 else f"DCE post {p}"
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
            z_mm = rendered.affine[2, 3] + k * sz
            ds.ImagePositionPatient = [float(-x_max), float(-y_max), float(z_mm)]  # RAS → LPS
            ds.PixelSpacing = [sy, sx]  # between rows (y), between columns (x)
            ds.SliceThickness = sz
            ds.Rows, ds.Columns = ny, nx
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.PixelData = np.ascontiguousarray(volume[::-1, ::-1, k].T).tobytes()  # (rows = -y, columns = -x)
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            out.append((f"p{p}_s{k:03d}.dcm", buf.getvalue()))
    return out


def write_patient(spec: PatientSpec, root: Path) -> dict[str, object]:
    """Write one patient's MRI and mask under ``root/patients/<id>``; return the manifest row."""
    rendered = render_mri(spec)
    site = SITES[spec.site]
    folder = root / "patients" / spec.patient_id
    folder.mkdir(parents=True, exist_ok=True)
    rel = Path("patients") / spec.patient_id
    fmt = spec.file_format
    if fmt in ("dicom", "dicom-zip"):
        files = dicom_series_files(rendered, spec, series_per_phase=spec.seed % 2 == 0)
        if fmt == "dicom":
            (folder / "dicom").mkdir(exist_ok=True)
            for name, data in files:
                (folder / "dicom" / name).write_bytes(data)
            mri = str(rel / "dicom")
        else:
            with zipfile.ZipFile(folder / "dicom.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                for name, data in files:
                    # A fixed timestamp: the same patient gives the same zip bytes on every run.
                    info = zipfile.ZipInfo(f"DCE/{name}", date_time=(2025, 1, 1, 0, 0, 0))
                    zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
            mri = str(rel / "dicom.zip")
        mask_orientation = "LPS"
    else:
        data = np.moveaxis(rendered.phases, 0, 3)  # (X, Y, Z, P)
        data, affine = to_voxel_order(data, rendered.affine, site.orientation)
        values = np.clip(np.round(data), 0, 32767)
        if fmt == "nifti-4d":
            _save_nifti(values, affine, folder / "dce.nii.gz", np.int16)
            mri = str(rel / "dce.nii.gz")
        else:
            names = []
            for p in range(values.shape[3]):
                _save_nifti(values[..., p], affine, folder / f"phase_{p}.nii.gz", np.int16)
                names.append(str(rel / f"phase_{p}.nii.gz"))
            mri = ";".join(names)
        mask_orientation = site.orientation
    mask, mask_affine = to_voxel_order(rendered.mask, rendered.affine, mask_orientation)
    _save_nifti(mask, mask_affine, folder / "mask.nii.gz", np.uint8)
    shown = {k: (None if k in spec.hidden_fields else v) for k, v in spec.clinical.items()}
    return {
        "patient_id": spec.patient_id,
        "site": spec.site,
        "split": spec.split,
        "mri_path": mri,
        "mask_path": str(rel / "mask.nii.gz"),
        **shown,
        "pcr": spec.pcr,
        "_extras": dict(spec.extras),
    }
