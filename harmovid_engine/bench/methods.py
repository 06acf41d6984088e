"""The baselines every report lists beside the product's rows: ``reinhard`` (classic colour transfer) and ``ema``
(the analytic engine's per-frame parameters smoothed by an exponential moving average).

A baseline maps a clip (talent frames as float32 linear, mattes, plate frames) to harmonized talent frames (linear).
The engine and deflicker rows are not computed here: they come from the render graph itself (``bench/graph.py``).
"""

from __future__ import annotations

import weakref

import cv2
import numpy as np

from ..colour import from_linear, srgb_to_linear
from ..engines import create_engine


_PLATE_LAB: dict[int, tuple] = {}  # id(plate) -> (weak reference to it, its Lab mean and std)


def _plate_lab_stats(plate: np.ndarray):
    """The plate's Lab mean and std, computed once per plate array (a still plate serves every frame of a clip, a
    lut protocol's inpainted plates serve every method and draw)."""
    hit = _PLATE_LAB.get(id(plate))
    if hit is not None and hit[0]() is plate:
        return hit[1]
    p_lab = cv2.cvtColor(from_linear(plate, np.float32), cv2.COLOR_RGB2Lab).reshape(-1, 3)
    stats = p_lab.mean(0), p_lab.std(0)
    if len(_PLATE_LAB) >= 1024:
        _PLATE_LAB.clear()
    _PLATE_LAB[id(plate)] = (weakref.ref(plate), stats)
    return stats


def reinhard(talent: np.ndarray, alpha: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """Per-frame Reinhard et al. colour transfer: the talent's Lab mean/std over the matte onto the plate's."""
    m = alpha > 0.5
    if not m.any():
        return talent
    t_lab = cv2.cvtColor(from_linear(talent, np.float32), cv2.COLOR_RGB2Lab)
    tm, ts = t_lab[m].mean(0), t_lab[m].std(0) + 1e-6
    pm, pstd = _plate_lab_stats(plate)
    out = (t_lab - tm) / ts * pstd + pm
    rgb = cv2.cvtColor(out.astype(np.float32), cv2.COLOR_Lab2RGB)
    return srgb_to_linear(np.clip(rgb, 0, 1))


BASELINES = ("reinhard", "ema")


def run_baseline(name: str, talents, alphas, plates, fps: float, engine_settings: dict | None = None):
    """Harmonized talent frames (list of (H, W, 3) float32 linear) of a baseline."""
    if name == "reinhard":
        return [reinhard(t, a, p) for t, a, p in zip(talents, alphas, plates)]
    if name == "ema":
        eng = create_engine("analytic", engine_settings)
        out, state = [], None
        w = 1.0 / max(fps, 1.0)  # EMA weight 1 - 1/fps on the past
        for t, a, p in zip(talents, alphas, plates):
            params = eng.estimate(t, a, p)
            if params is not None:
                state = params if state is None else state.blend(params, w)
                state.bbox = params.bbox
            out.append(eng.apply(t, a, state if params is not None else None))
        return out
    raise ValueError(f"unknown baseline '{name}'")
