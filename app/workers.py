"""Background work on QThreads: the progressive preview (latest wins), exports, and the flicker scope.

Every request carries an immutable snapshot of the project (a deep copy), so the GUI can keep editing while a worker
computes. Results come back through queued signals; the GUI thread never waits on the engine.
"""

from __future__ import annotations

import copy
import os
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QThread, Signal

from harmovid_engine.errors import Cancelled, HarmoVidError
from harmovid_engine.media.source import SEEK_AHEAD_LIMIT
from harmovid_engine.project import Project
from harmovid_engine.render import CancelToken, Compositor, render
from harmovid_engine.render.job import damaged_warnings
from harmovid_engine.render.preview import preview_images, talent_brightness

PROXY_LONG_SIDE = 480
# While idle, the preview worker analyses this many frames each side of the playhead (engine parameters, deflicker
# samples and pair changes: a few kB a frame), so a seek inside that range decodes only the frame shown, and renders
# the next and previous frames at full quality, so stepping shows them at once.
IDLE_ANALYSIS_FRAMES = 240
IDLE_RENDER_AHEAD = (1, -1, 2)
# Idle work starts this long after the last request was served: a burst of seeks (clicks along the timeline) gets
# each picture without waiting for an idle frame in flight; a pause gets the neighbours ready.
IDLE_DELAY_S = 0.1


def _preview_cache_bytes() -> int:
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        ram = 8 * 2**30
    return int(min(2 * 2**30, max(512 * 2**20, ram // 8)))


# Full-quality preview frames kept (all view modes of a frame: ~5.6 MB at 560 x 720, ~28 MB at 1080p): 2 GB, or an
# eighth of the machine's memory where that is less; a RAM preview renders its range into this memory.
PREVIEW_CACHE_BYTES = _preview_cache_bytes()
# Of it, frames outside a RAM preview (the playhead's, the neighbours') keep at most this much.
VIEWED_CACHE_BYTES = min(PREVIEW_CACHE_BYTES, 512 * 2**20)


def _user_message(exc: BaseException) -> str:
    if isinstance(exc, HarmoVidError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def snapshot_key(project: Project, matte_revision: int = 0) -> str:
    import json

    # mattes live in files: edits bump the session's matte revision so cached previews are not reused
    return json.dumps(project.to_dict(), sort_keys=True, default=str) + f"|matte{matte_revision}"


@dataclass(frozen=True)
class PreviewRequest:
    rid: int
    frame: int
    project: Project  # a private deep copy
    key: str  # the snapshot's identity (settings changed <=> key changed)


class _CompositorPair:
    """A proxy compositor (small, per frame) and a full one for the same media, reconfigured on setting changes
    (what a stage computed is kept while its inputs are unchanged, see ``Compositor.configure``). Both stop a frame
    with ``Cancelled`` when ``interrupt()`` says a newer request waits; the proxy always finishes."""

    def __init__(self, interrupt=None):
        self.interrupt = interrupt
        self.media = None
        self.key = None
        self.proxy: Compositor | None = None
        self.full: Compositor | None = None

    def get(self, project: Project, key: str):
        media = (str(project.talent_path), str(project.plate_path))
        if media != self.media:
            self.close()
            self.full = Compositor(project, analysis_frames=2 * IDLE_ANALYSIS_FRAMES)
            self.full.interrupt = self.interrupt
            w, h = self.full.size
            scale = min(1.0, PROXY_LONG_SIDE / max(w, h))
            proxy_project = copy.deepcopy(project)
            proxy_project.render.deflicker = False
            # the proxy pass is never interrupted: a proxy finishes in tens of milliseconds, and while the mouse
            # moves each request is soon replaced by the next, so interrupting it would show nothing at all
            self.proxy = Compositor(proxy_project, scale=scale, share_media=self.full)
            self.proxy.quick_matte = True  # one frame keyed, not its window: the full pass follows at once
            self.media, self.key = media, key
        elif key != self.key:
            self.key = None  # until both are configured: a failure part-way is redone next time
            self.full.configure(project)
            proxy_project = copy.deepcopy(project)
            proxy_project.render.deflicker = False
            self.proxy.configure(proxy_project)
            self.key = key
        return self.proxy, self.full

    def close(self):
        for c in (self.proxy, self.full):  # the proxy reads through the full one's sources: close it first
            if c is not None:
                c.close()
        self.proxy = self.full = None
        self.media = self.key = None


class PreviewWorker(QThread):
    """Computes preview frames. ``request()`` is latest-wins: a newer request abandons older work between passes.

    Signals: ``ready(rid, frame, pass_name, images)`` with pass_name "proxy" then "full" (images: dict of uint8
    arrays from :func:`preview_images`), ``failed(rid, message)``, ``cached(frame)`` when a full frame is kept and
    ``uncached(frame)`` when it is dropped for memory,
    ``ram_progress(rid, done, total)`` and ``ram_done(rid, cached, total, message)`` for a RAM preview.

    A RAM preview (:meth:`ram_preview`) renders a range at full quality into the cache (``PREVIEW_CACHE_BYTES``;
    other frames keep at most ``VIEWED_CACHE_BYTES``), frames kept there while it lasts; requests go first, it
    goes on after each. Memory is bounded by bytes: a range that does not fit renders the frames that do, from its
    start, and says so.

    A pass whose request is no longer the latest stops at its next frame to decode (what it computed stays cached),
    so scrubbing shows proxies as fast as they come instead of waiting for stale full passes. While no request waits,
    the worker renders the frames beside the playhead at full quality and analyses ``IDLE_ANALYSIS_FRAMES`` each
    side of it, nearest first, one frame at a time (a request preempts it at once).
    """

    ready = Signal(int, int, str, object)
    failed = Signal(int, str)
    cached = Signal(int)
    busy = Signal(bool)
    uncached = Signal(int)  # a frame of the current settings left the cache
    ram_progress = Signal(int, int, int)
    ram_done = Signal(int, int, int, str)

    def __init__(self, parent=None, cache_bytes: int = PREVIEW_CACHE_BYTES, viewed_bytes: int = VIEWED_CACHE_BYTES):
        super().__init__(parent)
        self._cv = threading.Condition()
        self._pending: PreviewRequest | None = None
        self._latest = 0
        self._stop = False
        self._pair = _CompositorPair(interrupt=self._interrupted)
        self._idle: PreviewRequest | None = None  # the last request served: idle work goes on around its frame
        self._idle_todo: list = []
        self._holds: set[str] = set()  # reasons to hold the idle work (an export or propagation wants the CPU)
        self._serving = False
        self._idle_after = 0.0
        self._cache: OrderedDict[tuple[str, int], dict] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._viewed_bytes = min(viewed_bytes, cache_bytes)
        self._cached_bytes = 0
        self._ram: PreviewRequest | None = None  # the RAM preview's settings (its frame: the range's start)
        self._ram_todo: list[int] = []
        self._ram_range: list[int] = []
        self._pinned: set[tuple[str, int]] = set()  # the RAM preview's frames: never evicted while it lasts

    def request(self, rid: int, frame: int, project: Project, matte_revision: int = 0) -> None:
        snap = copy.deepcopy(project)
        req = PreviewRequest(rid, frame, snap, snapshot_key(snap, matte_revision))
        with self._cv:
            self._pending = req
            self._latest = rid
            self._cv.notify()

    def ram_preview(self, rid: int, start: int, end: int, project: Project, matte_revision: int = 0) -> None:
        """Render frames ``start..end`` (inclusive) at full quality into the cache, for playback at full quality."""
        snap = copy.deepcopy(project)
        req = PreviewRequest(rid, start, snap, snapshot_key(snap, matte_revision))
        with self._cv:
            self._ram = req
            self._ram_range = list(range(start, end + 1))
            self._ram_todo = list(self._ram_range)
            self._pinned = {(req.key, k) for k in self._ram_range}
            self._cv.notify()

    def cancel_ram(self) -> None:
        """Stop a RAM preview's rendering (what it rendered stays cached, no longer pinned)."""
        with self._cv:
            self._ram, self._ram_todo, self._ram_range, self._pinned = None, [], [], set()

    def hold_idle(self, reason: str, on: bool = True) -> None:
        """Hold the idle work while ``reason`` lasts (an export, a propagation): it would take their CPU."""
        with self._cv:
            (self._holds.add if on else self._holds.discard)(reason)
            self._cv.notify()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self.wait()

    def _stale(self, req: PreviewRequest) -> bool:
        return self._latest != req.rid or self._stop

    def _interrupted(self) -> bool:
        return self._pending is not None or self._stop

    def wants_cpu(self) -> bool:
        """Whether a request is waiting or being served, or an export or propagation runs: background work
        (the flicker scope) should wait, so the picture an editor asked for comes first."""
        return self._pending is not None or self._serving or bool(self._holds)

    def run(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._stop:
                    if self._ram_todo and not self._holds:
                        break
                    if self._idle_todo and not self._holds:
                        wait = self._idle_after - time.monotonic()
                        if wait <= 0:
                            break
                        self._cv.wait(wait)
                    else:
                        self._cv.wait()
                if self._stop:
                    break
                req, self._pending = self._pending, None
                self._serving = req is not None
            if req is None:
                if self._ram_todo and not self._holds:
                    self._ram_step()
                else:
                    self._idle_step()
                continue
            self.busy.emit(True)
            try:
                self._serve(req)
                self._plan_idle(req)
            except Cancelled:  # a newer request is waiting
                pass
            except Exception as exc:  # shown as a message, never a traceback
                traceback.print_exc()
                self.failed.emit(req.rid, _user_message(exc))
            finally:
                self._serving = False
            self.busy.emit(False)
        self._pair.close()

    # -- idle work ------------------------------------------------------------------------------------------------
    def _plan_idle(self, req: PreviewRequest) -> None:
        """Queue the idle work around ``req``'s frame: the neighbours at full quality, then the analysis outward."""
        full = self._pair.full
        if full is None or full.needs_preparation:
            self._idle_todo = []
            return
        n, i = full.frame_count, req.frame
        todo = [("render", i + d) for d in IDLE_RENDER_AHEAD if 0 <= i + d < n]
        # outward in blocks, ahead first, each block in decoding order (a decoder reads forward: frame by frame
        # in order costs one decode each, stepping backwards one seek each)
        block = SEEK_AHEAD_LIMIT
        for d in range(1, IDLE_ANALYSIS_FRAMES + 1, block):
            todo += [("analyse", k) for k in range(i + d, min(n, i + d + block))]
            todo += [("analyse", k) for k in range(max(0, i - d - block + 1), max(0, i - d + 1))]
        self._idle, self._idle_todo = req, todo
        self._idle_after = time.monotonic() + IDLE_DELAY_S

    def _idle_step(self) -> None:
        """One unit of idle work (a frame); errors end the idle work quietly (the next request reports them)."""
        req, (kind, k) = self._idle, self._idle_todo.pop(0)
        if req is None or self._pair.full is None:
            self._idle_todo = []
            return
        try:
            # the compositor set up for the request the idle work is about (a cache hit serves a request
            # without configuring it: the pictures must not be made with the settings of the one before)
            _, full = self._pair.get(req.project, req.key)
            if kind == "analyse":
                if not full.is_analysed(k):
                    full.analyse(k)
            else:
                self._render_kept(full, req.key, k)
        except Cancelled:
            pass
        except Exception:  # the same frame requested will show the error
            self._idle_todo = []

    def _ram_step(self) -> None:
        """Render the RAM preview's next frame (or stop it: settings changed since, the memory is full)."""
        with self._cv:
            ram, todo = self._ram, self._ram_todo
            if ram is None or not todo:
                return
            k = todo[0]
        total = len(self._ram_range)
        try:
            _, full = self._pair.get(ram.project, ram.key)
            if (ram.key, k) not in self._cache and not self._room_for_one():
                done = total - len(todo)
                self._end_ram(ram, done, total, f"{done} of {total} frames fit in the preview memory "
                                           f"({self._cache_bytes / 2**30:.1f} GB); the rest play as they render")
                return
            self._render_kept(full, ram.key, k)
        except Cancelled:
            return  # a request first; the same frame after it
        except Exception as exc:
            self._end_ram(ram, total - len(todo), total, _user_message(exc))
            return
        with self._cv:
            if self._ram is ram and self._ram_todo and self._ram_todo[0] == k:
                self._ram_todo.pop(0)
            remaining = len(self._ram_todo) if self._ram is ram else None
        if remaining is None:
            return
        self.ram_progress.emit(ram.rid, total - remaining, total)
        if remaining == 0:
            self._end_ram(ram, total, total, "")

    def _render_kept(self, full: Compositor, key: str, k: int) -> None:
        """Frame k at full quality into the cache (unless it is there); a newer request stops it."""
        if (key, k) not in self._cache:
            layers = full.layers(k, with_original=True)
            full.check_interrupt()
            self._keep(key, k, preview_images(layers))

    def _end_ram(self, ram: PreviewRequest, done: int, total: int, message: str) -> None:
        with self._cv:
            if self._ram is not ram:  # a newer RAM preview (or a cancel) came meanwhile: it is not this one's
                return
            self._ram_todo = []
            # what did not fit is not pinned: only the rendered frames stay in memory for the playback
            self._pinned = {(ram.key, k) for k in self._ram_range[:done]}
        self.ram_done.emit(ram.rid, done, total, message)

    def _room_for_one(self) -> bool:
        """Whether one more frame (the size of the last kept) fits without evicting a RAM preview's frame."""
        if not self._cache:
            return True
        size = _nbytes(next(reversed(self._cache.values())))
        with self._cv:
            pinned = set(self._pinned)
        unpinned = sum(_nbytes(v) for k, v in self._cache.items() if k not in pinned)
        return self._cached_bytes + size <= self._cache_bytes or unpinned >= size

    def _keep(self, key: str, frame: int, images: dict) -> None:
        old = self._cache.pop((key, frame), None)
        if old is not None:
            self._cached_bytes -= _nbytes(old)
        self._cache[(key, frame)] = images
        self._cached_bytes += _nbytes(images)
        # least recently kept first; a RAM preview's frames stay (a new frame is not kept when only they are left);
        # frames outside it keep at most ``viewed_bytes``
        with self._cv:
            pinned = set(self._pinned)
        viewed = sum(_nbytes(v) for k, v in self._cache.items() if k not in pinned)
        while (self._cached_bytes > self._cache_bytes or viewed > self._viewed_bytes) and self._cache:
            victim = next((k for k in self._cache if k not in pinned), None)
            if victim is None:  # only a RAM preview's frames are left: the new frame is the one not kept
                victim = (key, frame)
            size = _nbytes(self._cache.pop(victim))
            self._cached_bytes -= size
            if victim not in pinned:
                viewed -= size
            if victim == (key, frame):
                break
            if victim[0] == key:
                self.uncached.emit(victim[1])
        if (key, frame) in self._cache:
            self.cached.emit(frame)

    def _serve(self, req: PreviewRequest) -> None:
        hit = self._cache.get((req.key, req.frame))
        if hit is not None:
            self.ready.emit(req.rid, req.frame, "full", hit)
            return
        proxy, full = self._pair.get(req.project, req.key)
        if not 0 <= req.frame < full.frame_count:
            return
        images = preview_images(proxy.layers(req.frame, with_original=True))
        # sent even when a newer request waits: while the playhead is dragged the window shows the newest picture
        self.ready.emit(req.rid, req.frame, "proxy", images)
        if self._stale(req):
            return
        images = preview_images(full.layers(req.frame, with_original=True))
        self._keep(req.key, req.frame, images)
        if not self._stale(req):
            self.ready.emit(req.rid, req.frame, "full", images)


def _nbytes(images: dict) -> int:
    return sum(v.nbytes for v in images.values())


class ExportWorker(QThread):
    """Runs the same render as ``harmovid render`` in the background. Signals progress(done, total, eta_seconds),
    finished_ok(path), failed(message), cancelled()."""

    progress = Signal(int, int, float)
    denoising = Signal(int, int, object)  # step, steps, uint8 RGB image of the clip's middle frame as it forms
    finished_ok = Signal(str)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, project: Project, output: str, fmt: str, start: int | None, end: int | None,
                 scale: float = 1.0, layer: str = "composite", parent=None, overwrite: bool = False,
                 alpha: str = "straight", timecode: str | None = None, handles: int = 0):
        super().__init__(parent)
        self.project = copy.deepcopy(project)
        self.overwrite = overwrite
        self.options = {"alpha": alpha, "timecode": timecode, "handles": handles}
        self.output, self.fmt, self.start_frame, self.end_frame = output, fmt, start, end
        self.scale, self.layer = scale, layer
        self.token = CancelToken()
        self.warnings: list[str] = []  # set before finished_ok: frames the sources could not decode

    def cancel(self) -> None:
        self.token.cancel()

    def run(self) -> None:
        try:
            damaged = {}
            for p in render(self.project, self.output, fmt=self.fmt, layer=self.layer, start=self.start_frame,
                            end=self.end_frame, cancel=self.token, scale=self.scale,
                            overwrite=self.overwrite, **self.options):
                if p.phase == "denoising":  # a whole-clip engine runs first: show the clip forming
                    img = None
                    if p.preview is not None and len(p.preview):
                        mid = np.asarray(p.preview[len(p.preview) // 2]).transpose(1, 2, 0)
                        img = np.clip((mid + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
                    self.denoising.emit(p.done, p.total, img)
                    continue
                self.progress.emit(p.done, p.total, p.eta)
                damaged = p.damaged
            self.warnings = damaged_warnings(self.project, damaged)
            self.finished_ok.emit(self.output)
        except Cancelled:
            self.cancelled.emit()
        except Exception as exc:
            if not isinstance(exc, HarmoVidError):
                traceback.print_exc()
            self.failed.emit(_user_message(exc))


class ScopeWorker(QThread):
    """Talent brightness per frame (original, per-frame harmonized, deflickered) at proxy size, streamed as
    ``point(frame, values)``; restart with new settings by creating a new worker (the old one is cancelled).

    Background work: while ``yield_to()`` is true (the preview serves a request, an export runs) it stops between
    stages of its frame and waits, then goes on from what it had computed."""

    point = Signal(int, object)
    failed = Signal(str)

    def __init__(self, project: Project, parent=None, yield_to=None):
        super().__init__(parent)
        self.project = copy.deepcopy(project)
        self.token = CancelToken()
        self.yield_to = yield_to or (lambda: False)

    def cancel(self) -> None:
        self.token.cancel()

    def run(self) -> None:
        try:
            probe = Compositor(self.project)
            w, h = probe.size
            n = probe.frame_count
            probe.close()
            comp = Compositor(self.project, scale=min(1.0, 256 / max(w, h)))
            comp.interrupt = self.yield_to
            i = 0
            while i < n and not self.token.cancelled:
                if self.yield_to():
                    time.sleep(0.02)
                    continue
                try:
                    layers = comp.layers(i, with_original=True, with_per_frame=True)
                except Cancelled:  # the preview wants the CPU: this frame again once it is served
                    continue
                self.point.emit(i, talent_brightness(layers))
                i += 1
                time.sleep(0)  # let the GUI thread in
            comp.close()
        except Exception as exc:
            self.failed.emit(_user_message(exc))
