"""Probe a media file without ffprobe: size, frame rate as a rational, frame count, tags, alpha, audio.

Video files are probed from ``ffmpeg -i`` (stream description) plus a stream copy to the null muxer, which counts the
video packets exactly without decoding (milliseconds even for long clips). Image sequences and stills are probed with
OpenCV.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import MediaError
from .ffmpeg import last_error_line, run_ffmpeg

VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mxf", ".mpg", ".mpeg", ".ts", ".gif"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".bmp", ".webp"}

_NTSC = {
    "23.98": Fraction(24000, 1001), "23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001),
    "59.94": Fraction(60000, 1001), "47.95": Fraction(48000, 1001), "119.88": Fraction(120000, 1001),
}


@dataclass
class MediaInfo:
    """What a frame source is. ``frame_count`` is None for a still (a still plate is a clip of any length)."""

    path: str
    kind: str  # "video" | "sequence" | "still"
    width: int
    height: int
    fps: Fraction | None
    frame_count: int | None
    duration: float | None
    rotation: int = 0
    pix_fmt: str = ""
    bit_depth: int = 8
    color_range: str = "tv"  # "tv" (limited) | "pc" (full)
    color_matrix: str = "bt709"  # "bt709" | "bt601"
    color_tags: str = ""  # tags as found in the file, "" when untagged
    has_alpha: bool = False
    has_audio: bool = False
    codec: str = ""
    linear: bool = False  # EXR: stored values are already linear light

    def describe(self) -> dict:
        d = asdict(self)
        d["fps"] = f"{self.fps.numerator}/{self.fps.denominator}" if self.fps else None
        d["fps_float"] = round(float(self.fps), 4) if self.fps else None
        return d


def parse_fps(text: str) -> Fraction:
    if text in _NTSC:
        return _NTSC[text]
    if "/" in text:
        n, d = text.split("/")
        return Fraction(int(n), int(d))
    value = float(text.rstrip("k")) * (1000 if text.endswith("k") else 1)
    return Fraction(value).limit_denominator(1001)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError(f"'{path}' does not exist")
    if path.is_dir():
        raise MediaError(f"'{path}' is a folder, not a media file")
    if path.stat().st_size == 0:
        raise MediaError(f"'{path}' is empty (0 bytes)")


def probe(path: str | os.PathLike) -> MediaInfo:
    """Describe a video file, an image sequence (a ``%05d`` pattern or a folder of images) or a still image."""
    from .sequence import find_sequence  # local import: sequence imports probe

    p = Path(path)
    if "%" in p.name or p.is_dir():
        return find_sequence(p, required=True).info()
    _check_file(p)
    if p.suffix.lower() in IMAGE_EXTS:
        from .sequence import probe_still

        return probe_still(p)
    return probe_video(p)


_STREAM_RE = re.compile(r"Stream #0:(\d+)[^:]*: (Video|Audio): (.*)")


def probe_video(p: Path) -> MediaInfo:
    res = run_ffmpeg(["-i", str(p)], timeout=60)
    err = res.stderr.decode("utf-8", "replace")
    if "Input #0" not in err:
        raise MediaError(f"'{p.name}' is not a readable video or image ({last_error_line(res.stderr)})")
    video_line = None
    has_audio = False
    rotation = 0
    for ln in err.splitlines():
        m = _STREAM_RE.search(ln)
        if m:
            if m.group(2) == "Video" and video_line is None and "attached pic" not in ln:
                video_line = m.group(3)
            elif m.group(2) == "Audio":
                has_audio = True
        rm = re.search(r"rotation of (-?[\d.]+) degrees", ln)
        if rm and video_line is not None:
            rotation = int(round(float(rm.group(1)))) % 360
    if video_line is None:
        raise MediaError(f"'{p.name}' has no video stream")
    codec = video_line.split()[0].strip(",")
    # Pixel format and colour tags: "yuv420p(tv, bt709/unknown/unknown, progressive)" or "yuvj420p(pc)".
    fmt_m = re.search(r",\s*([a-z0-9_]+)(\(([^)]*)\))?,\s*(\d+)x(\d+)", video_line)
    if not fmt_m:
        raise MediaError(f"'{p.name}': cannot understand the video stream ({video_line[:80]})")
    pix_fmt = fmt_m.group(1)
    tags = [t.strip() for t in (fmt_m.group(3) or "").split(",")]
    width, height = int(fmt_m.group(4)), int(fmt_m.group(5))
    color_range = "pc" if ("pc" in tags or pix_fmt.startswith("yuvj")) else "tv"
    matrix_tag = ""
    for t in tags:
        if "/" in t or t in ("bt709", "bt470bg", "smpte170m", "bt2020nc"):
            matrix_tag = t.split("/")[0]
    if matrix_tag in ("bt470bg", "smpte170m", "bt601"):
        matrix = "bt601"
    elif matrix_tag == "bt709":
        matrix = "bt709"
    else:  # untagged: HD is BT.709, SD is BT.601 (what players do)
        matrix = "bt709" if height >= 720 or width >= 1280 else "bt601"
    if pix_fmt.startswith(("rgb", "bgr", "gbr", "argb", "rgba", "bgra", "abgr", "pal8")):
        color_range = "pc"
    fps_m = re.search(r"([\d.]+k?) fps", video_line) or re.search(r"([\d.]+k?) tbr", video_line)
    fps = parse_fps(fps_m.group(1)) if fps_m else Fraction(25)
    hdr = [t for t in " ".join(tags).replace("/", " ").split() if t in ("bt2020nc", "bt2020c", "bt2020",
                                                                       "arib-std-b67", "smpte2084")]
    if hdr:
        kind = "HLG" if "arib-std-b67" in hdr else "PQ (HDR10)" if "smpte2084" in hdr else "BT.2020"
        raise MediaError(f"'{p.name}' is {kind} footage ({', '.join(dict.fromkeys(hdr))}); HarmoVid works in BT.709 "
                         "SDR and would show it with wrong colours. Convert it to BT.709 first (your grading "
                         "tool's HDR-to-SDR conversion, or ffmpeg's zscale/tonemap filters).")
    tbr_m = re.search(r"([\d.]+k?) tbr", video_line)
    if tbr_m and _variable_rate(fps, parse_fps(tbr_m.group(1))):
        raise MediaError(f"'{p.name}' has a variable frame rate (on average {float(fps):.3g} fps, up to "
                         f"{float(parse_fps(tbr_m.group(1))):.3g}): its frames would not line up with the matte and "
                         f"the audio. Convert it to a constant rate first, e.g. ffmpeg -i {p.name} -fps_mode cfr "
                         f"-r {float(parse_fps(tbr_m.group(1))):.5g} -c:a copy constant{p.suffix}")
    depth_m = re.search(r"p(\d+)(le|be)", pix_fmt)
    bit_depth = int(depth_m.group(1)) if depth_m else (16 if "64" in pix_fmt or "48" in pix_fmt else 8)
    has_alpha = bool(re.match(r"(yuva|rgba|bgra|argb|abgr|gbrap|ya|pal8)", pix_fmt))
    if rotation in (90, 270):
        width, height = height, width
    count = count_frames(p)
    if count == 0:
        raise MediaError(f"'{p.name}' contains no decodable video frames")
    duration = count / float(fps)
    return MediaInfo(
        path=str(p), kind="video", width=width, height=height, fps=fps, frame_count=count, duration=duration,
        rotation=rotation, pix_fmt=pix_fmt, bit_depth=bit_depth, color_range=color_range, color_matrix=matrix,
        color_tags=matrix_tag, has_alpha=has_alpha, has_audio=has_audio, codec=codec,
    )


def _variable_rate(avg: Fraction, tbr: Fraction) -> bool:
    """ffmpeg's average rate below its base rate by other than a whole factor (interlaced: fields at twice the
    frame rate) means frames of varying duration (phones, screen recordings)."""
    if not avg or not tbr or abs(float(avg) - float(tbr)) <= 0.005 * float(tbr):
        return False
    ratio = float(tbr) / float(avg)
    return abs(ratio - round(ratio)) > 0.02


def count_frames(p: Path) -> int:
    """Exact number of video packets (= frames) of the first video stream, by stream copy (no decode)."""
    res = run_ffmpeg(["-i", str(p), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"], timeout=300)
    err = res.stderr.decode("utf-8", "replace")
    frames = re.findall(r"frame=\s*(\d+)", err)
    if res.returncode != 0 and not frames:
        raise MediaError(f"'{p.name}' cannot be read ({last_error_line(res.stderr)})")
    return int(frames[-1]) if frames else 0


def duration_seconds(info: MediaInfo) -> float:
    if info.frame_count is None or not info.fps:
        return math.inf
    return info.frame_count / float(info.fps)
