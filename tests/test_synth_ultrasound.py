"""Synthetic breast ultrasound: the image tracks the biology, speckle is physical, the files are valid."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage, stats
from scipy.special import gamma as gamma_fn
from scipy.stats import spearmanr

from mrrp.synth.biology import LATENTS, us_findings_from_latent
from mrrp.synth.ultrasound import (
    FAMILY_NAMES,
    GAMMA,
    GIVEN_NAMES,
    FakeIdentity,
    age_on,
    fake_identity,
    image_statistics,
    render_ultrasound,
    save_dicom,
    save_png,
    speckle_iq,
)

OVAL = {
    "size_mm": 14.0,
    "irregularity": 0.15,
    "spiculation": 0.1,
    "shadowing": 0.3,
    "aspect_ratio": 0.7,
    "shape": "oval",
    "margin": "circumscribed",
    "echo_pattern": "hypoechoic",
    "posterior": "no posterior features",
}


def _ring(mask: np.ndarray, pixel_mm: float, inner_mm: float = 1.0, outer_mm: float = 3.0) -> np.ndarray:
    outside_mm = ndimage.distance_transform_edt(~mask) * pixel_mm
    return (outside_mm > inner_mm) & (outside_mm <= outer_mm)


def _background_tiles(img, tile_px: int = 24) -> list[np.ndarray]:
    """Tiles of fibroglandular depth (30–60% of the field) well lateral to the lesion."""
    grey = img.image.astype(np.float64)
    h_px, w_px = grey.shape
    cols = np.nonzero(img.lesion_mask.any(axis=0))[0]
    margin_px = 40
    starts_c = list(range(0, cols.min() - margin_px - tile_px, tile_px))
    starts_c += list(range(cols.max() + margin_px, w_px - tile_px, tile_px))
    return [
        grey[r : r + tile_px, c : c + tile_px]
        for r in range(int(0.3 * h_px), int(0.6 * h_px) - tile_px, tile_px)
        for c in starts_c
    ]


@pytest.fixture(scope="module")
def random_cases() -> list[tuple[dict, dict]]:
    """40 lesions drawn from the generating model with random latents, rendered and measured."""
    rng = np.random.default_rng(2024)
    out = []
    for k in range(40):
        lat = {name: float(v) for name, v in zip(LATENTS, rng.standard_normal(4), strict=True)}
        size_mm = float(np.clip(np.exp(np.log(19.0) + 0.38 * lat["burden"] + rng.normal(0, 0.3)), 5, 60))
        findings = us_findings_from_latent(lat, size_mm, rng)
        out.append((findings, image_statistics(render_ultrasound(findings, seed=1000 + k))))
    return out


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def test_deterministic_for_a_seed_and_seeds_differ() -> None:
    a = render_ultrasound(OVAL, seed=7)
    b = render_ultrasound(OVAL, seed=7)
    c = render_ultrasound(OVAL, seed=8)
    assert a.image.dtype == np.uint8 and a.image.shape == (384, 512)
    assert a.lesion_mask.dtype == bool and a.lesion_mask.shape == a.image.shape
    assert a.pixel_mm == pytest.approx(0.1)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.lesion_mask, b.lesion_mask)
    assert np.mean(a.image != c.image) > 0.5


def test_views_show_the_same_lesion_differently() -> None:
    f = dict(OVAL, margin="microlobulated", irregularity=0.6)
    radial = render_ultrasound(f, seed=3, view="radial")
    anti = render_ultrasound(f, seed=3, view="antiradial")
    assert np.mean(radial.image != anti.image) > 0.5  # new speckle and probe position
    inter = np.logical_and(radial.lesion_mask, anti.lesion_mask).sum()
    union = np.logical_or(radial.lesion_mask, anti.lesion_mask).sum()
    assert inter / union > 0.75  # a few degrees of tilt, same lesion
    assert anti.lesion_mask.sum() == pytest.approx(radial.lesion_mask.sum(), rel=0.05)


def test_lesion_is_hypoechoic() -> None:
    for pattern, max_ratio in (("hypoechoic", 0.5), ("heterogeneous", 0.75)):
        img = render_ultrasound(dict(OVAL, echo_pattern=pattern), seed=11)
        inside = img.image[img.lesion_mask].mean()
        ring = img.image[_ring(img.lesion_mask, img.pixel_mm)].mean()
        assert inside < max_ratio * ring, (pattern, inside, ring)
        assert image_statistics(img)["lesion_contrast"] > 1 - max_ratio


def test_heterogeneous_lesions_have_mixed_internal_echoes() -> None:
    hypo = render_ultrasound(OVAL, seed=12)
    het = render_ultrasound(dict(OVAL, echo_pattern="heterogeneous"), seed=12)
    core = ndimage.binary_erosion(hypo.lesion_mask, iterations=8)  # away from the blurred edge
    assert het.image[core].std() > 1.3 * hypo.image[core].std()
    assert het.image[core].mean() > hypo.image[core].mean()


def test_lesion_area_follows_size_mm() -> None:
    small = image_statistics(render_ultrasound(dict(OVAL, size_mm=10.0), seed=5))
    large = image_statistics(render_ultrasound(dict(OVAL, size_mm=25.0), seed=5))
    assert large["lesion_area_mm2"] / small["lesion_area_mm2"] == pytest.approx((25 / 10) ** 2, rel=0.1)
    # An ellipse of 25 mm x (0.7 * 25) mm, whatever the pixel size.
    fine = render_ultrasound(dict(OVAL, size_mm=25.0), seed=5, size_px=(768, 1024), pixel_mm=0.05)
    expected_mm2 = math.pi / 4 * 25.0 * 25.0 * 0.7
    assert large["lesion_area_mm2"] == pytest.approx(expected_mm2, rel=0.05)
    assert image_statistics(fine)["lesion_area_mm2"] == pytest.approx(expected_mm2, rel=0.05)


def test_depth_width_follows_aspect_ratio() -> None:
    wide = render_ultrasound(dict(OVAL, aspect_ratio=0.55), seed=4)
    tall = render_ultrasound(dict(OVAL, aspect_ratio=1.35, orientation="not parallel"), seed=4)
    assert image_statistics(wide)["depth_width_ratio"] == pytest.approx(0.55, abs=0.08)
    assert image_statistics(tall)["depth_width_ratio"] == pytest.approx(1.35, abs=0.12)
    rows, cols = np.nonzero(tall.lesion_mask)
    assert np.ptp(rows) > np.ptp(cols)  # taller than wide on the screen too


def test_oversized_lesion_is_clipped_to_fit() -> None:
    img = render_ultrasound(dict(OVAL, size_mm=100.0), seed=6)
    m = img.lesion_mask
    assert not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
    assert img.lesion_size_mm < 100.0
    assert image_statistics(img)["depth_width_ratio"] == pytest.approx(0.7, abs=0.08)  # aspect kept


def test_margin_irregularity_tracks_biology(random_cases) -> None:
    irr = [f["irregularity"] for f, _ in random_cases]
    spic = [f["spiculation"] for f, _ in random_cases]
    measured = [s["boundary_irregularity"] for _, s in random_cases]
    assert spearmanr(irr, measured)[0] > 0.5
    assert spearmanr(spic, measured)[0] > 0.5
    by_margin: dict[str, list[float]] = {}
    for f, s in random_cases:
        by_margin.setdefault(str(f["margin"]), []).append(s["boundary_irregularity"])
    # A circumscribed mass is nearly convex; spiculation is the most irregular outline.
    assert np.median(by_margin["circumscribed"]) < 0.03
    if "spiculated" in by_margin:
        assert min(by_margin["spiculated"]) > max(by_margin["circumscribed"])


def test_posterior_features_track_shadowing(random_cases) -> None:
    shadowing = [f["shadowing"] for f, _ in random_cases]
    darkening = [s["posterior_darkening"] for _, s in random_cases]
    assert not np.isnan(darkening).any()
    assert spearmanr(shadowing, darkening)[0] > 0.5
    # Category agreement: enhancement brightens the column below, shadowing darkens it.
    enh = [s["posterior_darkening"] for f, s in random_cases if f["posterior"] == "enhancement"]
    sha = [s["posterior_darkening"] for f, s in random_cases if f["posterior"] == "shadowing"]
    if enh:
        assert np.median(enh) < -0.1
    if sha:
        assert np.median(sha) > 0.2


def test_shadow_and_enhancement_directly() -> None:
    shadow = image_statistics(render_ultrasound(dict(OVAL, shadowing=0.95), seed=9))
    neutral = image_statistics(render_ultrasound(dict(OVAL, shadowing=0.3), seed=9))
    enhance = image_statistics(render_ultrasound(dict(OVAL, shadowing=0.02), seed=9))
    assert shadow["posterior_darkening"] > 0.4
    assert abs(neutral["posterior_darkening"]) < 0.15
    assert enhance["posterior_darkening"] < -0.15


def test_all_margins_render_with_a_connected_mask() -> None:
    for margin in ("circumscribed", "indistinct", "angular", "microlobulated", "spiculated"):
        f = dict(OVAL, margin=margin, irregularity=0.8, spiculation=0.85)
        mask = render_ultrasound(f, seed=21).lesion_mask
        assert ndimage.label(mask)[1] == 1, margin


def test_speckle_field_is_rayleigh() -> None:
    amplitude = np.abs(speckle_iq(np.random.default_rng(0), (512, 512), (1.1, 2.6))).ravel()
    assert np.mean(amplitude**2) == pytest.approx(1.0, rel=0.05)
    assert amplitude.std() / amplitude.mean() == pytest.approx(math.sqrt(4 / math.pi - 1), abs=0.02)  # 0.523
    rayleigh = stats.rayleigh(scale=math.sqrt(np.mean(amplitude**2) / 2))
    assert stats.kstest(amplitude, rayleigh.cdf).statistic < 0.02


def test_image_speckle_is_rayleigh_like_and_grain_follows_scale() -> None:
    # A Rayleigh amplitude raised to GAMMA has CV^2 = G(1 + g) / G(1 + g/2)^2 - 1 (0.35 for g = 0.65).
    expected_cv = math.sqrt(gamma_fn(1 + GAMMA) / gamma_fn(1 + GAMMA / 2) ** 2 - 1)
    lag_corr = {}
    for scale in (1.0, 2.0):
        tiles = _background_tiles(render_ultrasound(OVAL, seed=13, speckle_scale=scale))
        assert len(tiles) >= 20
        cv = float(np.median([t.std() / t.mean() for t in tiles]))
        assert 0.3 <= cv <= 0.7 and cv == pytest.approx(expected_cv, abs=0.07)
        zs = [t - t.mean() for t in tiles]
        lag_corr[scale] = float(np.median([(z[:, :-2] * z[:, 2:]).mean() / z.var() for z in zs]))
    assert lag_corr[2.0] > lag_corr[1.0] + 0.08  # coarser grain: neighbours 2 px apart are more alike


def test_gain_brightens() -> None:
    means = [render_ultrasound(OVAL, seed=14, gain=g).image.mean() for g in (0.8, 1.0, 1.25)]
    assert means[0] < means[1] < means[2]
    assert means[2] / means[1] > 1.08


def test_layered_anatomy() -> None:
    img = render_ultrasound(OVAL, seed=15)
    rows = img.image.astype(np.float64).mean(axis=1)  # (H,) mean grey by depth
    h_px = len(rows)
    skin = rows[: int(1.0 / img.pixel_mm)].mean()
    fat = rows[int(0.08 * h_px) : int(0.15 * h_px)].mean()
    glandular = rows[int(0.25 * h_px) : int(0.33 * h_px)].mean()
    chest = rows[int(0.95 * h_px) :].mean()
    assert skin > fat and glandular > fat and glandular > chest  # bright skin and gland, grey fat, dark chest wall


def test_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError):
        render_ultrasound(OVAL, seed=1, view="oblique")
    with pytest.raises(ValueError):
        render_ultrasound(dict(OVAL, margin="fuzzy"), seed=1)
    with pytest.raises(ValueError):
        render_ultrasound(OVAL, seed=-1)
    with pytest.raises(ValueError):
        render_ultrasound(OVAL, seed=1, gain=0)


def test_the_hardest_lesion_renders() -> None:
    # Its speed (a median under 0.5 s) is a benchmark target, not a test: benchmarks/bench_dashboard.py.
    f = dict(OVAL, margin="spiculated", irregularity=0.9, spiculation=0.95, size_mm=30.0)
    for seed in range(3):
        us = render_ultrasound(f, seed=seed)
        assert us.image.dtype == np.uint8 and us.image.shape == (384, 512)
        assert 0.02 < us.lesion_mask.mean() < 0.5  # a 30 mm lesion on a 51 x 38 mm frame


# --------------------------------------------------------------------------------------------------
# Identities and files
# --------------------------------------------------------------------------------------------------


def test_fake_identity_is_deterministic_and_plausible() -> None:
    a = fake_identity(42, age_years=57.6, reference_date="20230610")
    assert a == fake_identity(42, age_years=57.6, reference_date="20230610")
    assert isinstance(a, FakeIdentity)
    assert a.given_name in GIVEN_NAMES and a.family_name in FAMILY_NAMES
    assert a.dicom_name == f"{a.family_name}^{a.given_name}"
    assert age_on(a.birth_date, "20230610") == 57 == a.age_years
    assert len(a.mrn) == 8 and a.mrn.isdigit()
    digits = [int(d) for d in a.mrn]  # Luhn check digit
    total = sum(d if i % 2 == 0 else (2 * d - 9 if 2 * d > 9 else 2 * d) for i, d in enumerate(reversed(digits)))
    assert total % 10 == 0
    assert a.accession_number.startswith("US23") and len(a.accession_number) <= 16
    assert a.referring_physician.endswith("^^DR")
    others = {fake_identity(s).dicom_name for s in range(30)}
    assert len(others) > 20


@pytest.mark.parametrize("reference", ["20240229", "20230101", "20231231"])
def test_birth_date_matches_age_on_edge_dates(reference: str) -> None:
    for seed in range(25):
        for age in (26, 54.9, 88):
            ident = fake_identity(seed, age_years=age, reference_date=reference)
            assert age_on(ident.birth_date, reference) == int(age)


def test_png_round_trip(tmp_path: Path) -> None:
    from PIL import Image

    img = render_ultrasound(OVAL, seed=16)
    out = save_png(img, tmp_path / "sub" / "us_1.png")
    with Image.open(out) as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), img.image)
    assert [p.name for p in out.parent.iterdir()] == ["us_1.png"]  # no temp file left


def test_dicom_is_valid_ultrasound_with_fake_identifiers(tmp_path: Path) -> None:
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, UltrasoundImageStorage

    img = render_ultrasound(OVAL, seed=17, view="antiradial")
    ident = fake_identity(17, age_years=61, reference_date="20220315")
    kwargs = dict(patient=ident, study_date="20220315", laterality="left", manufacturer="SynthSonics", seed=17)
    path = save_dicom(img, tmp_path / "us_2.dcm", **kwargs)
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPClassUID == UltrasoundImageStorage
    assert ds.SOPClassUID == UltrasoundImageStorage == "1.2.840.10008.5.1.4.1.1.6.1"
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.Modality == "US" and ds.PhotometricInterpretation == "MONOCHROME2"
    assert ds.BitsAllocated == 8 and ds.SamplesPerPixel == 1
    assert (ds.Rows, ds.Columns) == img.image.shape
    np.testing.assert_array_equal(ds.pixel_array, img.image)
    assert [float(v) for v in ds.PixelSpacing] == [pytest.approx(0.1)] * 2
    region = ds.SequenceOfUltrasoundRegions[0]
    assert region.PhysicalUnitsXDirection == 3 and float(region.PhysicalDeltaX) == pytest.approx(0.01)  # cm
    # Identifiers a de-identifier must find, exactly as generated.
    assert str(ds.PatientName) == ident.dicom_name
    assert ds.PatientID == ident.mrn
    assert ds.PatientBirthDate == ident.birth_date
    assert ds.AccessionNumber == ident.accession_number
    assert ds.InstitutionName == ident.institution_name
    assert str(ds.ReferringPhysicianName) == ident.referring_physician
    assert str(ds.OperatorsName) == ident.operator_name
    assert ds.PatientAge == "061Y" and ds.PatientSex == "F"
    assert ds.StudyDate == "20220315" and len(ds.StudyTime) == 6
    assert ds.Laterality == "L" and ds.BurnedInAnnotation == "NO"
    assert [p.name for p in tmp_path.iterdir()] == ["us_2.dcm"]  # no temp file left

    # Same seed → same UIDs (same file); another seed → new UIDs.
    again = pydicom.dcmread(save_dicom(img, tmp_path / "again.dcm", **kwargs))
    assert again.SOPInstanceUID == ds.SOPInstanceUID and again.StudyInstanceUID == ds.StudyInstanceUID
    other = pydicom.dcmread(save_dicom(img, tmp_path / "other.dcm", **dict(kwargs, seed=18)))
    assert other.SOPInstanceUID != ds.SOPInstanceUID


def test_dicom_rejects_bad_laterality_and_date(tmp_path: Path) -> None:
    img = render_ultrasound(OVAL, seed=18)
    ident = fake_identity(18)
    base = dict(patient=ident, study_date="20220315", laterality="right", manufacturer="X", seed=1)
    with pytest.raises(ValueError):
        save_dicom(img, tmp_path / "a.dcm", **dict(base, laterality="both"))
    with pytest.raises(ValueError):
        save_dicom(img, tmp_path / "a.dcm", **dict(base, study_date="2022-03-15"))
    assert list(tmp_path.iterdir()) == []
