"""The render graph of a project: talent -> matte -> place -> harmonize -> composite, per frame.

:class:`Compositor` gives any frame by index (random access for the viewer, sequential for exports, where the decoders
stream without seeking). Temporal stages declare a radius: frame ``i`` reads frames ``[i - r, i + r]`` (clamped to
the clip), so rendering ``[s, e]`` reads ``[s - r, e + r]`` and writes only ``[s, e]``, and a chunked render equals
one long render.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..colour import to_linear
from ..composite import over, place_talent, plate_index_for, unpremultiply
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
    composite: np.ndarray  # (H, W, 3) harmonized talent over plate
    talent: np.ndarray  # (H, W, 3) straight colour of the (harmonized) placed talent
    alpha: np.ndarray  # (H, W) placed matte
    plate: np.ndarray  # (H, W, 3)
    original: np.ndarray | None = None  # (H, W, 3) composite without harmonization, when asked for


class Compositor:
    """Opens a project's media and computes frames. Not thread-safe: one per thread."""

    def __init__(self, project: Project, engine: str | None = None, engine_settings: dict | None = None):
        project.check_media()
        self.project = project
        self.talent_src = open_source(project.talent_path)
        if self.talent_src.is_still:
            raise HarmoVidError("the talent is a still image; talent must be a clip or image sequence")
        self.plate_src = open_source(project.plate_path)
        self.matte = MatteStage(self.talent_src, project.matte, MatteStore(project.mattes_dir))
        name = engine or project.render.engine
        if engine_settings is None:
            engine_settings = project.render.engine_settings if name == project.render.engine else {}
        self.engine = create_engine(name, engine_settings)
        self.radius = self.matte.radius + self.engine.radius

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

    # -- frames -------------------------------------------------------------------------------------------------
    def plate_linear(self, i: int) -> np.ndarray:
        rgb, _ = self.plate_src.read_linear(self.plate_index(i))
        return rgb

    def placed_talent(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Placed talent at plate size: (premultiplied linear RGB, alpha)."""
        codes, alpha = self.matte.talent(i)
        if self.talent_src.info.linear:
            lin = np.clip(codes, 0.0, None)
        else:
            lin = to_linear((codes * 65535.0 + 0.5).astype(np.uint16))
        x, y, s = self.project.placement.at(i)
        return place_talent(lin, alpha, x, y, s, self.size)

    def layers(self, i: int, with_original: bool = False) -> FrameLayers:
        if not 0 <= i < self.frame_count:
            raise IndexError(f"frame {i} is outside the talent clip (0..{self.frame_count - 1})")
        plate = self.plate_linear(i)
        premult, alpha = self.placed_talent(i)
        straight = unpremultiply(premult, alpha)
        harmonized = self.engine.harmonize(straight, alpha, plate, i)
        if harmonized is straight:
            comp_premult = premult
        else:
            comp_premult = harmonized * alpha[..., None]
        composite = over(comp_premult, alpha, plate)
        original = over(premult, alpha, plate) if with_original else None
        return FrameLayers(i, composite, harmonized, alpha, plate, original)

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


__all__ = ["Compositor", "FrameLayers", "LAYERS"]
