"""Training of the learned deflicker: synthetic flicker on real clips, by-clip validation, checkpoints and resume.

Data (from any folder laid out like ``../shared/data``): every clip is harmonized by the analytic engine onto a few
plates, twice: per frame (its own small flicker) and with the clip's mean parameters (stable: the target). The
per-frame result then gets synthetic flicker per frame, drawn fresh for every training window: exposure and white
balance jitter, a display-gamma wobble, a directional shading ramp whose strength and angle jitter, and soft light
blobs that drift across the talent while their strength flickers. A slow real change (a sine over seconds) is added to
input and target alike, so the model learns to keep it. Everything is prepared once at the network's working
resolution (the talent's rectangle at N x N, flows included); a training step only draws jitter and runs the net.

The network refines the analytic deflicker's output, so the global part of the drawn flicker is the small residual
the analytic stage leaves (a few per cent) while the local part (ramps, blobs) keeps its full strength.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import HarmoVidError
from .analytic import alpha_roi, make_sample
from ..training import RunSettings, TrainerBase
from .learned import KIND, DeflickerConfig, make_flow, small_sample, smooth_field, window_features


@dataclass
class TrainSettings(RunSettings):
    steps: int = 3000
    batch: int = 16
    lr: float = 2e-3
    frames: int = 120  # frames per clip used
    plates: int = 3  # plates per clip
    work_side: int = 256  # long side at which the analytic engine harmonizes for the data


@dataclass
class ClipData:
    name: str
    logs_in: np.ndarray  # (T, 3, N, N) per-frame harmonized, log
    logs_tgt: np.ndarray  # (T, 3, N, N) stable target, log
    alpha: np.ndarray  # (T, 1, N, N)
    flows: np.ndarray  # (T, K, 2, N, N) from t to each frame of its window (clamped)


def _read_clip(path: Path, frames: int, side: int):
    import cv2

    cap = cv2.VideoCapture(str(path))
    out = []
    while len(out) < frames:
        ok, f = cap.read()
        if not ok:
            break
        h, w = f.shape[:2]
        s = min(1.0, side / max(h, w))
        if s < 1:
            f = cv2.resize(f, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        out.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    return out


def _plates(data: Path) -> list[Path]:
    return sorted(p for p in (data / "plates").glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def prepare_clip(data: Path, name: str, cfg: DeflickerConfig, ts: TrainSettings, rng) -> list[ClipData]:
    """Harmonize one clip onto ``ts.plates`` plates and shrink it all to the network's working size."""
    import cv2

    from ..colour import srgb_to_linear
    from ..engines import create_engine

    frames = _read_clip(data / "clips" / f"{name}.mp4", ts.frames, ts.work_side)
    if len(frames) < 2 * cfg.radius + 2:
        raise HarmoVidError(f"clip '{name}' is too short to train on ({len(frames)} frames)")
    h, w = frames[0].shape[:2]
    with np.load(data / "clips" / f"{name}.alpha.npz") as z:
        raw = z["alpha"][: len(frames)]
    alphas = [cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255 for a in raw]
    frames = frames[: len(alphas)]
    lin = [srgb_to_linear(f.astype(np.float32) / 255) for f in frames]
    roi = alpha_roi(alphas)
    plates = _plates(data)
    chosen = rng.choice(len(plates), size=min(ts.plates, len(plates)), replace=False)
    eng = create_engine("analytic")
    n, r = cfg.size, cfg.radius
    out = []
    greys = None
    flows = None
    for pi in chosen:
        img = cv2.imread(str(plates[pi]))
        plate = srgb_to_linear(cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (w, h),
                                          interpolation=cv2.INTER_AREA).astype(np.float32) / 255)
        params = [eng.estimate(t, a, plate) for t, a in zip(lin, alphas)]
        if all(p is None for p in params):
            continue
        per_frame = [eng.apply(t, a, p) for t, a, p in zip(lin, alphas, params)]
        s_in = [small_sample(make_sample(o, t, a, None, roi, True), n) for o, t, a in zip(per_frame, lin, alphas)]
        log_in = np.stack([s[0] for s in s_in])
        log_talent = np.stack([np.log(np.maximum(cv2.resize(np.ascontiguousarray(t[roi[1]:roi[3], roi[0]:roi[2]]),
                                                            (n, n), interpolation=cv2.INTER_AREA), 1e-4))
                               for t in lin])
        # the stable target: the engine's gain (output over footage, a smooth lighting field) averaged over a wide
        # temporal window, put back on the footage
        gain = log_in - log_talent
        log_tgt = log_talent + _temporal_gauss(gain, sigma=4.0)
        if flows is None:  # the footage is the same for every plate
            greys = [s[2] for s in s_in]
            dis = make_flow()
            T = len(greys)
            flows = np.zeros((T, 2 * r + 1, 2, n, n), np.float16)
            for t in range(T):
                for j, k2 in enumerate(range(t - r, t + r + 1)):
                    kk = min(max(k2, 0), T - 1)
                    if kk != t:
                        flows[t, j] = dis.calc(greys[t], greys[kk], None).transpose(2, 0, 1)
        out.append(ClipData(name, log_in.transpose(0, 3, 1, 2).astype(np.float32),
                            log_tgt.transpose(0, 3, 1, 2).astype(np.float32),
                            np.stack([s[1] for s in s_in])[:, None].astype(np.float32), flows))
    return out


def _temporal_gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian average along axis 0 (time), with the window renormalised at the clip's ends."""
    T = len(x)
    r = int(3 * sigma)
    out = np.empty_like(x)
    for t in range(T):
        ks = np.arange(max(0, t - r), min(T, t + r + 1))
        w = np.exp(-0.5 * ((ks - t) / sigma) ** 2)
        out[t] = np.tensordot(w / w.sum(), x[ks], axes=1)
    return out


def jitter_batch(torch, logs_in, logs_tgt, alpha, rng, strength: float = 1.0):
    """Synthetic flicker on (B, K, 3, N, N) log windows; returns (jittered input, target with the same slow drift)."""
    b, k, _, n, _ = logs_in.shape
    dev, dt = logs_in.device, logs_in.dtype

    def t(x):
        return torch.as_tensor(np.asarray(x, np.float32), device=dev, dtype=dt)

    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32) / (n - 1) - 0.5
    xs_t, ys_t = t(xs), t(ys)
    on = rng.random(b) < 0.85  # some windows without any jitter: do no harm to stable input
    sg = rng.uniform(0, 0.05, b) * on * strength  # global: what the analytic stage leaves
    sw = rng.uniform(0, 0.02, b) * on * strength
    sb = rng.uniform(0, 0.15, b) * on * strength
    sgam = rng.uniform(0, 0.03, b) * on * strength
    sblob = rng.uniform(0, 0.25, b) * on * strength * (rng.random(b) < 0.6)
    gain = rng.normal(0, 1, (b, k, 1)) * sg[:, None, None] + rng.normal(0, 1, (b, k, 3)) * sw[:, None, None]
    gam = np.exp(rng.normal(0, 1, (b, k)) * sgam[:, None])
    th0 = rng.uniform(0, 2 * math.pi, b)
    beta = np.abs(rng.uniform(0, 0.3, b)[:, None] + rng.normal(0, 1, (b, k)) * sb[:, None])
    th = th0[:, None] + rng.normal(0, 0.3, (b, k))
    # blob: centre drifts linearly across the window, strength flickers
    c0, c1 = rng.uniform(-0.4, 0.4, (b, 2)), rng.uniform(-0.4, 0.4, (b, 2))
    rad = rng.uniform(0.12, 0.35, b)
    amp = rng.normal(0, 1, (b, k)) * sblob[:, None]
    # slow real change kept in input and target: value of a slow sine at each frame of the window
    period = rng.uniform(60, 240, b)
    phase = rng.uniform(0, 2 * math.pi, b)
    A = rng.uniform(0, 0.25, b) * (rng.random(b) < 0.5)
    centre = k // 2
    offs = np.arange(k) - centre
    drift = A[:, None] * np.sin(2 * math.pi * offs[None] / period[:, None] + phase[:, None])
    x_in = logs_in.clone()
    mask = (alpha > 0.5).to(dt)
    mean = (logs_in * mask).sum((3, 4), keepdim=True) / (mask.sum((3, 4), keepdim=True) + 1e-3)
    x_in = mean + t(gam)[:, :, None, None, None] * (x_in - mean)
    ramp = t(np.cos(th))[..., None, None] * xs_t + t(np.sin(th))[..., None, None] * ys_t
    x_in = x_in + torch.log1p((t(beta)[..., None, None] * 2 * ramp).clamp(min=-0.8)).unsqueeze(2)
    cx = t(c0[:, None, 0] + (c1[:, None, 0] - c0[:, None, 0]) * (offs[None] + centre) / max(k - 1, 1))
    cy = t(c0[:, None, 1] + (c1[:, None, 1] - c0[:, None, 1]) * (offs[None] + centre) / max(k - 1, 1))
    blob = torch.exp(-((xs_t - cx[..., None, None]) ** 2 + (ys_t - cy[..., None, None]) ** 2)
                     / (2 * t(rad)[:, None, None, None] ** 2))
    x_in = x_in + (t(amp)[..., None, None] * blob).unsqueeze(2)
    x_in = x_in + t(gain)[..., None, None]
    d = t(drift)[:, :, None, None, None]
    return x_in + d, logs_tgt + d


class Trainer(TrainerBase):
    kind = KIND
    default_config = DeflickerConfig
    train_label = "train (L1 log, smoothed)"

    def check_data(self) -> None:
        if not _plates(self.data):
            raise HarmoVidError(f"'{self.data}/plates' has no still plates (.jpg/.png) to harmonize onto")

    def prepare(self, progress: Callable[[int, int], None] | None = None):
        rng = np.random.default_rng(self.ts.seed)
        names = self.train_names + self.val_names
        self.train, self.val = [], []
        for i, n in enumerate(names):
            (self.train if n in self.train_names else self.val).extend(prepare_clip(self.data, n, self.cfg,
                                                                                     self.ts, rng))
            if progress:
                progress(i + 1, len(names))
        if not self.train:
            raise HarmoVidError("no usable training clips (empty mattes?)")

    def _batch(self, clips, rng, b):
        torch = self.torch
        r = self.cfg.radius
        li, lt, al, fl = [], [], [], []
        for _ in range(b):
            c = clips[rng.integers(len(clips))]
            T = len(c.logs_in)
            t = int(rng.integers(T))
            idx = [min(max(k, 0), T - 1) for k in range(t - r, t + r + 1)]
            li.append(c.logs_in[idx])
            lt.append(c.logs_tgt[idx])
            al.append(c.alpha[idx])
            fl.append(c.flows[t].astype(np.float32))
        dev = self.device
        return (torch.from_numpy(np.stack(li)).to(dev), torch.from_numpy(np.stack(lt)).to(dev),
                torch.from_numpy(np.stack(al)).to(dev), torch.from_numpy(np.stack(fl)).to(dev))

    def loss(self, batch, rng, use_net: bool = True):
        torch = self.torch
        li, lt, al, fl = batch
        x, y = jitter_batch(torch, li, lt, al, rng)
        b, k = x.shape[:2]
        feats, prior = window_features(torch, x, al, fl, torch.zeros(b, k, 3, device=x.device), self.cfg)
        field = self.net(feats, prior) if use_net else prior
        field = smooth_field(torch, field, self.cfg.smooth)
        c = self.cfg.radius
        m = (al[:, c] > 0.5).to(x.dtype)
        # the field is lighting: compare at low frequency (texture that moved under the target is not its business)
        err = smooth_field(torch, (x[:, c] + field - y[:, c]) * m, 2.0).abs() * m
        return err.sum() / (3 * m.sum() + 1e-3)

    def validate(self, use_net: bool = True, batches: int = 8) -> float:
        torch = self.torch
        rng = np.random.default_rng(12345)  # the same windows and jitter every time
        self.net.eval()
        with torch.no_grad():
            vals = [float(self.loss(self._batch(self.val, rng, self.ts.batch), rng, use_net)) for _ in range(batches)]
        self.net.train()
        return float(np.mean(vals))
