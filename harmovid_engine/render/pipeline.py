"""The render graph's scheduler: :class:`Compositor` runs the stages of ``render/stages.py`` for any frame.

    talent ─> matte ─> harmonize ─> deflicker ─> finish ─> place ─> shadow ─> over ─> sink

It gives any frame by index (random access for the viewer, sequential for exports, where decoders stream without
seeking). It owns the media, the per-frame caches, the windows and the threads, and knows no engine or deflicker by
name: each stage declares its contract (``Compositor.contracts``). Temporal stages declare a radius: frame ``i`` reads
frames ``[i - r, i + r]`` (clamped to the clip), so rendering ``[s, e]`` reads ``[s - r, e + r]`` and writes only
``[s, e]``, and a chunked render equals one long render. What a frame needs from its neighbours (engine parameters,
small deflicker samples, pair lighting changes) is cached per frame index, so an export computes each once and memory
stays bounded by the window.

The CLI render, the Studio's previews, export and scope, and ``harmovid bench`` all run this graph.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from ..composite import over, place_talent, plate_index_for, unpremultiply
from ..engines import create_engine
from ..errors import Cancelled, HarmoVidError
from ..matte import MatteStage
from ..matte.chroma import garbage_box
from ..media import open_source
from ..perf import tune_allocator
from ..project import Project
from ..project.model import LAYERS
from .stages import (FIELD_STEP, DeflickerStage, FinishStage, HarmonizeStage, MatteContract, PlaceOverStage,
                     ShadowStage, Timer, WindowCache)

TALENT_CACHE_BYTES = 512 << 20  # linear talent frames kept for the temporal window


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


def _key(*parts) -> str:
    return json.dumps(parts, sort_keys=True, default=str)


class TalentFrames:
    """The matte stage's output per frame, ``(linear RGB, alpha)`` in talent pixels, cached within a budget. One is
    shared by compositors that read the same media (the Studio's proxy and full previews): both read the same talent
    pixels, so a frame is decoded and keyed once. ``configure`` keeps the cache while the matte's inputs (settings
    and the stored mattes on disk) are unchanged, so an Inspector change does not decode and key the window again."""

    def __init__(self, source):
        self.source = source
        self.key: str | None = None
        self.matte: MatteStage | None = None
        self.cache = WindowCache(1, lowest_first=True)

    def configure(self, project: Project, key: str, cap: int) -> None:
        """``key``: the matte's inputs (its settings and the stored mattes' fingerprint)."""
        if key != self.key:
            self.matte = MatteStage(self.source, project.matte, project.matte_store())
            self.cache = WindowCache(cap, lowest_first=True)
            self.key = key
        else:
            self.cache.cap = cap


class Compositor:
    """Opens a project's media and computes frames through the render graph.

    Threads: one thread composites (``layers``, ``composite_codes``, ``frame``); in an export a second one may run
    ``prefetch`` for the next frame at the same time (``render``'s prefetcher). The per-frame caches lock their puts
    and media reads are locked, so those two may overlap; anything else wants one compositor per thread."""

    def __init__(self, project: Project, engine: str | None = None, engine_settings: dict | None = None,
                 scale: float = 1.0, share_media: "Compositor | None" = None, analysis_frames: int = 0):
        """``scale`` renders at a fraction of the plate's size (proxy previews, smaller exports).
        ``share_media``: read through another compositor's sources and matte stage (same thread, same matte
        settings), so decoded and keyed frames are shared; the one shared sets the talent cache's budget.
        ``analysis_frames``: per-frame analysis (engine parameters, deflicker samples and pair changes, all small)
        kept for that many frames beyond the temporal window (the Studio analyses around the playhead while idle)."""
        project.check_media()
        tune_allocator()  # frame-sized buffers are reused instead of faulted in afresh every frame
        if not 0.05 <= scale <= 1.0:
            raise HarmoVidError(f"render scale must be between 0.05 and 1, not {scale}")
        self._owns_media = share_media is None
        # Decoders are read from two threads in an export (see ``prefetch``): one lock around media reads.
        self._media_lock = share_media._media_lock if share_media is not None else threading.RLock()
        if share_media is not None:
            self.talent_src, self.plate_src = share_media.talent_src, share_media.plate_src
            self._frames = share_media._frames
        else:
            self.talent_src = open_source(project.talent_path)
            if self.talent_src.is_still:
                self.talent_src.close()
                raise HarmoVidError("the talent is a still image; talent must be a clip or image sequence")
            self.plate_src = open_source(project.plate_path)
            self._frames = TalentFrames(self.talent_src)
        self.scale = float(scale)
        self._plate_lin = WindowCache(4)
        self._timer = Timer()
        # Called before each frame the graph must decode (None: never): True stops the frame with ``Cancelled``, what
        # was computed so far staying cached (the Studio abandons a full pass once a newer request is waiting).
        self.interrupt = None
        # A quick matte (the Studio's proxy): a frame the shared cache does not hold yet is keyed alone, without the
        # matte's smoothing over its neighbours (kept apart from the shared cache: the full pass keys the window).
        self.quick_matte = False
        self._quick = WindowCache(4)
        self.analysis_frames = int(analysis_frames)
        self._keys: dict[str, str] = {}
        self.configure(project, engine, engine_settings)

    def damaged_frames(self) -> dict[str, list[int]]:
        """``{"talent"|"plate": indices}`` of frames their file could not decode (shown as the next good frame)."""
        out = {}
        for role, src in (("talent", self.talent_src), ("plate", self.plate_src)):
            bad = getattr(src, "damaged", None)
            if bad:
                out[role] = sorted(bad)
        return out

    @property
    def timings(self) -> dict[str, float]:
        """Seconds per stage, summed over the frames computed so far."""
        return self._timer.seconds

    def configure(self, project: Project, engine: str | None = None, engine_settings: dict | None = None) -> None:
        """Take new settings (matte, placement, engine, render) of the same talent and plate. What a stage computed
        is kept while its inputs are unchanged: the talent cache while the matte's are (its settings and the stored
        mattes), the engine's per-frame parameters while the engine, its settings and the placement are too, the
        deflicker's samples and pair changes while its own settings are also unchanged; the rest is reset."""
        self.project = project
        self.settings = project.render
        name = engine or project.render.engine
        if engine_settings is None:
            engine_settings = project.render.engine_settings if name == project.render.engine else {}
        r = project.render
        timer = self._timer
        placement = [vars(k) for k in project.placement.keys]
        matte = {k: v for k, v in project.to_dict()["matte"].items() if k != "review"}
        matte_key = _key(matte, project.matte_store().fingerprint())
        harmonize_key = _key(matte_key, name, engine_settings, placement, str(project.plate_path))
        deflicker_key = _key(harmonize_key, r.deflicker, getattr(r, "deflicker_method", "analytic"),
                             r.deflicker_radius)
        # (cleared while the stages are rebuilt: a configure that fails part-way is redone in full next time)
        old, self._keys = self._keys, {}
        new_keys = {"matte": matte_key, "harmonize": harmonize_key, "deflicker": deflicker_key}
        if old.get("matte") != matte_key:
            self._quick = WindowCache(4)
        if old.get("deflicker") != deflicker_key:
            self.deflicker = None
            if r.deflicker:
                self.deflicker = DeflickerStage(getattr(r, "deflicker_method", "analytic"), r.deflicker_radius,
                                                None, self, timer)
        deflicker_radius = self.deflicker.radius if self.deflicker is not None else 0
        cap = 2 * deflicker_radius + 8 + self.analysis_frames  # the per-frame caches hold the temporal window
        if old.get("harmonize") != harmonize_key:
            self.harmonize = HarmonizeStage(create_engine(name, engine_settings), self, cap, timer)
        self.harmonize.set_cap(cap)
        if self.deflicker is not None:
            self.deflicker.harmonize = self.harmonize
            self.deflicker.set_cap(cap)
        # A frame's talent is read when it enters the window of the frame being prepared (i + 1 + r) and again when
        # it is composited, r + 1 frames later: frames [i, i + 1 + r] are kept (the lowest index goes first, which
        # in an export is one already composited), more within the memory budget. With least-recently-used eviction
        # and the budget alone, a 1080p talent (33 MB a frame as float) was converted 1.7 times per frame at radius 16.
        if self._owns_media:
            w, h = self.talent_src.size
            fit = TALENT_CACHE_BYTES // max(1, w * h * 16)
            self._frames.configure(project, matte_key, max(deflicker_radius + 3, min(2 * deflicker_radius + 10, fit)))
        # the talent's picture area inside black bars (x0, y0, x1, y1), when its key has a garbage matte
        garbage = (project.matte.key or {}).get("garbage") if project.matte.source == "key" else None
        picture = garbage_box(garbage, self.talent_src.size) if garbage else None
        self.finish = FinishStage(r, self, picture, timer)
        self.shadow = ShadowStage(r, timer)
        self.place_over = PlaceOverStage(timer)
        self.radius = sum(c.radius for c in self.contracts)
        self._keys = new_keys

    @property
    def matte(self) -> MatteStage:
        return self._frames.matte

    @property
    def _talents(self) -> WindowCache:
        return self._frames.cache

    @property
    def engine(self):
        return self.harmonize.engine

    @property
    def contracts(self) -> list:
        """The stages' contracts, in graph order (matte, harmonize, deflicker if on, finish, shadow, place + over)."""
        stages = [MatteContract.of(self.matte), self.harmonize.contract]
        if self.deflicker is not None:
            stages.append(self.deflicker.contract)
        return stages + [self.finish.contract, self.shadow.contract, self.place_over.contract]

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

    @property
    def plate_is_still(self) -> bool:
        return self.plate_src.is_still

    @property
    def talent_cache_cap(self) -> int:
        return self._talents.cap

    def plate_index(self, i: int) -> int:
        info = self.plate_src.info
        return plate_index_for(i, self.fps, info.fps, info.frame_count)

    # -- frames the stages read -----------------------------------------------------------------------------------
    def plate_linear(self, i: int) -> np.ndarray:
        k = self.plate_index(i)
        hit = self._plate_lin.get(k)
        if hit is None:
            t0 = time.perf_counter()
            with self._media_lock:
                hit, _ = self.plate_src.read_linear(k)
            if self.scale != 1.0:
                hit = cv2.resize(hit, self.size, interpolation=cv2.INTER_AREA)
            self._timer.tick("plate", t0)
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

    def check_interrupt(self) -> None:
        """Raise ``Cancelled`` when ``interrupt()`` says to stop."""
        if self.interrupt is not None and self.interrupt():
            raise Cancelled()

    def talent(self, i: int):
        """Frame i in the talent's own pixels after the matte stage: (straight linear RGB, alpha). Kept for the
        temporal window (a frame is read once as a neighbour and again when it is rendered), within a budget."""
        hit = self._talents.get(i)
        if hit is not None:
            return hit
        quick = self.quick_matte and self.matte.radius > 0
        if quick and (hit := self._quick.get(i)) is not None:
            return hit
        self.check_interrupt()
        t0 = time.perf_counter()
        with self._media_lock:
            lin, alpha = self.matte.talent_linear(i, temporal=False) if quick else self.matte.talent_linear(i)
        self._timer.tick("decode+matte", t0)
        (self._quick if quick else self._talents).put(i, (lin, alpha))
        return lin, alpha

    def placed_talent(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Placed talent (as shot) at plate size: (premultiplied linear RGB, alpha)."""
        lin, alpha = self.talent(i)
        x, y, s = self.placement(i)
        return place_talent(lin, alpha, x, y, s, self.size)

    def plate_under_talent(self, i: int, size: tuple[int, int]) -> np.ndarray:
        """The plate seen from the talent's pixels (inverse placement), at ``size`` = (w, h) of the talent."""
        x, y, s = self.placement(i)
        tw, th = self.talent_src.size
        w, h = size
        # A small map of a large part of the plate (the deflicker's 32 x 32 view of the plate's own lighting
        # change, the light wrap's quarter-size maps) must average the plate pixels it covers, not point-sample
        # them: sampled, a moving plate's texture aliases into a change of light that is not there (the deflicker
        # then made a talent over a moving street flicker 25x more than without it). Such maps are warped at about
        # one plate pixel per map pixel first, then area-averaged down.
        step = s * tw / w  # plate pixels per map pixel
        ww, wh = (w, h) if step <= 1.5 else (max(w, round(w * step)), max(h, round(h * step)))
        f = ww / tw  # talent pixels per pixel of the warped map
        # warped pixel u (at scale f) sees plate pixel x + s * (u + 0.5) / f - 0.5
        m = np.array([[s / f, 0, x + 0.5 * s / f - 0.5], [0, s / f, y + 0.5 * s / f - 0.5]], np.float64)
        out = cv2.warpAffine(self.plate_linear(i), m, (ww, wh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
        return out if (ww, wh) == (w, h) else cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA)

    # -- scheduling -----------------------------------------------------------------------------------------------
    @property
    def needs_preparation(self) -> bool:
        """Whether a stage still needs its whole-clip pass (run it with :meth:`prepare`)."""
        return self.harmonize.needs_preparation

    def prepare(self, cancel=None, progress=None, preview=None) -> None:
        """Run the stages' whole-clip preparations (once; later calls return at once)."""
        self.harmonize.prepare(cancel=cancel, progress=progress, preview=preview)


    @property
    def can_prefetch(self) -> bool:
        """Whether :meth:`prefetch` may run on another thread while this thread composites (not while a stage still
        needs its whole-clip preparation, which is not thread-safe)."""
        return not self.harmonize.engine.needs_preparation

    def prefetch(self, i: int) -> None:
        """Compute and cache what frame i needs from its talent and temporal window (decoded talent, engine
        estimate, deflicker samples and pair changes), so that an export can prepare frame i on one thread while
        it composites frame i - 1 on another. Only these caches are shared: one thread prefetches, the other
        composites frames already prefetched (see ``render``); media reads are locked."""
        if not 0 <= i < self.frame_count:
            return
        talent = self.talent(i)
        params = self.harmonize.params(i, talent)
        if self.deflicker is not None and params is not None:
            self.deflicker.prefetch(i, talent)

    def analyse(self, i: int) -> None:
        """Compute and cache frame i's per-frame analysis (its engine parameters and the lighting change from frame
        i - 1, the small part of the deflicker's work that is kept beyond its window): with it, a frame whose window
        is analysed needs only its own talent decoded. Interruptible (``interrupt``)."""
        if not 0 <= i < self.frame_count:
            return
        self.harmonize.params(i)
        if self.deflicker is not None and i > 0:
            self.deflicker.delta(i)

    def is_analysed(self, i: int) -> bool:
        """Whether frame i's analysis (see :meth:`analyse`) is cached."""
        if not self.harmonize.has_params(i):
            return False
        return self.deflicker is None or i == 0 or self.deflicker.has_delta(i)

    def warm_window(self, i: int, pool) -> None:
        """Analyse frame i's whole temporal window on this thread and ``pool``'s worker together (see
        ``DeflickerStage.warm``)."""
        if self.deflicker is not None:
            self.deflicker.warm(i, pool)

    def _talent_gain(self, i: int, lin, alpha, params, deflicker: bool) -> np.ndarray | None:
        """The summed log-gain field of frame i (engine + deflicker) at a quarter of the talent's size, or None."""
        if params is None:
            return None
        h, w = alpha.shape
        # both fields are smooth: they are summed at a quarter of the talent's size and upsampled once
        size = (max(8, -(-w // FIELD_STEP)), max(8, -(-h // FIELD_STEP)))
        if deflicker:
            field = self.deflicker.log_gain(i, size, (lin, alpha))
        else:
            field = np.zeros((size[1], size[0], 3), np.float32)
        self.harmonize.add_gain(field, params)
        return field

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
        lin, alpha = self.talent(i)
        params = self.harmonize.params(i, (lin, alpha))
        self.check_interrupt()  # (between stages: a newer request waits at most one stage)
        use_deflicker = self.deflicker is not None if deflicker is None else bool(deflicker and self.deflicker)
        field = self._talent_gain(i, lin, alpha, params, use_deflicker and params is not None)
        self.check_interrupt()
        wrap = self.finish.wrap_maps(i, alpha) if params is not None else None
        harmonized = self.finish(lin, alpha, field, wrap)
        self.check_interrupt()
        x, y, s = self.placement(i)
        x0, y0, x1, y1 = roi
        x, y = x - x0, y - y0  # placement in the window
        shade = self.shadow(alpha, x, y, s, (x1 - x0, y1 - y0), self.harmonize.engine.light(params))
        if codes is not None:  # the export's fused place + over + encode, into the output frame's window
            self.place_over.codes(harmonized, alpha, x, y, s, shade, codes, roi)
            return roi, None
        plate = self.plate_linear(i)[y0:y1, x0:x1]
        premult, a, composite = self.place_over.layers(harmonized, alpha, x, y, s, shade, plate)
        straight = _LazyStraight(premult, a)
        pf = orig = None
        if with_per_frame:
            per_frame = self.harmonize.engine.apply(lin, alpha, params)
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
