"""Shared fixtures: the real OpenSlide fixtures in ../shared/testdata and small slides made here."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from mrrp.features.case import CaseFeatures
    from mrrp.model.fusion import MRRP

REPO = Path(__file__).resolve().parents[1]
TESTDATA = REPO.parent / "shared" / "testdata" / "openslide"

# Keep tests off the user's real cache and slide folder.
os.environ.setdefault("MRRP_CACHE_DIR", str(REPO / ".pytest_cache" / "mrrp-cache"))
# Tests train and load many unsigned site bundles; refusing them (the default) is tested explicitly in
# tests/bad_inputs/test_bundles.py.
os.environ.setdefault("MRRP_ALLOW_UNSIGNED", "1")
# Exact fp32 features in tests, whatever the CPU; "auto" (bf16 where native) is tested explicitly.
os.environ.setdefault("MRRP_ENCODER_PRECISION", "fp32")

PINK = (232, 150, 190)  # eosin stroma
PURPLE = (120, 70, 160)  # haematoxylin-rich tissue
GLASS = (242, 242, 242)


# One complete, valid clinical record (the manifest columns of schema.CLINICAL_FIELDS), for tests that need
# a patient whose clinical inputs are all present.
CLINICAL_RECORD: dict[str, object] = {
    "age_years": 54,
    "menopausal_status": "post",
    "tumour_size_mm": 22,
    "histological_grade": 2,
    "positive_lymph_nodes": 1,
    "er_percent": 95,
    "pr_percent": 40,
    "ki67_percent": 18,
    "lymphovascular_invasion": "no",
    "histological_type": "invasive carcinoma of no special type",
    "endocrine_therapy": "yes",
    "chemotherapy": "no",
    "radiotherapy": "yes",
}


def case_features(
    patient_id: str,
    tiles: np.ndarray,
    *,
    clinical: Mapping[str, object] | None = None,
    tile_coords_l0: np.ndarray | None = None,
    us_images: np.ndarray | None = None,
    us_report: np.ndarray | None = None,
    us_report_sentences: Sequence[str] = (),
    path_report: np.ndarray | None = None,
    path_report_sentences: Sequence[str] = (),
) -> CaseFeatures:
    """Model inputs made directly from arrays (a modality not given is absent), skipping the encoders."""
    from mrrp.features.case import CaseFeatures, encode_clinical

    numeric, known, categorical, has_clinical = encode_clinical(clinical)
    return CaseFeatures(
        patient_id=patient_id,
        tiles=tiles,
        tile_coords_l0=np.zeros((len(tiles), 2), np.int64) if tile_coords_l0 is None else tile_coords_l0,
        tile_size_l0=448,
        us_images=np.zeros((0, 1280), np.float32) if us_images is None else us_images,
        us_report=np.zeros((0, 384), np.float32) if us_report is None else us_report,
        us_report_sentences=list(us_report_sentences),
        path_report=np.zeros((0, 384), np.float32) if path_report is None else path_report,
        path_report_sentences=list(path_report_sentences),
        clin_numeric=numeric,
        clin_known=known,
        clin_categorical=categorical,
        has_clinical=has_clinical,
    )


def write_synthetic_bundle(
    path: Path, models: Sequence[MRRP], log_risk: np.ndarray, time: np.ndarray, event: np.ndarray, name: str
) -> None:
    """A model bundle from untrained ``models`` and their (members, patients) log-risks on a tiny cohort."""
    from mrrp.model.bundle import write_bundle
    from mrrp.model.survival import breslow_baseline, fit_risk_cutoffs

    baselines = [breslow_baseline(r, time, event) for r in log_risk]
    write_bundle(
        path,
        models=list(models),
        config={"name": name, "fusion": models[0].cfg.to_dict()},
        baselines=baselines,
        ensemble_baseline=baselines[0],
        member_offsets=[0.0] * len(models),
        cutoffs=fit_risk_cutoffs(log_risk.mean(0)),
        reference_risk=log_risk.mean(0),
        training_summary={},
        model_card={"notice": "synthetic"},
    )


@pytest.fixture
def dashboard_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache, case history, slide folder and models folder per test, run from the repository root."""
    monkeypatch.setenv("MRRP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MRRP_HISTORY_DB", str(tmp_path / "history.sqlite"))
    monkeypatch.setenv("MRRP_SLIDE_DIR", str(tmp_path / "slides"))
    monkeypatch.setenv("MRRP_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.chdir(REPO)
    (tmp_path / "slides").mkdir()
    return tmp_path


@pytest.fixture(scope="session")
def testdata() -> Path:
    """../shared/testdata/openslide; the suite fails (not skips) if it is missing."""
    assert TESTDATA.is_dir(), f"shared test data missing at {TESTDATA}"
    return TESTDATA


def write_tiff_slide(path: Path, rgb: np.ndarray, mpp: float | None = 0.5, tile_px: int = 256, levels: int = 3) -> Path:
    """A tiled, pyramidal generic TIFF (JPEG tiles) that OpenSlide reads as 'generic-tiff'.

    ``mpp`` is stored as TIFF resolution (pixels per centimetre), which is how OpenSlide
    derives mpp for generic TIFF.
    """
    import tifffile
    from PIL import Image

    kwargs = {}
    if mpp is not None:
        kwargs = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
    with tifffile.TiffWriter(path) as tif:
        img = rgb
        for lvl in range(levels):
            if lvl:
                h, w = img.shape[:2]
                img = np.asarray(Image.fromarray(img).resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.BOX))
            tif.write(
                img,
                tile=(tile_px, tile_px),
                compression="jpeg",
                compressionargs={"level": 90},
                photometric="rgb",
                subfiletype=1 if lvl else 0,
                **kwargs,
            )
    return path


def tissue_image(width: int, height: int, boxes: list[tuple[int, int, int, int]], seed: int = 0) -> np.ndarray:
    """Glass with H&E-coloured rectangles (x0, y0, x1, y1) carrying a little nuclear texture."""
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.uint8)
    img[:] = GLASS
    for x0, y0, x1, y1 in boxes:
        region = np.empty((y1 - y0, x1 - x0, 3), np.float32)
        region[:] = PINK
        nuclei = rng.random(region.shape[:2]) < 0.08
        region[nuclei] = PURPLE
        img[y0:y1, x0:x1] = region.clip(0, 255).astype(np.uint8)
    return img


@pytest.fixture
def known_tissue_slide(tmp_path: Path) -> tuple[Path, dict]:
    """4000 x 3000 px at 0.5 µm/px with one tissue block of exactly 5 x 3 default tiles.

    Default tiles are 224 px at 1 µm/px = 448 level-0 px; the block spans x 448–2688 and
    y 448–1792 (tile-aligned), so exactly 15 tiles are tissue: 2240 x 1344 px = 0.753 mm².
    """
    box = (448, 448, 448 + 5 * 448, 448 + 3 * 448)
    path = write_tiff_slide(tmp_path / "known.tiff", tissue_image(4000, 3000, [box]), mpp=0.5)
    return path, {"box": box, "n_tiles": 15, "area_mm2": (5 * 448 * 0.5e-3) * (3 * 448 * 0.5e-3)}


def damage_level(path: Path, level: int) -> None:
    """Zero the compressed tile data of one pyramid level, leaving the TIFF structure intact."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[level]
        spans = list(zip(page.dataoffsets, page.databytecounts, strict=True))
    data = bytearray(path.read_bytes())
    for offset, count in spans:
        data[offset : offset + count] = bytes(count)
    path.write_bytes(bytes(data))
