"""The render graph of a project, per frame:

    talent -> matte -> place -> harmonize (engine) -> deflicker (window) -> light wrap -> over (shadowed plate)

:class:`Compositor` gives any frame by index (random access for the viewer, sequential for exports, where decoders
stream without seeking). Temporal stages declare a radius: frame ``i`` reads frames ``[i - r, i + r]`` (clamped to
the clip), so rendering ``[s, e]`` reads ``[s - r, e + r]`` and writes only ``[s, e]``, and a chunked render equals
one long render. What a frame needs from its neighbours (engine parameters, small deflicker samples, pair lighting
changes) is cached per frame index, so an export computes each once and memory stays bounded by the window.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass

import cv2
import numpy as np

from ..composite import over, place_talent, plate_index_for, unpremultiply
from ..composite.extras import light_wrap_maps, light_wrap_size, shadow_from_talent
from ..composite.fast import place_over_codes, relight_finish
from ..deflicker import AnalyticDeflicker, make_sample
from ..deflicker.analytic import ZERO, correction_field
from ..engines import create_engine
from ..errors import HarmoVidError
from ..matte import MatteStage, MatteStore
from ..matte.chroma import garbage_box
from ..media import open_source
from ..perf import tune_allocator
from ..project import Project
from ..project.model import DEFLICKER_METHODS, LAYERS

TALENT_CACHE_BYTES = 512 << 20  # linear talent frames kept for the temporal window
FIELD_STEP = 4  # talent pixels per sample of the deflicker's (and engine's) gain field in the export


@dataclass
class FrameLayers:
    """Everything the viewer may show for one frame, at the plate's size, float32 linear."""

    index: int
    composite: np.ndarray  # (H, W, 3) harmonized talent over the (shadowed) plate
    talent: np.ndarray  # (H, W, 3) straight colour of the harmonized placed talent
    alpha: np.ndarray  # (H, W) placed matte
    plate: np.ndarray  # (H, W, 3) plate as shot
    original: np.ndarray | None = None  # (H, W, 3) composite without harmonization, when asked for
    per_frame: np.ndarray | None = None  # (H, W, 3) harmonized talent before deflicker, when asked for


class _LRU(OrderedDict):
    """Per-frame cache of at most ``cap`` entries, filled from two threads in an export (see ``prefetch``).
    ``lowest_first``: evict the lowest frame index rather than the least recently used one."""

    def __init__(self, cap: int, lowest_first: bool = False):
        super().__init__()
        self.cap = cap
        self.lowest_first = lowest_first
        self._lock = threading.Lock()

    def put(self, k, v):
        with self._lock:
            self[k] = v
            self.move_to_end(k)
            while len(self) > self.cap:
                if self.lowest_first:
                    del self[min(self)]
                else:
                    self.popitem(last=False)


class Compositor:
    """Opens a project's media and computes frames. Not thread-safe: one per thread."""

    def __init__(self, project: Project, engine: str | None = None, engine_settings: dict | None = None,
                 scale: float = 1.0, share_media: "Compositor | None" = None):
        """``scale`` renders at a fraction of the plate's size (proxy previews, smaller exports).
        ``share_media``: read through another compositor's sources (same thread), so decoded frames are shared."""
        project.check_media()
        tune_allocator()  # frame-sized buffers are reused instead of faulted in afresh every frame
        if not 0.05 <= scale <= 1.0:
            raise HarmoVidError(f"render scale must be between 0.05 and 1, not {scale}")
        self._owns_media = share_media is None
        # Decoders are read from two threads in an export (see ``prefetch``): one lock around media reads.
        self._media_lock = share_media._media_lock if share_media is not None else threading.RLock()
        if share_media is not None:
            self.talent_src, self.plate_src = share_media.talent_src, share_media.plate_src
            self.scale = float(scale)
            self._plate_lin = _LRU(4)
            self.timings = defaultdict(float)
            self.configure(project, engine, engine_settings)
            return
        self.talent_src = open_source(project.talent_path)
        if self.talent_src.is_still:
            raise HarmoVidError("the talent is a still image; talent must be a clip or image sequence")
        self.plate_src = open_source(project.plate_path)
        self.scale = float(scale)
        self._plate_lin = _LRU(4)
        self.timings: dict[str, float] = defaultdict(float)  # seconds per stage, summed
        self.configure(project, engine, engine_settings)

    def configure(self, project: Project, engine: str | None = None, engine_settings: dict | None = None) -> None:
        """Take new settings (matte, placement, engine, render) of the same talent and plate; caches are reset."""
        self.project = project
        self.settings = project.render
        self.matte = MatteStage(self.talent_src, project.matte, MatteStore(project.mattes_dir))
        # the talent's picture area inside black bars (x0, y0, x1, y1), when its key has a garbage matte
        garbage = (project.matte.key or {}).get("garbage") if project.matte.source == "key" else None
        self._picture = garbage_box(garbage, self.talent_src.size) if garbage else None
        name = engine or project.render.engine
        if engine_settings is None:
            engine_settings = project.render.engine_settings if name == project.render.engine else {}
        self.engine = create_engine(name, engine_settings)
        self.learned = None
        self.deflicker = None
        if project.render.deflicker:
            method = getattr(project.render, "deflicker_method", "analytic")
            if method == "learned":
                from ..deflicker.learned import LearnedDeflicker

                self.learned = LearnedDeflicker(base_radius=project.render.deflicker_radius)
                self.deflicker = self.learned.base
            elif method == "analytic":
                self.deflicker = AnalyticDeflicker(project.render.deflicker_radius)
            else:
                raise HarmoVidError(f"unknown deflicker method '{method}' ({' or '.join(DEFLICKER_METHODS)})")
        stage = self.learned or self.deflicker
        self.radius = self.matte.radius + self.engine.radius + (stage.radius if stage else 0)
        cap = 2 * (stage.radius if stage else 0) + 8
        self._params = _LRU(cap)
        self._samples = _LRU(cap)
        self._deltas = _LRU(cap)
        self._learned_small = _LRU(cap)  # the learned deflicker's view of each frame (analytic-corrected, 64 px)
        # A frame's talent is read when it enters the window of the frame being prepared (i + 1 + r) and again when
        # it is composited, r + 1 frames later: frames [i, i + 1 + r] are kept (the lowest index goes first, which
        # in an export is one already composited), more within the memory budget. With least-recently-used eviction
        # and the budget alone, a 1080p talent (33 MB a frame as float) was converted 1.7 times per frame at radius 16.
        w, h = self.talent_src.size
        stage_radius = stage.radius if stage else 0
        fit = TALENT_CACHE_BYTES // max(1, w * h * 16)
        self._talents = _LRU(max(stage_radius + 3, min(cap + 2, fit)), lowest_first=True)

    def placement(self, i: int) -> tuple[float, float, float]:
        """(x, y, scale) of the talent on the output canvas at frame i."""
        x, y, s = self.project.placement.at(i)
        return x * self.scale, y * self.scale, s * self.scale

    # -- facts --------------------------------------------------------------------------------------------------
    @property
    def frame_count(self) -> int:
        return len(self.talent_src)

    @property
    def fps(self):
        return self.talent_src.info.fps

    @property
    def size(self) -> tuple[int, int]:
        """Output (width, height): the plate's (times the render scale)."""
        w, h = self.plate_src.size
        if self.scale == 1.0:
            return w, h
        return max(1, round(w * self.scale)), max(1, round(h * self.scale))

    def plate_index(self, i: int) -> int:
        info = self.plate_src.info
        return plate_index_for(i, self.fps, info.fps, info.frame_count)

    def _tick(self, stage: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.timings[stage] += t1 - t0
        return t1

    # -- stages -------------------------------------------------------------------------------------------------
    def plate_linear(self, i: int) -> np.ndarray:
        k = self.plate_index(i)
        hit = self._plate_lin.get(k)
        if hit is None:
            t0 = time.perf_counter()
            with self._media_lock:
                hit, _ = self.plate_src.read_linear(k)
            if self.scale != 1.0:
                hit = cv2.resize(hit, self.size, interpolation=cv2.INTER_AREA)
            self._tick("plate", t0)
            self._plate_lin.put(k, hit)
        return hit

    def talent_roi(self, i: int, margin: float = 0.0):
        """The talent's rectangle on the canvas at frame i, grown by ``margin`` x its height, clipped; None when the
        talent is off the canvas."""
        x, y, s = self.placement(i)
        tw, th = self.talent_src.size
        w, h = self.size
        m = margin * th * s
        x0, y0 = max(0, int(np.floor(x - m))), max(0, int(np.floor(y - m)))
        x1, y1 = min(w, int(np.ceil(x + tw * s + m))), min(h, int(np.ceil(y + th * s + m)))
        return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None

    def _talent(self, i: int):
        """Frame i in the talent's own pixels: (straight linear RGB, alpha). Kept for the temporal window (a frame
        is read once as a neighbour and again when it is rendered), within a memory budget."""
        hit = self._talents.get(i)
        if hit is not None:
            return hit
        t0 = time.perf_counter()
        with self._media_lock:
            lin, alpha = self.matte.talent_linear(i)
        self._tick("decode+matte", t0)
        self._talents.put(i, (lin, alpha))
        return lin, alpha

    def placed_talent(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Placed talent (as shot) at plate size: (premultiplied linear RGB, alpha)."""
        lin, alpha = self._talent(i)
        x, y, s = self.placement(i)
        return place_talent(lin, alpha, x, y, s, self.size)

    def _estimate(self, i, talent=None):
        p = self._params.get(i, _MISSING)
        if p is _MISSING:
            if getattr(self.engine, "sequence", False):  # whole-clip engine (diffusion): prepared once
                t0 = time.perf_counter()
                self.prepare_sequence()
                p = self.engine.field(i)
                self._tick("harmonize (estimate)", t0)
                self._params.put(i, p)
                return p
            lin, alpha = talent or self._talent(i)
            t0 = time.perf_counter()
            p = self.engine.estimate(lin, alpha, self.plate_linear(i), self.placement(i))
            self._tick("harmonize (estimate)", t0)
            self._params.put(i, p)
        return p

    def prepare_sequence(self, cancel=None, progress=None) -> None:
        """Run a whole-clip engine over the talent clip (once; later calls return at once)."""
        if not getattr(self.engine, "sequence", False) or self.engine.prepared:
            return

        def frame(k):
            lin, alpha = self._talent(k)
            h, w = alpha.shape
            return lin, alpha, self._plate_under_talent(k, (w, h))

        self.engine.prepare(self.frame_count, frame, cancel=cancel, progress=progress)

    def _light_wrap(self, i, harmonized, alpha, params, t0):
        """The light wrap alone (when it cannot join the relight's pass): (talent, time after)."""
        wrap = self._light_wrap_maps(i, alpha, params)
        if wrap is None:
            return harmonized, t0
        harmonized = relight_finish(harmonized, alpha, _NO_GAIN, wrap)
        return harmonized, self._tick("light wrap", t0)

    def _light_wrap_maps(self, i: int, alpha: np.ndarray, params):
        """The light wrap of frame i at its working size (see ``light_wrap_maps``), or None when it is off."""
        st = self.settings
        if not (st.light_wrap and st.light_wrap_strength > 0 and params is not None):
            return None
        h, w = alpha.shape
        return light_wrap_maps(alpha, self._plate_under_talent(i, light_wrap_size((w, h))), st.light_wrap_strength,
                               picture=self._picture)

    def _plate_under_talent(self, i: int, size: tuple[int, int]) -> np.ndarray:
        """The plate seen from the talent's pixels (inverse placement), at ``size`` = (w, h) of the talent."""
        x, y, s = self.placement(i)
        tw, th = self.talent_src.size
        w, h = size
        f = w / tw  # talent pixels per output pixel of this map
        # output pixel u (at scale f) sees plate pixel x + s * (u + 0.5) / f - 0.5
        m = np.array([[s / f, 0, x + 0.5 * s / f - 0.5], [0, s / f, y + 0.5 * s / f - 0.5]], np.float64)
        return cv2.warpAffine(self.plate_linear(i), m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)

    def _sample(self, i: int, talent=None):
        """The deflicker's view of frame i: its talent shrunk to the working size, harmonized at that size (the same
        whether frame i is being rendered or only read as a neighbour, so chunked renders equal long ones)."""
        s = self._samples.get(i, _MISSING)
        if s is _MISSING:
            lin, alpha = talent or self._talent(i)
            params = self._estimate(i, (lin, alpha))
            t0 = time.perf_counter()
            if params is None:
                s = None
            else:
                h, w = alpha.shape
                plate = None if self.plate_src.is_still else self._plate_under_talent(i, (32, 32))
                s = make_sample(None, lin, alpha, plate, (0, 0, w, h), still_plate=self.plate_src.is_still)
                s.out = self.engine.apply(s.inp, s.alpha, params)
            self._tick("deflicker", t0)
            self._samples.put(i, s)
        return s

    def _delta(self, k: int):
        d = self._deltas.get(k)
        if d is None:
            a, b = self._sample(k - 1), self._sample(k)
            t0 = time.perf_counter()
            d = ZERO if a is None or b is None else self.deflicker.pair_delta(a, b)
            self._tick("deflicker", t0)
            self._deltas.put(k, d)
        return d

    def _window(self, i: int) -> tuple[int, int]:
        """First and last frame of frame i's deflicker window (the learned stage's, which holds the analytic one)."""
        stage = self.learned or self.deflicker
        return max(0, i - stage.radius), min(self.frame_count - 1, i + stage.radius)

    def _window_deltas(self, i: int) -> dict:
        """The pair lighting changes of frame i's deflicker window."""
        lo, hi = self._window(i)
        return {k: self._delta(k) for k in range(lo + 1, hi + 1)}

    @property
    def can_prefetch(self) -> bool:
        """Whether :meth:`prefetch` may run on another thread while this thread composites (not for whole-clip
        engines, whose preparation is not thread-safe)."""
        return not getattr(self.engine, "sequence", False)

    def prefetch(self, i: int) -> None:
        """Compute and cache what frame i needs from its talent and temporal window (decoded talent, engine
        estimate, deflicker samples and pair changes), so that an export can prepare frame i on one thread while
        it composites frame i - 1 on another. Only these caches are shared: one thread prefetches, the other
        composites frames already prefetched (see ``render``); media reads are locked."""
        if not 0 <= i < self.frame_count:
            return
        lin, alpha = self._talent(i)
        params = self._estimate(i, (lin, alpha))
        if self.deflicker is not None and params is not None:
            self._sample(i, (lin, alpha))
            self._window_deltas(i)

    def warm_window(self, i: int, pool) -> None:
        """Analyse frame i's whole deflicker window (engine estimates, deflicker samples and pair changes) on this
        thread and ``pool``'s worker together, half each: the first frame of an export waits for the whole window
        (33 frames at radius 16; the speed render 7.2-7.3 -> 7.0 s). Not used by the Studio's full pass after a
        seek: beside the GUI thread the two threads contended for Python's lock (median 0.69-0.74 -> 0.89 s in
        ``bench_studio.py``). Talent frames are decoded here first, in order (a decoder reads forward). Each result
        depends only on its own frames, so they are the same as computed in order. Skipped where that would cost
        more than it saves: a moving plate (its decoder would be read out of order), a window that does not fit in
        the talent cache, whole-clip engines, no deflicker."""
        if pool is None or self.deflicker is None or not self.can_prefetch or not self.plate_src.is_still:
            return
        lo, hi = self._window(i)
        todo = [k for k in range(lo, hi + 1) if self._samples.get(k, _MISSING) is _MISSING]
        if len(todo) < 4 or len(todo) + 1 > self._talents.cap:
            return
        for k in todo:
            self._talent(k)

        def samples(ks):
            for k in ks:
                self._sample(k)

        def deltas(ks):
            for k in ks:
                self._delta(k)

        for work, ks in ((samples, todo), (deltas, [k for k in range(lo + 1, hi + 1) if self._deltas.get(k) is None])):
            half = len(ks) // 2
            fut = pool.submit(work, ks[half:])
            try:
                work(ks[:half])
            finally:
                fut.result()  # the worker's errors are raised here

    # -- frames -------------------------------------------------------------------------------------------------
    def _composite_window(self, i: int, deflicker: bool | None = None, with_per_frame: bool = False,
                          with_original: bool = False, codes: np.ndarray | None = None):
        """Frame i inside its work window (the talent's rectangle plus room for its shadow).

        The talent is harmonized, deflickered and light-wrapped in its own pixels and placed last, so full-canvas
        work is only placement, shadow and over. Returns None when the talent is off the canvas, else
        (roi, composite, harmonized straight, alpha, plate window, per-frame straight or None, original or None).
        With ``codes`` (a writable copy of the plate's 8-bit code values at canvas size) the window of ``codes``
        receives the composite from the fused place + over + encode of :func:`place_over_codes` (the same values as
        encoding the float composite) and it returns (roi, None).
        """
        if not 0 <= i < self.frame_count:
            raise IndexError(f"frame {i} is outside the talent clip (0..{self.frame_count - 1})")
        roi = self.talent_roi(i, margin=0.15)
        if roi is None:
            return None
        lin, alpha = self._talent(i)
        params = self._estimate(i, (lin, alpha))
        t0 = time.perf_counter()
        use_deflicker = self.deflicker is not None if deflicker is None else bool(deflicker and self.deflicker)
        use_deflicker = use_deflicker and params is not None
        # With the deflicker, an engine that exposes its log-gain field is applied together with the correction
        # (one pass over the talent's pixels instead of two).
        fuse = use_deflicker and hasattr(self.engine, "log_gain")
        harmonized = lin if fuse else self.engine.apply(lin, alpha, params)
        t0 = self._tick("harmonize (apply)", t0)
        if use_deflicker:
            self._sample(i, (lin, alpha))
            last = self.frame_count - 1
            deltas = self._window_deltas(i)
            t0 = time.perf_counter()
            cg, cl = self.deflicker.correction(deltas, i, 0, last)
            h, w = alpha.shape
            # both fields are smooth: they are summed at a quarter of the talent's size and upsampled once
            fw, fh = max(8, -(-w // FIELD_STEP)), max(8, -(-h // FIELD_STEP))
            field = correction_field(cg, cl, fw, fh)
            if fuse:
                (x0, y0, x1, y1), engine_field = self.engine.log_gain((fh, fw), params)
                field[y0:y1, x0:x1] += engine_field
            t0 = self._tick("deflicker", t0)
            # the light wrap joins the same pass over the talent's pixels (after the learned stage, if any)
            wrap = self._light_wrap_maps(i, alpha, params) if self.learned is None else None
            if wrap is not None:
                t0 = self._tick("light wrap", t0)
            harmonized = relight_finish(harmonized, alpha, field, wrap)
            t0 = self._tick("harmonize (apply)", t0)
            if self.learned is not None:
                r = self.learned.net_radius
                window = {}
                for k in range(max(0, i - r), min(last, i + r) + 1):
                    small = self._learned_small.get(k)
                    if small is None:
                        s = self._sample(k)
                        if s is None:
                            continue
                        small = self.learned.small(
                            self.learned.corrected_sample(s, *self.deflicker.correction(deltas, k, 0, last)))
                        self._learned_small.put(k, small)
                    window[k] = small
                t0 = time.perf_counter()
                field = self.learned.field(window, i, 0, last, deltas)
                harmonized = self.learned.apply(harmonized, (0, 0, w, h), field, alpha)
                t0 = self._tick("deflicker (learned)", t0)
                harmonized, t0 = self._light_wrap(i, harmonized, alpha, params, t0)
        else:
            harmonized, t0 = self._light_wrap(i, harmonized, alpha, params, t0)
        st = self.settings
        x, y, s = self.placement(i)
        x0, y0, x1, y1 = roi
        x, y = x - x0, y - y0  # placement in the window
        shade = None  # shadow density on the plate
        if st.shadow and st.shadow_opacity > 0:
            light = getattr(params, "light_dir", None)
            directionality = getattr(params, "directionality", 0.5)
            shade = shadow_from_talent(alpha, x, y, s, (x1 - x0, y1 - y0), light, directionality,
                                       st.shadow_opacity, st.shadow_softness)
            t0 = self._tick("shadow", t0)
        if codes is not None:  # the export's fused place + over + encode, into the output frame's window
            place_over_codes(harmonized, alpha, x, y, s, shade, codes, roi)
            self._tick("place + composite + encode", t0)
            return roi, None
        premult, a = place_talent(harmonized, alpha, x, y, s, (x1 - x0, y1 - y0))
        t0 = self._tick("place", t0)
        plate = self.plate_linear(i)[y0:y1, x0:x1]
        background = 1.0 - a  # what of the plate shows through, darkened by the shadow
        if shade is not None:
            background *= 1.0 - shade
        composite = premult + plate * background[..., None]
        self._tick("composite", t0)
        straight = _LazyStraight(premult, a)
        pf = orig = None
        if with_per_frame:
            per_frame = self.engine.apply(lin, alpha, params)
            pf = unpremultiply(place_talent(per_frame, alpha, x, y, s, (x1 - x0, y1 - y0))[0], a)
        if with_original:
            op, oa = place_talent(lin, alpha, x, y, s, (x1 - x0, y1 - y0))
            orig = over(op, oa, plate)
        return roi, composite, straight, a, plate, pf, orig

    def layers(self, i: int, with_original: bool = False, deflicker: bool | None = None,
               with_per_frame: bool = False) -> FrameLayers:
        """Full-canvas layers of frame i (for the viewer and tests)."""
        res = self._composite_window(i, deflicker, with_per_frame, with_original)
        plate = self.plate_linear(i)
        h, w = plate.shape[:2]
        composite = plate.copy()
        talent = np.zeros((h, w, 3), np.float32)
        alpha = np.zeros((h, w), np.float32)
        original = plate.copy() if with_original else None
        per_frame = np.zeros((h, w, 3), np.float32) if with_per_frame else None
        if res is not None:
            (x0, y0, x1, y1), comp, harm, a, _, pf, orig = res
            composite[y0:y1, x0:x1] = comp
            talent[y0:y1, x0:x1] = harm.value
            alpha[y0:y1, x0:x1] = a
            if with_original:
                original[y0:y1, x0:x1] = orig
            if with_per_frame:
                per_frame[y0:y1, x0:x1] = pf
        return FrameLayers(i, composite, talent, alpha, plate, original, per_frame)

    def composite_codes(self, i: int) -> np.ndarray:
        """The composite of frame i as 8-bit sRGB code values (H, W, 3): the fast export path. Outside the work
        window the plate's decoded code values are used as they are (identical to converting them both ways)."""
        from ..colour import from_linear

        with self._media_lock:
            plate_codes = self.plate_src.read(self.plate_index(i))[..., :3]
        if plate_codes.dtype != np.uint8 or self.plate_src.info.linear or self.scale != 1.0:
            return from_linear(self.layers(i).composite, np.uint8)
        out = plate_codes.copy()
        self._composite_window(i, codes=out)
        return out

    def frame(self, i: int, layer: str = "composite") -> tuple[np.ndarray, np.ndarray | None]:
        """(rgb linear (H, W, 3), alpha (H, W) or None) for the given output layer."""
        if layer not in LAYERS:
            raise HarmoVidError(f"unknown layer '{layer}' (choose {', '.join(LAYERS)})")
        fl = self.layers(i)
        if layer == "talent":
            return fl.talent, fl.alpha
        return fl.composite, None

    def streaming(self) -> None:
        """Bound frame caches to the temporal window (exports read each frame once, in order)."""
        frames = 2 * self.radius + 3
        for src in (self.talent_src, self.plate_src):
            w, h = src.size
            src.cache.set_limit(frames * w * h * 4 * 2)

    def close(self) -> None:
        if self._owns_media:
            self.talent_src.close()
            self.plate_src.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_MISSING = object()
_NO_GAIN = np.zeros((1, 1, 3), np.float32)  # log gain 0: the light wrap alone


class _LazyStraight:
    """Straight (unpremultiplied) talent colour, computed only if someone asks (the talent layer, the viewer)."""

    def __init__(self, premult, alpha):
        self._p, self._a, self._v = premult, alpha, None

    @property
    def value(self) -> np.ndarray:
        if self._v is None:
            self._v = unpremultiply(self._p, self._a)
        return self._v

__all__ = ["Compositor", "FrameLayers", "LAYERS"]
