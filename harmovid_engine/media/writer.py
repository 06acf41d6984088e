"""Writers: H.264 MP4, ProRes 4444 MOV with alpha, PNG sequences (8/16 bit, with alpha).

Frames come in as float32 linear RGB ``(H, W, 3)`` plus optional alpha ``(H, W)``; the writer encodes them to code
values. Every writer writes to a temporary name beside the destination and renames it into place only when
``close()`` succeeds; ``abort()`` (or an exception inside a ``with`` block) leaves nothing at the destination.
Audio from the talent clip can be muxed into H.264 and ProRes outputs.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from ..cleanup import clean_stale
from ..colour import alpha_from_float, from_linear, to_linear
from ..errors import MediaError, named_for
from .ffmpeg import ffmpeg_exe, last_error_line, widen_pipe

FEED_FRAMES = 2  # frames queued for the encoder's pipe
# What marks a render as this tool's, so that a later render may replace it and nothing else
# (``render/destination.py``): the container comment of every movie, and a file in every PNG render's folder listing
# the frames written there.
RENDER_TAG = "HarmoVid Studio render"
MARKER = ".harmovid-render.json"
_UMASK = os.umask(0)
os.umask(_UMASK)


def _publish_mode(path: Path, directory: bool = False) -> None:
    """Temporary files are private (0600); give the finished output the user's normal permissions."""
    try:
        os.chmod(path, (0o777 if directory else 0o666) & ~_UMASK)
    except OSError:
        pass


FORMATS = {
    "h264": ".mp4",
    "prores4444": ".mov",
    "png": "",  # a folder of frame_%05d.png
}


@dataclass
class AudioSource:
    """Audio to carry into an export: ``path``'s first audio stream from ``start`` seconds for ``duration``."""

    path: str
    start: float = 0.0
    duration: float | None = None


class FrameWriter:
    """Base class: ``write(rgb_linear, alpha=None)`` per frame, then ``close()`` (or ``abort()``)."""

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: Fraction):
        self.path = Path(path)
        self.width, self.height, self.fps = int(width), int(height), Fraction(fps)
        self.frames_written = 0
        self._closed = False
        if not self.path.parent.exists():
            raise MediaError(f"the folder '{self.path.parent}' does not exist")

    def write(self, rgb_linear: np.ndarray, alpha: np.ndarray | None = None) -> None:
        if rgb_linear.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame is {rgb_linear.shape[1]}x{rgb_linear.shape[0]}, writer is "
                             f"{self.width}x{self.height}")
        self._write(rgb_linear, alpha)
        self.frames_written += 1

    def write_codes(self, codes: np.ndarray) -> None:
        """Write a frame given as 8-bit sRGB code values (H, W, 3) uint8 (no alpha)."""
        self.write(to_linear(codes))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _write(self, rgb_linear, alpha):  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class FFmpegWriter(FrameWriter):
    """Pipes raw frames into ffmpeg writing a temporary file; renamed into place on success."""

    codec_args: list[str] = []
    container = "mp4"
    audio_codec = ["-c:a", "aac", "-b:a", "192k"]
    with_alpha = False

    def __init__(self, path, width, height, fps, audio: AudioSource | None = None, **options):
        super().__init__(path, width, height, fps)
        self.options = options
        clean_stale(self.path.parent)
        with named_for(self.path):
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.{os.getpid()}.", suffix=".part",
                                       dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self._stderr = tempfile.TemporaryFile()
        pix_in = self.input_pix_fmt()
        args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *self.input_args(),
                "-f", "rawvideo", "-pix_fmt", pix_in, "-s", f"{self.width}x{self.height}",
                "-framerate", f"{self.fps.numerator}/{self.fps.denominator}", "-i", "-"]
        has_audio = audio is not None
        if has_audio:
            if audio.start > 0:
                args += ["-ss", f"{audio.start:.6f}"]
            if audio.duration is not None:
                args += ["-t", f"{audio.duration:.6f}"]
            args += ["-i", str(audio.path)]
        args += ["-map", "0:v:0"]
        if has_audio:
            args += ["-map", "1:a:0?", *self.audio_codec]
        args += self.video_args()
        if options.get("timecode"):  # the first frame's timecode (a tmcd track: editing systems read it)
            args += ["-timecode", str(options["timecode"])]
        args += ["-metadata", f"comment={RENDER_TAG}", "-f", self.container, str(self._tmp)]
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=self._stderr)
        widen_pipe(self._proc.stdin)
        # Frames go through the pipe from a feeder thread, so computing the next frame overlaps with the encoder
        # taking this one (a pipe holds 64 KB: a synchronous write waits until ffmpeg has read the whole frame).
        self._queue: queue.Queue = queue.Queue(maxsize=FEED_FRAMES)
        self._feed_error: BaseException | None = None
        self._feeder = threading.Thread(target=self._feed, name="encoder-feed", daemon=True)
        self._feeder.start()

    def _feed(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                return
            if self._feed_error is None:
                try:
                    self._proc.stdin.write(data)
                except (BrokenPipeError, OSError, ValueError) as exc:  # the encoder stopped (or was killed)
                    self._feed_error = exc

    def _stop_feeder(self, drain: bool) -> None:
        """End the feeder thread: after it has piped what is queued, or (``drain=False``) dropping it."""
        while True:
            try:
                self._queue.put(None, block=drain, timeout=None if drain else 0)
                break
            except queue.Full:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass
        self._feeder.join()

    def input_pix_fmt(self) -> str:
        return "rgba64le" if self.with_alpha else "rgb24"

    def input_args(self) -> list[str]:
        return []

    def video_args(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _pack(self, codes: np.ndarray):
        """What is piped for a frame of 8-bit sRGB codes (H, W, 3): a copy (it is piped after the call returns)."""
        return np.ascontiguousarray(codes).tobytes()

    def _encode(self, rgb_linear, alpha) -> bytes:
        if self.with_alpha:
            rgba = np.empty((self.height, self.width, 4), np.uint16)
            rgba[..., :3] = from_linear(rgb_linear, np.uint16)
            rgba[..., 3] = 65535 if alpha is None else alpha_from_float(alpha, np.uint16)
            if alpha is not None and self.options.get("premultiplied"):
                rgba[..., :3] = premultiply_codes(rgba[..., :3], alpha)
            return rgba.astype("<u2").tobytes()
        return self._pack(from_linear(rgb_linear, np.uint8))

    def _write(self, rgb_linear, alpha):
        self._send(self._encode(rgb_linear, alpha))

    def _send(self, data) -> None:
        if self._feed_error is not None or self._proc.poll() is not None:
            self._fail("the encoder stopped")
        self._queue.put(data)

    def write_codes(self, codes: np.ndarray) -> None:
        if self.with_alpha:
            return super().write_codes(codes)
        if codes.shape != (self.height, self.width, 3) or codes.dtype != np.uint8:
            raise ValueError(f"expected ({self.height}, {self.width}, 3) uint8 codes, got {codes.shape} {codes.dtype}")
        self._send(self._pack(codes))
        self.frames_written += 1

    def _fail(self, what: str):
        self.abort()
        self._stderr.seek(0)
        raise MediaError(f"writing '{self.path.name}' failed: {what} ({last_error_line(self._stderr.read())})")

    def close(self) -> None:
        if self._closed:
            return
        self._stop_feeder(drain=True)
        if self._feed_error is not None:
            self._fail("the encoder stopped")
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        rc = self._proc.wait()
        if rc != 0 or self.frames_written == 0:
            self._fail("no frames were written" if self.frames_written == 0 else f"ffmpeg exited with {rc}")
        _publish_mode(self._tmp)
        os.replace(self._tmp, self.path)
        self._stderr.close()
        self._closed = True

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._proc.poll() is None:
            self._proc.kill()
        self._stop_feeder(drain=False)
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        self._proc.wait()
        self._tmp.unlink(missing_ok=True)


BT709_TAGS = ("-color_range", "tv", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709")


class H264Writer(FFmpegWriter):
    """H.264 in MP4, yuv420p, BT.709 limited range, tagged. Odd sizes are padded by one edge pixel.

    Even-sized frames are converted to 4:2:0 Y'CbCr here, in one compiled pass (:func:`rgb_to_i420`), and piped as
    such: half the bytes through the pipe, and ffmpeg's own RGB conversion (~10 ms of CPU per 1080p frame) is not
    needed. Without the compiled kernel, or for odd sizes, RGB is piped and ffmpeg converts."""

    container = "mp4"

    def __init__(self, path, width, height, fps, audio: AudioSource | None = None, **options):
        from ..composite.fast import kernel_available

        # (decided before the encoder starts: its input format depends on it)
        self._i420 = not (int(width) % 2 or int(height) % 2) and kernel_available()
        super().__init__(path, width, height, fps, audio, **options)

    def input_pix_fmt(self) -> str:
        return "yuv420p" if self._i420 else "rgb24"

    def input_args(self) -> list[str]:
        # what the piped Y'CbCr is (untagged, ffmpeg would take it for full range and convert it)
        return [*BT709_TAGS] if self._i420 else []

    def _pack(self, codes: np.ndarray):
        if self._i420:
            from ..composite.fast import rgb_to_i420

            packed = rgb_to_i420(codes)  # a new array: piping it later is safe
            if packed is not None:
                return packed.data
        return super()._pack(codes)

    def video_args(self) -> list[str]:
        crf = int(self.options.get("crf", 18))
        preset = str(self.options.get("preset", "medium"))
        vf = []
        if not self._i420:
            pad = ("pad=ceil(iw/2)*2:ceil(ih/2)*2:0:0,fillborders=right=1:bottom=1:mode=smear,"
                   if self.width % 2 or self.height % 2 else "")
            # (full_chroma_int changes nothing for RGB in, 4:2:0 out, but takes swscale off its fast path: ~1 s of
            # CPU per 120 frames at 1080p, half of it in the kernel)
            vf = ["-vf", pad + "scale=out_color_matrix=bt709:out_range=tv:flags=bicubic+accurate_rnd"]
        return [*vf, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf), "-preset", preset,
                *BT709_TAGS, "-movflags", "+faststart"]


class ProRes4444Writer(FFmpegWriter):
    """ProRes 4444 in MOV, yuva444p10le with 16-bit alpha, BT.709 tagged."""

    container = "mov"
    with_alpha = True
    audio_codec = ["-c:a", "pcm_s16le"]

    def video_args(self) -> list[str]:
        # (setparams: without it the frames reach prores_ks with primaries and transfer unset, and the file is
        # tagged bt709/unknown/unknown whatever the output options say)
        return ["-vf", "scale=out_color_matrix=bt709:out_range=tv:flags=bicubic+accurate_rnd+full_chroma_int,"
                       "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709",
                "-c:v", "prores_ks", "-profile:v", "4444", "-pix_fmt", "yuva444p10le", "-alpha_bits", "16",
                "-vendor", "apl0", "-color_range", "tv", "-colorspace", "bt709", "-color_primaries", "bt709",
                "-color_trc", "bt709"]


class PngSequenceWriter(FrameWriter):
    """A folder of ``frame_%05d.png`` (8 or 16 bit, RGBA when alpha is given), moved into place on close."""

    def __init__(self, path, width, height, fps, bit_depth: int = 8, start_number: int = 0,
                 premultiplied: bool = False, timecode: str | None = None, **_):
        super().__init__(path, width, height, fps)
        if bit_depth not in (8, 16):
            raise MediaError("PNG bit depth must be 8 or 16")
        self.dtype = np.uint8 if bit_depth == 8 else np.uint16
        self.start_number = start_number
        self.premultiplied, self.timecode = bool(premultiplied), timecode
        clean_stale(self.path.parent)
        with named_for(self.path):
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.{os.getpid()}.", suffix=".part",
                                              dir=self.path.parent))

    def _write(self, rgb_linear, alpha):
        rgb = from_linear(rgb_linear, self.dtype)
        if alpha is not None and self.premultiplied:
            rgb = premultiply_codes(rgb, alpha)
        if alpha is not None:
            img = cv2.cvtColor(np.dstack([rgb, alpha_from_float(alpha, self.dtype)]), cv2.COLOR_RGBA2BGRA)
        else:
            img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        name = self._tmp / f"frame_{self.start_number + self.frames_written:05d}.png"
        if not cv2.imwrite(str(name), img, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            self.abort()
            raise MediaError(f"cannot write '{name.name}' (disk full or no permission?)")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            frames = sorted(e.name for e in os.scandir(self._tmp) if e.name.endswith(".png"))
            meta = {"tool": RENDER_TAG, "frames": frames, "fps": str(self.fps),
                    "alpha": "premultiplied" if self.premultiplied else "straight"}
            if self.timecode:
                meta["timecode"] = self.timecode  # of the first frame (PNG has no place for it)
            (self._tmp / MARKER).write_text(json.dumps(meta) + "\n", encoding="utf-8")
        except OSError as exc:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise MediaError(f"cannot finish the frames in '{self.path.parent}' ({exc.strerror or exc})") from None
        _publish_mode(self._tmp, directory=True)
        if os.path.lexists(self.path):
            if not self.path.is_dir() or (any(os.scandir(self.path)) and not is_png_render(self.path)):
                shutil.rmtree(self._tmp, ignore_errors=True)
                raise MediaError(f"'{self.path}' is not an empty folder or an earlier PNG render of this tool: "
                                 "nothing was replaced")
            old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
            os.replace(self.path, old)
            os.replace(self._tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        shutil.rmtree(self._tmp, ignore_errors=True)


def premultiply_codes(codes: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Code values times alpha, rounded (premultiplied as compositing applications read it: the stored colour
    is the straight colour's code value times alpha, so dividing by alpha gives it back)."""
    top = np.iinfo(codes.dtype).max
    a = np.clip(alpha, 0.0, 1.0).astype(np.float32)[..., None]
    return np.clip(codes.astype(np.float32) * a + 0.5, 0, top).astype(codes.dtype)


def is_png_render(folder: Path) -> bool:
    """True when ``folder`` is a PNG render of this tool holding nothing it did not write (its marker lists it)."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        frames = set(marker["frames"])
        names = {e.name for e in os.scandir(folder)}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return names <= frames | {MARKER}


def open_writer(fmt: str, path, width: int, height: int, fps, audio: AudioSource | None = None,
                **options) -> FrameWriter:
    """Open a writer by format name: ``h264``, ``prores4444`` or ``png`` (options: crf, preset, bit_depth)."""
    if fmt == "h264":
        return H264Writer(path, width, height, fps, audio=audio, **options)
    if fmt == "prores4444":
        return ProRes4444Writer(path, width, height, fps, audio=audio, **options)
    if fmt == "png":
        return PngSequenceWriter(path, width, height, fps, **options)
    raise MediaError(f"unknown output format '{fmt}' (choose {', '.join(FORMATS)})")
