"""Matte brush: add/erase strokes with size and hardness, recorded as small undo atoms.

A stroke touches only its bounding box, so its undo record is that box's before/after patches (8-bit): memory per
step is bounded by the stroke's extent, not the frame size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..colour import alpha_from_float, alpha_to_float


@dataclass
class Stroke:
    points: list  # [(x, y), ...] in frame pixels
    radius: float = 20.0
    hardness: float = 0.7  # 1: hard edge; 0: soft all the way from the centre
    erase: bool = False
    opacity: float = 1.0


@dataclass
class MatteEdit:
    """One undoable change of a frame's matte: the touched box and its 8-bit content before and after."""

    frame: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    before: np.ndarray
    after: np.ndarray

    def apply(self, alpha: np.ndarray, undo: bool = False) -> np.ndarray:
        x0, y0, x1, y1 = self.box
        out = alpha.copy()
        out[y0:y1, x0:x1] = alpha_to_float(self.before if undo else self.after)
        return out

    @property
    def nbytes(self) -> int:
        return self.before.nbytes + self.after.nbytes


def stroke_coverage(shape: tuple[int, int], stroke: Stroke) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """(box, coverage in [0, 1] over the box) of a stroke on a frame of ``shape`` (H, W); None off-frame."""
    h, w = shape
    r = max(0.5, float(stroke.radius))
    pts = np.asarray(stroke.points, np.float32).reshape(-1, 2)
    if not len(pts):
        return None
    pad = int(np.ceil(r)) + 1
    x0, y0 = max(0, int(pts[:, 0].min()) - pad), max(0, int(pts[:, 1].min()) - pad)
    x1, y1 = min(w, int(pts[:, 0].max()) + pad + 1), min(h, int(pts[:, 1].max()) + pad + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    # distance to the stroke's centre line, with sub-pixel positions (4x fixed point)
    line = np.full((y1 - y0, x1 - x0), 255, np.uint8)
    p = np.round((pts - [x0, y0]) * 4).astype(np.int32)
    if len(p) == 1:
        cv2.circle(line, tuple(int(v) for v in p[0]), 0, 0, -1, cv2.LINE_8, 2)
    else:
        cv2.polylines(line, [p], False, 0, 1, cv2.LINE_8, 2)
    d = cv2.distanceTransform(line, cv2.DIST_L2, 5)
    inner = r * float(np.clip(stroke.hardness, 0.0, 1.0))
    cov = np.clip((r - d) / max(r - inner, 1e-3), 0.0, 1.0) * float(np.clip(stroke.opacity, 0.0, 1.0))
    return (x0, y0, x1, y1), cov.astype(np.float32)


def apply_stroke(alpha: np.ndarray, stroke: Stroke, frame: int = 0) -> tuple[np.ndarray, MatteEdit | None]:
    """New matte and the undo atom of ``stroke`` painted on ``alpha`` ((H, W) float32)."""
    hit = stroke_coverage(alpha.shape, stroke)
    if hit is None:
        return alpha, None
    (x0, y0, x1, y1), cov = hit
    patch = alpha[y0:y1, x0:x1]
    new = patch * (1 - cov) if stroke.erase else patch + (1 - patch) * cov
    before = alpha_from_float(patch, np.uint8)
    after = alpha_from_float(new, np.uint8)
    edit = MatteEdit(frame, (x0, y0, x1, y1), before, after)
    return edit.apply(alpha), edit
