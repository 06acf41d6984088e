"""SMPTE timecode (non-drop-frame) for renders: ``HH:MM:SS:FF`` at the clip's nominal rate (29.97 counts as 30)."""

from __future__ import annotations

import math
import re
from fractions import Fraction

from ..errors import HarmoVidError

_TC = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})[:.](\d{2})$")


def nominal_rate(fps) -> int:
    """Frames per timecode second: the rate rounded (30000/1001 -> 30)."""
    return max(1, math.floor(float(Fraction(fps)) + 0.5))  # halves up, as ffmpeg's timecode track counts


def parse_timecode(text: str, fps) -> int:
    """``HH:MM:SS:FF`` -> frames since 00:00:00:00 (non-drop-frame), with what is wrong when it is not one."""
    m = _TC.match(text.strip())
    n = nominal_rate(fps)
    if not m:
        raise HarmoVidError(f"'{text}' is not a timecode: write it as HH:MM:SS:FF (non-drop-frame), e.g. 01:00:00:00")
    h, mi, s, f = (int(g) for g in m.groups())
    if mi > 59 or s > 59:
        raise HarmoVidError(f"'{text}' is not a timecode: minutes and seconds go up to 59")
    if f >= n:
        raise HarmoVidError(f"'{text}' is not a timecode at {float(Fraction(fps)):g} fps: frames go up to {n - 1}")
    return ((h * 60 + mi) * 60 + s) * n + f


def format_timecode(frames: int, fps) -> str:
    """Frames since 00:00:00:00 -> ``HH:MM:SS:FF`` (wrapping at 24 hours, as timecode does)."""
    n = nominal_rate(fps)
    frames %= 24 * 3600 * n
    s, f = divmod(int(frames), n)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{f:02d}"
