"""Temporal matte smoothing: a static edge must not boil.

Each pixel's alpha is averaged with the same pixel in neighbouring frames, weighted by how similar the talent's
colour is there (a joint-bilateral filter in time). Where the talent does not move, compression noise in the key
averages out; where it moves, the weights fall to zero and the current frame's alpha is kept. The radius is the
stage's temporal window: rendering frames [s, e] needs mattes of [s - r, e + r].
"""

from __future__ import annotations

import numpy as np


def smooth_alpha_in_time(alphas: list[np.ndarray], frames: list[np.ndarray], centre: int,
                         sigma: float = 0.03) -> np.ndarray:
    """Joint-bilateral temporal average of ``alphas[centre]``.

    alphas: list of (H, W) float32 alpha; frames: matching (H, W, 3) float32 guide images (code values or linear);
    sigma: colour difference (RMS over channels) at which a neighbour's weight drops to exp(-1/2).
    """
    ref = frames[centre]
    num = alphas[centre].astype(np.float32).copy()
    den = np.ones_like(num)
    inv = 1.0 / (2.0 * sigma * sigma * 3.0)
    for k, (a, f) in enumerate(zip(alphas, frames)):
        if k == centre:
            continue
        diff = f - ref
        w = np.exp(-np.einsum("hwc,hwc->hw", diff, diff) * inv)
        num += w * a
        den += w
    return num / den
