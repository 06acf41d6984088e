"""Compositing extras: light wrap from the plate onto the talent's edges, and a soft cast/contact shadow.

Both work in linear light. The light wrap's maps are made here at a quarter of the talent's size and applied in the
talent's last compiled pass (``fast.relight_finish``); the shadow is computed on a ~200 px grid (it is soft by nature)
and upsampled, so it costs a few milliseconds at 1080p.
"""

from __future__ import annotations

import cv2
import numpy as np

WRAP_MIN_ALPHA = 0.01  # the wrap reaches talent pixels above this alpha only


def light_wrap_maps(alpha: np.ndarray, plate: np.ndarray, strength: float = 0.3, radius: float | None = None,
                    picture: tuple[int, int, int, int] | None = None):
    """The light wrap at its working size (:func:`light_wrap_size`): (spill colour (h, w, 3), reach (h, w)), both
    float32, or None when there is nothing to wrap. The talent's pixel takes ``t + (max(spill, t) - t) * reach``
    with both maps upsampled bilinearly to the talent's size (and no reach where alpha <= ``WRAP_MIN_ALPHA``).
    ``picture`` (x0, y0, x1, y1): the talent's picture area inside black bars; the bars count as talent here (a
    body cut by a bar is not an edge the plate's light wraps around)."""
    if strength <= 0 or not (alpha > WRAP_MIN_ALPHA).any():
        return None
    h, w = alpha.shape
    if picture is not None and tuple(picture) != (0, 0, w, h):
        x0, y0, x1, y1 = picture
        solid = np.ones((h, w), np.float32)
        solid[y0:y1, x0:x1] = alpha[y0:y1, x0:x1]
        alpha = solid
    radius = radius or max(2.0, 0.012 * max(h, w))
    f = _light_wrap_factor(w, h)
    small = light_wrap_size((w, h))
    a = cv2.resize(alpha, small, interpolation=cv2.INTER_AREA)
    p = plate if plate.shape[1::-1] == small else cv2.resize(plate, small, interpolation=cv2.INTER_AREA)
    bg = 1.0 - a
    sig = radius / f
    spill = cv2.GaussianBlur(p * bg[..., None], (0, 0), sig)
    cover = cv2.GaussianBlur(bg, (0, 0), sig)
    spill = spill / np.maximum(cover, 1e-4)[..., None]
    # how much of the surround reaches each talent pixel: strong at the edge, none deep inside
    reach = np.clip(cover * 2.0, 0.0, 1.0) * np.float32(strength)
    return spill.astype(np.float32), reach.astype(np.float32)


def light_wrap_size(talent_size: tuple[int, int]) -> tuple[int, int]:
    """(w, h) at which :func:`light_wrap_maps` uses the plate, for a talent of ``talent_size`` = (w, h)."""
    w, h = talent_size
    f = _light_wrap_factor(w, h)
    return max(1, w // f), max(1, h // f)


def _light_wrap_factor(w: int, h: int) -> int:
    return 4 if min(h, w) >= 256 else 1


def shadow_map(alpha: np.ndarray, light_dir: np.ndarray | None, directionality: float = 0.5,
               opacity: float = 0.35, softness: float = 0.04) -> np.ndarray | None:
    """(H, W) shadow density in [0, 0.9]: a soft shadow of the talent cast away from the light, plus a contact shadow
    where the talent meets the bottom of its silhouette (feet on the ground, or a body cut by the frame).

    light_dir: (3,) x right, y up, z toward the camera (None: light from above the camera). ``opacity`` scales with
    how directional the plate's light is. None when there is nothing to shadow.
    """
    if opacity <= 0 or not (alpha > 0.01).any():
        return None
    h, w = alpha.shape
    sw, sh = shadow_grid((w, h))
    # (area averaging at a non-integer ratio is slow at 1080p; the map is blurred anyway)
    a = cv2.resize(alpha, (sw, sh), interpolation=cv2.INTER_LINEAR if max(w / sw, h / sh) > 2 else cv2.INTER_AREA)
    shade = _shadow_small(a, light_dir, directionality, opacity, softness)
    return None if shade is None else cv2.resize(shade, (w, h), interpolation=cv2.INTER_LINEAR)


def shadow_grid(size: tuple[int, int]) -> tuple[int, int]:
    """(w, h) of the working grid of the shadow for a canvas of ``size`` = (w, h): soft by nature, ~200 px."""
    w, h = size
    f = max(1, round(max(w, h) / 200))
    return max(1, w // f), max(1, h // f)


def shadow_from_talent(alpha: np.ndarray, x: float, y: float, scale: float, canvas: tuple[int, int],
                       light_dir, directionality: float = 0.5, opacity: float = 0.35,
                       softness: float = 0.04) -> np.ndarray | None:
    """:func:`shadow_map` of the talent's matte (in its own pixels) placed at ``(x, y, scale)`` on a canvas of
    ``canvas`` = (w, h), computed from the talent's matte directly on the shadow's small grid (no canvas-size
    matte is made)."""
    if opacity <= 0:
        return None
    w, h = canvas
    sw, sh = shadow_grid(canvas)
    fx, fy = sw / w, sh / h
    # talent pixel centre u lands on canvas x + scale * (u + 0.5) - 0.5, i.e. on grid (that + 0.5) * f - 0.5
    m = np.array([[scale * fx, 0.0, (x + 0.5 * scale) * fx - 0.5], [0.0, scale * fy, (y + 0.5 * scale) * fy - 0.5]])
    a = cv2.warpAffine(np.ascontiguousarray(alpha, np.float32), m, (sw, sh), flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    shade = _shadow_small(a, light_dir, directionality, opacity, softness)
    return None if shade is None else cv2.resize(shade, (w, h), interpolation=cv2.INTER_LINEAR)


def _shadow_small(a: np.ndarray, light_dir, directionality: float, opacity: float, softness: float):
    ys, xs = np.nonzero(a > 0.05)
    if len(ys) == 0:
        return None
    sh, sw = a.shape
    tall = ys.max() - ys.min() + 1
    d = np.array([0.0, 0.5, 0.85], np.float32) if light_dir is None else np.asarray(light_dir, np.float32)
    # cast shadow: shifted away from the light in the image plane, on a wall just behind the talent
    dx, dy = -d[0], d[1]  # light from the left (x < 0) throws the shadow to the right; from above: downward
    norm = max(np.hypot(dx, dy), 1e-3)
    offset = 0.06 * tall * min(norm / max(abs(d[2]), 0.3), 1.5)
    m = np.float32([[1, 0, dx / norm * offset], [0, 1, dy / norm * offset]])
    cast = cv2.warpAffine(a, m, (sw, sh), flags=cv2.INTER_LINEAR, borderValue=0)
    sig = max(1.0, softness * tall)
    cast = cv2.GaussianBlur(cast, (0, 0), sig)
    strength = opacity * float(np.clip(directionality, 0.15, 1.0))
    # contact shadow: occlusion right around the lower part of the silhouette
    bottom = ys.max()
    rows = np.arange(sh, dtype=np.float32)[:, None]
    lower = np.clip((rows - (bottom - 0.35 * tall)) / (0.35 * tall), 0, 1)
    contact = cv2.GaussianBlur(a, (0, 0), max(1.0, 0.02 * tall)) * lower
    shade = np.clip(strength * cast + 0.6 * opacity * contact, 0, 0.9).astype(np.float32)
    # The Gaussian tails reach far at densities no 8-bit code shows (1/512 darkens a code by at most ~0.25):
    # cutting them leaves the plate's own codes there, untouched by the export's composite.
    shade[shade < SHADE_FLOOR] = 0
    return shade


SHADE_FLOOR = 1.0 / 512
