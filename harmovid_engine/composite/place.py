"""Placement: translate and uniformly scale the talent onto the plate's canvas, with sub-pixel resampling."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np


def place_talent(rgb_linear: np.ndarray, alpha: np.ndarray, x: float, y: float, scale: float,
                 canvas: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Place talent on a canvas of ``canvas = (width, height)``.

    rgb_linear: (h, w, 3) float32 linear; alpha: (h, w) float32. The talent's pixel (u, v) lands at
    (x + scale * u, y + scale * v) (pixel centres, sub-pixel exact). Returns premultiplied (H, W, 3) float32 and
    (H, W) float32 alpha. Parts outside the canvas are cropped; empty canvas where the talent is not.
    Resampling is done on premultiplied colour so edges carry no dark or bright fringe.
    """
    w_out, h_out = canvas
    a = np.ascontiguousarray(alpha, np.float32)
    premult = cv2.merge([*cv2.split(cv2.multiply(np.ascontiguousarray(rgb_linear, np.float32),
                                                 cv2.merge([a, a, a]))), a])
    h, w = alpha.shape
    if scale == 1.0 and float(x).is_integer() and float(y).is_integer():
        out = np.zeros((h_out, w_out, 4), np.float32)
        xi, yi = int(x), int(y)
        x0, y0 = max(0, xi), max(0, yi)
        x1, y1 = min(w_out, xi + w), min(h_out, yi + h)
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = premult[y0 - yi:y1 - yi, x0 - xi:x1 - xi]
        return out[..., :3], out[..., 3]
    src, sx, sy = premult, scale, scale
    if scale < 0.5:  # area-average first so a strong downscale does not alias
        tw, th = max(1, round(w * scale * 2)), max(1, round(h * scale * 2))
        src = cv2.resize(premult, (tw, th), interpolation=cv2.INTER_AREA)
        sx, sy = scale * w / tw, scale * h / th
    # Pixel i covers [i, i+1): source centre u + 0.5 lands on x + sx * (u + 0.5), i.e. output index sx*u + x + sx/2 - 1/2.
    m = np.array([[sx, 0.0, x + 0.5 * sx - 0.5], [0.0, sy, y + 0.5 * sy - 0.5]], np.float64)
    out = cv2.warpAffine(src, m, (w_out, h_out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=(0, 0, 0, 0))
    # bilinear weights sum to one, so alpha stays in [0, 1] up to rounding: trim that
    a = cv2.extractChannel(out, 3)
    cv2.threshold(a, 1.0, 1.0, cv2.THRESH_TRUNC, dst=a)
    return out[..., :3], a


def plate_index_for(talent_index: int, talent_fps: Fraction, plate_fps: Fraction | None,
                    plate_count: int | None) -> int:
    """Plate frame shown at talent frame ``talent_index``: the plate is retimed to the talent's frame rate (nearest
    earlier plate frame at the same time) and holds its last frame when it is shorter than the talent."""
    if plate_count is None or plate_fps is None:
        return 0
    t = Fraction(talent_index) / Fraction(talent_fps)
    idx = int(t * Fraction(plate_fps) + Fraction(1, 10**6))
    return min(idx, plate_count - 1)
