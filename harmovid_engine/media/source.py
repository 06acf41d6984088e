"""Frame sources: one interface over video files, image sequences and stills.

``read(i)`` gives frame ``i`` frame-accurately as RGB(A) code values, ``(H, W, 3|4)`` uint8 (uint16 for sources deeper
than 8 bits, float32 for EXR). ``read_linear(i)`` gives float32 linear RGB plus alpha (or None). ``frames(start, end)``
streams a range with one decoder and bounded memory. A small LRU keeps recently read frames for scrubbing.

Video decoding runs ffmpeg in a pipe. Random access starts a decoder with an input-side ``-ss`` (ffmpeg decodes from
the previous keyframe and drops frames before the target, so B-frames and open GOPs are exact); reads a little ahead
of the open decoder continue it instead of seeking. Colour conversion to RGB honours the file's matrix and range
(BT.709 default, untagged SD as BT.601, limited or full range).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import numpy as np

from ..colour import alpha_to_float, to_linear
from ..errors import MediaError
from .ffmpeg import ffmpeg_exe, last_error_line, widen_pipe
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


class _Decoder:
    """One ffmpeg process decoding a video from ``start`` onward into raw RGB(A) frames."""

    def __init__(self, info: MediaInfo, start: int):
        self.info = info
        self.next_index = start
        self.channels = 4 if info.has_alpha else 3
        deep = info.bit_depth > 8
        self.dtype = np.dtype("<u2") if deep else np.dtype(np.uint8)
        pix = {(3, False): "rgb24", (4, False): "rgba", (3, True): "rgb48le", (4, True): "rgba64le"}[
            (self.channels, deep)]
        self.frame_bytes = info.width * info.height * self.channels * self.dtype.itemsize
        args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error"]
        if start > 0:
            # Half a frame before the target: frames with pts < ss are dropped, frame `start` is kept.
            args += ["-ss", f"{(start - 0.5) / float(info.fps):.6f}"]
        scale = "scale=flags=bicubic+accurate_rnd+full_chroma_int:out_range=pc"
        if not info.pix_fmt.startswith(("rgb", "bgr", "gbr", "argb", "abgr", "pal")):
            scale += f":in_color_matrix={info.color_matrix}:in_range={info.color_range}"
        args += ["-i", info.path, "-map", "0:v:0", "-an", "-sn", "-fps_mode", "passthrough", "-vf", scale,
                 "-f", "rawvideo", "-pix_fmt", pix, "-"]
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._stderr, bufsize=self.frame_bytes)
        widen_pipe(self.proc.stdout)

    def read_next(self) -> np.ndarray:
        buf = _read_exact(self.proc.stdout, self.frame_bytes)
        if len(buf) < self.frame_bytes:
            self.proc.wait(timeout=30)
            self._stderr.seek(0)
            detail = last_error_line(self._stderr.read()) if self.proc.returncode else "the file ends early"
            raise MediaError(f"'{Path(self.info.path).name}': frame {self.next_index} of {self.info.frame_count} "
                             f"cannot be decoded ({detail}); the file may be truncated or corrupt")
        frame = np.frombuffer(buf, dtype=self.dtype).reshape(self.info.height, self.info.width, self.channels)
        self.next_index += 1
        return frame.astype(np.uint16) if self.dtype != np.uint8 else frame

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.stdout.close()
        except OSError:
            pass
        self.proc.wait()
        self._stderr.close()


def _read_exact(stream, n: int) -> bytes:
    chunks = []
    got = 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class VideoSource(FrameSource):
    """A video file decoded by ffmpeg."""

    def __init__(self, info: MediaInfo, cache_bytes: int = 192 * 2**20):
        super().__init__(info, cache_bytes)
        self._decoder: _Decoder | None = None
        self.seeks = 0  # decoder restarts, for tests and diagnostics

    def _read(self, index: int) -> np.ndarray:
        dec = self._decoder
        if dec is None or not (dec.next_index <= index <= dec.next_index + SEEK_AHEAD_LIMIT):
            if dec is not None:
                dec.close()
            dec = self._decoder = _Decoder(self.info, index)
            self.seeks += 1
        while dec.next_index < index:
            i = dec.next_index
            frame = dec.read_next()
            frame.setflags(write=False)
            self.cache.put(i, frame)
        return dec.read_next()

    def frames(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        end = self._end(end)
        if start >= end:
            return
        dec = _Decoder(self.info, start)
        try:
            for i in range(start, end):
                yield i, dec.read_next()
        finally:
            dec.close()

    def close(self) -> None:
        with self._lock:
            if self._decoder is not None:
                self._decoder.close()
                self._decoder = None
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
