"""Optical flow helpers shared by matte propagation, deflicker and the benchmark: DIS flow and backward warping."""

from __future__ import annotations

import cv2
import numpy as np


def grey_u8(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB uint8 or float in [0, 1] -> (H, W) uint8 grey, with OpenCV's BT.601 weights (0.299, 0.587,
    0.114): optical flow only needs a consistent grey, and matte propagation's thresholds were chosen on this one."""
    x = rgb[..., :3]
    if x.dtype != np.uint8:
        x = np.clip(x.astype(np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY)


def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def warp(img: np.ndarray, flow: np.ndarray, border: int = cv2.BORDER_REPLICATE, value: float = 0.0) -> np.ndarray:
    """Backward warp: ``out(p) = img(p + flow(p))`` with bilinear sampling (float32 out)."""
    h, w = flow.shape[:2]
    gx, gy = pixel_grid(h, w)
    return cv2.remap(img.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=border, borderValue=value)


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resample a flow field to ``size`` = (W, H), scaling its vectors accordingly."""
    h, w = flow.shape[:2]
    out = cv2.resize(flow, size, interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= size[0] / w
    out[..., 1] *= size[1] / h
    return out
