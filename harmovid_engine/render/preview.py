"""What the Studio's viewer shows, as 8-bit images: the engine does the arithmetic, the GUI only displays."""

from __future__ import annotations

import numpy as np

from ..colour import LUMA_709, alpha_from_float, from_linear
from .pipeline import FrameLayers


def preview_images(layers: FrameLayers) -> dict[str, np.ndarray]:
    """uint8 images of one frame for every view mode.

    composite, original: (H, W, 3) RGB; talent: (H, W, 4) RGBA (straight alpha, for display over a checkerboard);
    matte: (H, W) grey; overlay: (H, W, 3) the original composite with the matte tinted red.
    """
    comp = from_linear(layers.composite, np.uint8)
    orig = from_linear(layers.original, np.uint8) if layers.original is not None else comp
    a8 = alpha_from_float(layers.alpha, np.uint8)
    talent = np.dstack([from_linear(layers.talent, np.uint8), a8])
    red = np.array([255, 40, 40], np.float32)
    k = (0.45 * layers.alpha)[..., None]
    overlay = (orig.astype(np.float32) * (1 - k) + red * k + 0.5).astype(np.uint8)
    return {"composite": comp, "original": orig, "talent": talent, "matte": a8, "overlay": overlay}


def talent_brightness(layers: FrameLayers) -> dict[str, float]:
    """Mean Rec.709 luma (0..255 code values) of the talent region (matte > 0.5) in the original, per-frame
    harmonized and final (deflickered) composites: the flicker scope's three curves."""
    m = layers.alpha > 0.5
    if not m.any():
        return {"original": float("nan"), "per_frame": float("nan"), "deflickered": float("nan")}

    def mean_luma(lin):
        return float((from_linear(lin[m], np.uint8).astype(np.float32) @ LUMA_709).mean())

    out = {"deflickered": mean_luma(layers.composite)}
    out["original"] = mean_luma(layers.original) if layers.original is not None else out["deflickered"]
    out["per_frame"] = mean_luma(layers.per_frame) if layers.per_frame is not None else out["deflickered"]
    return out
