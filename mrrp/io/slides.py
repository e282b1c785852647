"""Open whole-slide images and plain images behind one small reader.

Every format OpenSlide reads (Aperio SVS, generic tiled TIFF, Hamamatsu, Leica, MIRAX,
Philips, Ventana, DICOM WSI, ...) goes through ``openslide.OpenSlide``; plain PNG/JPEG/TIFF
goes through ``openslide.ImageSlide`` after a size check (PIL would otherwise decode a
decompression bomb into memory). Every failure a user can cause becomes one
:class:`mrrp.errors.SlideError` subclass with a message meant for a clinician.

Units are in the names: ``*_px`` pixels, ``*_l0`` level-0 pixels, ``mpp`` microns per pixel.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mrrp.errors import (
    CorruptSlideError,
    EmptyFileError,
    ImageTooLargeError,
    InvalidValueError,
    MissingMppError,
    SlideNotFoundError,
    UnsupportedFormatError,
)

# A plain image is decoded whole into RGBA by ImageSlide: 4 bytes per pixel. 150 Mpx is
# ~600 MB, the most we accept on a laptop; anything larger must be a pyramidal slide.
MAX_PLAIN_IMAGE_PIXELS = 150_000_000
# A thumbnail source level larger than this is read in strips (bounded memory on flat pyramids).
THUMBNAIL_STRIP_PIXELS = 64_000_000

# Plausible microscope resolutions. TIFF files without a scanner often carry the 72 dpi
# default (352.8 um/px), which OpenSlide reports as mpp; that is not a microscope
# resolution and must not be used silently.
MIN_PLAUSIBLE_MPP = 0.05
MAX_PLAUSIBLE_MPP = 20.0

PLAIN_IMAGE_FORMATS = {"PNG", "JPEG", "TIFF"}

# Bytes sampled for the content fingerprint; see slide_fingerprint().
_FINGERPRINT_CHUNK = 1 << 20
_FINGERPRINT_SAMPLES = 16


@dataclass(frozen=True)
class SlideInfo:
    """What a clinician or an engineer needs to know about a slide before using it."""

    path: str
    name: str
    vendor: str
    width_px: int
    height_px: int
    level_count: int
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    mpp_x: float | None
    mpp_y: float | None
    mpp_source: str  # "slide", "user" or "missing"
    objective_power: float | None
    file_size_bytes: int
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def mpp(self) -> float | None:
        """Mean microns per pixel at level 0, or None if unknown."""
        if self.mpp_x is None or self.mpp_y is None:
            return None
        return (self.mpp_x + self.mpp_y) / 2.0

    @property
    def width_mm(self) -> float | None:
        return None if self.mpp_x is None else self.width_px * self.mpp_x / 1000.0

    @property
    def height_mm(self) -> float | None:
        return None if self.mpp_y is None else self.height_px * self.mpp_y / 1000.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["level_dimensions"] = [list(x) for x in self.level_dimensions]
        d["level_downsamples"] = list(self.level_downsamples)
        d["mpp"] = self.mpp
        return d


def _describe(path: Path) -> str:
    return f"'{path.name}'"


def _check_file(path: Path) -> int:
    if not path.exists():
        raise SlideNotFoundError(f"The slide file {_describe(path)} was not found at {path.parent}.")
    if path.is_dir():
        raise SlideNotFoundError(f"{_describe(path)} is a folder, not a slide file.")
    size = path.stat().st_size
    if size == 0:
        raise EmptyFileError(f"The slide file {_describe(path)} is empty (0 bytes); it may not have finished copying.")
    return size


def _parse_float(value: str | None) -> float | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        out = float(value)
    except ValueError:
        return None
    return out if np.isfinite(out) else None


def _plausible_mpp(value: float | None) -> float | None:
    if value is None or not (MIN_PLAUSIBLE_MPP <= value <= MAX_PLAUSIBLE_MPP):
        return None
    return value


def validate_mpp(mpp: float) -> float:
    """Check a user-supplied resolution (microns per pixel) and return it as float."""
    try:
        value = float(mpp)
    except (TypeError, ValueError):
        raise InvalidValueError(
            f"The resolution '{mpp}' is not a number; enter microns per pixel, e.g. 0.25."
        ) from None
    if not (MIN_PLAUSIBLE_MPP <= value <= MAX_PLAUSIBLE_MPP):
        raise InvalidValueError(
            f"A resolution of {value:g} µm/pixel is outside the range of microscope scans "
            f"({MIN_PLAUSIBLE_MPP}–{MAX_PLAUSIBLE_MPP} µm/pixel; 40x is about 0.25, 20x about 0.5)."
        )
    return value


class Slide:
    """A readable slide. Use :func:`open_slide` to create one; close it (or use ``with``).

    ``read_region`` is safe to call from several threads: OpenSlide handles are thread-safe,
    and ImageSlide (pure PIL) is serialised with a lock.
    """

    def __init__(self, handle: Any, info: SlideInfo, is_plain_image: bool) -> None:
        self._handle = handle
        self.info = info
        self.is_plain_image = is_plain_image
        self._lock = threading.Lock() if is_plain_image else None

    # -- context manager -------------------------------------------------------------
    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    # -- geometry --------------------------------------------------------------------
    @property
    def dimensions(self) -> tuple[int, int]:
        return (self.info.width_px, self.info.height_px)

    @property
    def mpp(self) -> float:
        """Level-0 microns per pixel; raises MissingMppError if neither slide nor user gave it."""
        if self.info.mpp is None:
            raise MissingMppError(
                f"The slide '{self.info.name}' does not record its resolution. "
                "Enter the microns per pixel of the scan (e.g. 0.25 for 40x, 0.5 for 20x)."
            )
        return self.info.mpp

    def best_level_for_downsample(self, downsample: float) -> int:
        """The deepest level whose downsample is <= ``downsample`` (so we only ever shrink)."""
        best = 0
        for i, ds in enumerate(self.info.level_downsamples):
            if ds <= downsample * (1 + 1e-6):
                best = i
        return best

    # -- pixels ----------------------------------------------------------------------
    def read_region(self, location_l0: tuple[int, int], level: int, size_px: tuple[int, int]) -> np.ndarray:
        """RGB uint8 array (H, W, 3) of ``size_px`` pixels at ``level``, top-left at level-0 ``location_l0``.

        Transparent areas (outside the scanned region) come back white, as on glass.
        """
        if self._handle is None:
            raise CorruptSlideError(f"The slide '{self.info.name}' has been closed.")
        try:
            if self._lock is not None:
                with self._lock:
                    rgba = self._handle.read_region(location_l0, level, size_px)
            else:
                rgba = self._handle.read_region(location_l0, level, size_px)
        except Exception as exc:  # openslide.OpenSlideError, OSError from PIL, ...
            raise CorruptSlideError(
                f"The slide '{self.info.name}' opened but its image data could not be read "
                "(the file is damaged or incomplete). Re-export or re-copy the slide."
            ) from exc
        arr = np.asarray(rgba)
        rgb = arr[..., :3].copy()
        alpha = arr[..., 3]
        if alpha.min() < 255:
            # OpenSlide returns premultiplied ARGB; transparent = outside the scan = white.
            a = alpha[..., None].astype(np.float32) / 255.0
            rgb = (rgb.astype(np.float32) + 255.0 * (1.0 - a)).clip(0, 255).astype(np.uint8)
        return rgb

    def read_level(self, level: int) -> np.ndarray:
        """The whole of one (small) level as RGB uint8."""
        w, h = self.info.level_dimensions[level]
        return self.read_region((0, 0), level, (w, h))

    def thumbnail(self, max_size_px: int = 1024) -> tuple[np.ndarray, float]:
        """A thumbnail whose longer side is at most ``max_size_px``.

        Returns ``(rgb (H, W, 3) uint8, downsample)`` where ``downsample`` is level-0 pixels
        per thumbnail pixel (the same on both axes, up to rounding).
        """
        from PIL import Image

        w0, h0 = self.dimensions
        downsample = max(w0, h0) / max_size_px
        if downsample <= 1:
            return self.read_level(0), 1.0
        level = self.best_level_for_downsample(downsample)
        out_w = max(1, round(w0 / downsample))
        out_h = max(1, round(h0 / downsample))
        lw, lh = self.info.level_dimensions[level]
        if lw * lh > THUMBNAIL_STRIP_PIXELS:
            # No level near the thumbnail's size (a flat or shallow pyramid): read the level in
            # horizontal strips and shrink each, so memory stays at one strip however big the slide.
            return self._thumbnail_by_strips(level, out_w, out_h), w0 / out_w
        img = self.read_level(level)
        if img.shape[1] != out_w or img.shape[0] != out_h:
            img = np.asarray(Image.fromarray(img).resize((out_w, out_h), Image.Resampling.BOX))
        return img, w0 / out_w

    def _thumbnail_by_strips(self, level: int, out_w: int, out_h: int) -> np.ndarray:
        from PIL import Image

        lw, lh = self.info.level_dimensions[level]
        scale_l0 = self.info.level_downsamples[level]
        out = np.empty((out_h, out_w, 3), np.uint8)
        rows_per_strip = max(1, THUMBNAIL_STRIP_PIXELS // 4 // lw)  # level rows per read
        y_out = 0
        for y in range(0, lh, rows_per_strip):
            h = min(rows_per_strip, lh - y)
            strip = self.read_region((0, round(y * scale_l0)), level, (lw, h))
            y_end = out_h if y + h >= lh else min(out_h, round((y + h) * out_h / lh))
            if y_end > y_out:
                out[y_out:y_end] = np.asarray(
                    Image.fromarray(strip).resize((out_w, y_end - y_out), Image.Resampling.BOX)
                )
                y_out = y_end
        return out

    def associated_images(self) -> dict[str, np.ndarray]:
        """Label, macro and thumbnail images stored beside the pyramid (may be empty)."""
        if self._handle is None or self.is_plain_image:
            return {}
        out = {}
        try:
            for name, img in self._handle.associated_images.items():
                out[name] = np.asarray(img.convert("RGB"))
        except Exception:
            return {}
        return out


def _plain_image_size(path: Path) -> tuple[str, tuple[int, int]] | None:
    """(format, (w, h)) from the header of a plain image, or None if PIL does not recognise it."""
    from PIL import Image, UnidentifiedImageError

    try:
        # Only the header is read here; pixel data is decoded later by ImageSlide. The size
        # limit is ours (MAX_PLAIN_IMAGE_PIXELS), so PIL's own warning would only be noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.format or "", img.size
    except Image.DecompressionBombError:
        return "BOMB", (0, 0)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def _info_from_openslide(path: Path, handle: Any, vendor: str, size: int, mpp: float | None) -> SlideInfo:
    import openslide

    props = dict(handle.properties)
    slide_mpp_x = _plausible_mpp(_parse_float(props.get(openslide.PROPERTY_NAME_MPP_X)))
    slide_mpp_y = _plausible_mpp(_parse_float(props.get(openslide.PROPERTY_NAME_MPP_Y)))
    if mpp is not None:
        mpp_x = mpp_y = validate_mpp(mpp)
        source = "user"
    elif slide_mpp_x is not None and slide_mpp_y is not None:
        mpp_x, mpp_y, source = slide_mpp_x, slide_mpp_y, "slide"
    else:
        mpp_x = mpp_y = None
        source = "missing"
    w, h = handle.dimensions
    # Keep the standard openslide.* keys and vendor keys, not the per-level and hash noise.
    kept = {k: v for k, v in props.items() if "level[" not in k and not k.startswith("openslide.quickhash")}
    return SlideInfo(
        path=str(path),
        name=path.name,
        vendor=vendor,
        width_px=int(w),
        height_px=int(h),
        level_count=int(handle.level_count),
        level_dimensions=tuple((int(a), int(b)) for a, b in handle.level_dimensions),
        level_downsamples=tuple(float(d) for d in handle.level_downsamples),
        mpp_x=mpp_x,
        mpp_y=mpp_y,
        mpp_source=source,
        objective_power=_parse_float(props.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER)),
        file_size_bytes=size,
        properties=kept,
    )


def open_slide(path: str | os.PathLike[str], mpp: float | None = None) -> Slide:
    """Open a slide or plain image and check that its pixels can be read.

    ``mpp`` (microns per pixel at level 0) overrides the slide's own value; it is required
    later (``Slide.mpp``) for slides that do not record a plausible one.

    Raises a :class:`mrrp.errors.SlideError` subclass for every unusable input.
    """
    import openslide

    p = Path(path)
    size = _check_file(p)
    if mpp is not None:
        mpp = validate_mpp(mpp)

    try:
        vendor = openslide.OpenSlide.detect_format(str(p))
    except Exception:
        vendor = None

    if vendor is not None:
        try:
            handle = openslide.OpenSlide(str(p))
        except Exception as exc:
            raise CorruptSlideError(
                f"The slide {_describe(p)} looks like a {vendor} slide but cannot be opened: "
                "the file is damaged, incomplete or uses a compression OpenSlide does not support."
            ) from exc
        slide = Slide(handle, _info_from_openslide(p, handle, vendor, size, mpp), is_plain_image=False)
    else:
        header = _plain_image_size(p)
        if header is None or (header[0] not in PLAIN_IMAGE_FORMATS and header[0] != "BOMB"):
            kind = f" ({header[0]} image)" if header else ""
            slide_exts = ".svs, .tif/.tiff, .ndpi, .scn, .mrxs, .vms, .bif, .dcm, .png or .jpg"
            raise UnsupportedFormatError(
                f"{_describe(p)}{kind} is not a slide format mrrp can read. Use a whole-slide image ({slide_exts})."
            )
        fmt, (w, h) = header
        if fmt == "BOMB" or w * h > MAX_PLAIN_IMAGE_PIXELS:
            raise ImageTooLargeError(
                f"The image {_describe(p)} is too large to open as a plain picture "
                f"(more than {MAX_PLAIN_IMAGE_PIXELS // 1_000_000} million pixels). "
                "Save it as a pyramidal slide (e.g. tiled TIFF or SVS) instead."
            )
        try:
            handle = openslide.ImageSlide(str(p))
        except Exception as exc:
            raise CorruptSlideError(f"The image {_describe(p)} cannot be decoded; the file is damaged.") from exc
        info = SlideInfo(
            path=str(p),
            name=p.name,
            vendor=f"image/{fmt.lower()}",
            width_px=int(w),
            height_px=int(h),
            level_count=1,
            level_dimensions=((int(w), int(h)),),
            level_downsamples=(1.0,),
            mpp_x=mpp,
            mpp_y=mpp,
            mpp_source="user" if mpp is not None else "missing",
            objective_power=None,
            file_size_bytes=size,
            properties={},
        )
        slide = Slide(handle, info, is_plain_image=True)

    # "Opens, then fails on read" files must fail here, not halfway through feature
    # extraction: decode the smallest level once (cheap: at most a few hundred KB).
    try:
        if slide.is_plain_image:
            slide.read_region((0, 0), 0, (min(64, slide.info.width_px), min(64, slide.info.height_px)))
        else:
            slide.read_level(slide.info.level_count - 1)
    except CorruptSlideError:
        slide.close()
        raise
    return slide


def read_slide_info(path: str | os.PathLike[str], mpp: float | None = None) -> SlideInfo:
    """Open, validate and close: the metadata of a slide."""
    with open_slide(path, mpp=mpp) as slide:
        return slide.info


def slide_fingerprint(path: str | os.PathLike[str]) -> str:
    """A content hash of a slide file that stays fast on multi-GB files.

    Hashing every byte of a 3 GB slide takes several seconds on a laptop disk, every time a
    slide is opened. Instead we hash the size plus the first and last MiB and
    ``_FINGERPRINT_SAMPLES`` MiB evenly spread through the file: any re-scan, re-export or
    truncation changes the TIFF directory at the start or end and hence the key. Files
    smaller than the sampled total are hashed whole.
    """
    p = Path(path)
    size = _check_file(p)
    h = hashlib.sha256()
    h.update(str(size).encode())
    with open(p, "rb") as fh:
        if size <= _FINGERPRINT_CHUNK * (_FINGERPRINT_SAMPLES + 2):
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        else:
            last = size - _FINGERPRINT_CHUNK
            for i in range(_FINGERPRINT_SAMPLES + 2):
                fh.seek(last * i // (_FINGERPRINT_SAMPLES + 1))  # 0, ..., last: first and last MiB included
                h.update(fh.read(_FINGERPRINT_CHUNK))
    return h.hexdigest()
