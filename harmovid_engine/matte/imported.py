"""Importing per-frame mattes: ``.alpha.npz`` (as in the shared data), PNG/image sequences, or a matte video."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..colour import alpha_to_float
from ..errors import HarmoVidError, MatteError


def read_matte_frames(path: str | Path, width: int, height: int, frame_count: int,
                      note=None) -> Iterator[np.ndarray]:
    """Yield (H, W) float32 alpha for each of ``frame_count`` talent frames from a matte file or folder.

    A matte of another size with the same aspect ratio is resized (``note(message)`` is told once); a different
    aspect ratio, fewer frames than the talent, or an all-empty matte is a :class:`MatteError`. Extra matte frames
    are ignored.
    """
    p = Path(path)
    if not p.exists():
        raise MatteError(f"matte '{p}' does not exist")
    if p.name.endswith(".npz") or p.suffix == ".npy":
        arr = load_matte_array(p)
        n = arr.shape[0]
        _check_count(p, n, frame_count)
        frames = _unit_frames(p, arr, frame_count)
    else:
        from ..media import open_source

        try:
            src = open_source(p)
        except HarmoVidError as exc:
            raise MatteError(f"matte '{p.name}' cannot be read: {exc}") from None
        if src.is_still:
            raise MatteError(f"matte '{p.name}' is a single image; give a sequence (folder or %05d pattern) or video")
        _check_count(p, len(src), frame_count)
        frames = (_matte_channel(f) for _, f in src.frames(0, frame_count))
    any_content = False
    for i, a in enumerate(frames):
        a = alpha_to_float(np.asarray(a))
        if a.shape != (height, width):
            ah, aw = a.shape
            if abs(aw / ah - width / height) > 0.01:
                raise MatteError(f"matte '{p.name}' is {aw}x{ah} but the talent is {width}x{height} "
                                 "(different aspect ratio)")
            if i == 0 and note is not None:
                note(f"the matte '{p.name}' is {aw}x{ah} and the talent {width}x{height}: the matte was resized "
                     "to fit (check its edges)")
            a = cv2.resize(a, (width, height), interpolation=cv2.INTER_LINEAR)
        any_content = any_content or bool(a.max() > 0.5)
        if i == frame_count - 1 and not any_content:
            raise MatteError(f"matte '{p.name}' is empty on every frame")
        yield a


def load_matte_array(p: Path) -> np.ndarray:
    """The (frames, height, width) array of an ``.alpha.npz`` (key ``alpha``) or ``.npy`` matte file."""
    try:
        data = np.load(p)
        arr = data["alpha"] if hasattr(data, "files") else data
    except Exception as exc:  # numpy raises many kinds on a corrupt file
        raise MatteError(f"matte '{p.name}' cannot be read ({type(exc).__name__}: {exc})") from None
    if arr.ndim != 3:
        raise MatteError(f"matte '{p.name}' has shape {arr.shape}; expected (frames, height, width)")
    return arr


def describe_matte(path: str | Path) -> dict:
    """What ``harmovid info`` says of a matte file (``.alpha.npz`` / ``.npy``): frames, size, value type and range,
    how soft it is and which frames are empty. A file that cannot be read is a :class:`MatteError`."""
    p = Path(path)
    if not p.exists():
        raise MatteError(f"matte '{p}' does not exist")
    arr = load_matte_array(p)
    frames = list(_unit_frames(p, arr, arr.shape[0]))
    empty = [i for i, a in enumerate(frames) if a.max() <= 0.5]
    soft = float(np.mean([((a > 0.02) & (a < 0.98)).mean() for a in frames]))
    return {"path": str(p), "kind": "matte", "frames": len(frames), "width": int(arr.shape[2]),
            "height": int(arr.shape[1]), "dtype": str(arr.dtype), "soft_fraction": round(soft, 5),
            "coverage": round(float(np.mean([a.mean() for a in frames])), 5),
            "empty_frames": len(empty), "first_empty": empty[:10]}


def _unit_frames(p: Path, arr: np.ndarray, frame_count: int):
    """The first ``frame_count`` frames of a matte array as float32 0..1, whatever its dtype: uint8 and uint16 by
    their range; other numbers by the range their values show (0..1, 0..255 or 0..65535 stored as floats or wide
    ints are common), so a soft edge stays soft."""
    if arr.dtype in (np.uint8, np.uint16):
        return (arr[i] for i in range(frame_count))
    if arr.dtype == bool:
        return (arr[i].astype(np.float32) for i in range(frame_count))
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise MatteError(f"matte '{p.name}' holds {arr.dtype} values; expected numbers (0..1 or 0..255)")
    head = arr[:frame_count]
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(head).all():
        raise MatteError(f"matte '{p.name}' holds values that are not numbers (NaN or infinite)")
    lo, hi = float(head.min()), float(head.max())
    if lo < 0:
        raise MatteError(f"matte '{p.name}' holds negative values (down to {lo:g}); expected 0..1 or 0..255")
    if hi > 65535:
        raise MatteError(f"matte '{p.name}' holds values up to {hi:g}; expected 0..1, 0..255 or 0..65535")
    scale = 1.0 if hi <= 1.0 else 255.0 if hi <= 255.0 else 65535.0
    return (arr[i].astype(np.float32) / np.float32(scale) for i in range(frame_count))


def _check_count(p: Path, n: int, frame_count: int) -> None:
    if n < frame_count:
        raise MatteError(f"matte '{p.name}' has {n} frames but the talent has {frame_count}")


def _matte_channel(frame: np.ndarray) -> np.ndarray:
    """A matte frame's alpha: its alpha channel if it has one, else its first (grey) channel."""
    return frame[..., 3] if frame.shape[-1] == 4 else frame[..., 0]
