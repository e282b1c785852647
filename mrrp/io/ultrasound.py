"""Read one breast ultrasound frame (PNG, JPEG or DICOM) into a de-identified 8-bit grayscale image.

The format is sniffed from the file's bytes, never trusted from its extension. A PNG/JPEG frame is turned
as its EXIF Orientation tag says (as every viewer shows it); of a multi-frame DICOM the first frame is read
and :attr:`UltrasoundInput.frame_note` says so. DICOM headers are
de-identified (:func:`deidentify`, DICOM PS3.15 basic profile) the moment the file is parsed, before
any other code looks at the dataset; the returned :class:`UltrasoundInput` carries the pixels, the
pixel size and the *names* of the attributes that were removed, never their values. Nothing here
logs. Every failure a user can cause is an :class:`UltrasoundError` with a one-sentence message
meant for a clinician.

De-identification itself lives in :mod:`mrrp.io.dicom_deid` (shared with the MRI reader);
:func:`deidentify` is re-exported here. A DICOM frame marked ``BurnedInAnnotation = YES`` (text, perhaps
the patient's name, in the pixels) is refused with :class:`BurnedInUltrasoundError` before it is decoded.

Units are in the names: ``*_mm`` millimetres, ``*_px`` pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mrrp._uploads import shown_name
from mrrp.errors import InputError
from mrrp.io.dicom_deid import BurnedInAnnotationError, burned_in_annotation, deidentify, refuse_burned_in_annotation
from mrrp.io.dicom_modalities import IMAGE_MODALITY_NAMES, NO_IMAGE_MODALITY_NAMES

# A US frame is at most a few megapixels; 40 Mpx (40 MB as 8-bit) leaves room for screenshots of
# high-resolution monitors while refusing decompression bombs before they are decoded.
DEFAULT_MAX_PIXELS = 40_000_000
# A frame is encoded whole and as four quadrants; below this it has no quadrants and shows nothing.
MIN_SIDE_PX = 4

# Plausible physical pixel sizes for a B-mode image; outside this the calibration is not trusted.
MIN_PLAUSIBLE_PIXEL_MM = 0.001
MAX_PLAUSIBLE_PIXEL_MM = 5.0

ACCEPTED = "PNG, JPEG or DICOM"


class UltrasoundError(InputError):
    """An ultrasound image file cannot be used."""


class UltrasoundNotFoundError(UltrasoundError):
    """The path does not exist or is not a file."""


class EmptyUltrasoundFileError(UltrasoundError):
    """The file has zero bytes."""


class UnsupportedUltrasoundFormatError(UltrasoundError):
    """The file is not a PNG, JPEG or DICOM image (or uses a DICOM compression we cannot decode)."""


class NoPixelDataError(UltrasoundError):
    """A valid DICOM file that holds no image, e.g. a structured report."""


class NotUltrasoundError(UltrasoundError):
    """A DICOM image of another modality (CT, MR, mammography, whole-slide, ...)."""


class BurnedInUltrasoundError(UltrasoundError, BurnedInAnnotationError):
    """A DICOM frame marked BurnedInAnnotation = YES: text (possibly the patient's name) is in its pixels."""


class UltrasoundTooLargeError(UltrasoundError):
    """The image has more pixels than the safe decoding limit (e.g. a decompression bomb)."""


class UltrasoundTooSmallError(UltrasoundError):
    """The image is too small to show anything (e.g. 1 x 1 pixel)."""


class CorruptUltrasoundError(UltrasoundError):
    """The file looks like a supported format but cannot be decoded (truncated or damaged)."""


@dataclass
class UltrasoundInput:
    """One de-identified ultrasound frame. Row 0 is the top of the image as stored."""

    image: np.ndarray  # (H, W) uint8 grayscale
    source_name: str  # file name only (no folder)
    format: str  # "png", "jpeg" or "dicom"
    pixel_mm: float | None  # physical size of one (square) pixel; None when the file does not calibrate it
    removed_identifiers: list[str] = field(default_factory=list)  # DICOM attribute names stripped, never values
    burned_in_annotation: bool | None = None  # DICOM BurnedInAnnotation: False = stated clean, None = not stated
    frame_count: int = 1  # frames in the file (a DICOM cine loop); only the first is read

    @property
    def shape_px(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])

    @property
    def frame_note(self) -> str:
        """The sentence saying which frame of a multi-frame file was used; "" for a single frame."""
        if self.frame_count <= 1:
            return ""
        return (
            f"The ultrasound file '{self.source_name}' holds {self.frame_count} frames: frame 1 of "
            f"{self.frame_count} was used; to use another, export that frame on its own."
        )


# --------------------------------------------------------------------------------------------------
# Format sniffing
# --------------------------------------------------------------------------------------------------

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
# Things clinicians plausibly upload by mistake, so the message can say what the file is.
_OTHER_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"PK\x03\x04", "a ZIP archive or Office document"),
    (b"\xd0\xcf\x11\xe0", "an Office document"),
    (b"{\\rtf", "an RTF document"),
)

# Modalities that are clearly not ultrasound; an 'other' or secondary-capture object may well hold an
# ultrasound frame, so those are read.
_NOT_ULTRASOUND = {m: what for m, what in IMAGE_MODALITY_NAMES.items() if m not in ("US", "OT", "SC")}


def _describe(path: Path) -> str:
    return f"'{shown_name(path.name)}'"  # a bidi override in a name must not reverse the message


def _sniff(head: bytes) -> str | None:
    """'dicom', 'png', 'jpeg', 'dicom?' (a DICOM dataset without the 128-byte preamble) or None."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    # Old DICOM files may start straight at the file meta (0002,xxxx) or an identifying group (0008,xxxx).
    if head[:2] in (b"\x02\x00", b"\x08\x00") and len(head) >= 8:
        return "dicom?"
    return None


def read_ultrasound(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> UltrasoundInput:
    """Read the first frame of a PNG, JPEG or DICOM ultrasound file as a de-identified (H, W) uint8 image.

    Raises an :class:`UltrasoundError` subclass for anything a user can get wrong: a missing or empty
    file, a non-image, a DICOM file without pixels or of another modality, an image larger than
    ``max_pixels`` (checked from the header, before decoding), a DICOM marked as having burned-in text
    and a truncated or damaged file.
    """
    p = Path(path)
    if not p.exists():
        raise UltrasoundNotFoundError(f"The ultrasound file {_describe(p)} was not found at {p.parent}.")
    if not p.is_file():
        raise UltrasoundNotFoundError(f"{_describe(p)} is a folder, not an ultrasound image file.")
    if p.stat().st_size == 0:
        raise EmptyUltrasoundFileError(
            f"The ultrasound file {_describe(p)} is empty (0 bytes); it may not have finished copying."
        )
    with open(p, "rb") as fh:
        head = fh.read(132)
    kind = _sniff(head)
    if kind in ("png", "jpeg"):
        return _read_plain(p, max_pixels)
    if kind in ("dicom", "dicom?"):
        return _read_dicom(p, max_pixels, force=kind == "dicom?")
    what = next((desc for magic, desc in _OTHER_MAGIC if head.startswith(magic)), None)
    if what is not None:
        raise UnsupportedUltrasoundFormatError(
            f"{_describe(p)} is {what}, not an ultrasound image; please upload a {ACCEPTED} file."
        )
    raise UnsupportedUltrasoundFormatError(
        f"{_describe(p)} is not an image mrrp can read; please upload a {ACCEPTED} ultrasound file."
    )


# --------------------------------------------------------------------------------------------------
# PNG / JPEG
# --------------------------------------------------------------------------------------------------


def _too_large(p: Path, width_px: int, height_px: int, max_pixels: int) -> UltrasoundTooLargeError:
    return UltrasoundTooLargeError(
        f"The image {_describe(p)} is {width_px} x {height_px} pixels, more than the safe limit of "
        f"{max_pixels / 1e6:g} million pixels for an ultrasound frame."
    )


def _refuse_too_small(p: Path, width_px: int, height_px: int) -> None:
    if min(width_px, height_px) < MIN_SIDE_PX:
        raise UltrasoundTooSmallError(
            f"The image {_describe(p)} is only {width_px} x {height_px} pixels; an ultrasound frame is at least "
            f"{MIN_SIDE_PX} pixels on each side."
        )


def _rescale_minmax(a: np.ndarray) -> np.ndarray:
    """Any numeric (H, W) array → uint8 spanning 0–255 (a flat image maps to 0)."""
    a = a.astype(np.float64, copy=False)
    lo, hi = float(np.min(a)), float(np.max(a))
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    return np.round((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _read_plain(p: Path, max_pixels: int) -> UltrasoundInput:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            fmt = im.format
            width_px, height_px = im.size
            if width_px * height_px > max_pixels:
                raise _too_large(p, width_px, height_px, max_pixels)
            _refuse_too_small(p, width_px, height_px)
            im.load()  # decodes; a truncated file fails here
            # A phone or scanner may store the frame sideways with an EXIF Orientation tag; every viewer
            # shows it turned upright, so the model (and the Grad-CAM overlay) must see it the same way.
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                # 16-bit/float grayscale: PIL's convert("L") would clip, so stretch the actual range.
                gray = _rescale_minmax(np.asarray(im))
            else:
                # RGB screenshots, palettes, CMYK JPEGs → ITU-R 601 luma, as PIL defines "L".
                gray = np.asarray(im if im.mode == "L" else im.convert("L"), dtype=np.uint8)
    except Image.DecompressionBombError:
        # PIL's own guard (twice its MAX_IMAGE_PIXELS) fires inside open() for huge headers.
        raise UltrasoundTooLargeError(
            f"The image {_describe(p)} is larger than the safe limit of {max_pixels / 1e6:g} million pixels "
            "for an ultrasound frame."
        ) from None
    except UnidentifiedImageError:
        raise CorruptUltrasoundError(
            f"The image {_describe(p)} looks like a PNG or JPEG but cannot be read; it may be damaged."
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptUltrasoundError(
            f"The image {_describe(p)} is truncated or damaged and cannot be decoded; please export it again."
        ) from exc
    return UltrasoundInput(
        image=np.ascontiguousarray(gray),
        source_name=shown_name(p.name),
        format="png" if fmt == "PNG" else "jpeg",  # MPO (multi-picture JPEG from phones) counts as JPEG
        pixel_mm=None,  # PNG/JPEG dpi describes a printer, not the scan; calibration needs DICOM
    )


# --------------------------------------------------------------------------------------------------
# DICOM
# --------------------------------------------------------------------------------------------------


def _first(value: Any) -> Any:
    """First value of a possibly multi-valued DICOM element."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return value[0] if len(value) else None
    return value


def _as_float(value: Any) -> float | None:
    try:
        out = float(_first(value))
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _plausible_mm(value: float | None) -> float | None:
    if value is None:
        return None
    value = abs(value)
    return value if MIN_PLAUSIBLE_PIXEL_MM <= value <= MAX_PLAUSIBLE_PIXEL_MM else None


def dicom_pixel_mm(ds: Any) -> float | None:
    """Pixel size in mm: the ultrasound region calibration if present (the US standard), else PixelSpacing."""
    regions = ds.get("SequenceOfUltrasoundRegions") or []
    candidates: list[tuple[int, float]] = []
    for region in regions:
        if region.get("RegionSpatialFormat") != 1:  # 1 = 2-D tissue/flow image, not M-mode or spectral
            continue
        if region.get("PhysicalUnitsXDirection") != 3:  # 3 = cm
            continue
        dx_mm = _plausible_mm(None if (v := _as_float(region.get("PhysicalDeltaX"))) is None else v * 10.0)
        if dx_mm is None:
            continue
        dy_mm = None
        if region.get("PhysicalUnitsYDirection") == 3:
            dy_mm = _plausible_mm(None if (v := _as_float(region.get("PhysicalDeltaY"))) is None else v * 10.0)
        mm = dx_mm if dy_mm is None else (dx_mm + dy_mm) / 2.0
        candidates.append((0 if region.get("RegionDataType") == 1 else 1, mm))  # prefer tissue regions
    if candidates:
        return min(candidates, key=lambda c: c[0])[1]
    spacing = ds.get("PixelSpacing")
    if spacing is not None and len(spacing) == 2:
        row_mm, col_mm = _plausible_mm(_as_float(spacing[0])), _plausible_mm(_as_float(spacing[1]))
        if row_mm is not None and col_mm is not None:
            return (row_mm + col_mm) / 2.0
    return None


def _window_to_uint8(a: np.ndarray, ds: Any) -> np.ndarray:
    """Monochrome (H, W) → uint8: the file's VOI window if it has one, else 8-bit as is, else min/max."""
    center, width = _as_float(ds.get("WindowCenter")), _as_float(ds.get("WindowWidth"))
    if center is not None and width is not None and width > 1.0:
        # DICOM PS3.3 C.11.2.1.2.1 linear window.
        x = (a.astype(np.float64) - (center - 0.5)) / (width - 1.0) + 0.5
        return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    if a.dtype == np.uint8:
        return a
    return _rescale_minmax(a)


def _dicom_to_gray(frame: np.ndarray, ds: Any) -> np.ndarray:
    """First decoded frame → (H, W) uint8, applying the photometric interpretation."""
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric == "PALETTE COLOR" and frame.ndim == 2:
        frame = apply_color_lut(frame, ds)  # (H, W, 3), 8 or 16 bit
    if frame.ndim == 3:
        # pydicom returns YBR data already converted to RGB (as_rgb); luminance as PIL's "L" does.
        rgb = frame[..., :3].astype(np.float64)
        if frame.dtype != np.uint8:
            rgb *= 255.0 / max(float(rgb.max()), 1.0)
        return np.round(rgb @ np.array([0.299, 0.587, 0.114])).clip(0, 255).astype(np.uint8)
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        frame = apply_modality_lut(frame, ds)
    gray = _window_to_uint8(frame, ds)
    if photometric == "MONOCHROME1":
        gray = 255 - gray  # MONOCHROME1: low values are bright
    return gray


def _parse_dicom(p: Path, *, force: bool) -> tuple[Any, list[str]]:
    """(de-identified dataset, removed attribute names); refuses bytes that are not a DICOM dataset."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(p, force=force)
        # De-identify before anything else touches the dataset.
        removed = deidentify(ds)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        if force:
            raise UnsupportedUltrasoundFormatError(
                f"{_describe(p)} is not an image mrrp can read; please upload a {ACCEPTED} ultrasound file."
            ) from None
        raise CorruptUltrasoundError(
            f"The DICOM file {_describe(p)} is truncated or damaged and cannot be read; please export it again."
        ) from exc
    if force and "SOPClassUID" not in ds and "PixelData" not in ds and "Modality" not in ds:
        # force=True reads almost any bytes as a (garbage) dataset: demand the basics of a real one.
        raise UnsupportedUltrasoundFormatError(
            f"{_describe(p)} is not an image mrrp can read; please upload a {ACCEPTED} ultrasound file."
        )
    return ds, removed


def _check_is_ultrasound_image(p: Path, ds: Any) -> None:
    """Refuse a DICOM object without pixels (or cut short before them) and images of other modalities."""
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if "PixelData" not in ds:
        sop = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
        sop_name = str(getattr(sop, "name", "")) if sop is not None else ""
        if "Image Storage" in sop_name:
            # pydicom stops quietly at the end of a truncated file: an image class without pixels was cut short.
            raise CorruptUltrasoundError(
                f"The DICOM file {_describe(p)} is truncated (it ends before its image data); please export it again."
            )
        what = NO_IMAGE_MODALITY_NAMES.get(modality)
        if what is None:
            what = f"a '{sop_name}' object" if sop_name and sop_name != str(sop) else "a non-image object"
        raise NoPixelDataError(
            f"The DICOM file {_describe(p)} contains no image ({what}); please upload the ultrasound image itself."
        )
    if modality in _NOT_ULTRASOUND:
        raise NotUltrasoundError(
            f"The DICOM file {_describe(p)} is {_NOT_ULTRASOUND[modality]} (modality {modality}), "
            "not an ultrasound; please upload a breast ultrasound image."
        )


def _decode_first_frame(p: Path, ds: Any, frame_count: int) -> np.ndarray:
    """The first frame as pydicom decodes it: (H, W) or (H, W, 3)."""
    from pydicom.pixels import pixel_array

    try:
        frame = pixel_array(ds, index=0, as_rgb=True)  # first frame only: (H, W) or (H, W, 3)
    except (NotImplementedError, RuntimeError) as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", "an unknown compression")
        raise UnsupportedUltrasoundFormatError(
            f"The DICOM file {_describe(p)} is compressed as '{name}', which this installation cannot decode; "
            "please export it uncompressed or as PNG."
        ) from exc
    except (ValueError, EOFError, OSError, KeyError, AttributeError, TypeError) as exc:
        raise CorruptUltrasoundError(
            f"The DICOM file {_describe(p)} has damaged or incomplete image data and cannot be decoded."
        ) from exc
    if frame.ndim == 3 and frame.shape[-1] not in (3, 4) and frame.shape[0] == frame_count:
        frame = frame[0]  # some decoders ignore index for single-frame syntaxes
    return np.asarray(frame)


def _read_dicom(p: Path, max_pixels: int, *, force: bool) -> UltrasoundInput:
    ds, removed = _parse_dicom(p, force=force)
    _check_is_ultrasound_image(p, ds)
    # Identifiers burned into the pixels survive header de-identification: such a frame is never decoded.
    refuse_burned_in_annotation(ds, _describe(p), BurnedInUltrasoundError)
    # The size is checked from the header, before decoding, so a decompression bomb is never expanded.
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows <= 0 or cols <= 0:
        raise CorruptUltrasoundError(
            f"The DICOM file {_describe(p)} does not state its image size and cannot be decoded."
        )
    if rows * cols > max_pixels:
        raise _too_large(p, cols, rows, max_pixels)
    _refuse_too_small(p, cols, rows)
    frame_count = max(1, int(_as_float(ds.get("NumberOfFrames", 1)) or 1))
    gray = _dicom_to_gray(_decode_first_frame(p, ds, frame_count), ds)
    return UltrasoundInput(
        image=np.ascontiguousarray(gray),
        source_name=shown_name(p.name),
        format="dicom",
        pixel_mm=dicom_pixel_mm(ds),
        removed_identifiers=removed,
        burned_in_annotation=burned_in_annotation(ds),  # never True here: refused above
        frame_count=frame_count,
    )
