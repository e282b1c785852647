"""The imaging model: display and probe constants, the frame record, speckle and smooth random fields."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

VIEWS = ("radial", "antiradial")
MARGINS = ("circumscribed", "indistinct", "angular", "microlobulated", "spiculated")

# Display: amplitude at which the grey level saturates, and the compression exponent (1 = linear envelope).
A_REF = 1.8
GAMMA = 0.65
# Point-spread function of a ~12 MHz linear probe, Gaussian sigmas in mm: axial resolution is finer than
# lateral, so speckle grains are wider than tall.
PSF_AXIAL_SIGMA_MM = 0.11
PSF_LATERAL_SIGMA_MM = 0.26
# Round-trip attenuation (~0.45 dB/cm/MHz at 10 MHz) and the share of it the TGC curve gives back.
ATTENUATION_DB_PER_MM = 0.9
TGC_COMPENSATION = 0.86
NOISE_FLOOR = 0.03  # electronic noise amplitude relative to fibroglandular backscatter (~ -30 dB)

# Backscatter amplitudes (fibroglandular tissue = ~1).
FAT_ECHO = 0.40
FIBROGLANDULAR_ECHO = 0.95
RETROMAMMARY_FAT_ECHO = 0.33
MUSCLE_ECHO = 0.27
CHEST_WALL_ECHO = 0.2
LESION_ECHO = 0.085  # markedly hypoechoic relative to fat, as most invasive carcinomas are

# The lesion must fit inside the field with room for its posterior column to be seen.
MAX_LESION_WIDTH_FRACTION = 0.72
MAX_LESION_DEPTH_FRACTION = 0.48
LESION_BOTTOM_FRACTION = 0.68

_STREAM_ANATOMY, _STREAM_LESION, _STREAM_VIEW, _STREAM_IDENTITY, _STREAM_UID = 11, 12, 13, 14, 15


@dataclass(frozen=True)
class UltrasoundImage:
    """One B-mode frame. Row 0 is the skin surface; depth grows downwards."""

    image: np.ndarray  # (H, W) uint8 grey levels
    lesion_mask: np.ndarray  # (H, W) bool, ground-truth tumour (core plus hypoechoic spicules)
    pixel_mm: float  # square pixels
    view: str = "radial"
    lesion_size_mm: float = 0.0  # longest axis of the drawn core ellipse, after clipping to the field

    @property
    def shape_px(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])


def _gaussian_transfer(shape: tuple[int, int], sigma_px: tuple[float, float], *, real: bool) -> np.ndarray:
    """Fourier transfer function of a Gaussian blur with (axial, lateral) sigmas, for (r)fft2 spectra."""
    ky = sfft.fftfreq(shape[0]).astype(np.float32)[:, None]
    kx = (sfft.rfftfreq(shape[1]) if real else sfft.fftfreq(shape[1])).astype(np.float32)[None, :]
    return np.exp(-2.0 * math.pi**2 * ((ky * sigma_px[0]) ** 2 + (kx * sigma_px[1]) ** 2))


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma_px: tuple[float, float]) -> np.ndarray:
    """(H, W) float32 Gaussian random field with unit variance, correlated over ``sigma_px`` (periodic)."""
    white = rng.standard_normal(shape, dtype=np.float32)
    out = sfft.irfft2(sfft.rfft2(white) * _gaussian_transfer(shape, sigma_px, real=True), s=shape)
    return (out / max(float(out.std()), 1e-6)).astype(np.float32)


def _smooth_1d(rng: np.random.Generator, n: int, sigma_px: float) -> np.ndarray:
    """(n,) float32 smooth unit-variance noise along the lateral axis."""
    out = ndimage.gaussian_filter1d(rng.standard_normal(n + 6 * int(sigma_px) + 2), sigma_px, mode="wrap")
    out = out[3 * int(sigma_px) + 1 : 3 * int(sigma_px) + 1 + n]
    return ((out - out.mean()) / max(float(out.std()), 1e-6)).astype(np.float32)


def speckle_iq(
    rng: np.random.Generator,
    shape_px: tuple[int, int],
    grain_px: tuple[float, float],
    reflectivity: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W) complex64 baseband echo: random scatterers weighted by ``reflectivity``, imaged by a Gaussian PSF.

    ``grain_px`` are the PSF's (axial, lateral) sigmas. Scatterers are circular complex Gaussian white
    noise and the PSF is linear, so where ``reflectivity`` is uniform (or None, i.e. 1) the field stays
    complex Gaussian: fully developed speckle, Rayleigh magnitude, E[|iq|^2] = reflectivity^2. Structures
    finer than the PSF (septa, spicules) come out blurred and speckled, as on a real scanner.
    """
    noise = rng.standard_normal((2, *shape_px), dtype=np.float32)
    scatterers = noise[0] + 1j * noise[1]
    if reflectivity is not None:
        scatterers *= reflectivity
    transfer = _gaussian_transfer(shape_px, grain_px, real=False)
    transfer *= np.float32(1.0 / math.sqrt(float(np.mean(transfer**2))))  # unit energy PSF: keeps E|iq|^2
    iq = sfft.ifft2(sfft.fft2(scatterers) * transfer)
    return (iq * np.float32(1.0 / math.sqrt(2.0))).astype(np.complex64)  # white noise had E|z|^2 = 2


def _soft_step(z: np.ndarray, width: float) -> np.ndarray:
    """0 → 1 across z = 0 over about ``width`` (same units as z); anti-aliases layer boundaries."""
    return 0.5 * (1.0 + np.tanh(z / max(width, 1e-6)))
