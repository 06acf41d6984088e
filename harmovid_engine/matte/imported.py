"""Importing per-frame mattes: ``.alpha.npz`` (as in the shared data), PNG/image sequences, or a matte video."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..colour import alpha_to_float
from ..errors import HarmoVidError, MatteError


def read_matte_frames(path: str | Path, width: int, height: int, frame_count: int) -> Iterator[np.ndarray]:
    """Yield (H, W) float32 alpha for each of ``frame_count`` talent frames from a matte file or folder.

    A matte of another size with the same aspect ratio is resized; a different aspect ratio, fewer frames than the
    talent, or an all-empty matte is a :class:`MatteError`. Extra matte frames are ignored.
    """
    p = Path(path)
    if not p.exists():
        raise MatteError(f"matte '{p}' does not exist")
    if p.name.endswith(".npz") or p.suffix == ".npy":
        try:
            data = np.load(p)
            arr = data["alpha"] if hasattr(data, "files") else data
        except Exception as exc:  # numpy raises many kinds on a corrupt file
            raise MatteError(f"matte '{p.name}' cannot be read ({type(exc).__name__}: {exc})") from None
        if arr.ndim != 3:
            raise MatteError(f"matte '{p.name}' has shape {arr.shape}; expected (frames, height, width)")
        n = arr.shape[0]
        _check_count(p, n, frame_count)
        frames = (arr[i] for i in range(frame_count))
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
            a = cv2.resize(a, (width, height), interpolation=cv2.INTER_LINEAR)
        any_content = any_content or bool(a.max() > 0.5)
        if i == frame_count - 1 and not any_content:
            raise MatteError(f"matte '{p.name}' is empty on every frame")
        yield a


def _check_count(p: Path, n: int, frame_count: int) -> None:
    if n < frame_count:
        raise MatteError(f"matte '{p.name}' has {n} frames but the talent has {frame_count}")


def _matte_channel(frame: np.ndarray) -> np.ndarray:
    """A matte frame's alpha: its alpha channel if it has one, else its first (grey) channel."""
    return frame[..., 3] if frame.shape[-1] == 4 else frame[..., 0]
