"""Premultiplied "over" in linear light."""

from __future__ import annotations

import numpy as np


def over(fg_premult: np.ndarray, fg_alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """(H, W, 3) premultiplied linear talent, (H, W) alpha, (H, W, 3) linear plate -> (H, W, 3) linear composite."""
    return fg_premult + bg * (1.0 - fg_alpha)[..., None]


def unpremultiply(premult: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Straight colour from premultiplied (zero where alpha is zero)."""
    out = np.zeros(premult.shape, np.float32)
    np.divide(premult, alpha[..., None], out=out, where=(alpha > 1e-6)[..., None])
    return np.clip(out, 0.0, 1.0, out=out)
