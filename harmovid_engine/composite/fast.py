"""The export's last step fused into one pass: premultiplied talent over the (shadowed) plate, in linear light,
straight to 8-bit sRGB code values.

``over_codes`` computes exactly what ``from_linear(premult + plate * (1 - alpha) * (1 - shade))`` computes (same
float32 arithmetic, same 16-bit encoding table) but in one parallel pass, writing into the output frame and leaving
the plate's decoded code values where neither the talent nor its shadow reaches: at 1080p a few ms instead of ~45 ms
of whole-array numpy work. The kernel is compiled by numba on first use and cached on disk (the Studio loads it in
the background at start-up: loading holds Python's lock for ~80 ms); without numba the numpy expression is used.
"""

from __future__ import annotations

import threading

import numpy as np

from ..colour import _ENCODE_16_TO_8, from_linear

_KERNEL = None
_TRIED = False
_LOCK = threading.Lock()  # a render thread waits for a warm-up thread still loading the kernel


def _kernel():
    with _LOCK:
        return _load()


def _load():
    global _KERNEL, _TRIED
    if not _TRIED:
        _TRIED = True
        try:
            import numba
        except Exception:  # pragma: no cover - numba is a dependency; the numpy path still gives the same image
            return None

        try:
            _KERNEL = _compile(numba)
        except Exception as exc:  # no writable cache, an LLVM problem: export still works, on the numpy path
            import logging

            logging.getLogger(__name__).warning("export kernel unavailable (%s); using the slower numpy path", exc)
    return _KERNEL


def _compile(numba):
    # one signature for every memory layout (windows of cached frames are strided), compiled once, cached on disk
    from numba import types as nt

    def arr(dtype, ndim):  # any layout, read-only (cached decoded frames are read-only)
        return nt.Array(dtype, ndim, "A", readonly=True)

    sig = nt.void(arr(nt.float32, 3), arr(nt.float32, 2), arr(nt.float32, 2), arr(nt.float32, 3),
                  arr(nt.uint8, 1), nt.Array(nt.uint8, 3, "A"))

    @numba.njit(sig, parallel=True, cache=True, nogil=True)
    def over_kernel(premult, alpha, shade, plate, enc, out):  # pragma: no cover - compiled
        h, w = alpha.shape
        scale = np.float32(65535.0)
        half = np.float32(0.5)
        one = np.float32(1.0)
        for i in numba.prange(h):
            for j in range(w):
                a = alpha[i, j]
                s = shade[i, j]
                if a <= 0 and s <= 0:
                    continue  # ``out`` holds the plate's codes already
                bg = (one - a) * (one - s)
                for c in range(3):
                    v = (premult[i, j, c] + plate[i, j, c] * bg) * scale + half
                    if v < 0:
                        v = np.float32(0.0)
                    elif v > scale:
                        v = scale
                    out[i, j, c] = enc[np.uint16(v)]

    return over_kernel


def over_codes(premult: np.ndarray, alpha: np.ndarray, shade: np.ndarray | None, plate: np.ndarray,
               out: np.ndarray) -> np.ndarray:
    """(H, W, 3) premultiplied linear talent, (H, W) alpha, (H, W) shadow density or None, (H, W, 3) linear plate;
    ``out`` (H, W, 3) uint8 holds the plate's 8-bit codes (a window of the output frame) and receives the composite.

    ``out`` must hold the codes ``plate`` was decoded from (the 16-bit encoding table maps every decoded 8-bit code
    back to itself), so leaving them where nothing covers the plate changes nothing."""
    k = _kernel()
    if k is None:
        bg = (1.0 - alpha) if shade is None else (1.0 - alpha) * (1.0 - shade)
        out[...] = from_linear(premult + plate * bg[..., None], np.uint8)
        return out
    if shade is None:
        shade = np.zeros_like(alpha)
    f32 = np.float32
    # strided views (a window of the cached plate, the colour channels of a 4-channel placement) are read in place
    args = [premult.astype(f32, copy=False), alpha.astype(f32, copy=False), shade.astype(f32, copy=False),
            plate.astype(f32, copy=False), _ENCODE_16_TO_8]
    k(*[_readonly(a) for a in args], out)
    return out


def _readonly(a: np.ndarray) -> np.ndarray:
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


def warm_up() -> None:
    """Compile (or load from the disk cache) the kernel now rather than on the first exported frame."""
    z = np.zeros((2, 4, 4), np.float32)  # strided views, as the render passes them
    over_codes(z[..., :3], z[..., 0], None, z[:, :2, :3], np.zeros((2, 4, 3), np.uint8)[:, :2])
