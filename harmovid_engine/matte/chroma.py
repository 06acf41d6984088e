"""Chroma keyer for green and blue screens.

The key is a colour-difference key (the family of Keylight and Primatte's first stage): for a green screen the
"screen strength" of a pixel is ``G - max(R, B)``, normalised per pixel by its brightness and by the same ratio of the
key colour, so unevenly lit screens key evenly and neutral or skin colours (negative difference) stay fully opaque.
Tolerance and softness map screen strength to alpha; spill suppression limits the screen channel to the other two;
small islands and small holes are cleaned up; choke/feather and a rectangular garbage matte finish it.

The key colour is picked once per clip (from the border of a reference frame) and stored, so the key does not drift
from frame to frame. Input and output are code values in [0, 1] (keying happens on encoded values, as in every
keyer).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from ..errors import MatteError

_SCREEN_CHANNEL = {"green": 1, "blue": 2}


@dataclass
class ChromaKeySettings:
    screen: str = "auto"  # "green" | "blue" | "auto" (picked from the border)
    key_colour: list[float] | None = None  # RGB code values in [0, 1]; None: picked from the reference frame
    tolerance: float = 0.3  # screen strength above 1 - tolerance is fully transparent
    softness: float = 0.4  # width of the transition below that
    spill: float = 1.0  # 0: keep spill, 1: full suppression
    choke: float = 0.0  # px; positive shrinks the matte, negative grows it
    feather: float = 0.0  # px, Gaussian sigma of the edge blur
    despeckle: float = 0.002  # islands and holes smaller than this fraction of the frame are cleaned
    garbage: list[int] | None = None  # [x, y, w, h]: everything outside is transparent
    denoise: float = 1.0  # px, Gaussian sigma on the chroma before keying (compression noise)
    core: float = 6.0  # px; pixels farther than this inside the talent are solid (no see-through patches)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ChromaKeySettings":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def pick_key_colour(frame: np.ndarray, screen: str = "auto") -> tuple[str, np.ndarray]:
    """Pick (screen, key colour) from the border of ``frame`` ((H, W, 3) code values in [0, 1]).

    The border's most saturated green or blue pixels (median of the strongest half) are the screen. Raises
    :class:`MatteError` when the border holds no green or blue screen.
    """
    h, w = frame.shape[:2]
    b = max(2, min(h, w) // 20)
    border = np.concatenate([frame[:b].reshape(-1, 3), frame[-b:].reshape(-1, 3),
                             frame[:, :b].reshape(-1, 3), frame[:, -b:].reshape(-1, 3)])
    r, g, bl = border[:, 0], border[:, 1], border[:, 2]
    dg = g - np.maximum(r, bl)
    db = bl - np.maximum(r, g)
    if screen == "auto":
        screen = "green" if np.median(dg) >= np.median(db) else "blue"
    d = dg if screen == "green" else db
    strong = d >= max(0.05, np.percentile(d, 50))
    if strong.sum() < 0.1 * len(d):
        raise MatteError(f"no {screen} screen found around the frame's border: give --key with the right screen "
                         "colour, or import a matte")
    return screen, np.median(border[strong], axis=0).astype(np.float32)


def screen_strength(frame: np.ndarray, screen: str, key: np.ndarray) -> np.ndarray:
    """(H, W) float32: 1 on the key colour, 0 on neutral colours, negative on the opposite hue."""
    c = _SCREEN_CHANNEL[screen]
    others = [i for i in range(3) if i != c]
    d = frame[..., c] - np.maximum(frame[..., others[0]], frame[..., others[1]])
    kd = float(key[c] - max(key[others[0]], key[others[1]]))
    if kd <= 1e-3:
        raise MatteError("the key colour is not a green or blue screen colour")
    # Brightness-normalised difference (chroma ratio): shadows on the screen key like lit screen.
    eps = 0.08
    return (d / (frame[..., c] + eps)) / (kd / (float(key[c]) + eps))


class ChromaKeyer:
    """Keys frames of one clip with fixed settings; ``key(frame)`` -> (alpha, despilled frame)."""

    def __init__(self, settings: ChromaKeySettings, reference: np.ndarray | None = None):
        self.settings = settings
        if settings.key_colour is None:
            if reference is None:
                raise ValueError("a reference frame is needed to pick the key colour")
            settings.screen, key = pick_key_colour(reference, settings.screen)
            settings.key_colour = [round(float(v), 4) for v in key]
        elif settings.screen == "auto":
            k = np.asarray(settings.key_colour)
            settings.screen = "green" if k[1] - max(k[0], k[2]) >= k[2] - max(k[0], k[1]) else "blue"
        self.key_colour = np.asarray(settings.key_colour, np.float32)

    def key(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) float32 code values in [0, 1] -> ((H, W) float32 alpha, (H, W, 3) despilled code values)."""
        s = self.settings
        src = frame
        if s.denoise > 0:
            src = cv2.GaussianBlur(frame, (0, 0), s.denoise)
        strength = screen_strength(src, s.screen, self.key_colour)
        hi = 1.0 - s.tolerance
        lo = hi - max(s.softness, 1e-3)
        alpha = np.clip((hi - strength) / (hi - lo), 0.0, 1.0).astype(np.float32)
        alpha = despeckle(alpha, s.despeckle)
        if s.core > 0:
            alpha = solid_core(alpha, s.core)
        alpha = edge_ops(alpha, s.choke, s.feather)
        if s.garbage:
            alpha = apply_garbage(alpha, s.garbage)
        return alpha, suppress_spill(frame, s.screen, s.spill)


def suppress_spill(frame: np.ndarray, screen: str, amount: float) -> np.ndarray:
    """Limit the screen channel to the larger of the other two (amount 1), or part of the way."""
    if amount <= 0:
        return frame
    c = _SCREEN_CHANNEL[screen]
    others = [i for i in range(3) if i != c]
    limit = np.maximum(frame[..., others[0]], frame[..., others[1]])
    excess = np.maximum(frame[..., c] - limit, 0.0)
    out = frame.copy()
    out[..., c] = frame[..., c] - amount * excess
    return out


def despeckle(alpha: np.ndarray, min_fraction: float) -> np.ndarray:
    """Remove opaque islands and fill holes smaller than ``min_fraction`` of the frame."""
    if min_fraction <= 0:
        return alpha
    min_area = max(4, int(min_fraction * alpha.size))
    out = alpha.copy()
    visible = (alpha > 0.05).astype(np.uint8)  # islands: anything visible, even faint, that is small and alone
    n, labels, stats, _ = cv2.connectedComponentsWithStats(visible, connectivity=8)
    small = np.zeros(n, bool)
    small[1:] = stats[1:, cv2.CC_STAT_AREA] < min_area
    if small.any():
        region = cv2.dilate(small[labels].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        out[region & (alpha <= 0.999)] = 0.0
        out[small[labels]] = 0.0
    holes = (alpha <= 0.5).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(holes, connectivity=4)
    h, w = alpha.shape
    fill = np.zeros(n, bool)
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        touches = x == 0 or y == 0 or x + bw == w or y + bh == h
        fill[i] = area < min_area and not touches
    if fill.any():
        out[fill[labels]] = 1.0
    return out


def solid_core(alpha: np.ndarray, distance: float) -> np.ndarray:
    """Make pixels farther than ``distance`` px from any see-through pixel fully opaque (a core matte)."""
    inside = (alpha > 0.05).astype(np.uint8)
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
    return np.where(dist > distance, 1.0, alpha).astype(np.float32)


def detect_black_bars(frames: list[np.ndarray], threshold: float = 0.03) -> list[int] | None:
    """Letterbox/pillarbox bars (rows or columns near black in every given frame) -> garbage rect [x, y, w, h].

    Returns None when there are no bars. ``frames`` are (H, W, 3) code values in [0, 1].
    """
    stack = np.max(np.stack([f.max(axis=2) for f in frames]), axis=0)  # brightest over frames, (H, W)
    h, w = stack.shape
    rows = np.percentile(stack, 99, axis=1) < threshold
    cols = np.percentile(stack, 99, axis=0) < threshold

    def run(mask):
        n = 0
        while n < len(mask) // 3 and mask[n]:
            n += 1
        return n

    top, bottom = run(rows), run(rows[::-1])
    left, right = run(cols), run(cols[::-1])
    if top + bottom + left + right == 0:
        return None
    # a 2 px margin: the rows next to a bar are usually a dark transition, not picture
    m = 2
    top, bottom = top + m * (top > 0), bottom + m * (bottom > 0)
    left, right = left + m * (left > 0), right + m * (right > 0)
    return [left, top, w - left - right, h - top - bottom]


def edge_ops(alpha: np.ndarray, choke: float, feather: float) -> np.ndarray:
    """Choke (positive shrinks, negative grows, in px, sub-pixel via distance blending) then feather (sigma px)."""
    if abs(choke) > 1e-3:
        r = int(np.ceil(abs(choke)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        moved = cv2.erode(alpha, kernel) if choke > 0 else cv2.dilate(alpha, kernel)
        t = abs(choke) / r
        alpha = (1 - t) * alpha + t * moved
    if feather > 1e-3:
        alpha = cv2.GaussianBlur(alpha, (0, 0), feather)
    return np.clip(alpha, 0.0, 1.0).astype(np.float32)


def garbage_box(rect, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """A garbage rect [x, y, w, h] as the box (x0, y0, x1, y1) it keeps of an image of ``size`` = (w, h), clipped
    to the image; None when that is empty."""
    x, y, w, h = (int(v) for v in rect)
    W, H = size
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def apply_garbage(alpha: np.ndarray, rect) -> np.ndarray:
    keep = np.zeros_like(alpha)
    box = garbage_box(rect, alpha.shape[::-1])
    if box is not None:
        x0, y0, x1, y1 = box
        keep[y0:y1, x0:x1] = alpha[y0:y1, x0:x1]
    return keep
