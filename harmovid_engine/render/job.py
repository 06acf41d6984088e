"""A render job: a generator that yields progress (and frames) while feeding a writer, checking a cancel token.

Usage::

    for p in render(project, "out.mp4", fmt="h264"):
        print(p.done, "/", p.total)

A cancelled or failed render leaves nothing at the destination (the writer writes a temporary name).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import Cancelled, HarmoVidError
from ..media.writer import FORMATS, AudioSource, open_writer
from ..project import Project
from .pipeline import LAYERS, Compositor


class CancelToken:
    """Cooperative cancellation shared between a job and whoever may stop it (GUI thread, signal handler)."""

    def __init__(self):
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


@dataclass
class RenderProgress:
    index: int  # frame just finished
    done: int
    total: int
    elapsed: float  # seconds
    frame: np.ndarray | None = None  # (H, W, 3) float32 linear, when the caller asked for frames

    @property
    def eta(self) -> float:
        return self.elapsed / self.done * (self.total - self.done) if self.done else float("nan")


def resolve_range(project: Project, n: int, start: int | None, end: int | None) -> tuple[int, int]:
    """[start, end) from optional inclusive CLI/GUI bounds, defaulting to the project's in/out points."""
    s = start if start is not None else (project.in_point or 0)
    e_incl = end if end is not None else (project.out_point if project.out_point is not None else n - 1)
    if not 0 <= s < n:
        raise HarmoVidError(f"start frame {s} is outside the clip (0..{n - 1})")
    if not s <= e_incl < n:
        raise HarmoVidError(f"end frame {e_incl} is outside {s}..{n - 1}")
    return s, e_incl + 1


def render(project: Project, output: str | Path, fmt: str | None = None, layer: str | None = None,
           start: int | None = None, end: int | None = None, cancel: CancelToken | None = None,
           engine: str | None = None, audio: bool = True, yield_frames: bool = False,
           compositor: Compositor | None = None, scale: float = 1.0) -> Iterator[RenderProgress]:
    """Render frames [start, end] (inclusive; default the project's in/out or the whole clip) to ``output``."""
    fmt = fmt or project.render.format
    layer = layer or project.render.layer
    if fmt not in FORMATS:
        raise HarmoVidError(f"unknown format '{fmt}' (choose {', '.join(FORMATS)})")
    if layer not in LAYERS:
        raise HarmoVidError(f"unknown layer '{layer}' (choose {', '.join(LAYERS)})")
    if layer == "talent" and fmt == "h264":
        raise HarmoVidError("H.264 has no alpha channel: render the talent layer as prores4444 or png")
    cancel = cancel or CancelToken()
    own = compositor is None
    comp = compositor or Compositor(project, engine=engine, scale=scale)
    if own:
        comp.streaming()  # an export reads forward once: keep only the temporal window in memory
    writer = None
    try:
        comp.prepare_sequence(cancel=cancel)  # whole-clip engines (diffusion) run first, cancellable between steps
        s, e = resolve_range(project, comp.frame_count, start, end)
        w, h = comp.size
        talent_info = comp.talent_src.info
        snd = None
        if audio and fmt != "png" and talent_info.has_audio:
            snd = AudioSource(str(project.talent_path), s / float(comp.fps), (e - s) / float(comp.fps))
        opts = {"crf": project.render.crf, "preset": project.render.preset} if fmt == "h264" else {}
        if fmt == "png":
            opts = {"bit_depth": project.render.png_bit_depth, "start_number": s}
        writer = open_writer(fmt, output, w, h, comp.fps, audio=snd, **opts)
        t0 = time.perf_counter()
        fast = layer == "composite" and fmt == "h264" and not yield_frames
        for k, i in enumerate(range(s, e)):
            cancel.check()
            if fast:  # 8-bit output: only the talent's window is converted; the rest is the plate's own codes
                writer.write_codes(comp.composite_codes(i))
                rgb = None
            else:
                rgb, alpha = comp.frame(i, layer)
                writer.write(rgb, alpha)
            yield RenderProgress(i, k + 1, e - s, time.perf_counter() - t0, rgb if yield_frames else None)
        cancel.check()
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if own:
            comp.close()
