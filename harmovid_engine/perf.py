"""Process-wide settings that make frame-by-frame work fast.

Every frame allocates a handful of large, short-lived arrays (placed talent, alpha, shadow, composite: 6-25 MB each
at 1080p). glibc serves blocks that large with fresh ``mmap`` pages and gives them back on ``free``, so each frame pays
for zeroing and faulting them in again: a third of the export's time at 1080p. Raising the mmap and trim thresholds
keeps those blocks in the heap for reuse. The cost is that the process keeps its peak working set instead of
returning it between frames, which suits a render and an editor that renders all day.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def tune_allocator(mmap_threshold: int = 256 << 20, trim_threshold: int = 512 << 20) -> bool:
    """Keep large frame buffers in the heap (glibc only; elsewhere nothing happens). True when applied."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and \
            bool(libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok
