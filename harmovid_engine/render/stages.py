"""The stages of the render graph, each with its contract (``harmovid_engine.stage.Contract``).

::

    matte ──> harmonize ──> deflicker ──> finish ──> place ──> shadow ──> over ──> sink
    talent,   gain field     gain field    talent     talent    shade      canvas   writer / viewer
    alpha     (engine)       (window r)    (gain x    on the    on the
                                            pixels,   canvas    plate
                                            wrap)

Stages read frames through the scheduler (:class:`~harmovid_engine.render.pipeline.Compositor`), which owns the
media, the talent and plate caches, the windows and the threads; it knows no engine or deflicker by name. Every
engine and deflicker hands back a **log-gain field**; :class:`FinishStage` is the one place a field meets the talent's
pixels (the compiled ``relight_finish`` pass, with the light wrap), so a new engine is one module plus one registry
line in ``harmovid_engine.engines``.

What a stage needs from the scheduler (``frames``): ``frame_count``, ``talent(i)`` -> (linear RGB, alpha) in talent
pixels, ``plate_linear(i)``, ``placement(i)`` -> (x, y, scale), ``plate_under_talent(i, (w, h))``,
``plate_is_still``, ``talent_cache_cap``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, defaultdict

import cv2
import numpy as np

from ..composite import place_talent
from ..composite.extras import light_wrap_maps, light_wrap_size, shadow_from_talent
from ..composite.fast import place_over_codes, relight_finish
from ..deflicker import AnalyticDeflicker, make_sample
from ..deflicker.analytic import ZERO, correction_field
from ..errors import HarmoVidError
from ..project.model import DEFLICKER_METHODS
from ..stage import Contract

FIELD_STEP = 4  # talent pixels per sample of the summed gain field (engine + deflicker) in the finishing pass
MISSING = object()


class WindowCache(OrderedDict):
    """Per-frame results of at most ``cap`` frames. Evicts the entry put first (reads do not reorder it: this is
    insertion order, not least-recently-used), or with ``lowest_first`` the lowest frame index, which in an export
    is one already composited. Puts are locked: an export fills the caches from two threads (see ``prefetch``)."""

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


class Timer:
    """Seconds per stage, summed (the bench's per-stage milliseconds)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    def tick(self, stage: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.seconds[stage] += t1 - t0
        return t1


class MatteContract:
    """The matte stage is ``harmovid_engine.matte.MatteStage`` (stored mattes, key, alpha channel, none, then
    choke/feather and temporal smoothing); this gives its contract."""

    @staticmethod
    def of(matte) -> Contract:
        return Contract("matte", radius=matte.radius, reads=("talent",), produces=("talent", "alpha"))


class HarmonizeStage:
    """The engine: per-frame parameters (cached per frame) and the log-gain field they describe."""

    def __init__(self, engine, frames, cap: int, timer: Timer):
        self.engine = engine
        self.frames = frames
        self.timer = timer
        self._params = WindowCache(cap)

    def set_cap(self, cap: int) -> None:
        self._params.cap = cap

    def has_params(self, i: int) -> bool:
        return i in self._params

    @property
    def contract(self) -> Contract:
        return self.engine.contract

    @property
    def radius(self) -> int:
        return self.engine.radius

    @property
    def needs_preparation(self) -> bool:
        return self.engine.needs_preparation and not self.engine.prepared

    def prepare(self, cancel=None, progress=None, preview=None) -> None:
        """The engine's whole-clip pass, once (later calls return at once)."""
        if not self.needs_preparation:
            return
        frames = self.frames

        def frame(k):
            lin, alpha = frames.talent(k)
            h, w = alpha.shape
            return lin, alpha, frames.plate_under_talent(k, (w, h))

        self.engine.prepare(frames.frame_count, frame, cancel=cancel, progress=progress, preview=preview)

    def params(self, i: int, talent=None):
        """The engine's parameters for frame i (None: no change); ``talent`` = frame i's (linear, alpha) if known."""
        p = self._params.get(i, MISSING)
        if p is MISSING:
            if self.engine.needs_preparation:
                t0 = time.perf_counter()
                self.prepare()
                p = self.engine.estimate(None, None, None, index=i)
            else:
                lin, alpha = talent or self.frames.talent(i)
                t0 = time.perf_counter()
                p = self.engine.estimate(lin, alpha, self.frames.plate_linear(i), self.frames.placement(i), index=i)
            self.timer.tick("harmonize (estimate)", t0)
            self._params.put(i, p)
        return p

    def add_gain(self, field: np.ndarray, params) -> None:
        """Add the engine's log gain for ``params`` into ``field`` ((fh, fw, 3), a copy of the talent's frame)."""
        gain = self.engine.log_gain(field.shape[:2], params)
        if gain is not None:
            (x0, y0, x1, y1), g = gain
            field[y0:y1, x0:x1] += g


class DeflickerStage:
    """Temporal lighting deflicker of the harmonized talent over a window of ``radius`` frames each side: the analytic
    stage (pair lighting changes on flow-aligned small samples, smoothed tracks), optionally refined by the learned
    network (``method='learned'``, radius = analytic + network). Gives a log-gain field per frame."""

    def __init__(self, method: str, radius: int, harmonize: HarmonizeStage | None, frames, timer: Timer):
        if method == "learned":
            from ..deflicker.learned import LearnedDeflicker

            self.learned = LearnedDeflicker(base_radius=radius)
            self.analytic = self.learned.base
        elif method == "analytic":
            self.learned = None
            self.analytic = AnalyticDeflicker(radius)
        else:
            raise HarmoVidError(f"unknown deflicker method '{method}' ({' or '.join(DEFLICKER_METHODS)})")
        self.radius = (self.learned or self.analytic).radius
        self.harmonize = harmonize
        self.frames = frames
        self.timer = timer
        cap = 2 * self.radius + 8
        self._samples = WindowCache(cap)
        self._deltas = WindowCache(cap)
        self._smalls = WindowCache(cap)  # the learned network's view of each frame (analytic-corrected, 64 px)

    def set_cap(self, cap: int) -> None:
        """Keep ``cap`` frames of pair changes (the window, plus the Studio's idle analysis: ~2 kB a frame). The
        samples (~1 MB a frame) stay within the window: a frame's correction needs only the pair changes of its
        window, and a new pair change the samples at the analysed range's ends."""
        self._deltas.cap = max(cap, 2 * self.radius + 8)

    def has_delta(self, i: int) -> bool:
        return i in self._deltas

    @property
    def contract(self) -> Contract:
        return Contract("deflicker", radius=self.radius, reads=("talent", "alpha", "gain"), produces=("gain",))

    def window(self, i: int) -> tuple[int, int]:
        """First and last frame of frame i's window (the learned stage's, which holds the analytic one)."""
        return max(0, i - self.radius), min(self.frames.frame_count - 1, i + self.radius)

    def sample(self, i: int, talent=None):
        """The deflicker's view of frame i: its talent shrunk to the working size, harmonized at that size (the same
        whether frame i is being rendered or only read as a neighbour, so chunked renders equal long ones)."""
        s = self._samples.get(i, MISSING)
        if s is MISSING:
            lin, alpha = talent or self.frames.talent(i)
            params = self.harmonize.params(i, (lin, alpha))
            t0 = time.perf_counter()
            if params is None:
                s = None
            else:
                h, w = alpha.shape
                still = self.frames.plate_is_still
                plate = None if still else self.frames.plate_under_talent(i, (32, 32))
                s = make_sample(None, lin, alpha, plate, (0, 0, w, h), still_plate=still)
                s.out = self.harmonize.engine.apply(s.inp, s.alpha, params)
            self.timer.tick("deflicker", t0)
            self._samples.put(i, s)
        return s

    def delta(self, k: int):
        """The lighting change from frame k - 1 to frame k."""
        d = self._deltas.get(k)
        if d is None:
            a, b = self.sample(k - 1), self.sample(k)
            t0 = time.perf_counter()
            d = ZERO if a is None or b is None else self.analytic.pair_delta(a, b)
            self.timer.tick("deflicker", t0)
            self._deltas.put(k, d)
        return d

    def window_deltas(self, i: int) -> dict:
        lo, hi = self.window(i)
        return {k: self.delta(k) for k in range(lo + 1, hi + 1)}

    def prefetch(self, i: int, talent) -> None:
        """Everything frame i needs from its window, cached (an export prepares frame i + 1 on another thread)."""
        self.sample(i, talent)
        self.window_deltas(i)

    def warm(self, i: int, pool) -> None:
        """Analyse frame i's whole window (samples, then pair changes) on this thread and ``pool``'s worker together,
        half each: the first frame of an export waits for the whole window (33 frames at radius 16; the speed render
        7.2-7.3 -> 7.0 s). Not used by the Studio's full pass after a seek: beside the GUI thread the two threads
        contended for Python's lock (median 0.69-0.74 -> 0.89 s in ``bench_studio.py``). Talent frames are decoded
        here first, in order (a decoder reads forward). Each result depends only on its own frames, so they are the
        same as computed in order. Skipped where that would cost more than it saves: a moving plate (its decoder
        would be read out of order), a window that does not fit in the talent cache, whole-clip engines."""
        if pool is None or not self.frames.plate_is_still or self.harmonize.engine.needs_preparation:
            return
        lo, hi = self.window(i)
        todo = [k for k in range(lo, hi + 1) if self._samples.get(k, MISSING) is MISSING]
        if len(todo) < 4 or len(todo) + 1 > self.frames.talent_cache_cap:
            return
        for k in todo:
            self.frames.talent(k)

        def samples(ks):
            for k in ks:
                self.sample(k)

        def deltas(ks):
            for k in ks:
                self.delta(k)

        for work, ks in ((samples, todo), (deltas, [k for k in range(lo + 1, hi + 1) if self._deltas.get(k) is None])):
            half = len(ks) // 2
            fut = pool.submit(work, ks[half:])
            try:
                work(ks[:half])
            finally:
                fut.result()  # the worker's errors are raised here

    def log_gain(self, i: int, size: tuple[int, int], talent=None) -> np.ndarray:
        """(fh, fw, 3) log-gain correction of frame i over the talent's whole frame, at ``size`` = (fw, fh)."""
        self.sample(i, talent)
        last = self.frames.frame_count - 1
        deltas = self.window_deltas(i)
        t0 = time.perf_counter()
        fw, fh = size
        cg, cl = self.analytic.correction(deltas, i, 0, last)
        field = correction_field(cg, cl, fw, fh)
        t0 = self.timer.tick("deflicker", t0)
        if self.learned is not None:
            r = self.learned.net_radius
            first, last = self.analytic.shot(deltas, i, 0, last)  # the network's window stops at a plate cut too
            window = {}
            for k in range(max(first, i - r), min(last, i + r) + 1):
                small = self._smalls.get(k)
                if small is None:
                    s = self.sample(k)
                    if s is None:
                        continue
                    small = self.learned.small(
                        self.learned.corrected_sample(s, *self.analytic.correction(deltas, k, first, last)))
                    self._smalls.put(k, small)
                window[k] = small
            t0 = time.perf_counter()
            f = self.learned.field(window, i, first, last, deltas)
            if f is not None:
                field += cv2.resize(f, (fw, fh), interpolation=cv2.INTER_LINEAR)
            self.timer.tick("deflicker (learned)", t0)
        return field


_NO_GAIN = np.zeros((1, 1, 3), np.float32)  # log gain 0: the light wrap alone


class FinishStage:
    """Talent finishing: the summed log-gain field (engine + deflicker) applied to the talent's pixels, weighted by
    alpha, with the light wrap (plate light over the talent's edges) in the same compiled pass."""

    contract = Contract("finish", reads=("talent", "alpha", "gain", "plate"), produces=("talent",))

    def __init__(self, settings, frames, picture, timer: Timer):
        self.settings = settings
        self.frames = frames
        self.picture = picture  # the talent's picture area inside keyed black bars, or None
        self.timer = timer

    def wrap_maps(self, i: int, alpha: np.ndarray):
        """The light wrap of frame i at its working size (see ``light_wrap_maps``), or None when it is off."""
        st = self.settings
        if not (st.light_wrap and st.light_wrap_strength > 0):
            return None
        t0 = time.perf_counter()
        h, w = alpha.shape
        maps = light_wrap_maps(alpha, self.frames.plate_under_talent(i, light_wrap_size((w, h))),
                               st.light_wrap_strength, picture=self.picture)
        self.timer.tick("light wrap", t0)
        return maps

    def __call__(self, lin: np.ndarray, alpha: np.ndarray, field: np.ndarray | None, wrap) -> np.ndarray:
        """(h, w, 3) float32 linear finished talent; ``field`` (fh, fw, 3) log gain over the frame, or None."""
        if field is None and wrap is None:
            return lin
        t0 = time.perf_counter()
        out = relight_finish(lin, alpha, _NO_GAIN if field is None else field, wrap)
        self.timer.tick("harmonize (apply)", t0)
        return out


class ShadowStage:
    """Cast and contact shadow of the talent on the plate (a density map over the work window), from its matte and
    the plate's light as the engine sees it."""

    contract = Contract("shadow", reads=("alpha", "gain"), produces=("shade",))

    def __init__(self, settings, timer: Timer):
        self.settings = settings
        self.timer = timer

    def __call__(self, alpha, x, y, s, size, light) -> np.ndarray | None:
        st = self.settings
        if not (st.shadow and st.shadow_opacity > 0):
            return None
        t0 = time.perf_counter()
        direction, directionality = light
        shade = shadow_from_talent(alpha, x, y, s, size, direction, directionality, st.shadow_opacity,
                                   st.shadow_softness)
        self.timer.tick("shadow", t0)
        return shade


class PlaceOverStage:
    """Placement (keyframed position and scale, premultiplied, sub-pixel) and the premultiplied over onto the
    shadowed plate. Two forms with the same codes: float layers for the viewer, and for 8-bit exports one compiled
    place + over + encode pass into the output frame's codes."""

    contract = Contract("place+over", reads=("talent", "alpha", "shade", "plate"), produces=("canvas",))

    def __init__(self, timer: Timer):
        self.timer = timer

    def codes(self, talent, alpha, x, y, s, shade, codes: np.ndarray, roi) -> None:
        t0 = time.perf_counter()
        place_over_codes(talent, alpha, x, y, s, shade, codes, roi)
        self.timer.tick("place + composite + encode", t0)

    def layers(self, talent, alpha, x, y, s, shade, plate_window: np.ndarray):
        """(premultiplied placed talent, placed alpha, composite) over ``plate_window`` (h, w, 3)."""
        t0 = time.perf_counter()
        h, w = plate_window.shape[:2]
        premult, a = place_talent(talent, alpha, x, y, s, (w, h))
        t0 = self.timer.tick("place", t0)
        background = 1.0 - a  # what of the plate shows through, darkened by the shadow
        if shade is not None:
            background *= 1.0 - shade
        composite = premult + plate_window * background[..., None]
        self.timer.tick("composite", t0)
        return premult, a, composite
