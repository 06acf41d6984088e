"""The render graph of a project, per frame:

    talent -> matte -> place -> harmonize (engine) -> deflicker (window) -> light wrap -> over (shadowed plate)

:class:`Compositor` gives any frame by index (random access for the viewer, sequential for exports, where decoders
stream without seeking). Temporal stages declare a radius: frame ``i`` reads frames ``[i - r, i + r]`` (clamped to
the clip), so rendering ``[s, e]`` reads ``[s - r, e + r]`` and writes only ``[s, e]``, and a chunked render equals
one long render. What a frame needs from its neighbours (engine parameters, small deflicker samples, pair lighting
changes) is cached per frame index, so an export computes each once and memory stays bounded by the window.
"""

from __future__ import annotations

import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass

import numpy as np

from ..colour import to_linear
from ..composite import over, place_talent, plate_index_for, unpremultiply
from ..composite.extras import cast_shadow, light_wrap
from ..deflicker import AnalyticDeflicker, make_sample
from ..engines import create_engine
from ..errors import HarmoVidError
from ..matte import MatteStage, MatteStore
from ..media import open_source
from ..project import Project

LAYERS = ("composite", "talent")


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
    def __init__(self, cap: int):
        super().__init__()
        self.cap = cap

    def put(self, k, v):
        self[k] = v
        self.move_to_end(k)
        while len(self) > self.cap:
            self.popitem(last=False)


class Compositor:
    """Opens a project's media and computes frames. Not thread-safe: one per thread."""

    def __init__(self, project: Project, engine: str | None = None, engine_settings: dict | None = None):
        project.check_media()
        self.project = project
        self.settings = project.render
        self.talent_src = open_source(project.talent_path)
        if self.talent_src.is_still:
            raise HarmoVidError("the talent is a still image; talent must be a clip or image sequence")
        self.plate_src = open_source(project.plate_path)
        self.matte = MatteStage(self.talent_src, project.matte, MatteStore(project.mattes_dir))
        name = engine or project.render.engine
        if engine_settings is None:
            engine_settings = project.render.engine_settings if name == project.render.engine else {}
        self.engine = create_engine(name, engine_settings)
        self.deflicker = AnalyticDeflicker(project.render.deflicker_radius) if project.render.deflicker else None
        self.radius = self.matte.radius + self.engine.radius + (self.deflicker.radius if self.deflicker else 0)
        cap = 2 * (self.deflicker.radius if self.deflicker else 0) + 8
        self._params = _LRU(cap)
        self._samples = _LRU(cap)
        self._deltas = _LRU(cap)
        self._plate_lin = _LRU(4)
        self.timings: dict[str, float] = defaultdict(float)  # seconds per stage, summed

    # -- facts --------------------------------------------------------------------------------------------------
    @property
    def frame_count(self) -> int:
        return len(self.talent_src)

    @property
    def fps(self):
        return self.talent_src.info.fps

    @property
    def size(self) -> tuple[int, int]:
        """Output (width, height): the plate's."""
        return self.plate_src.size

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
            hit, _ = self.plate_src.read_linear(k)
            self._tick("plate", t0)
            self._plate_lin.put(k, hit)
        return hit

    def placed_talent(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Placed talent at plate size: (premultiplied linear RGB, alpha)."""
        t0 = time.perf_counter()
        codes, alpha = self.matte.talent(i)
        t0 = self._tick("decode+matte", t0)
        if self.talent_src.info.linear:
            lin = np.clip(codes, 0.0, None)
        else:
            lin = to_linear((codes * 65535.0 + 0.5).astype(np.uint16))
        x, y, s = self.project.placement.at(i)
        out = place_talent(lin, alpha, x, y, s, self.size)
        self._tick("place", t0)
        return out

    def talent_roi(self, i: int):
        """The talent's rectangle on the canvas at frame i (clipped), or None when off-canvas."""
        x, y, s = self.project.placement.at(i)
        tw, th = self.talent_src.size
        w, h = self.size
        x0, y0 = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
        x1, y1 = min(w, int(np.ceil(x + tw * s))), min(h, int(np.ceil(y + th * s)))
        return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None

    def _frame_inputs(self, i: int):
        plate = self.plate_linear(i)
        premult, alpha = self.placed_talent(i)
        return unpremultiply(premult, alpha), alpha, plate, premult

    def _estimate(self, i, straight, alpha, plate):
        p = self._params.get(i, _MISSING)
        if p is _MISSING:
            t0 = time.perf_counter()
            p = self.engine.estimate(straight, alpha, plate)
            self._tick("harmonize (estimate)", t0)
            self._params.put(i, p)
        return p

    def _sample(self, i: int, inputs=None):
        s = self._samples.get(i)
        if s is None:
            straight, alpha, plate, _ = inputs or self._frame_inputs(i)
            params = self._estimate(i, straight, alpha, plate)
            roi = self.talent_roi(i)
            t0 = time.perf_counter()
            if roi is None:
                s = None
            else:
                out = self.engine.apply(straight, alpha, params)
                s = make_sample(out, straight, alpha, plate, roi, still_plate=self.plate_src.is_still)
            self._tick("deflicker", t0)
            self._samples.put(i, s)
        return s

    def _delta(self, k: int):
        d = self._deltas.get(k)
        if d is None:
            a, b = self._sample(k - 1), self._sample(k)
            t0 = time.perf_counter()
            from ..deflicker.analytic import ZERO

            d = ZERO if a is None or b is None else self.deflicker.pair_delta(a, b)
            self._tick("deflicker", t0)
            self._deltas.put(k, d)
        return d

    # -- frames -------------------------------------------------------------------------------------------------
    def layers(self, i: int, with_original: bool = False, deflicker: bool | None = None,
               with_per_frame: bool = False) -> FrameLayers:
        if not 0 <= i < self.frame_count:
            raise IndexError(f"frame {i} is outside the talent clip (0..{self.frame_count - 1})")
        inputs = self._frame_inputs(i)
        straight, alpha, plate, premult = inputs
        params = self._estimate(i, straight, alpha, plate)
        t0 = time.perf_counter()
        harmonized = self.engine.apply(straight, alpha, params)
        t0 = self._tick("harmonize (apply)", t0)
        per_frame = harmonized if with_per_frame else None
        use_deflicker = self.deflicker is not None if deflicker is None else (deflicker and self.deflicker)
        if use_deflicker and params is not None:
            self._sample(i, inputs)
            lo, hi = max(0, i - self.deflicker.radius), min(self.frame_count - 1, i + self.deflicker.radius)
            deltas = {k: self._delta(k) for k in range(lo + 1, hi + 1)}
            t0 = time.perf_counter()
            cg, cl = self.deflicker.correction(deltas, i, 0, self.frame_count - 1)
            harmonized = self.deflicker.apply(harmonized, self.talent_roi(i), cg, cl)
            t0 = self._tick("deflicker", t0)
        s = self.settings
        if s.light_wrap and s.light_wrap_strength > 0 and params is not None:
            harmonized = light_wrap(harmonized, alpha, plate, s.light_wrap_strength)
            t0 = self._tick("light wrap", t0)
        shadowed = plate
        if s.shadow and s.shadow_opacity > 0:
            light = getattr(params, "light_dir", None)
            directionality = getattr(params, "directionality", 0.5)
            shadowed = cast_shadow(plate, alpha, light, directionality, s.shadow_opacity, s.shadow_softness)
            t0 = self._tick("shadow", t0)
        comp_premult = premult if harmonized is straight else harmonized * alpha[..., None]
        composite = over(comp_premult, alpha, shadowed)
        original = over(premult, alpha, plate) if with_original else None
        self._tick("composite", t0)
        return FrameLayers(i, composite, harmonized, alpha, plate, original, per_frame)

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
        self.talent_src.close()
        self.plate_src.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_MISSING = object()

__all__ = ["Compositor", "FrameLayers", "LAYERS"]
