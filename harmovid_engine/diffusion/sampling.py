"""Inference: denoise a whole clip with temporal MultiDiffusion, streaming previews, cancellable between steps.

A clip longer than the model's window is covered by overlapping latent windows. At every denoising step each window
is run through the transformer, the model outputs are blended with weights that ramp linearly across each overlap
(a partition of unity: every latent frame's weights sum to 1), and the scheduler steps the fused output once for the
whole clip, so neighbouring windows agree at every step and no seam forms. After each step the predicted clean clip
is decoded at low resolution and handed to ``preview(step, total, frames)``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import Cancelled, HarmoVidError
from .model import HarmoVidModel


def windows(length: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) latent-frame windows of ``size`` covering ``length`` with at least ``overlap`` shared frames."""
    if length <= size:
        return [(0, length)]
    overlap = min(max(overlap, 1), size - 1)
    stride = size - overlap
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)
    return [(s, s + size) for s in starts]


def blend_weights(length: int, spans: list[tuple[int, int]]) -> list[np.ndarray]:
    """Per-window weights over its frames: linear ramps where windows overlap, normalised to sum to 1 per frame."""
    raw = []
    for s, e in spans:
        w = np.ones(e - s, np.float64)
        for s2, e2 in spans:
            if (s2, e2) == (s, e):
                continue
            lo, hi = max(s, s2), min(e, e2)
            if lo >= hi:
                continue
            n = hi - lo
            ramp = (np.arange(n) + 1) / (n + 1)
            if s2 < s:  # the other window is on the left: fade in
                w[lo - s: hi - s] = np.minimum(w[lo - s: hi - s], ramp)
            else:  # on the right: fade out
                w[lo - s: hi - s] = np.minimum(w[lo - s: hi - s], ramp[::-1])
        raw.append(w)
    total = np.zeros(length)
    for (s, e), w in zip(spans, raw):
        total[s:e] += w
    return [w / total[s:e] for (s, e), w in zip(spans, raw)]


def pad_frames(n: int) -> int:
    """Frames to add so that ``n`` has the 1 + 4k form CogVideoX's VAE needs."""
    return (-(n - 1)) % 4


def harmonize_clip(model: HarmoVidModel, composite, background, mask, steps: int = 25, overlap: int = 1,
                   seed: int = 0, preview: Callable | None = None, preview_scale: float = 0.5, cancel=None,
                   predict: Callable | None = None):
    """Harmonized clip (F, 3, H, W) in [-1, 1] for tensors composite/background (F, 3, H, W) and mask (F, 1, H, W).

    ``predict(noisy, cond, t)`` defaults to the model's transformer (tests substitute it).
    """
    import torch

    f = composite.shape[0]
    if background.shape != composite.shape or mask.shape[0] != f:
        raise HarmoVidError("composite, background and mask must have the same frame count and size")
    pad = pad_frames(f)
    if pad:  # repeat the last frame, cut it again at the end

        def ext(x):
            return torch.cat([x, x[-1:].expand(pad, *x.shape[1:])], 0)

        composite, background, mask = ext(composite), ext(background), ext(mask)
    dev = model.device
    cond = model.conditioning(composite[None].to(dev), background[None].to(dev), mask[None].to(dev))
    _, length, c, h, w = cond.shape
    lat_c = model.cfg.latent_channels
    spans = windows(length, model.cfg.latent_frames, overlap)
    weights = [torch.as_tensor(wt, dtype=cond.dtype, device=dev).view(1, -1, 1, 1, 1)
               for wt in blend_weights(length, spans)]
    predict = predict or model.predict
    sched = model.scheduler
    sched.set_timesteps(steps, device=dev)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    latents = torch.randn((1, length, lat_c, h, w), generator=gen).to(dev, cond.dtype) * sched.init_noise_sigma
    timesteps = sched.timesteps
    with torch.no_grad():
        for k, t in enumerate(timesteps):
            if cancel is not None and cancel.cancelled:
                raise Cancelled()
            fused = torch.zeros_like(latents)
            for (s, e), wt in zip(spans, weights):
                out = predict(latents[:, s:e], cond[:, s:e], t)
                fused[:, s:e] += wt * out
            step = sched.step(fused, t, latents, return_dict=True)
            latents = step.prev_sample
            if preview is not None:
                x0 = step.pred_original_sample
                small = x0
                if preview_scale < 1:
                    b, ll, cc, hh, ww = x0.shape
                    small = torch.nn.functional.interpolate(
                        x0.reshape(b * ll, cc, hh, ww), scale_factor=preview_scale, mode="bilinear",
                        align_corners=False).reshape(b, ll, cc, max(1, int(hh * preview_scale)),
                                                     max(1, int(ww * preview_scale)))
                preview(k + 1, len(timesteps), model.decode(small)[0, :f].float().cpu())
    return model.decode(latents)[0, :f].float().cpu()
