"""Metrics of the evaluation protocol, on 0-255 sRGB code values (float)."""

from __future__ import annotations

import cv2
import numpy as np

from ..flow import warp

LUMA = np.array([0.2126, 0.7152, 0.0722])


def luma32(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) float32 Rec.709 luma of the code values."""
    y = cv2.transform(frame.astype(np.float32), LUMA[None, :].astype(np.float32))
    return y[..., 0] if y.ndim == 3 else y


def mse(o: np.ndarray, i: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean over pixels (in ``mask``) and channels of the squared difference."""
    a, b = o.astype(np.float32), i.astype(np.float32)
    if mask is None:
        return float(cv2.norm(a, b, cv2.NORM_L2SQR)) / a.size
    n = int(np.count_nonzero(mask))
    if n == 0:
        return 0.0
    return float(cv2.norm(a, b, cv2.NORM_L2SQR, mask.astype(np.uint8))) / (n * a.shape[-1])


def psnr_from_mse(m: float) -> float:
    return float(10 * np.log10(255.0 ** 2 / max(m, 1e-10)))


def _ssim_blur(a):
    return cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)


class SsimReference:
    """The reference side of :func:`ssim_luma` for one frame, made once and compared with many outputs (every
    method of a protocol is compared with the same real frames)."""

    def __init__(self, i: np.ndarray):
        y = luma32(i)
        self.y = y
        self.my = _ssim_blur(y)
        self.my2 = self.my * self.my
        self.syy = _ssim_blur(y * y) - self.my2

    def ssim(self, o: np.ndarray) -> float:
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        x, y, my = luma32(o), self.y, self.my
        mx = _ssim_blur(x)
        sxx, sxy = _ssim_blur(x * x) - mx * mx, _ssim_blur(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + self.my2 + c1) * (sxx + self.syy + c2))
        return float(s.mean())


def ssim_luma(o: np.ndarray, i: np.ndarray) -> float:
    """SSIM (Wang et al. 2004) on Rec.709 luma with a Gaussian window, sigma 1.5 (11x11), whole frame."""
    return SsimReference(i).ssim(o)


def mean_luma(frame: np.ndarray, mask: np.ndarray) -> float:
    if not mask.any():
        return 0.0
    means = cv2.mean(frame.astype(np.float32), mask.astype(np.uint8))[:3]  # luma is linear in RGB
    return float(np.dot(means, LUMA))


def flicker(outputs: list[np.ndarray], refs: list[np.ndarray], masks: list[np.ndarray]) -> float:
    """mean_t |(mu_t(O) - mu_{t-1}(O)) - (mu_t(I) - mu_{t-1}(I))|, mu = mean luma over the foreground."""
    mo = [mean_luma(o, m) for o, m in zip(outputs, masks)]
    mi = [mean_luma(i, m) for i, m in zip(refs, masks)]
    if len(mo) < 2:
        return 0.0
    return float(np.mean([abs((mo[t] - mo[t - 1]) - (mi[t] - mi[t - 1])) for t in range(1, len(mo))]))


_DIS = None


def dis_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Flow from grey uint8 ``a`` to ``b`` (for each pixel of a, where it is in b), OpenCV DIS preset MEDIUM."""
    global _DIS
    if _DIS is None:
        _DIS = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return _DIS.calc(a, b, None)


def grey(frame: np.ndarray) -> np.ndarray:
    return np.clip(luma32(frame) + 0.5, 0, 255).astype(np.uint8)


class WarpReference:
    """Flows of the reference video I (t -> t-1) and the masks M_t, computed once and used for every method."""

    def __init__(self, refs: list[np.ndarray], fg_masks: list[np.ndarray]):
        self.flows = [None]
        self.masks = [None]
        g = [grey(r) for r in refs]
        for t in range(1, len(refs)):
            fwd = dis_flow(g[t], g[t - 1])
            bwd = dis_flow(g[t - 1], g[t])
            bwd_at = warp(bwd, fwd)
            ok = np.linalg.norm(fwd + bwd_at, axis=-1) <= 1.0
            self.flows.append(fwd)
            self.masks.append(fg_masks[t] & ok)

    def error(self, frames: list[np.ndarray]) -> float:
        errs = []
        for t in range(1, len(frames)):
            m = self.masks[t]
            if not m.any():
                continue
            w = warp(frames[t - 1], self.flows[t])
            errs.append(mse(frames[t], w, m))
        return float(np.mean(errs)) if errs else 0.0
