"""Premultiplied "over" in linear light."""

from __future__ import annotations

import numpy as np


def over(fg_premult: np.ndarray, fg_alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """(H, W, 3) premultiplied linear talent, (H, W) alpha, (H, W, 3) linear plate -> (H, W, 3) linear composite."""
    return fg_premult + bg * (1.0 - fg_alpha)[..., None]


def unpremultiply(premult: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Straight colour from premultiplied (zero where alpha is zero)."""
    safe = np.where(alpha > 1e-6, alpha, 1.0)[..., None]
    return np.where(alpha[..., None] > 1e-6, np.clip(premult / safe, 0.0, 1.0), 0.0).astype(np.float32)
