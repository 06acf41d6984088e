"""The bench's bridge to the product: a protocol's talent, matte and plate are handed to the render graph as temporary
media, exactly as ``harmovid new`` + ``harmovid render`` would take them, and the harmonized layers are read back.

There is no second implementation of any stage here: every engine and deflicker row of a report is what
:class:`~harmovid_engine.render.Compositor` (the graph behind ``harmovid render``, the Studio's previews and export)
makes of the same inputs. ``tests/test_bench.py`` checks that a case's frames equal a ``harmovid render --layer
talent`` of the same media.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..project import RenderSettings, create_project


def render_settings(method: str, engine_settings: dict | None = None) -> RenderSettings:
    """The render settings of a product row: ``ENGINE``, ``ENGINE+deflicker`` or ``ENGINE+learned-deflicker``.
    Shadows and light wrap are off (the protocols measure the talent's light, not what falls on the plate)."""
    engine, _, post = method.partition("+")
    if post not in ("", "deflicker", "learned-deflicker"):
        raise ValueError(f"unknown method '{method}'")
    return RenderSettings(engine=engine, deflicker=bool(post),
                          deflicker_method="learned" if post == "learned-deflicker" else "analytic",
                          shadow=False, light_wrap=False, engine_settings=dict(engine_settings or {}))


def write_sequence(folder: Path, frames, prefix: str = "frame") -> Path:
    """Write (H, W, 3) uint8 RGB frames as a lossless PNG sequence; returns its ``%05d`` pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, f in enumerate(frames):
        if not cv2.imwrite(str(folder / f"{prefix}_{t:05d}.png"), cv2.cvtColor(np.ascontiguousarray(f),
                                                                                cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise OSError(f"cannot write into '{folder}'")
    return folder / f"{prefix}_%05d.png"


class LutCase:
    """One clip of a lut protocol as media in ``folder``: its matte (``matte.alpha.npz``, 8-bit as the shared data
    holds it) and its inpainted plate (a PNG sequence), written once; each draw's talent is a PNG sequence."""

    def __init__(self, folder: Path, alpha_u8: np.ndarray, plates_u8):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.matte = self.folder / "matte.alpha.npz"
        np.savez_compressed(self.matte, alpha=alpha_u8)
        self.plate = write_sequence(self.folder / "plate", plates_u8)
        self.frames = len(alpha_u8)

    def project(self, name: str, talent_u8):
        """A project of this case with ``talent_u8`` (T, H, W, 3) uint8 as its talent."""
        talent = write_sequence(self.folder / f"talent_{name}", talent_u8)
        return create_project(self.folder / f"project_{name}", talent, self.plate, matte=str(self.matte),
                              overwrite=True)


def talent_layers(project, method: str, engine_settings: dict | None = None,
                  render: dict | None = None) -> list[np.ndarray]:
    """The harmonized talent layer of every frame, (H, W, 3) float32 linear straight colour (what ``harmovid render
    --layer talent`` writes), from the render graph with ``method``'s settings; ``render`` overrides further render
    settings by name (``{"deflicker_radius": 8}``), as ``harmovid render --set`` would."""
    from ..render import Compositor

    project.render = render_settings(method, engine_settings)
    for key, value in (render or {}).items():
        if not hasattr(project.render, key):
            raise ValueError(f"unknown render setting '{key}'")
        setattr(project.render, key, value)
    with Compositor(project) as comp:
        comp.streaming()
        return [comp.frame(i, "talent")[0] for i in range(comp.frame_count)]


def frame_layers(project, method: str, frames: int, scale: float) -> list:
    """``FrameLayers`` (composite, placed talent, alpha, plate; float32 linear) of frames [0, frames) at ``scale`` of
    the plate's size; ``method`` ``composite`` is the plain composite (engine ``none``, no deflicker)."""
    from ..render import Compositor

    project.render = render_settings("none" if method == "composite" else method)
    with Compositor(project, scale=scale) as comp:
        comp.streaming()
        return [comp.layers(i) for i in range(min(frames, comp.frame_count))]
