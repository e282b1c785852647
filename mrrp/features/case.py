"""Per-modality token arrays of one patient (``CaseFeatures``) and the encoders that make them.

:func:`mrrp.case.assemble` is the one route from a validated :class:`mrrp.case.Case` to these tokens.

Tokens per modality:
- slide: tile features from the slide pipeline (N_tiles, 1280), with level-0 coordinates;
- ultrasound images: for each image, the frozen tile encoder on the whole image and on its four
  quadrants (grayscale repeated to three channels, resized to 224 px): 5 tokens of 1280 per image;
- reports: one all-MiniLM-L6-v2 embedding per sentence (N_sentences, 384), ultrasound and
  pathology reports kept apart;
- clinical: standardised numeric fields with known-masks and categorical codes (``encode_clinical``).

The ultrasound and report tokens of one patient are cached together on disk, keyed by the sha256
of each ultrasound file and report text and by the encoders' versions; slide features use the slide cache.
The cache holds embeddings only, never report text: the sentences are split again from the Case's text
(the same :func:`mrrp.io.reports.split_sentences` the encoder uses), and the file name is a keyed hash
(HMAC with a random key kept in the cache folder), so neither a file nor its name can be matched to a
guessed report without that key.
"""

from __future__ import annotations

import hmac
import json
import math
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrrp._fs import atomic_open
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
# "case-3": embeddings only, under a keyed-hash name (case-2 stored the sentences); the tokens are the same.
CASE_CACHE_VERSION = "case-3"
_KEY_FILE = ".key"  # in <cache>/cases/: the HMAC key of the entries' names


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


@dataclass(frozen=True, eq=False)
class SideTokens:
    """One patient's ultrasound and report tokens (0 rows: the input is absent)."""

    us_images: np.ndarray  # (5 * N_images, 1280) float32, whole image then its four quadrants, per image
    us_report: np.ndarray  # (N_r, 384) float32, one row per sentence
    us_report_sentences: list[str]
    path_report: np.ndarray  # (N_p, 384) float32
    path_report_sentences: list[str]


def _side_cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / "cases" / key[:2] / f"{key}.npz"


def _cache_name_key(cache_dir: Path) -> bytes:
    """The random key of this cache's entry names, made on first use (owner-only); a lost key only orphans
    the entries, which are then recomputed."""
    path = cache_dir / "cases" / _KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        pass
    key = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            return bytes.fromhex(path.read_text().strip())  # another process made it first
        except (OSError, ValueError):
            return key  # damaged: this process's own key (its entries are orphaned, never wrong)
    except OSError:
        return key  # a read-only cache: this process's own key (its entries are not written anyway)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    # Entries older than the key were written by an earlier version, which stored the report sentences
    # themselves: remove them (they would never be read again anyway, their names need this key).
    for old in path.parent.glob("*/*.npz"):
        old.unlink(missing_ok=True)
    return key


def _read_side_cache(path: Path, n_us_report: int, n_path_report: int) -> dict[str, np.ndarray] | None:
    """The cached embeddings, or None when absent, damaged or not matching the sentence counts."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in ("us_images", "us_report", "path_report")}
    except (OSError, KeyError, ValueError):
        arrays = None
    if arrays is None or len(arrays["us_report"]) != n_us_report or len(arrays["path_report"]) != n_path_report:
        path.unlink(missing_ok=True)  # a damaged entry is recomputed, never trusted
        return None
    return arrays


def _write_side_cache(path: Path, tokens: SideTokens) -> None:
    try:
        with atomic_open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
            # Embeddings only: the sentences are the Case's report text, which the cache never holds.
            np.savez(fh, us_images=tokens.us_images, us_report=tokens.us_report, path_report=tokens.path_report)
    except OSError:
        pass  # a read-only or full cache disk must not cost the user the tokens


def side_tokens(
    us_images: Sequence[np.ndarray],
    us_report: str | None,
    path_report: str | None,
    *,
    us_image_sha256: Sequence[str],
    us_report_sha256: str | None,
    path_report_sha256: str | None,
    cache_dir: Path | None,
) -> SideTokens:
    """Ultrasound and report tokens of decoded images ((H, W) uint8 each) and clean report texts.

    The disk cache is keyed by the content digests the caller already holds (the sha256 of each image
    file's bytes and of each report text, in :class:`mrrp.case.Case`) and the encoders' versions, so
    nothing is read or hashed again here; on a hit no encoder runs.
    """
    from mrrp.features.encoders import get_encoder
    from mrrp.features.text import get_sentence_encoder
    from mrrp.io.reports import split_sentences

    if len(us_images) != len(us_image_sha256):
        raise ValueError(f"{len(us_images)} ultrasound images but {len(us_image_sha256)} digests")
    image_encoder = get_encoder()
    text_encoder = get_sentence_encoder()
    key_src = {
        "v": CASE_CACHE_VERSION,
        "us": list(us_image_sha256),
        "usr": us_report_sha256 if us_report else "-",
        "pr": path_report_sha256 if path_report else "-",
        "img_enc": [image_encoder.name, image_encoder.version],
        "txt_enc": [text_encoder.name, text_encoder.version],
    }
    # The same sentences encode_report() embeds, split here so that a cache hit needs no stored text.
    us_sentences = split_sentences(us_report) if us_report else []
    path_sentences = split_sentences(path_report) if path_report else []
    target = None
    if cache_dir is not None:
        message = json.dumps(key_src, sort_keys=True).encode()
        key = hmac.new(_cache_name_key(cache_dir), message, "sha256").hexdigest()
        target = _side_cache_path(cache_dir, key)
        if (cached := _read_side_cache(target, len(us_sentences), len(path_sentences))) is not None:
            return SideTokens(
                us_images=cached["us_images"],
                us_report=cached["us_report"],
                us_report_sentences=us_sentences,
                path_report=cached["path_report"],
                path_report_sentences=path_sentences,
            )
    us = [ultrasound_tokens(image, image_encoder) for image in us_images]
    reports = []
    for text, sentences in ((us_report, us_sentences), (path_report, path_sentences)):
        if text:
            reports.append((text_encoder.encode(sentences).astype(np.float32), sentences))
        else:
            reports.append((np.zeros((0, TEXT_DIM), np.float32), []))
    tokens = SideTokens(
        us_images=np.concatenate(us) if us else np.zeros((0, image_encoder.embedding_dim), np.float32),
        us_report=reports[0][0],
        us_report_sentences=reports[0][1],
        path_report=reports[1][0],
        path_report_sentences=reports[1][1],
    )
    if target is not None:
        _write_side_cache(target, tokens)
    return tokens
