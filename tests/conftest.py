"""Shared fixtures: offscreen Qt, the shared sample data, and small synthetic media made on the fly."""

from __future__ import annotations

import os
import subprocess
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from harmovid_engine.colour import to_linear  # noqa: E402
from harmovid_engine.media.ffmpeg import ffmpeg_exe  # noqa: E402
from harmovid_engine.media.writer import open_writer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "clips" / "d0.mp4").exists():
        pytest.fail(f"shared sample data not found at {DATA}")
    return DATA


BITS = 10
BLOCK = 8


def index_frame(i: int, w: int = 160, h: int = 96) -> np.ndarray:
    """(h, w, 3) uint8 frame whose top rows encode ``i`` in binary blocks, over moving content (B-frames work)."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 1.5 + i * 3) % 256, (yy * 2 + i * 5) % 256, ((xx + yy) + i * 7) % 256], -1)
    img = img.astype(np.uint8)
    img[: 2 * BLOCK] = 0
    for b in range(BITS):
        if (i >> b) & 1:
            img[: 2 * BLOCK, b * 2 * BLOCK: b * 2 * BLOCK + 2 * BLOCK] = 255
    return img


def decode_index(frame: np.ndarray) -> int:
    i = 0
    for b in range(BITS):
        block = frame[4: 2 * BLOCK - 4, b * 2 * BLOCK + 4: b * 2 * BLOCK + 2 * BLOCK - 4, :3]
        if block.mean() > (127 if block.dtype == np.uint8 else 32767):
            i |= 1 << b
    return i


def write_clip(path: Path, n: int, fmt: str = "h264", fps=Fraction(25), w: int = 160, h: int = 96,
               alpha=None, **opts) -> Path:
    with open_writer(fmt, path, w, h, fps, **opts) as wr:
        for i in range(n):
            a = None if alpha is None else alpha(i)
            wr.write(to_linear(index_frame(i, w, h)), a)
    return path


@pytest.fixture
def make_clip(tmp_path):
    def make(name="clip.mp4", n=40, fmt="h264", **kw):
        return write_clip(tmp_path / name, n, fmt, **kw)

    return make


def green_screen_frame(w=128, h=96, cx=64, cy=52, r=26, seed=0, noise=0.01) -> np.ndarray:
    """(h, w, 3) float32 code values: a skin-coloured disc on a green screen with mild noise and green spill."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.float32)
    img[:] = (0.25, 0.62, 0.30)
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    cover = np.clip(r + 0.5 - d, 0, 1)[..., None]
    skin = np.array([0.80, 0.60, 0.50], np.float32)
    img = cover * skin + (1 - cover) * img
    img += rng.normal(0, noise, img.shape).astype(np.float32)
    return np.clip(img, 0, 1), cover[..., 0]


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)
