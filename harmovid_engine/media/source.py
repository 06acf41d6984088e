"""Frame sources: one interface over video files, image sequences and stills.

``read(i)`` gives frame ``i`` frame-accurately as RGB(A) code values, ``(H, W, 3|4)`` uint8 (uint16 for sources deeper
than 8 bits, float32 for EXR). ``read_linear(i)`` gives float32 linear RGB plus alpha (or None). ``frames(start, end)``
streams a range with one decoder and bounded memory. A small LRU keeps recently read frames for scrubbing.

Video decodes in process (PyAV, the FFmpeg libraries: no process to start per seek). A seek goes to the keyframe
before the target and decodes forward (frames before the target are dropped, so B-frames and open GOPs are exact;
the last few are kept in the cache, for stepping back); reads a little ahead of the open decoder continue it instead
of seeking. The conversion to RGB is ffmpeg's scale filter with the flags the writers' round-trip tests assume; it
honours the file's matrix and range (BT.709 default, untagged SD as BT.601, limited or full range).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict, deque
from pathlib import Path
from typing import Iterator

import av
import av.filter
import numpy as np

from ..colour import alpha_to_float, to_linear
from ..errors import MediaError
from .probe import MediaInfo, probe
from .sequence import find_sequence, read_image

# Reads up to this many frames past the open decoder continue it instead of starting a new seek.
SEEK_AHEAD_LIMIT = 24


class FrameCache:
    """LRU of decoded frames bounded by bytes."""

    def __init__(self, max_bytes: int = 192 * 2**20):
        self.max_bytes = max_bytes
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: int) -> np.ndarray | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item

    def put(self, key: int, value: np.ndarray) -> None:
        if key in self._items:
            self._bytes -= self._items.pop(key).nbytes
        if value.nbytes > self.max_bytes:
            return
        self._items[key] = value
        self._bytes += value.nbytes
        while self._bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.nbytes

    def set_limit(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        while self._bytes > self.max_bytes and self._items:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.nbytes

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: int) -> bool:  # (not a use: the hit counters and the order stay)
        return key in self._items


class FrameSource:
    """Base class. Subclasses implement ``_read`` (random access) and may override ``frames`` (streaming)."""

    info: MediaInfo

    def __init__(self, info: MediaInfo, cache_bytes: int = 192 * 2**20):
        self.info = info
        self.cache = FrameCache(cache_bytes)
        self._lock = threading.RLock()

    # -- geometry -----------------------------------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        return self.info.width, self.info.height

    @property
    def is_still(self) -> bool:
        return self.info.frame_count is None

    def __len__(self) -> int:
        if self.info.frame_count is None:
            raise TypeError("a still has no length; it repeats for any frame index")
        return self.info.frame_count

    # -- access -------------------------------------------------------------------------------------------------
    def read(self, index: int) -> np.ndarray:
        index = self._check_index(index)
        with self._lock:
            frame = self.cache.get(index)
            if frame is None:
                frame = self._read(index)
                frame.setflags(write=False)
                self.cache.put(index, frame)
            return frame

    def read_linear(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Frame ``index`` as ``((H, W, 3) float32 linear RGB, (H, W) float32 alpha or None)``."""
        return split_linear(self.read(index), self.info.linear)

    def frames(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Stream ``(index, frame)`` for ``start <= index < end`` (end defaults to the last frame)."""
        end = self._end(end)
        for i in range(start, end):
            yield i, self.read(i)

    def close(self) -> None:
        self.cache.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- helpers ------------------------------------------------------------------------------------------------
    def _end(self, end: int | None) -> int:
        if end is None:
            if self.info.frame_count is None:
                raise ValueError("streaming a still needs an explicit end")
            return self.info.frame_count
        return end if self.info.frame_count is None else min(end, self.info.frame_count)

    def _check_index(self, index: int) -> int:
        index = int(index)
        if self.info.frame_count is None:
            return 0
        if not 0 <= index < self.info.frame_count:
            raise IndexError(f"frame {index} is outside '{Path(self.info.path).name}' (0..{self.info.frame_count - 1})")
        return index

    def _read(self, index: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


def split_linear(frame: np.ndarray, is_linear: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    rgb = frame[..., :3]
    if is_linear:
        lin = np.clip(rgb.astype(np.float32), 0.0, None)
    else:
        lin = to_linear(rgb)
    alpha = alpha_to_float(frame[..., 3]) if frame.shape[-1] == 4 else None
    return lin, alpha


class StillSource(FrameSource):
    """A single image used as a clip of any length."""

    def __init__(self, info: MediaInfo):
        super().__init__(info, cache_bytes=0)
        self._image = read_image(Path(info.path))
        self._image.setflags(write=False)

    def read(self, index: int) -> np.ndarray:
        return self._image


class SequenceSource(FrameSource):
    """A numbered image sequence."""

    def __init__(self, info: MediaInfo):
        super().__init__(info)
        seq = find_sequence(Path(info.path), required=True, fps=info.fps)
        self._seq = seq

    def _read(self, index: int) -> np.ndarray:
        img = read_image(self._seq.path(index))
        if img.shape[1] != self.info.width or img.shape[0] != self.info.height:
            raise MediaError(f"'{self._seq.path(index).name}' is {img.shape[1]}x{img.shape[0]}, but the sequence "
                             f"is {self.info.width}x{self.info.height}")
        if img.shape[2] != (4 if self.info.has_alpha else 3):
            img = img[..., :3] if img.shape[2] == 4 else np.concatenate(
                [img, np.full(img.shape[:2] + (1,), np.iinfo(img.dtype).max if img.dtype != np.float32 else 1.0,
                              img.dtype)], axis=2)
        return img


class _Overshoot(Exception):
    """A seek landed past its target (MPEG-TS and other containers without an exact index): seek earlier."""


class _Decoder:
    """One in-process decoder (PyAV) from frame ``start`` onward, each frame placed at the index its timestamp says.

    Frames are what their index says: a frame the decoder could not produce (a corrupt stretch of the file) is shown
    as the next good frame and listed in ``filled``; a repeated timestamp is dropped; so every later index still shows
    its own picture and streaming equals seeking. ``seek_from`` (seconds from the first frame) is where decoding
    starts, on the keyframe at or before it; frames before ``start`` are decoded and dropped, or handed to
    ``preroll(index, picture, frame)`` when they lie within ``SEEK_AHEAD_LIMIT`` of ``start`` (the frames an editor
    steps back to; ``picture(frame)`` converts one). Only frames that are shown are converted to RGB."""

    def __init__(self, info: MediaInfo, start: int, t0: float | None, seek_from: float = 0.0):
        self.info = info
        self.next_index = start
        self.t0 = t0  # the first frame's pts in seconds (None: learnt from the first frame, when start is 0)
        self.fps = float(info.fps)
        self.filled: set[int] = set()
        self._pending: tuple[int, np.ndarray] | None = None
        self.check_overshoot = False  # set by VideoSource for a seek that may overshoot
        self.preroll = None
        self._preroll_from: int | None = None  # the first keyframe's index: frames from it on are whole pictures
        self._reached = False  # whether the target (the first frame at or after ``start``) was decoded
        self.channels = 4 if info.has_alpha else 3
        deep = info.bit_depth > 8
        self.dtype = np.dtype("<u2") if deep else np.dtype(np.uint8)
        self.pix_fmt = {(3, False): "rgb24", (4, False): "rgba", (3, True): "rgb48le", (4, True): "rgba64le"}[
            (self.channels, deep)]
        self.scale = "flags=bicubic+accurate_rnd+full_chroma_int:out_range=pc"
        if not info.pix_fmt.startswith(("rgb", "bgr", "gbr", "argb", "abgr", "pal")):
            self.scale += f":in_color_matrix={info.color_matrix}:in_range={info.color_range}"
        self._errors: deque[str] = deque(maxlen=20)
        self._container = None
        try:
            self._container = av.open(info.path, metadata_errors="ignore")
            stream = self._container.streams.video[0]
            stream.thread_type = "AUTO"  # frame and slice threads: a seek decodes many frames to reach its target
            self._tb = float(stream.time_base)
            if seek_from > 0:
                base = t0 if t0 is not None else 0.0
                self._container.seek(int((base + seek_from) / self._tb), stream=stream, backward=True)
            graph = av.filter.Graph()
            graph.link_nodes(graph.add_buffer(template=stream), graph.add("scale", self.scale),
                             graph.add("format", self.pix_fmt), graph.add("buffersink")).configure()
        except (av.FFmpegError, IndexError, ValueError) as e:
            self.close()
            raise MediaError(f"'{Path(info.path).name}' cannot be read ({e})") from None
        self._graph = graph
        self._frames = self._decode(stream)

    def _cannot_decode(self, detail: str) -> MediaError:
        return MediaError(f"'{Path(self.info.path).name}': frame {self.next_index} of {self.info.frame_count} "
                          f"cannot be decoded ({detail}); the file may be truncated or corrupt")

    def peek(self) -> int:
        """Decode up to the next frame at or after ``next_index`` and return its index (raises ``_Overshoot`` when
        the first frame of a seek lies past its target)."""
        while self._pending is None:
            frame, t, key = self._read_raw()
            if t is None:  # no timestamps: frames in decode order
                j = self.next_index
            elif self.t0 is None:
                self.t0, j = t, self.next_index
            else:
                j = round((t - self.t0) * self.fps)
            if key and self._preroll_from is None:
                self._preroll_from = j
            if j < self.next_index:  # before the target (a seek's pre-roll) or a repeated timestamp
                # (only a seek's way to its target: a repeated timestamp later is dropped, as streaming does)
                if self.preroll is not None and self._preroll_from is not None and not self._reached and \
                        self._preroll_from <= j and self.next_index - j <= SEEK_AHEAD_LIMIT:
                    self.preroll(j, self._picture, frame)
                continue
            if self.check_overshoot and j > self.next_index:
                raise _Overshoot(j)
            self.check_overshoot = False
            self._reached = True
            self._pending = (j, self._picture(frame))
        return self._pending[0]

    def read_next(self) -> np.ndarray:
        j = self.peek()
        frame = self._pending[1]
        if j == self.next_index:
            self._pending = None
        else:
            self.filled.add(self.next_index)
        self.next_index += 1
        return frame

    def _decode(self, stream):
        """Decoded frames; a packet the decoder refuses is skipped (as ffmpeg does), a read error ends the file."""
        packets = self._container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError as e:
                self._errors.append(str(e))
                return
            try:
                yield from packet.decode()
            except av.FFmpegError as e:
                self._errors.append(str(e))

    def _read_raw(self):
        frame = next(self._frames, None)
        if frame is None:
            raise self._cannot_decode(self._errors[-1] if self._errors else "the file ends early")
        pts = frame.pts if frame.pts is not None else frame.dts
        return frame, (None if pts is None else pts * self._tb), frame.key_frame

    def _picture(self, frame) -> np.ndarray:
        try:
            self._graph.push(frame)
            rgb = self._graph.pull().to_ndarray()
        except av.FFmpegError as e:  # the picture changed size or format mid-file
            raise self._cannot_decode(str(e)) from None
        if rgb.shape != (self.info.height, self.info.width, self.channels):
            raise self._cannot_decode(f"a {rgb.shape[1]}x{rgb.shape[0]} picture in a "
                                      f"{self.info.width}x{self.info.height} file")
        return rgb

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def _frame_bytes(frame) -> int:
    return sum(p.buffer_size for p in frame.planes)


# Frames a seek passes on its way to the target are kept (undecoded, in the file's own format) up to this size.
PREROLL_BYTES = 96 * 2**20

# A seek that lands past its target retries this many seconds earlier, then from the start of the file.
SEEK_BACKOFF = (2.0, 10.0, 60.0)


class VideoSource(FrameSource):
    """A video file, decoded in process. Random access (``read``) keeps one decoder open while reads go forward, and
    the frames it decodes on its way to a target in the cache; ``frames`` streams with a decoder of its own.
    ``damaged``: indices the decoder could not produce (shown as the next good frame), gathered from every decoder
    so far."""

    def __init__(self, info: MediaInfo, cache_bytes: int = 192 * 2**20):
        super().__init__(info, cache_bytes)
        self._decoder: _Decoder | None = None
        self._t0: float | None = None
        self.damaged: set[int] = set()
        self.seeks = 0  # decoder restarts, for tests and diagnostics
        self._preroll: OrderedDict[int, tuple] = OrderedDict()  # frames the last seek passed, not yet converted
        self._preroll_bytes = 0

    def _start_time(self) -> float | None:
        """The first frame's timestamp (seconds), from a one-frame decode the first time a seek needs it."""
        if self._t0 is None:
            dec = _Decoder(self.info, 0, None)
            try:
                dec.read_next()
                self._t0 = dec.t0
            finally:
                dec.close()
        return self._t0

    def _open(self, start: int, preroll=None) -> _Decoder:
        """A decoder whose next frame is ``start``: seek half a frame early; where the container's seek overshoots,
        seek earlier, and at last decode from the start of the file."""
        t0 = self._start_time() if start > 0 else self._t0
        target = (start - 0.5) / float(self.info.fps)
        for back in (0.0, *SEEK_BACKOFF, None):
            seek_from = 0.0 if back is None else max(0.0, target - back)
            dec = _Decoder(self.info, start, t0, seek_from=seek_from)
            dec.preroll = preroll
            # decoding from the start of the file, a first frame past the target is a gap in the file, not a bad seek
            dec.check_overshoot = seek_from > 0.0
            try:
                dec.peek()
            except BaseException as e:
                dec.close()
                # past the target, or past the last frame after the keyframe it landed on: seek earlier
                if seek_from > 0.0 and isinstance(e, (_Overshoot, MediaError)):
                    continue
                raise
            if self._t0 is None:
                self._t0 = dec.t0
            return dec
        raise AssertionError("unreachable: the last try decodes from the start")

    def _collect(self, dec: _Decoder) -> None:
        self.damaged |= dec.filled

    def _read(self, index: int) -> np.ndarray:
        kept = self._preroll.pop(index, None)
        if kept is not None:
            self._preroll_bytes -= _frame_bytes(kept[1])
            return kept[0](kept[1])
        dec = self._decoder
        if dec is None or not (dec.next_index <= index <= dec.next_index + SEEK_AHEAD_LIMIT):
            if dec is not None:
                self._collect(dec)
                dec.close()
            self._decoder = None
            self._preroll.clear()
            self._preroll_bytes = 0
            dec = self._decoder = self._open(index, preroll=self._keep_preroll)
            self.seeks += 1
        while dec.next_index < index:
            i = dec.next_index
            frame = dec.read_next()
            frame.setflags(write=False)
            self.cache.put(i, frame)
        frame = dec.read_next()
        self._collect(dec)
        return frame

    def _keep_preroll(self, index: int, picture, frame) -> None:
        """Keep a frame a seek decoded on its way, still in the decoder's format (converted when it is read)."""
        if index in self._preroll or index in self.cache:
            return  # a repeated timestamp keeps its first picture, as streaming does
        self._preroll[index] = (picture, frame)
        self._preroll_bytes += _frame_bytes(frame)
        while self._preroll_bytes > PREROLL_BYTES:
            _, (_, old) = self._preroll.popitem(last=False)
            self._preroll_bytes -= _frame_bytes(old)

    def frames(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        end = self._end(end)
        if start >= end:
            return
        dec = self._open(start)
        try:
            for i in range(start, end):
                yield i, dec.read_next()
        finally:
            self._collect(dec)
            dec.close()

    def close(self) -> None:
        with self._lock:
            if self._decoder is not None:
                self._collect(self._decoder)
                self._decoder.close()
                self._decoder = None
            self._preroll.clear()
            self._preroll_bytes = 0
        super().close()


# Largest picture a render takes (8K DCI is 8192 x 4320 = 35.4 MP). A frame costs ~40 bytes a pixel across the
# graph's float32 linear buffers and caches: at this size ~1.5 GB a frame; a 16000 x 16000 plate took 8.3 GB.
MAX_PIXELS = 36_000_000


def open_source(path: str | os.PathLike, fps=None) -> FrameSource:
    """Open any supported media path as a :class:`FrameSource` (``fps`` sets an image sequence's rate). Pictures
    larger than 8K (``MAX_PIXELS``) are refused with what to do, before anything big is allocated."""
    info = probe(path)
    if info.width * info.height > MAX_PIXELS:
        name = Path(info.path).name
        raise MediaError(f"'{name}' is {info.width}x{info.height} ({info.width * info.height / 1e6:.0f} MP): HarmoVid "
                         f"works up to 8K ({MAX_PIXELS / 1e6:.0f} MP); scale it down first, e.g. "
                         f"ffmpeg -i {name} -vf scale=7680:-2 smaller{Path(name).suffix}")
    if info.kind == "still":
        return StillSource(info)
    if info.kind == "sequence":
        if fps:
            from fractions import Fraction

            info.fps = Fraction(fps).limit_denominator(1001)
            info.duration = info.frame_count / float(info.fps)
        return SequenceSource(info)
    return VideoSource(info)
