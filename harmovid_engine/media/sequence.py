"""Image sequences (``name_%05d.png``, .jpg, .tif, .exr) and stills, read with OpenCV."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from ..errors import MediaError  # noqa: E402
from .probe import IMAGE_EXTS, MediaInfo  # noqa: E402

DEFAULT_SEQUENCE_FPS = Fraction(25)


def read_image(path: Path) -> np.ndarray:
    """Read an image file as RGB(A) in its own dtype (uint8, uint16 or float32 for EXR)."""
    if not path.exists():
        raise MediaError(f"'{path}' does not exist")
    if path.stat().st_size == 0:
        raise MediaError(f"'{path}' is empty (0 bytes)")
    data = np.fromfile(str(path), dtype=np.uint8)
    # A JPEG (always 8-bit, no alpha) is decoded with its EXIF orientation applied, as every viewer shows it: phones
    # store portrait photos sideways with an orientation tag. (IMREAD_UNCHANGED, needed for 16-bit and alpha in
    # other formats, ignores the tag.)
    jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR if jpeg else cv2.IMREAD_UNCHANGED)
    if img is None:
        raise MediaError(f"'{path.name}' is not a readable image (corrupt or unsupported format)")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        raise MediaError(f"'{path.name}' has {img.shape[2]} channels; expected grey, RGB or RGBA")
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        img = img.astype(np.float32)
    return np.ascontiguousarray(img)


def probe_still(p: Path) -> MediaInfo:
    img = read_image(p)
    return MediaInfo(
        path=str(p), kind="still", width=img.shape[1], height=img.shape[0], fps=None, frame_count=None,
        duration=None, pix_fmt=str(img.dtype), bit_depth=img.dtype.itemsize * 8, color_range="pc",
        color_matrix="rgb", has_alpha=img.shape[2] == 4, codec=p.suffix.lower().lstrip("."),
        linear=p.suffix.lower() == ".exr",
    )


@dataclass
class ImageSequence:
    """A numbered run of image files. ``pattern`` is a printf pattern like ``/dir/name_%05d.png``."""

    pattern: str
    first: int
    count: int
    fps: Fraction = DEFAULT_SEQUENCE_FPS

    def path(self, index: int) -> Path:
        return Path(self.pattern % (self.first + index))

    def info(self) -> MediaInfo:
        img = read_image(self.path(0))
        ext = Path(self.pattern).suffix.lower()
        return MediaInfo(
            path=self.pattern, kind="sequence", width=img.shape[1], height=img.shape[0], fps=self.fps,
            frame_count=self.count, duration=self.count / float(self.fps), pix_fmt=str(img.dtype),
            bit_depth=img.dtype.itemsize * 8, color_range="pc", color_matrix="rgb", has_alpha=img.shape[2] == 4,
            codec=ext.lstrip("."), linear=ext == ".exr",
        )


_NUM_RE = re.compile(r"^(.*?)(\d+)(\.[A-Za-z0-9]+)$")


def find_sequence(p: Path, required: bool = False, fps: Fraction | None = None) -> ImageSequence | None:
    """Find the sequence a pattern (``x_%05d.png``), a folder of images or one numbered file belongs to."""
    fps = fps or DEFAULT_SEQUENCE_FPS
    p = Path(p)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS)
        if not files:
            if required:
                raise MediaError(f"'{p}' holds no images")
            return None
        return find_sequence(files[0], required, fps)
    if "%" in p.name:
        directory = p.parent
        m = re.match(r"^(.*)%0?(\d*)d(.*)$", p.name)
        if not m:
            raise MediaError(f"'{p.name}': unsupported sequence pattern (use name_%05d.png)")
        prefix, width, suffix = m.group(1), m.group(2), m.group(3)
        rx = re.compile("^" + re.escape(prefix) + r"(\d+)" + re.escape(suffix) + "$")
        numbers = sorted(int(mm.group(1)) for f in (directory.iterdir() if directory.is_dir() else [])
                         if (mm := rx.match(f.name)) and (not width or len(mm.group(1)) == int(width)))
        if not numbers:
            if required:
                raise MediaError(f"no files match the sequence pattern '{p}'")
            return None
        pattern = str(directory / p.name)
    else:
        m = _NUM_RE.match(p.name)
        if not m or p.suffix.lower() not in IMAGE_EXTS:
            if required:
                raise MediaError(f"'{p.name}' is not part of a numbered image sequence")
            return None
        prefix, digits, suffix = m.group(1), m.group(2), m.group(3)
        directory = p.parent
        rx = re.compile("^" + re.escape(prefix) + r"(\d{%d})" % len(digits) + re.escape(suffix) + "$")
        numbers = sorted(int(mm.group(1)) for f in (directory.iterdir() if directory.is_dir() else [])
                         if (mm := rx.match(f.name)))
        if len(numbers) < 2:
            if required:
                raise MediaError(f"'{p.name}' is not part of a numbered image sequence")
            return None
        pattern = str(directory / f"{prefix}%0{len(digits)}d{suffix}")
    # The run starting at the first number must be contiguous: a gap means a missing frame.
    first = numbers[0]
    expected = list(range(first, first + len(numbers)))
    if numbers != expected:
        missing = sorted(set(range(first, numbers[-1] + 1)) - set(numbers))
        raise MediaError(f"image sequence '{Path(pattern).name}' is missing frame(s) {missing[:5]}"
                         + (" ..." if len(missing) > 5 else ""))
    return ImageSequence(pattern=pattern, first=first, count=len(numbers), fps=fps)
