"""Colour transfer functions: encoded sRGB code values <-> float32 linear light.

All image arithmetic in the engine (compositing, relighting) happens on float32 linear RGB in [0, 1]. Video and
image files store non-linear code values; this module converts between the two with the sRGB transfer curve (the
curve the BT.709 display chain is matched to in editing software) using lookup tables, so a 1080p frame converts in
a few milliseconds.
"""

from __future__ import annotations

import numpy as np

LUMA_709 = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """Exact sRGB EOTF on float values in [0, 1]."""
    v = np.asarray(v, dtype=np.float32)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    """Exact inverse sRGB EOTF on float values (clipped to [0, 1])."""
    v = np.clip(np.asarray(v, dtype=np.float32), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055).astype(np.float32)


_DECODE_8 = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)
_DECODE_16 = srgb_to_linear(np.arange(65536, dtype=np.float32) / 65535.0)
# Encoding LUT indexed by linear value quantised to 16 bits: near black one step is 0.05 of an 8-bit code value.
_ENCODE_16 = linear_to_srgb(np.arange(65536, dtype=np.float32) / 65535.0)
_ENCODE_16_TO_8 = (_ENCODE_16 * 255.0 + 0.5).astype(np.uint8)
_ENCODE_16_TO_16 = (_ENCODE_16 * 65535.0 + 0.5).astype(np.uint16)


def to_linear(codes: np.ndarray) -> np.ndarray:
    """(..., C) uint8 or uint16 sRGB code values -> float32 linear in [0, 1] (alpha channels are not touched here)."""
    if codes.dtype == np.uint8:
        return _DECODE_8[codes]
    if codes.dtype == np.uint16:
        return _DECODE_16[codes]
    if codes.dtype in (np.float32, np.float64):
        return srgb_to_linear(codes)
    raise TypeError(f"unsupported dtype {codes.dtype}")


def from_linear(linear: np.ndarray, dtype=np.uint8) -> np.ndarray:
    """float32 linear (...) -> sRGB code values as uint8 or uint16, rounded to nearest."""
    t = np.multiply(linear, np.float32(65535.0), dtype=np.float32)
    t += np.float32(0.5)
    np.clip(t, 0.0, 65535.0, out=t)
    idx = t.astype(np.uint16)
    if dtype == np.uint8:
        return _ENCODE_16_TO_8[idx]
    if dtype == np.uint16:
        return _ENCODE_16_TO_16[idx]
    if dtype == np.float32:
        return _ENCODE_16[idx]
    raise TypeError(f"unsupported dtype {dtype}")


def alpha_to_float(alpha: np.ndarray) -> np.ndarray:
    """uint8/uint16/float alpha -> float32 in [0, 1] (alpha is linear coverage, never gamma-coded)."""
    if alpha.dtype == np.uint8:
        return alpha.astype(np.float32) * (1.0 / 255.0)
    if alpha.dtype == np.uint16:
        return alpha.astype(np.float32) * (1.0 / 65535.0)
    return np.clip(alpha.astype(np.float32), 0.0, 1.0)


def alpha_from_float(alpha: np.ndarray, dtype=np.uint8) -> np.ndarray:
    scale = 255.0 if dtype == np.uint8 else 65535.0
    return (np.clip(alpha, 0.0, 1.0) * scale + 0.5).astype(dtype)


def luma(linear_rgb: np.ndarray) -> np.ndarray:
    """Rec.709 luminance of (..., 3) linear RGB."""
    return linear_rgb @ LUMA_709
