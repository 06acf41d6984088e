"""Learned lighting deflicker: a small CNN over a flow-aligned temporal window that predicts a low-resolution
log-gain correction field for the centre frame, refining the analytic deflicker.

The analytic stage removes the global and coarse (plane + 12x12 grid) lighting jitter robustly; what it leaves is
local: shading ramps and light blobs that flicker at a finer scale than its grid, and errors near the talent's edges.
The learned stage works on the analytic stage's output, per pixel of an N x N grid over the talent:

Per centre frame t and window k in [t - r, t + r]:

1. each frame's harmonized talent, talent footage and matte are cropped to the talent's rectangle and shrunk to
   ``N`` x ``N`` (the same ``Sample`` crops the analytic deflicker uses, shrunk again);
2. DIS flow of the talent footage (normalised grey, so exposure jitter does not fool it) from t to k aligns each
   neighbour's log output and matte onto frame t;
3. features: for each neighbour, its aligned log-output difference to frame t (3 channels, zero where invalid:
   outside either matte or outside the frame) and the validity (1 channel); plus frame t's matte and log output
   (mean-removed);
4. the network ``DeflickerNet`` predicts a correction field ``c`` (3 channels, N x N); the prior it refines is the
   validity- and Gaussian-weighted mean of the neighbour differences (what a per-pixel temporal filter would do);
   its last layer starts at zero, so an untrained model is that filter;
5. the field is smoothed (it is lighting, not texture), upsampled to the talent's pixels and applied as
   ``out * exp(c * alpha)``: detail is untouched, the cost at full resolution is one multiply.

A real, slow change (a moving plate's light, a lamp switched on) is kept because the window is symmetric and the
plate's own per-channel change between frames is taken out of the differences, as in the analytic deflicker.
Weights ship in ``resources/models/deflicker_learned.pt``; ``harmovid train deflicker`` makes new ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..training import CheckpointKind
from ..errors import ModelError
from ..composite.gain import apply_log_gain
from .analytic import RADIUS, AnalyticDeflicker, Sample, _norm_grey, sequence_samples

FORMAT = "harmovid-learned-deflicker"
VERSION = 1


@dataclass
class DeflickerConfig:
    radius: int = 8  # frames each side
    size: int = 64  # N: working resolution of the window
    width: int = 32  # channels of the hidden layers
    sigma: float = 4.0  # temporal Gaussian of the prior (frames)
    smooth: float = 1.5  # spatial smoothing of the field (working pixels)


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is a dependency
        raise ModelError("the learned deflicker needs PyTorch (pip install torch)") from e
    return torch


def build_net(cfg: DeflickerConfig):
    torch = _torch()
    nn = torch.nn

    class DeflickerNet(nn.Module):
        def __init__(self):
            super().__init__()
            k = 2 * cfg.radius
            cin = 4 * k + 4
            w = cfg.width
            self.body = nn.Sequential(
                nn.Conv2d(cin, w, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(w, w, 3, padding=2, dilation=2), nn.ReLU(inplace=True),
                nn.Conv2d(w, w, 3, padding=4, dilation=4), nn.ReLU(inplace=True),
                nn.Conv2d(w, w, 3, padding=1), nn.ReLU(inplace=True),
            )
            self.residual = nn.Conv2d(w, 3, 3, padding=1)
            self.gate = nn.Conv2d(w, 1, 3, padding=1)  # how much of the prior to trust, per pixel
            nn.init.zeros_(self.residual.weight)
            nn.init.zeros_(self.residual.bias)
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, 4.0)  # sigmoid(4) ~ 0.98: start as the prior

        def forward(self, feats, prior):
            h = self.body(feats)
            return torch.sigmoid(self.gate(h)) * prior + self.residual(h)

    return DeflickerNet()


# -- features -------------------------------------------------------------------------------------------------------
def gaussian_weights(cfg: DeflickerConfig) -> np.ndarray:
    ks = np.array([k for k in range(-cfg.radius, cfg.radius + 1) if k != 0], np.float32)
    return np.exp(-0.5 * (ks / cfg.sigma) ** 2).astype(np.float32)


def window_features(torch, logs, alphas, flows, plate_d, cfg: DeflickerConfig):
    """Batched features.

    logs: (B, K, 3, N, N) log outputs; alphas: (B, K, 1, N, N); flows: (B, K, 2, N, N) from the centre to each frame
    (pixels; the centre's own is zero); plate_d: (B, K, 3) the plate's log change from the centre to each frame.
    Returns (features (B, C, N, N), prior (B, 3, N, N)).
    """
    b, k, _, n, _ = logs.shape
    c = cfg.radius
    ys, xs = torch.meshgrid(torch.arange(n, dtype=logs.dtype, device=logs.device),
                            torch.arange(n, dtype=logs.dtype, device=logs.device), indexing="ij")
    gx = (xs[None] + flows[:, :, 0].reshape(b * k, n, n)) * (2.0 / (n - 1)) - 1.0
    gy = (ys[None] + flows[:, :, 1].reshape(b * k, n, n)) * (2.0 / (n - 1)) - 1.0
    grid = torch.stack([gx, gy], -1)
    src = torch.cat([logs, alphas], 2).reshape(b * k, 4, n, n)
    warped = torch.nn.functional.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    inside = ((gx.abs() <= 1) & (gy.abs() <= 1)).to(logs.dtype)
    warped = warped.reshape(b, k, 4, n, n)
    inside = inside.reshape(b, k, 1, n, n)
    centre_log, centre_a = logs[:, c], alphas[:, c]
    diffs, valids = [], []
    for j in range(k):
        if j == c:
            continue
        valid = inside[:, j] * (warped[:, j, 3:4] > 0.5).to(logs.dtype) * (centre_a > 0.5).to(logs.dtype)
        d = (warped[:, j, :3] - centre_log - plate_d[:, j, :, None, None]) * valid
        diffs.append(d)
        valids.append(valid)
    w = torch.as_tensor(gaussian_weights(cfg), dtype=logs.dtype, device=logs.device)
    num = sum(wi * d for wi, d in zip(w, diffs))
    den = sum(wi * v for wi, v in zip(w, valids))
    prior = num / (den + 1e-3)
    mean = (centre_log * centre_a).sum((2, 3), keepdim=True) / (centre_a.sum((2, 3), keepdim=True) + 1e-3)
    feats = torch.cat([*diffs, *valids, centre_a, (centre_log - mean) * centre_a], 1)
    return feats, prior


def smooth_field(torch, field, sigma: float):
    if sigma <= 0:
        return field
    r = max(1, int(round(2.5 * sigma)))
    x = torch.arange(-r, r + 1, dtype=field.dtype, device=field.device)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    g = g / g.sum()
    c = field.shape[1]
    f = torch.nn.functional.pad(field, (r, r, r, r), mode="replicate")
    f = torch.nn.functional.conv2d(f, g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return torch.nn.functional.conv2d(f, g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


# -- checkpoint ------------------------------------------------------------------------------------------------------
KIND = CheckpointKind(FORMAT, VERSION, "deflicker", DeflickerConfig, build_net, "harmovid train deflicker")


def save_checkpoint(path, net, cfg: DeflickerConfig, meta: dict | None = None, optimizer=None, step: int = 0) -> None:
    KIND.save(path, net, cfg, meta, optimizer, step)


def load_checkpoint(path, device: str = "cpu"):
    """(net, config, raw dict) from a checkpoint; ModelError with a clear reason otherwise."""
    return KIND.load(path, device)


def default_checkpoint() -> Path:
    from ..resources import resources_dir

    return resources_dir() / "models" / "deflicker_learned.pt"


def model_path() -> Path:
    """The learned deflicker in use: ``$HARMOVID_DEFLICKER_MODEL`` or the shipped weights."""
    import os

    env = os.environ.get("HARMOVID_DEFLICKER_MODEL")
    return Path(env) if env else default_checkpoint()


def small_sample(s: Sample, n: int):
    """(log output (n, n, 3), alpha (n, n), normalised grey uint8 (n, n) for flow, plate or None) of a sample."""
    out = cv2.resize(s.out, (n, n), interpolation=cv2.INTER_AREA)
    inp = cv2.resize(s.inp, (n, n), interpolation=cv2.INTER_AREA)
    a = cv2.resize(s.alpha, (n, n), interpolation=cv2.INTER_AREA)
    return np.log(np.maximum(out, 1e-4)), a, _norm_grey(inp, a > 0.5), s.plate


def make_flow():
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    dis.setFinestScale(0)
    return dis


# -- inference -------------------------------------------------------------------------------------------------------
class LearnedDeflicker:
    """Same role as ``AnalyticDeflicker``: a temporal stage correcting harmonized talent frames. It runs the analytic
    deflicker (radius ``base_radius``) first and refines its output, so its own radius is the sum of both."""

    def __init__(self, checkpoint=None, strength: float = 1.0, base_radius: int = RADIUS):
        torch = _torch()
        self.torch = torch
        self.net, self.cfg, _ = load_checkpoint(checkpoint or model_path())
        self.base = AnalyticDeflicker(base_radius)
        self.net_radius = self.cfg.radius
        self.radius = self.base.radius + self.net_radius
        self.strength = float(strength)
        self._dis = make_flow()

    def small(self, s: Sample):
        """The network's view of a sample; pass these to ``field`` when a frame serves several windows."""
        return small_sample(s, self.cfg.size)

    def global_gate(self, deltas: dict | None, t: int, first: int, last: int) -> float:
        """How much of the field's global (talent-wide) part to keep, 0..1, from the residual global jitter.

        The analytic stage measured the global lighting change of every pair of frames. Real footage harmonized on
        a still plate changes by a few thousandths between frames; per-frame harmonization flicker by a few
        hundredths. Only where the window shows such jitter may the learned stage move the talent's overall level:
        on stable input a per-pixel filter's mean is motion bias, not flicker."""
        if deltas is None:
            return 1.0
        r = self.net_radius
        g = [float(np.mean(deltas[k].glob) - np.mean(deltas[k].plate))
             for k in range(max(first + 1, t - r), min(last, t + r) + 1) if k in deltas]
        if len(g) < 2:
            return 0.0
        return float(np.clip((np.std(g) - 0.005) / 0.01, 0.0, 1.0))

    def field(self, samples: dict, t: int, first: int, last: int, deltas: dict | None = None) -> np.ndarray | None:
        """(N, N, 3) log-gain correction for frame t from the samples of its window (missing frames: clamped).

        ``deltas``: the analytic stage's pair deltas over the window, for the global gate (None: no gate)."""
        torch = self.torch
        r, n = self.net_radius, self.cfg.size
        if samples.get(t) is None:
            return None
        smalls = {}
        for k in range(t - r, t + r + 1):
            kk = min(max(k, first), last)
            s = samples.get(kk)
            if s is None:
                s = samples[t]
            if kk not in smalls:  # a Sample, or its small form already made by the caller (``small()``)
                smalls[kk] = s if isinstance(s, tuple) else self.small(s)
        order = [min(max(k, first), last) for k in range(t - r, t + r + 1)]
        logs = np.stack([smalls[k][0] for k in order]).transpose(0, 3, 1, 2)
        alphas = np.stack([smalls[k][1] for k in order])[:, None]
        flows = np.zeros((len(order), 2, n, n), np.float32)
        plate_d = np.zeros((len(order), 3), np.float32)
        g0 = smalls[t][2]
        p0 = smalls[t][3]
        cache = {}
        for j, k in enumerate(order):
            if k == t:
                continue
            if k not in cache:
                cache[k] = self._dis.calc(g0, smalls[k][2], None).transpose(2, 0, 1)
            flows[j] = cache[k]
            if p0 is not None and smalls[k][3] is not None:
                plate_d[j] = AnalyticDeflicker._plate_delta(p0, smalls[k][3])
        with torch.inference_mode():
            feats, prior = window_features(torch, torch.from_numpy(logs)[None], torch.from_numpy(alphas)[None],
                                           torch.from_numpy(flows)[None], torch.from_numpy(plate_d)[None], self.cfg)
            c = smooth_field(torch, self.net(feats, prior), self.cfg.smooth)
        f = (self.strength * c[0]).permute(1, 2, 0).numpy().astype(np.float32)
        gate = self.global_gate(deltas, t, first, last)
        inside = smalls[t][1] > 0.5
        if gate < 1.0 and inside.any():
            f = f - (1.0 - gate) * f[inside].mean(0)
        return f

    @staticmethod
    def apply(out: np.ndarray, roi, field: np.ndarray | None, alpha: np.ndarray | None = None) -> np.ndarray:
        if roi is None or field is None:
            return out
        x0, y0, x1, y1 = roi
        return apply_log_gain(out, roi, cv2.resize(field, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR), alpha)

    def run_sequence(self, outputs, inputs, alphas, plates=None):
        """Deflicker a whole sequence in memory (benchmarks, tests): lists of canvas-size float32 linear frames."""
        n = len(outputs)
        roi, raw = sequence_samples(outputs, inputs, alphas, plates)
        if roi is None:
            return list(outputs)
        base = self.base
        deltas = {t: base.pair_delta(raw[t - 1], raw[t]) for t in range(1, n)}
        corr = [base.correction(deltas, t, 0, n - 1) for t in range(n)]
        samples = {t: self.small(self.corrected_sample(raw[t], *corr[t])) for t in range(n)}
        res = []
        for t in range(n):
            out = base.apply(outputs[t], roi, *corr[t], alphas[t])
            first, last = base.shot(deltas, t, 0, n - 1)
            res.append(self.apply(out, roi, self.field(samples, t, first, last, deltas), alphas[t]))
        return res

    def corrected_sample(self, s: Sample, glob, local) -> Sample:
        """A neighbour's sample as the analytic stage corrects it (what the network sees)."""
        h, w = s.alpha.shape
        return Sample(self.base.apply(s.out, (0, 0, w, h), glob, local, s.alpha), s.inp, s.alpha, s.plate)
