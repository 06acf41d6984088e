"""Compiled kernels for the export's per-pixel work at canvas size (numba).

- ``place_kernel`` places the premultiplied talent bilinearly (``place_talent``) and, for 8-bit exports, composites
  it over the (shadowed) plate and encodes sRGB code values in the same pass (``place_over_codes``), writing straight
  into the output frame and leaving the plate's codes where neither the talent nor its shadow reaches. Preview and
  export call the same kernel, so they give the same codes: exactly ``from_linear(premult + plate * (1 - alpha) *
  (1 - shade))`` of the placed layers (same float32 arithmetic, same 16-bit encoding table).
- ``finish_kernel`` is the talent's last pass in its own pixels (``relight_finish``): the relight's and the
  deflicker's gain upsampled from its quarter-size grid and raised to alpha, then the light wrap.
- ``i420_kernel`` converts 8-bit RGB frames to BT.709 limited-range 4:2:0 for the H.264 encoder (``rgb_to_i420``).

The kernels are compiled on first use and cached on disk (the Studio loads them in the background at start-up:
loading holds Python's lock for ~80 ms). Without numba, or when compiling or caching fails, the OpenCV / numpy
paths give the same images (placement's bilinear weights then quantised to 1/32 pixel by OpenCV).
"""

from __future__ import annotations

import contextlib
import threading
from types import SimpleNamespace

import cv2
import numpy as np

from ..colour import _DECODE_8, _ENCODE_16_TO_8, from_linear, to_linear

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

            logging.getLogger(__name__).warning("export kernels unavailable (%s); using the slower numpy path", exc)
    return _KERNEL


def _compile(numba):
    # one signature for every memory layout (windows of cached frames are strided), compiled once, cached on disk
    from numba import types as nt

    def arr(dtype, ndim):  # any layout, read-only (cached decoded frames are read-only)
        return nt.Array(dtype, ndim, "A", readonly=True)

    f64, i64 = nt.float64, nt.int64

    def c(dtype, ndim, readonly=True):
        return nt.Array(dtype, ndim, "C", readonly=readonly)

    sig = nt.void(arr(nt.float32, 3), arr(nt.float32, 2), nt.Array(nt.float32, 3, "C"))

    @numba.njit(sig, parallel=True, cache=True, nogil=True)
    def pad_kernel(rgb, alpha, out):  # pragma: no cover - compiled
        # straight colour and alpha -> premultiplied RGBA with a one-pixel border repeating the edge pixels
        # (``out`` is (h + 2, w + 2, 4))
        h, w = alpha.shape
        for i in numba.prange(h + 2):
            si = min(max(i - 1, 0), h - 1)
            for j in range(w + 2):
                sj = min(max(j - 1, 0), w - 1)
                a = alpha[si, sj]
                out[i, j, 0] = rgb[si, sj, 0] * a
                out[i, j, 1] = rgb[si, sj, 1] * a
                out[i, j, 2] = rgb[si, sj, 2] * a
                out[i, j, 3] = a

    sig = nt.void(c(nt.float32, 3), f64, f64, f64, f64, c(nt.float32, 1), c(nt.float32, 1), c(nt.float32, 2),
                  c(nt.float32, 1), c(nt.uint8, 1),
                  c(nt.uint8, 3, False), i64, i64, i64, i64, c(nt.float32, 3, False), c(nt.float32, 2, False))

    @numba.njit(sig, parallel=True, cache=True, nogil=True)
    def place_kernel(src, ax, bx, ay, by, covx, covy, shade, dec, enc, frame, ox, oy, H, W, premult_out,
                     alpha_out):  # pragma: no cover - compiled
        # ``src`` is premultiplied RGBA with a one-pixel border repeating its edge. Output pixel (i, j) of an H x W
        # window samples it bilinearly at (ax * j + bx, ay * i + by), clamped to the talent's pixel centres, and takes
        # the part of it the talent's frame covers (``covx`` x ``covy``): a body cut by the talent's frame reaches the
        # frame's edge in full (no line of plate where that edge meets the canvas's), a frame edge inside the canvas is
        # antialiased by its exact coverage. With a non-empty ``frame`` (8-bit codes holding the plate; the window
        # starts at (ox, oy) there; ``dec`` decodes codes to linear) it composites over the (shadowed) plate and writes
        # code values there; else it writes the placed premultiplied colour and alpha. Both modes run the same
        # arithmetic.
        # Bilinear as two passes per output row: the two source rows it reads are blended once per source column
        # (vertically), then each output pixel blends two neighbouring columns of that; only the columns whose taps can
        # see the talent (alpha > 0 on either source row) are visited. The inner loops index with unsigned integers:
        # numba then adds no negative-index wraparound to every load and store (the same codes, ~20 % less time).
        to_codes = frame.shape[0] > 0
        h, w = src.shape[0], src.shape[1]
        has_shade = shade.shape[0] > 0
        scale = np.float32(65535.0)
        half = np.float32(0.5)
        one = np.float32(1.0)
        zero = np.float32(0.0)
        # per source row, the columns [lo, hi) holding alpha > 0
        lo = np.full(h, w, np.int64)
        hi = np.zeros(h, np.int64)
        for r in numba.prange(h):
            for c in range(w):
                if src[r, c, 3] > 0:
                    lo[r] = c
                    break
            for c in range(w - 1, -1, -1):
                if src[r, c, 3] > 0:
                    hi[r] = c + 1
                    break
        # where each output column samples (left tap and weight, the same for every row); the columns the talent's
        # frame covers at all (``covx``, ``covy``: ``place.frame_coverage`` per column and row) are [jc0, jc1)
        xs = np.empty(W, np.int64)
        txs = np.empty(W, np.float32)
        jc0, jc1 = W, 0
        for j in range(W):
            sx = min(max(ax * j + bx, 1.0), w - 2.0)
            x0 = min(int(np.floor(sx)), w - 2)
            xs[j] = x0
            txs[j] = np.float32(sx - x0)
            if covx[j] > 0:
                jc0 = min(jc0, j)
                jc1 = j + 1
        for i in numba.prange(H):
            cy = covy[i]
            sy = min(max(ay * i + by, 1.0), h - 2.0)
            y0 = min(int(np.floor(sy)), h - 2)
            ty = np.float32(sy - y0)
            j0, j1 = 0, 0  # output columns the frame covers whose taps can see the talent
            if cy > 0:
                slo = min(lo[y0], lo[y0 + 1])
                shi = max(hi[y0], hi[y0 + 1])
                if shi > slo:
                    j0 = max(jc0, np.searchsorted(xs, slo - 1))
                    j1 = min(jc1, np.searchsorted(xs, shi))
            if not to_codes:
                for j in range(W):
                    premult_out[i, j, 0] = zero
                    premult_out[i, j, 1] = zero
                    premult_out[i, j, 2] = zero
                    alpha_out[i, j] = zero
            if j1 > j0:
                c0 = xs[j0]
                r0 = src[y0, c0:xs[j1 - 1] + 2].ravel()
                r1 = src[y0 + 1, c0:xs[j1 - 1] + 2].ravel()
                uy = one - ty
                vrow = np.empty(r0.shape[0], np.float32)
                for q in range(np.uint64(r0.shape[0])):
                    vrow[q] = uy * r0[q] + ty * r1[q]
                for j in range(np.uint64(j0), np.uint64(j1)):
                    b = np.uint64(xs[j] - c0) * np.uint64(4)
                    tx = txs[j]
                    ux = one - tx
                    cov = cy * covx[j]
                    a = (ux * vrow[b + np.uint64(3)] + tx * vrow[b + np.uint64(7)]) * cov
                    p0 = zero
                    p1 = zero
                    p2 = zero
                    if a > 0:
                        p0 = (ux * vrow[b] + tx * vrow[b + np.uint64(4)]) * cov
                        p1 = (ux * vrow[b + np.uint64(1)] + tx * vrow[b + np.uint64(5)]) * cov
                        p2 = (ux * vrow[b + np.uint64(2)] + tx * vrow[b + np.uint64(6)]) * cov
                        if a > one:  # bilinear weights sum to one: trim rounding
                            a = one
                    else:
                        a = zero
                    if not to_codes:
                        premult_out[i, j, 0] = p0
                        premult_out[i, j, 1] = p1
                        premult_out[i, j, 2] = p2
                        alpha_out[i, j] = a
                        continue
                    s = shade[i, j] if has_shade else zero
                    if a <= 0 and s <= 0:
                        continue  # ``frame`` holds the plate's codes already
                    bg = (one - a) * (one - s)
                    fi = np.uint64(oy + i)
                    fj = np.uint64(ox) + j
                    if bg == zero:  # opaque talent (most of it): the plate's codes are not read (same arithmetic)
                        frame[fi, fj, 0] = enc[np.uint16(min(max(p0 * scale + half, zero), scale))]
                        frame[fi, fj, 1] = enc[np.uint16(min(max(p1 * scale + half, zero), scale))]
                        frame[fi, fj, 2] = enc[np.uint16(min(max(p2 * scale + half, zero), scale))]
                        continue
                    v0 = min(max((p0 + dec[frame[fi, fj, 0]] * bg) * scale + half, zero), scale)
                    v1 = min(max((p1 + dec[frame[fi, fj, 1]] * bg) * scale + half, zero), scale)
                    v2 = min(max((p2 + dec[frame[fi, fj, 2]] * bg) * scale + half, zero), scale)
                    frame[fi, fj, 0] = enc[np.uint16(v0)]
                    frame[fi, fj, 1] = enc[np.uint16(v1)]
                    frame[fi, fj, 2] = enc[np.uint16(v2)]
            if to_codes and has_shade:  # the shadow alone, left and right of the talent's columns
                for side in range(2):
                    ja, jb = (0, j0) if side == 0 else (j1, W)
                    for j in range(np.uint64(ja), np.uint64(jb)):
                        s = shade[i, j]
                        if s <= 0:
                            continue
                        bg = one - s  # = (1 - a) * (1 - s) with a = 0, and premult + x = x with premult = 0
                        fi = np.uint64(oy + i)
                        fj = np.uint64(ox) + j
                        v0 = min(max(dec[frame[fi, fj, 0]] * bg * scale + half, zero), scale)
                        v1 = min(max(dec[frame[fi, fj, 1]] * bg * scale + half, zero), scale)
                        v2 = min(max(dec[frame[fi, fj, 2]] * bg * scale + half, zero), scale)
                        frame[fi, fj, 0] = enc[np.uint16(v0)]
                        frame[fi, fj, 1] = enc[np.uint16(v1)]
                        frame[fi, fj, 2] = enc[np.uint16(v2)]

    from .extras import WRAP_MIN_ALPHA

    wrap_min = np.float32(WRAP_MIN_ALPHA)
    taps = c(nt.int64, 2), c(nt.float32, 1)
    # two layouts of the talent: contiguous (the usual case; its loops vectorise) and any (strided windows)
    sigs = [nt.void(lay(nt.float32, 3), lay(nt.float32, 2), c(nt.float32, 3), c(nt.float32, 3), c(nt.float32, 2),
                    *taps, *taps, *taps, *taps, nt.Array(nt.float32, 3, "C")) for lay in (c, arr)]

    @numba.njit(sigs, parallel=True, cache=True, nogil=True)
    def finish_kernel(rgb, alpha, gain, spill, reach, gx, gtx, gy, gty, sx, stx, sy, sty,
                      out):  # pragma: no cover - compiled
        # out = rgb * U(gain) ** alpha, then the light wrap out + (max(U(spill), out) - out) * U(reach) where
        # alpha > WRAP_MIN_ALPHA; U upsamples a small map to the talent's size bilinearly, pixel centres aligned
        # (as OpenCV's INTER_LINEAR resize: horizontal then vertical, clamped at the borders).
        h, w = alpha.shape
        wrap = spill.shape[0] > 0
        one = np.float32(1.0)
        zero = np.float32(0.0)
        # (taps: left/right source index and right weight per output column and row, see ``_linear_taps``)
        # Horizontal pass once per row of each small map (every talent row reads two of them, several talent rows the
        # same two), then per pixel only the vertical blend: the same arithmetic in the same order as blending per
        # pixel, at a fraction of the loads.
        gh, sh = gain.shape[0], spill.shape[0]
        hg = np.empty((gh, w, 3), np.float32)
        hs = np.empty((sh, w, 3), np.float32)
        hr = np.empty((sh, w), np.float32)
        for r in numba.prange(gh):
            for j in range(w):
                xa, xb, tx = gx[j, 0], gx[j, 1], gtx[j]
                ux = one - tx
                for ch in range(3):
                    hg[r, j, ch] = ux * gain[r, xa, ch] + tx * gain[r, xb, ch]
        for r in numba.prange(sh):
            for j in range(w):
                qa, qb, wx = sx[j, 0], sx[j, 1], stx[j]
                uwx = one - wx
                hr[r, j] = uwx * reach[r, qa] + wx * reach[r, qb]
                for ch in range(3):
                    hs[r, j, ch] = uwx * spill[r, qa, ch] + wx * spill[r, qb, ch]
        for i in numba.prange(h):
            ga, gb, ty = gy[i, 0], gy[i, 1], gty[i]
            uy = one - ty
            sa, sb, wy = sy[i, 0], sy[i, 1], sty[i]
            uwy = one - wy
            for j in range(w):
                a = alpha[i, j]
                k = zero
                if wrap and a > wrap_min:
                    k = uwy * hr[sa, j] + wy * hr[sb, j]
                for ch in range(3):
                    t = rgb[i, j, ch]
                    if a > 0:
                        g = uy * hg[ga, j, ch] + ty * hg[gb, j, ch]
                        if a < one:
                            g = np.exp(a * np.log(g))
                        t = t * g
                    if k > 0:
                        sp = uwy * hs[sa, j, ch] + wy * hs[sb, j, ch]
                        t = t + (max(sp, t) - t) * k
                    out[i, j, ch] = t

    sig = nt.void(nt.Array(nt.uint8, 3, "C", readonly=True), nt.Array(nt.uint8, 1, "C"))
    # BT.709 limited range in 16-bit fixed point (integer arithmetic vectorises; within 1 code of float rounding)
    kr, kb = 0.2126, 0.0722
    kg = 1.0 - kr - kb
    one = 1 << 16
    yr, yg, yb = (round(one * 219 / 255 * k) for k in (kr, kg, kb))
    cs, rs = 224 / 255 / (2 * (1 - kb)), 224 / 255 / (2 * (1 - kr))
    # chroma sums are 8 x the filtered value (2 rows x [1, 2, 1]): coefficients carry the 1/8
    ubr, ubg, ubb = (round(one / 8 * cs * k) for k in (-kr, -kg, 1 - kb))
    vrr, vrg, vrb = (round(one / 8 * rs * k) for k in (1 - kr, -kg, -kb))
    y_off, c_off = (16 << 16) + (one >> 1), (128 << 16) + (one >> 1)

    @numba.njit(sig, parallel=True, cache=True, nogil=True)
    def i420_kernel(rgb, out):  # pragma: no cover - compiled
        # Unsigned indices in the inner loops, as in ``place_kernel`` (the same bytes, ~18 % less time at 1080p).
        h, w = rgb.shape[0], rgb.shape[1]
        cw, ch = w // 2, h // 2
        u0, v0 = h * w, h * w + ch * cw
        u3, u1, u2, u4, u5 = np.uint64(3), np.uint64(1), np.uint64(2), np.uint64(4), np.uint64(5)
        for r in numba.prange(ch):
            ra = rgb[2 * r].ravel()
            rb = rgb[2 * r + 1].ravel()
            s = np.empty(w * 3, np.int32)  # the row pair summed per channel (flat, contiguous: vectorises)
            for q in range(np.uint64(w * 3)):
                s[q] = np.int32(ra[q]) + np.int32(rb[q])
            for y in range(2 * r, 2 * r + 2):
                row = rgb[y]
                o = out[y * w:(y + 1) * w]
                for x in range(np.uint64(w)):
                    v = yr * np.int32(row[x, 0]) + yg * np.int32(row[x, 1]) + yb * np.int32(row[x, 2]) + y_off
                    o[x] = np.uint8(v >> 16)
            ou = out[u0 + r * cw:u0 + (r + 1) * cw]
            ov = out[v0 + r * cw:v0 + (r + 1) * cw]
            for k in range(np.uint64(cw)):
                # MPEG-2 / H.264 default chroma siting: co-sited with the even luma column, between the two rows
                q = np.uint64(6) * k
                ql = q - u3 if k > 0 else q
                sr = s[ql] + 2 * s[q] + s[q + u3]
                sg = s[ql + u1] + 2 * s[q + u1] + s[q + u4]
                sb = s[ql + u2] + 2 * s[q + u2] + s[q + u5]
                cb = (ubr * sr + ubg * sg + ubb * sb + c_off) >> 16
                cr = (vrr * sr + vrg * sg + vrb * sb + c_off) >> 16
                ou[k] = np.uint8(min(max(cb, 0), 255))
                ov[k] = np.uint8(min(max(cr, 0), 255))

    return SimpleNamespace(pad=pad_kernel, place=place_kernel, finish=finish_kernel, i420=i420_kernel)


_NONE1 = np.zeros(0, np.float32)
_NONE2 = np.zeros((0, 0), np.float32)
_NONE3 = np.zeros((0, 0, 3), np.float32)
_NO_CODES = np.zeros((0, 0, 3), np.uint8)


def _same_size(rgb: np.ndarray, alpha: np.ndarray) -> None:
    """The kernels index the colour and the matte with the same loops: another size would read and write past
    their ends (memory corruption, not an exception), so it is refused here."""
    if rgb.shape[:2] != alpha.shape[:2]:
        raise ValueError(f"talent colour {rgb.shape[1]}x{rgb.shape[0]} and matte {alpha.shape[1]}x{alpha.shape[0]} "
                         "differ in size")


def _source(k, rgb, alpha, x, y, scale, size):
    """The place kernel's first arguments for an output window of ``size`` = (w, h): the bordered source, its
    sampling (ax, bx, ay, by) and the frame's coverage per output column and row."""
    from .place import frame_coverage, placement_source

    _same_size(rgb, alpha)

    def pad(rgb32, alpha32, out):
        k.pad(_readonly(rgb32), _readonly(alpha32), out)

    src, (ax, bx, ay, by) = placement_source(rgb, alpha, x, y, scale, pad)
    h, w = src.shape[:2]
    return (_readonly(src), float(ax), float(bx), float(ay), float(by),
            _readonly(frame_coverage(ax, bx, w, size[0])), _readonly(frame_coverage(ay, by, h, size[1])))


def place_premultiplied(rgb: np.ndarray, alpha: np.ndarray, x: float, y: float, scale: float,
                        canvas: tuple[int, int]):
    """The compiled :func:`~harmovid_engine.composite.place.place_talent`: (premultiplied (H, W, 3), alpha (H, W)),
    or None without the kernel."""
    k = _kernel()
    if k is None:
        return None
    w_out, h_out = canvas
    premult = np.empty((h_out, w_out, 3), np.float32)
    a_out = np.empty((h_out, w_out), np.float32)
    k.place(*_source(k, rgb, alpha, x, y, scale, canvas), _NONE2, _NONE1, _ENCODE_16_TO_8, _NO_CODES, 0, 0, h_out,
            w_out,
            premult, a_out)
    return premult, a_out


def place_over_codes(rgb: np.ndarray, alpha: np.ndarray, x: float, y: float, scale: float,
                     shade: np.ndarray | None, frame: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    """Place the straight linear talent ``rgb`` (h, w, 3) with ``alpha`` (h, w) at (x, y, scale) in ``window`` =
    (x0, y0, x1, y1) of ``frame`` (see ``place_talent``; x, y are relative to the window) and composite it over the
    plate there, darkened by the window's shadow density ``shade`` (or None). ``frame`` (H, W, 3) uint8,
    C-contiguous, holds the plate's 8-bit sRGB codes (the linear plate is their decoding,
    :func:`~harmovid_engine.colour.to_linear`); the window receives the composite's. Exactly
    ``from_linear(premult + to_linear(codes) * (1 - a) * (1 - shade))`` with ``place_talent``'s premult and a, in
    one pass, without canvas-size intermediates and without reading a float plate. Where neither the talent nor
    its shadow reaches, the codes stay (the encoding table maps every decoded 8-bit code back to itself)."""
    x0, y0, x1, y1 = window
    out = frame[y0:y1, x0:x1]
    k = _kernel()
    if k is None:
        from .place import place_talent

        premult, a = place_talent(rgb, alpha, x, y, scale, (x1 - x0, y1 - y0))
        bg = (1.0 - a) if shade is None else (1.0 - a) * (1.0 - shade)
        out[...] = from_linear(premult + to_linear(out) * bg[..., None], np.uint8)
        return frame
    if not frame.flags.c_contiguous or frame.dtype != np.uint8:
        raise ValueError("the frame must be C-contiguous uint8 codes")
    shade = _NONE2 if shade is None else _readonly(np.ascontiguousarray(shade, np.float32))
    k.place(*_source(k, rgb, alpha, x, y, scale, (x1 - x0, y1 - y0)), shade, _DECODE_8, _ENCODE_16_TO_8, frame,
            x0, y0, y1 - y0, x1 - x0, _NONE3, _NONE2)
    return frame


def relight_finish(rgb: np.ndarray, alpha: np.ndarray, log_gain: np.ndarray, wrap=None) -> np.ndarray:
    """The talent's last per-pixel pass in its own pixels: ``rgb`` (h, w, 3) straight linear times the gain
    ``exp(log_gain)`` upsampled bilinearly from its small grid (fh, fw, 3) and raised to ``alpha`` (soft-edge pixels
    are only partly talent: they take that part of the change), then the light wrap of ``wrap`` = (spill, reach)
    from :func:`~harmovid_engine.composite.extras.light_wrap_maps` (or None). One pass over the talent's pixels
    instead of one per operation; the OpenCV path gives the same image within float rounding."""
    _same_size(rgb, alpha)
    gain = np.exp(np.asarray(log_gain, np.float32))
    k = _kernel()
    if k is None:
        h, w = alpha.shape
        g = cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)
        a = np.ascontiguousarray(alpha, np.float32)[..., None]
        out = rgb * np.where(a >= 1, g, np.exp(a * np.log(g)))
        out = np.where(a > 0, out, rgb).astype(np.float32)
        if wrap is not None:
            from .extras import WRAP_MIN_ALPHA

            spill, reach = (cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) for m in wrap)
            reach[alpha <= WRAP_MIN_ALPHA] = 0
            out = out + (np.maximum(spill, out) - out) * reach[..., None]
        return out.astype(np.float32, copy=False)
    h, w = alpha.shape
    out = np.empty(rgb.shape, np.float32)
    spill, reach = (_NONE3, _NONE2) if wrap is None else (np.ascontiguousarray(m, np.float32) for m in wrap)
    sh, sw = spill.shape[:2] if wrap is not None else (1, 1)
    k.finish(_readonly(rgb.astype(np.float32, copy=False)), _readonly(alpha.astype(np.float32, copy=False)),
             _readonly(np.ascontiguousarray(gain)), _readonly(spill), _readonly(reach),
             *_linear_taps(w, gain.shape[1]), *_linear_taps(h, gain.shape[0]), *_linear_taps(w, sw),
             *_linear_taps(h, sh), out)
    return out


def _linear_taps(n_out: int, n_in: int):
    """OpenCV's INTER_LINEAR resize taps from n_in samples to n_out (pixel centres aligned, clamped at the
    borders): ((n_out, 2) left/right source index, (n_out,) right weight)."""
    f = ((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    t = f - s.astype(np.float32)
    t[(s < 0) | (s >= n_in - 1)] = 0
    s = np.clip(s, 0, n_in - 1)
    idx = np.stack([s, np.minimum(s + 1, n_in - 1)], 1)
    return _readonly(idx), _readonly(t.astype(np.float32))


def kernel_available() -> bool:
    return _kernel() is not None


@contextlib.contextmanager
def one_thread():
    """Run the kernels on the calling thread alone (numba's thread count is per calling thread). For exports, where
    the encoder keeps both cores busy beside us: a kernel split over two threads then waits for its slower half, and
    idle OpenMP workers spin. Measured on 120 1080p frames: ~0.7 s less wall time, ~2 core-seconds less CPU."""
    if _kernel() is None:
        yield
        return
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def rgb_to_i420(rgb: np.ndarray) -> np.ndarray | None:
    """8-bit sRGB codes (H, W, 3), H and W even -> planar 4:2:0 Y'CbCr bytes (BT.709, limited range, chroma sited
    as MPEG-2 / H.264 assume by default), or None without the compiled kernel (the encoder then converts)."""
    k = _kernel()
    if k is None:
        return None
    h, w = rgb.shape[:2]
    out = np.empty(h * w * 3 // 2, np.uint8)
    k.i420(_readonly(np.ascontiguousarray(rgb)), out)
    return out


def _readonly(a: np.ndarray) -> np.ndarray:
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


def warm_up() -> None:
    """Compile (or load from the disk cache) the kernels now rather than on the first exported frame."""
    _kernel()
