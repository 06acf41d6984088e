"""Colour scopes of one previewed frame, for the Studio: a luma waveform and a vectorscope of the talent and of the
plate, side by side, and a colour picker's readout. Computed from the 8-bit preview images (what the viewer shows),
on BT.709 Y'CbCr of the code values, as broadcast scopes read them.

The talent's pixels are the harmonized talent where its matte is above one half; the plate's are the composite
where the matte is zero (there the composite is the plate itself), so the two are the picture's own two parts.
"""

from __future__ import annotations

import numpy as np

# BT.709 Y'CbCr of R'G'B' code values in 0..1 (full range: the scope shows the picture, not a signal's levels)
_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB
SKIN_TONE_DEGREES = 123.0  # the skin tone line of a vectorscope, from the +Cb axis counterclockwise
MAX_PIXELS = 120_000  # pixels a scope reads (a regular subsample of a larger picture: the shape is the same)


def ycbcr(rgb8: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(..., 3) uint8 R'G'B' -> Y' in 0..1, Cb and Cr in -0.5..0.5 (BT.709)."""
    v = rgb8.astype(np.float32) / 255.0
    y = _KR * v[..., 0] + _KG * v[..., 1] + _KB * v[..., 2]
    cb = (v[..., 2] - y) / (2.0 * (1.0 - _KB))
    cr = (v[..., 0] - y) / (2.0 * (1.0 - _KR))
    return y, cb, cr


def _stride(h: int, w: int) -> int:
    return max(1, int(np.ceil(np.sqrt(h * w / MAX_PIXELS))))


def waveform(rgb8: np.ndarray, mask: np.ndarray, columns: int = 160, levels: int = 100) -> np.ndarray:
    """Luma waveform: (levels, columns) counts of the masked pixels, column = picture column, row = Y' (row 0 is
    black); normalised so the busiest cell is 1 (zeros where the mask is empty)."""
    s = _stride(*mask.shape)
    rgb8, mask = rgb8[::s, ::s, :3], mask[::s, ::s]
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return np.zeros((levels, columns), np.float32)
    y = ycbcr(rgb8[ys, xs])[0]
    col = np.minimum(xs * columns // mask.shape[1], columns - 1)
    row = np.minimum((y * levels).astype(np.int64), levels - 1)
    out = np.bincount(row * columns + col, minlength=levels * columns).astype(np.float32).reshape(levels, columns)
    # per picture column: a bin that takes two columns would show twice as bright (vertical stripes)
    width = mask.shape[1]
    out /= np.maximum(np.bincount(np.minimum(np.arange(width) * columns // width, columns - 1), minlength=columns), 1)
    return out / out.max()


def vectorscope(rgb8: np.ndarray, mask: np.ndarray, size: int = 128) -> np.ndarray:
    """Vectorscope: (size, size) counts of the masked pixels over (Cb, Cr), Cb to the right and Cr up from the
    centre (row 0 is Cr = -0.5), the full chroma range on each axis; normalised so the busiest cell is 1."""
    s = _stride(*mask.shape)
    rgb8, mask = rgb8[::s, ::s, :3], mask[::s, ::s]
    sel = rgb8[mask]
    if len(sel) == 0:
        return np.zeros((size, size), np.float32)
    _, cb, cr = ycbcr(sel)
    col = np.clip(((cb + 0.5) * size).astype(np.int64), 0, size - 1)
    row = np.clip(((cr + 0.5) * size).astype(np.int64), 0, size - 1)
    out = np.bincount(row * size + col, minlength=size * size).astype(np.float32).reshape(size, size)
    return out / out.max()


def parts(images: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The picture's two parts from :func:`~harmovid_engine.render.preview.preview_images`: {"talent": (rgb, mask),
    "plate": (rgb, mask)}."""
    matte = images["matte"]
    return {"talent": (images["talent"][..., :3], matte > 127), "plate": (images["composite"], matte == 0)}


def scopes(images: dict) -> dict[str, dict[str, np.ndarray]]:
    """Waveform and vectorscope of the talent and of the plate: {part: {"waveform": ..., "vectorscope": ...}}."""
    return {name: {"waveform": waveform(rgb, mask), "vectorscope": vectorscope(rgb, mask), "pixels": int(mask.sum())}
            for name, (rgb, mask) in parts(images).items()}


def pick(images: dict, x: float, y: float, canvas: tuple[int, int]) -> dict | None:
    """The colour under full-frame pixel (x, y) of a ``canvas`` = (w, h) frame (the images may be a smaller proxy):
    which part it is in, its 8-bit R'G'B', Y' (percent), hue (degrees on the vectorscope, from +Cb) and saturation
    (chroma radius, percent of the scope's edge), and the matte there. None outside the picture."""
    comp = images["composite"]
    h, w = comp.shape[:2]
    cw, ch = canvas
    if not (0 <= x < cw and 0 <= y < ch):
        return None
    px, py = min(w - 1, int(x * w / cw)), min(h - 1, int(y * h / ch))
    rgb = comp[py, px, :3]
    a = int(images["matte"][py, px])
    yy, cb, cr = ycbcr(rgb[None])
    hue = float(np.degrees(np.arctan2(cr[0], cb[0])) % 360.0)
    return {"x": int(x), "y": int(y), "part": "talent" if a > 127 else "plate" if a == 0 else "edge",
            "rgb": tuple(int(v) for v in rgb), "luma": float(yy[0] * 100.0), "hue": hue,
            "saturation": float(np.hypot(cb[0], cr[0]) / 0.5 * 100.0), "alpha": a / 255.0,
            "cbcr": (float(cb[0]), float(cr[0]))}
