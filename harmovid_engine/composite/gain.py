"""A log-gain field applied to the talent: the one numpy implementation of ``talent * exp(field * alpha)``.

Every engine and deflicker describes its change as a smooth log-gain field over a box of the talent (see
``harmovid_engine.engines.Engine.log_gain``). Renders sum the fields at a quarter of the talent's size and apply them in
the compiled finishing pass (``composite.fast.relight_finish``); this function is the same arithmetic at any size for
small working copies (the deflicker's samples, the bench's baselines, the per-frame view).
"""

from __future__ import annotations

import cv2
import numpy as np


def apply_log_gain(out: np.ndarray, roi, field: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    """``out`` (H, W, 3) float32 linear with ``roi = (x0, y0, x1, y1)`` multiplied by ``exp(field)`` (field
    (y1 - y0, x1 - x0, 3) log units), weighted by ``alpha`` (H, W) there: soft-edge pixels are only partly talent."""
    x0, y0, x1, y1 = roi
    field = np.asarray(field, np.float32)
    if alpha is not None:
        a = np.ascontiguousarray(alpha[y0:y1, x0:x1], np.float32)
        field = cv2.multiply(field, cv2.merge([a, a, a]))
    res = out.copy()
    res[y0:y1, x0:x1] = cv2.multiply(np.ascontiguousarray(out[y0:y1, x0:x1]), cv2.exp(field))
    return res
