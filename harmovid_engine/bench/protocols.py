"""The evaluation protocols of ``docs/EVALUATION.md`` (shared docs), implemented exactly so numbers compare.

``lut_static`` / ``lut_jitter``: a real clip's foreground is recoloured (exposure, white balance, saturation, a
directional shading ramp in linear light, then a display gamma) and composited back over the real frame; the plate is
the frame with the talent inpainted away. A harmonizer must bring the foreground back.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..colour import LUMA_709, linear_to_srgb, to_linear

LUMA = LUMA_709.astype(np.float64)


@dataclass
class Perturbation:
    gain: float
    wb: np.ndarray  # (3,), normalised to mean 1
    saturation: float
    beta: float
    theta: float
    gamma: float


def draw_static(clip: str, k: int) -> Perturbation:
    rng = np.random.default_rng(zlib.crc32(f"{clip}:{k}".encode()))
    g = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    w = np.exp(rng.uniform(-0.25, 0.25, size=3))
    w = w / w.mean()
    s = float(rng.uniform(0.6, 1.4))
    beta = float(rng.uniform(0.0, 0.4))
    th = float(rng.uniform(0.0, 2 * np.pi))
    gamma = float(rng.uniform(0.8, 1.25))
    return Perturbation(g, w, s, beta, th, gamma)


def draw_jitter(clip: str, k: int, frames: int) -> list[Perturbation]:
    base = draw_static(clip, k)
    rng = np.random.default_rng(zlib.crc32(f"{clip}:{k}:jitter".encode()))
    out = []
    for _ in range(frames):
        lg = np.log(base.gain) + rng.normal(0, 0.15)
        lw = np.log(base.wb) + rng.normal(0, 0.05, size=3)
        beta = base.beta + rng.normal(0, 0.1)
        th = base.theta + rng.normal(0, 0.3)
        w = np.exp(lw)
        out.append(Perturbation(float(np.exp(lg)), w / w.mean(), base.saturation, float(beta), float(th),
                                base.gamma))
    return out


def perturb(frame: np.ndarray, p: Perturbation) -> np.ndarray:
    """(H, W, 3) uint8 sRGB -> (H, W, 3) float32 code values 0..255 of P(I)."""
    h, w = frame.shape[:2]
    lin = to_linear(frame)  # exact sRGB decode of 8-bit codes (table)
    lin = lin * (p.gain * p.wb).astype(np.float32)
    y = lin @ LUMA.astype(np.float32)
    lin = y[..., None] + np.float32(p.saturation) * (lin - y[..., None])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 2.0 * (np.cos(p.theta) * (xx / w - 0.5) + np.sin(p.theta) * (yy / h - 0.5))
    lin = lin * (1.0 + np.float32(p.beta) * r)[..., None]
    enc = linear_to_srgb(np.clip(lin, 0.0, 1.0))
    return 255.0 * np.power(np.clip(enc, 0.0, 1.0), np.float32(p.gamma))


def composite_codes(frame: np.ndarray, perturbed: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """C = A * P(I) + (1 - A) * I, in code values (float32)."""
    a = alpha[..., None].astype(np.float32)
    return a * perturbed + (1.0 - a) * frame.astype(np.float32)


def clean_plate(frame: np.ndarray, alpha: np.ndarray, dilate_px: int = 15) -> np.ndarray:
    """B = inpaint(I, dilate(A > 0.02, 15 px)) with OpenCV Telea, radius 5. uint8 (H, W, 3). (``dilate_px``: the
    harmonizer's training scales the dilation to frames read smaller.)"""
    mask = (alpha > 0.02).astype(np.uint8) * 255
    k = 2 * max(1, int(dilate_px)) + 1
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return cv2.inpaint(frame, mask, 5, cv2.INPAINT_TELEA)


@dataclass
class Clip:
    name: str
    frames: np.ndarray  # (T, H, W, 3) uint8
    alpha: np.ndarray  # (T, H, W) float32 in [0, 1]
    fps: float


def load_clip(data_dir: Path, name: str, max_frames: int) -> Clip:
    from ..media import open_source

    src = open_source(Path(data_dir) / "clips" / f"{name}.mp4")
    n = min(len(src), max_frames)
    frames = np.stack([f[..., :3] for _, f in src.frames(0, n)])
    alpha = np.load(Path(data_dir) / "clips" / f"{name}.alpha.npz")["alpha"][:n].astype(np.float32) / 255.0
    if alpha.shape[1:] != frames.shape[1:3]:
        alpha = np.stack([cv2.resize(a, (frames.shape[2], frames.shape[1])) for a in alpha])
    fps = float(src.info.fps)
    src.close()
    return Clip(name, frames, alpha, fps)
