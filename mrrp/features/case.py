"""One patient's inputs → per-modality token arrays (``CaseFeatures``), through the caches.

Tokens per modality:
- slide: tile features from the slide pipeline (N_tiles, 1280), with level-0 coordinates;
- ultrasound images: for each image, the frozen tile encoder on the whole image and on its four
  quadrants (grayscale repeated to three channels, resized to 224 px): 5 tokens of 1280 per image;
- reports: one all-MiniLM-L6-v2 embedding per sentence (N_sentences, 384), ultrasound and
  pathology reports kept apart;
- clinical: standardised numeric fields with known-masks and categorical codes (``encode_clinical``).

The ultrasound and report tokens of one patient are cached together on disk, keyed by the
content of the input files and the encoders' versions; slide features use the slide cache.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrrp.schema import FIELDS_BY_NAME

TEXT_DIM = 384
IMAGE_DIM = 1280

# Numeric clinical fields and their fixed standardisation (transform, centre, scale), chosen from
# published HR+/HER2− marginals rather than fitted, so a site's bundle and ours read a record the same way.
NUMERIC_FIELDS: tuple[tuple[str, str, float, float], ...] = (
    ("age_years", "identity", 55.0, 12.0),
    ("tumour_size_mm", "log", math.log(20.0), 0.6),
    ("histological_grade", "identity", 2.0, 0.8),
    ("positive_lymph_nodes", "log1p", 0.5, 1.0),
    ("er_percent", "identity", 80.0, 20.0),
    ("pr_percent", "identity", 50.0, 30.0),
    ("ki67_percent", "log", math.log(15.0), 0.6),
)
CATEGORICAL_FIELDS: tuple[str, ...] = (
    "menopausal_status",
    "lymphovascular_invasion",
    "histological_type",
    "endocrine_therapy",
    "chemotherapy",
    "radiotherapy",
)
CATEGORICAL_SIZES = tuple(len(FIELDS_BY_NAME[f].categories) for f in CATEGORICAL_FIELDS)
CLINICAL_TOKEN_FIELDS = tuple(f for f, *_ in NUMERIC_FIELDS) + CATEGORICAL_FIELDS
CASE_CACHE_VERSION = "case-1"


@dataclass
class CaseFeatures:
    """Token arrays of one patient. Empty arrays (0 rows) mean the input is absent."""

    patient_id: str
    tiles: np.ndarray  # (N_t, 1280) float32
    tile_coords_l0: np.ndarray  # (N_t, 2) int64
    tile_size_l0: int
    us_images: np.ndarray  # (N_u, 1280) float32, 5 tokens per image
    us_report: np.ndarray  # (N_r, 384) float32
    us_report_sentences: list[str]
    path_report: np.ndarray  # (N_p, 384) float32
    path_report_sentences: list[str]
    clin_numeric: np.ndarray  # (7,) float32 standardised
    clin_known: np.ndarray  # (7,) bool
    clin_categorical: np.ndarray  # (6,) int64; value == size means unknown
    has_clinical: bool
    extra: dict = field(default_factory=dict)

    @property
    def present(self) -> np.ndarray:
        """(4,) bool over MODALITIES = slide, ultrasound (images or report), path_report, clinical."""
        return np.array(
            [
                len(self.tiles) > 0,
                len(self.us_images) + len(self.us_report) > 0,
                len(self.path_report) > 0,
                self.has_clinical,
            ]
        )


def encode_clinical(record: dict | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(numeric (7,), known (7,), categorical (6,), has_record). ``record`` values already parsed (None = unknown)."""
    numeric = np.zeros(len(NUMERIC_FIELDS), np.float32)
    known = np.zeros(len(NUMERIC_FIELDS), bool)
    categorical = np.array(CATEGORICAL_SIZES, np.int64)  # all unknown
    if record is None:
        return numeric, known, categorical, False
    for i, (name, transform, centre, scale) in enumerate(NUMERIC_FIELDS):
        v = record.get(name)
        if v is None:
            continue
        x = float(v)
        if transform == "log":
            x = math.log(max(x, 0.5))
        elif transform == "log1p":
            x = math.log1p(max(x, 0.0))
        numeric[i] = (x - centre) / scale
        known[i] = True
    for j, name in enumerate(CATEGORICAL_FIELDS):
        v = record.get(name)
        cats = FIELDS_BY_NAME[name].categories
        if v is not None and v in cats:
            categorical[j] = cats.index(v)
    return numeric, known, categorical, True


def ultrasound_tokens(image: np.ndarray, encoder) -> np.ndarray:
    """(5, D): the encoder on the whole grayscale image and on its four quadrants."""
    from PIL import Image

    h, w = image.shape
    size = encoder.input_size_px
    crops = [
        image,
        image[: h // 2, : w // 2],
        image[: h // 2, w // 2 :],
        image[h // 2 :, : w // 2],
        image[h // 2 :, w // 2 :],
    ]
    batch = np.stack(
        [
            np.repeat(np.asarray(Image.fromarray(c).resize((size, size), Image.Resampling.BILINEAR))[..., None], 3, -1)
            for c in crops
        ]
    )  # (5, S, S, 3)
    return encoder.encode(batch).astype(np.float32)


def _file_digest(path: Path | None) -> str:
    if path is None:
        return "-"
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _side_cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / "cases" / key[:2] / f"{key}.npz"


def side_tokens(
    us_paths: list[Path],
    us_report_path: Path | None,
    path_report_path: Path | None,
    *,
    cache_dir: Path | None,
    us_report_text: str | None = None,
    path_report_text: str | None = None,
) -> dict[str, object]:
    """Ultrasound and report tokens, from the cache when present."""
    from mrrp.features.encoders import get_encoder
    from mrrp.features.text import get_sentence_encoder
    from mrrp.io.reports import read_report
    from mrrp.io.ultrasound import read_ultrasound

    image_encoder = get_encoder()
    text_encoder = get_sentence_encoder()
    key_src = {
        "v": CASE_CACHE_VERSION,
        "us": [_file_digest(p) for p in us_paths],
        "usr": _file_digest(us_report_path)
        if us_report_text is None
        else hashlib.sha256(us_report_text.encode()).hexdigest(),
        "pr": _file_digest(path_report_path)
        if path_report_text is None
        else hashlib.sha256(path_report_text.encode()).hexdigest(),
        "img_enc": [image_encoder.name, image_encoder.version],
        "txt_enc": [text_encoder.name, text_encoder.version],
    }
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()
    if cache_dir is not None:
        cached = _side_cache_path(cache_dir, key)
        if cached.is_file():
            try:
                with np.load(cached, allow_pickle=False) as z:
                    return {
                        "us_images": z["us_images"],
                        "us_report": z["us_report"],
                        "us_report_sentences": list(z["us_report_sentences"]),
                        "path_report": z["path_report"],
                        "path_report_sentences": list(z["path_report_sentences"]),
                    }
            except (OSError, KeyError, ValueError):
                cached.unlink(missing_ok=True)
    us = [ultrasound_tokens(read_ultrasound(p).image, image_encoder) for p in us_paths]
    us_images = np.concatenate(us) if us else np.zeros((0, image_encoder.embedding_dim), np.float32)
    out: dict[str, object] = {"us_images": us_images}
    for name, path, text in (
        ("us_report", us_report_path, us_report_text),
        ("path_report", path_report_path, path_report_text),
    ):
        if text is None and path is not None:
            text = read_report(path)
        if text:
            tokens = text_encoder.encode_report(text)
            out[name] = tokens.embeddings.astype(np.float32)
            out[f"{name}_sentences"] = tokens.sentences
        else:
            out[name] = np.zeros((0, TEXT_DIM), np.float32)
            out[f"{name}_sentences"] = []
    if cache_dir is not None:
        target = _side_cache_path(cache_dir, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".npz.part")
        os.close(fd)
        try:
            with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
                np.savez(
                    fh,
                    us_images=out["us_images"],
                    us_report=out["us_report"],
                    us_report_sentences=np.array(out["us_report_sentences"], dtype=str),
                    path_report=out["path_report"],
                    path_report_sentences=np.array(out["path_report_sentences"], dtype=str),
                )
            os.replace(tmp, target)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
    return out


def case_features(row, *, cache_dir: str | os.PathLike[str] | None = None) -> CaseFeatures:
    """CaseFeatures of a :class:`mrrp.io.manifest.ManifestRow` (any modality may be absent)."""
    from mrrp.features.encoders import get_encoder
    from mrrp.features.slide import slide_features
    from mrrp.features.store import FeatureCache, default_cache_dir

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    tiles = np.zeros((0, IMAGE_DIM), np.float32)
    coords = np.zeros((0, 2), np.int64)
    tile_size_l0 = 0
    if row.slide_path is not None:
        analysis = slide_features(row.slide_path, mpp=row.slide_mpp, encoder=get_encoder(), cache=FeatureCache(root))
        tiles, coords = analysis.features.features, analysis.features.coords_l0
        tile_size_l0 = analysis.features.tile_size_l0
    side = side_tokens(row.us_image_paths, row.us_report_path, row.path_report_path, cache_dir=root)
    numeric, known, categorical, has_clinical = encode_clinical(row.clinical)
    return CaseFeatures(
        patient_id=row.patient_id,
        tiles=tiles,
        tile_coords_l0=coords,
        tile_size_l0=tile_size_l0,
        us_images=side["us_images"],  # type: ignore[arg-type]
        us_report=side["us_report"],  # type: ignore[arg-type]
        us_report_sentences=side["us_report_sentences"],  # type: ignore[arg-type]
        path_report=side["path_report"],  # type: ignore[arg-type]
        path_report_sentences=side["path_report_sentences"],  # type: ignore[arg-type]
        clin_numeric=numeric,
        clin_known=known,
        clin_categorical=categorical,
        has_clinical=has_clinical,
    )
