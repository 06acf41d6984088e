"""A render job: a generator that yields progress (and frames) while feeding a writer, checking a cancel token.

Usage::

    for p in render(project, "out.mp4", fmt="h264"):
        print(p.done, "/", p.total)

A cancelled or failed render leaves nothing at the destination (the writer writes a temporary name).
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..composite.fast import one_thread
from ..errors import Cancelled, HarmoVidError
from ..media.timecode import format_timecode, parse_timecode
from ..media.writer import FORMATS, AudioSource, open_writer
from ..project import Project
from .destination import check_destination
from .pipeline import LAYERS, Compositor

ALPHA_MODES = ("straight", "premultiplied")


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
    phase: str = "render"  # "denoising" while a whole-clip engine runs first (index -1, done/total = steps)
    preview: np.ndarray | None = None  # denoising: the predicted clean clip so far, (F, 3, h, w) in [-1, 1]
    # frames of the talent or plate file that could not be decoded, so far (each shown as the next good frame)
    damaged: dict[str, list[int]] = field(default_factory=dict)

    @property
    def eta(self) -> float:
        return self.elapsed / self.done * (self.total - self.done) if self.done else float("nan")


def damaged_warnings(project: Project, damaged: dict[str, list[int]]) -> list[str]:
    """One line per source file with frames that could not be decoded (``RenderProgress.damaged``)."""
    lines = []
    for role, frames in damaged.items():
        name = Path(project.talent_path if role == "talent" else project.plate_path).name
        lines.append(f"{len(frames)} frame(s) of the {role} '{name}' could not be decoded ({frame_ranges(frames)}); "
                     "each shows the next good frame, so every other frame keeps its place. Re-export the file "
                     "from its source to repair them.")
    return lines


def frame_ranges(frames: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"frames 3-5, 9"``."""
    runs: list[list[int]] = []
    for f in sorted(frames):
        if runs and f == runs[-1][1] + 1:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    parts = [f"{a}-{b}" if b > a else f"{a}" for a, b in runs]
    return "frame" + ("s " if len(frames) > 1 else " ") + ", ".join(parts[:8]) + (", ..." if len(parts) > 8 else "")


def resolve_range(project: Project, n: int, start: int | None, end: int | None) -> tuple[int, int]:
    """[start, end) from optional inclusive CLI/GUI bounds, defaulting to the project's in/out points."""
    s = start if start is not None else (project.in_point or 0)
    e_incl = end if end is not None else (project.out_point if project.out_point is not None else n - 1)
    if not 0 <= s < n:
        raise HarmoVidError(f"start frame {s} is outside the clip (0..{n - 1})")
    if not s <= e_incl < n:
        raise HarmoVidError(f"end frame {e_incl} is outside {s}..{n - 1}")
    return s, e_incl + 1


def _prepare_with_previews(comp: Compositor, cancel: CancelToken):
    """Run the graph's whole-clip preparations (``comp.prepare``) in a thread and yield their steps (with previews)
    as they come."""
    if not comp.needs_preparation:
        return
    import queue

    q: queue.Queue = queue.Queue()
    t0 = time.perf_counter()

    def preview(k, n, x0):
        q.put(("step", k, n, x0.numpy() if hasattr(x0, "numpy") else x0))

    def work():
        try:
            comp.prepare(cancel=cancel, preview=preview)
            q.put(("done",))
        except BaseException as exc:  # handed to the generator's thread
            q.put(("error", exc))

    th = threading.Thread(target=work, daemon=True)
    th.start()
    try:
        while True:
            item = q.get()
            if item[0] == "done":
                break
            if item[0] == "error":
                raise item[1]
            _, k, n, x0 = item
            yield RenderProgress(-1, k, n, time.perf_counter() - t0, phase="denoising", preview=x0)
    finally:
        if th.is_alive():  # the consumer stopped early (closed the generator): stop the denoising too
            cancel.cancel()
        th.join()


class _Prefetcher:
    """Prepares frame i + 1's analysis (decode, estimate, deflicker measurements: ``Compositor.prefetch``) on a
    worker thread while frame i is composited and encoded here. The two halves cost about the same, and the encoder
    leaves gaps in the CPU that one thread alone does not fill. Results are the same as computing in order."""

    def __init__(self, comp: Compositor):
        self.comp = comp
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="harmovid-prefetch") if comp.can_prefetch else None
        self.pending: dict[int, Future] = {}

    def ready(self, i: int, more: bool) -> None:
        """Frame i's analysis is cached once this returns; frame i + 1's is started when ``more``."""
        if self.pool is None:
            return
        fut = self.pending.pop(i, None)
        if fut is None:  # the first frame: its whole window, on both threads
            self.comp.warm_window(i, self.pool)
            self.comp.prefetch(i)
        else:
            fut.result()  # its errors are raised here, on the exporting thread
        if more:
            self.pending[i + 1] = self.pool.submit(self.comp.prefetch, i + 1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            for fut in self.pending.values():
                fut.cancel()
            self.pool.shutdown(wait=True)  # a running prefetch finishes (one frame's analysis) before media close
        return False


def render(project: Project, output: str | Path, fmt: str | None = None, layer: str | None = None,
           start: int | None = None, end: int | None = None, cancel: CancelToken | None = None,
           engine: str | None = None, audio: bool = True, yield_frames: bool = False,
           compositor: Compositor | None = None, scale: float = 1.0,
           overwrite: bool = False, alpha: str = "straight", timecode: str | None = None,
           handles: int = 0) -> Iterator[RenderProgress]:
    """Render frames [start, end] (inclusive; default the project's in/out or the whole clip) to ``output``.

    ``handles``: that many frames more before the start and after the end, where the clip has them. ``timecode``:
    the timecode of the clip's frame 0 (``HH:MM:SS:FF``, default 00:00:00:00); the file starts at its first frame's
    (a timecode track in MP4/MOV, the marker of a PNG folder). ``alpha``: "straight" or "premultiplied" colour in
    outputs with alpha (ProRes 4444, PNG).

    ``output`` is checked first (``destination.check_destination``): never the project, its footage or something
    this tool did not write; ``overwrite`` allows replacing an existing movie file that is not a previous render."""
    fmt = fmt or project.render.format
    layer = layer or project.render.layer
    if fmt not in FORMATS:
        raise HarmoVidError(f"unknown format '{fmt}' (choose {', '.join(FORMATS)})")
    if layer not in LAYERS:
        raise HarmoVidError(f"unknown layer '{layer}' (choose {', '.join(LAYERS)})")
    if layer == "talent" and fmt == "h264":
        raise HarmoVidError("H.264 has no alpha channel: render the talent layer as prores4444 or png")
    if alpha not in ALPHA_MODES:
        raise HarmoVidError(f"unknown alpha '{alpha}' (choose {', '.join(ALPHA_MODES)})")
    if alpha == "premultiplied" and fmt == "h264":
        raise HarmoVidError("H.264 has no alpha channel to premultiply by: render as prores4444 or png")
    if int(handles) < 0:
        raise HarmoVidError(f"handles must be 0 or more frames, not {handles}")
    check_destination(project, output, fmt, overwrite)
    cancel = cancel or CancelToken()
    own = compositor is None
    comp = compositor or Compositor(project, engine=engine, scale=scale)
    if own:
        comp.streaming()  # an export reads forward once: keep only the temporal window in memory
    writer = None
    try:
        base_tc = parse_timecode(timecode, comp.fps) if timecode else 0  # (before a long preparation)
        # whole-clip engines (diffusion) run first, cancellable between steps, their previews streamed
        yield from _prepare_with_previews(comp, cancel)
        s, e = resolve_range(project, comp.frame_count, start, end)
        s, e = max(0, s - int(handles)), min(comp.frame_count, e + int(handles))
        w, h = comp.size
        talent_info = comp.talent_src.info
        snd = None
        if audio and fmt != "png" and talent_info.has_audio:
            snd = AudioSource(str(project.talent_path), s / float(comp.fps), (e - s) / float(comp.fps))
        opts = {"crf": project.render.crf, "preset": project.render.preset} if fmt == "h264" else {}
        if fmt == "png":
            opts = {"bit_depth": project.render.png_bit_depth, "start_number": s}
        opts["timecode"] = format_timecode(base_tc + s, comp.fps)
        if fmt != "h264":
            opts["premultiplied"] = alpha == "premultiplied"
        writer = open_writer(fmt, output, w, h, comp.fps, audio=snd, **opts)
        t0 = time.perf_counter()
        fast = layer == "composite" and fmt == "h264" and not yield_frames
        # beside an encoder process (H.264, ProRes) our compiled kernels run on this thread alone
        with one_thread() if fmt != "png" else contextlib.nullcontext(), _Prefetcher(comp) as prefetch:
            for k, i in enumerate(range(s, e)):
                cancel.check()
                prefetch.ready(i, i + 1 < e)
                if fast:  # 8-bit output: only the talent's window is converted; the rest is the plate's own codes
                    writer.write_codes(comp.composite_codes(i))
                    rgb = None
                else:
                    rgb, alpha = comp.frame(i, layer)
                    writer.write(rgb, alpha)
                yield RenderProgress(i, k + 1, e - s, time.perf_counter() - t0, rgb if yield_frames else None,
                                     damaged=comp.damaged_frames())
        cancel.check()
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if own:
            comp.close()
