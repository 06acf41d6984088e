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
    from .fast import place_premultiplied

    placed = place_premultiplied(rgb_linear, alpha, x, y, scale, canvas)
    if placed is not None:
        return placed
    # without the compiled kernel: OpenCV (its bilinear weights are quantised to 1/32 pixel)
    w_out, h_out = canvas
    src, (ax, bx, ay, by) = placement_source(rgb_linear, alpha, x, y, scale)
    m = np.array([[ax, 0.0, bx], [0.0, ay, by]], np.float64)
    out = cv2.warpAffine(src, m, (w_out, h_out), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    h, w = src.shape[:2]
    out *= np.outer(frame_coverage(ay, by, h, h_out), frame_coverage(ax, bx, w, w_out))[..., None]
    # bilinear weights sum to one, so alpha stays in [0, 1] up to rounding: trim that
    a = np.ascontiguousarray(out[..., 3])
    cv2.threshold(a, 1.0, 1.0, cv2.THRESH_TRUNC, dst=a)
    return out[..., :3], a


def frame_coverage(a: float, b: float, n_src: int, n_out: int) -> np.ndarray:
    """(n_out,) how much of each output pixel (along one axis) the talent's frame covers, for the sampling
    p = a * k + b of a bordered source of n_src samples (its pixels 1 .. n_src - 2 cover [0.5, n_src - 1.5] in
    sample positions, and sample position p is output edge coordinate (p - b) / a + 0.5). Placement multiplies the
    talent by it: a body cut by the talent's frame reaches that edge in full, and a frame edge inside the canvas is
    antialiased by its exact coverage."""
    lo, hi = (0.5 - b) / a + 0.5, (n_src - 1.5 - b) / a + 0.5
    k = np.arange(n_out, dtype=np.float64)
    return np.clip(np.minimum(k + 1.0, hi) - np.maximum(k, lo), 0.0, 1.0).astype(np.float32)


def placement_source(rgb_linear: np.ndarray, alpha: np.ndarray, x: float, y: float, scale: float, pad=None):
    """What placement resamples and where: (premultiplied RGBA float32 with a one-pixel border repeating its edge,
    (ax, bx, ay, by)). Output pixel (i, j) samples it bilinearly at (ax * j + bx, ay * i + by), and takes the part
    of it the talent's frame covers (:func:`frame_coverage`). ``pad``: the compiled kernel making the bordered
    source (else OpenCV does)."""
    h, w = alpha.shape
    sx = sy = scale
    if scale >= 0.5 and pad is not None:
        src = np.empty((h + 2, w + 2, 4), np.float32)
        pad(rgb_linear.astype(np.float32, copy=False), alpha.astype(np.float32, copy=False), src)
    else:
        a = np.ascontiguousarray(alpha, np.float32)
        premult = cv2.multiply(np.ascontiguousarray(rgb_linear, np.float32), cv2.merge([a, a, a]))
        if scale < 0.5:  # area-average first so a strong downscale does not alias
            tw, th = max(1, round(w * scale * 2)), max(1, round(h * scale * 2))
            premult = cv2.resize(premult, (tw, th), interpolation=cv2.INTER_AREA)
            a = cv2.resize(a, (tw, th), interpolation=cv2.INTER_AREA)
            sx, sy = scale * w / tw, scale * h / th
        src = cv2.copyMakeBorder(cv2.merge([*cv2.split(premult), a]), 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    # Pixel i covers [i, i+1): source centre u + 0.5 lands on x + sx * (u + 0.5), i.e. output index sx*u + x + sx/2 - 1/2;
    # the border shifts source indices by one.
    return src, (1.0 / sx, 1.0 - (x + 0.5 * sx - 0.5) / sx, 1.0 / sy, 1.0 - (y + 0.5 * sy - 0.5) / sy)


def plate_index_for(talent_index: int, talent_fps: Fraction, plate_fps: Fraction | None,
                    plate_count: int | None) -> int:
    """Plate frame shown at talent frame ``talent_index``: the plate is retimed to the talent's frame rate (nearest
    earlier plate frame at the same time) and holds its last frame when it is shorter than the talent."""
    if plate_count is None or plate_fps is None:
        return 0
    t = Fraction(talent_index) / Fraction(talent_fps)
    idx = int(t * Fraction(plate_fps) + Fraction(1, 10**6))
    return min(idx, plate_count - 1)
