"""Training of the learned per-frame harmonizer (``harmovid train harmonizer``): HarmoVid's real path on real clips.

Data (any folder laid out like ``../shared/data``; meant for ``../shared/data/train``): for frames of every clip, the
real frame ``I``, its matte ``A`` and the plate with the talent inpainted away ``B`` (as the benchmark makes it) are
cut into a few views around the talent (the engine's view, with its context and centre jittered) and kept at the
network's working size. A training step draws, per view, a change of the talent's light broader than the benchmark's
(exposure, white balance and tint, saturation, a hue shift, a coloured directional ramp, soft local light blobs, a
display gamma and a contrast curve; sometimes none at all: talent that needs no change must get none), mirrors some
views, composites the changed talent back over ``B`` and asks the net for the log-gain field that brings it back to
``I``. The loss is the error in sRGB code values over the talent (what ``fmse`` measures), after the field is applied
the way the render graph applies it (gain raised to alpha).

Clips are split by name (every fourth, from the second: ``names[1::4]``, the learned deflicker's split) into training
and validation; the validation loss is reported with the loss of doing nothing beside it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..colour import LUMA_709, srgb_to_linear
from ..errors import HarmoVidError
from ..training import RunSettings, TrainerBase
from ..bench.protocols import clean_plate
from .engine import talent_bbox
from .learned import CONTEXT, KIND, HarmonizerConfig, _crop, view_square


CUT_VIEW = 64  # views are cut at this size and averaged down to the net's (a multiple of it)


@dataclass
class TrainSettings(RunSettings):
    steps: int = 600
    batch: int = 32
    lr: float = 1e-3
    frames: int = 16  # frames per clip, evenly spaced
    views: int = 3  # jittered views per frame
    side: int = 480  # long side at which clips are read (the inpainting runs at this size)
    identity: float = 0.15  # share of views left unchanged (the net must learn to leave good talent alone)
    weight_decay: float = 1e-2
    loss: str = "ratio"  # "ratio": mean log(fmse / fmse of the untouched composite); "fmse": mean fmse
    ratio_floor: float = 20.0  # added to both fmse of the ratio (code values squared): noise-level errors are equal


@dataclass
class Views:
    """Views of a set of clips at the net's size, float16: real ``I`` and plate ``B`` linear, matte ``A``."""

    real: np.ndarray  # (N, 3, V, V)
    plate: np.ndarray  # (N, 3, V, V)
    alpha: np.ndarray  # (N, 1, V, V)

    def __len__(self) -> int:
        return len(self.real)


def prepare_clip(data: Path, name: str, ts: TrainSettings, rng):
    """Views of ``ts.frames`` frames of one clip (``ts.views`` each), or [] when its matte is empty."""
    from ..media import open_source

    with open_source(Path(data) / "clips" / f"{name}.mp4") as src:
        n = len(src)
        with np.load(Path(data) / "clips" / f"{name}.alpha.npz") as z:
            mattes = z["alpha"]
        n = min(n, len(mattes))
        picks = sorted(set(np.linspace(0, n - 1, min(ts.frames, n)).round().astype(int).tolist()))
        out = []
        for k in picks:
            frame = src.read(int(k))[..., :3]
            if frame.dtype != np.uint8:
                frame = (frame // 257).astype(np.uint8)
            h, w = frame.shape[:2]
            s = min(1.0, ts.side / max(h, w))
            if s < 1:
                frame = cv2.resize(frame, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
            a = cv2.resize(mattes[k], frame.shape[1::-1], interpolation=cv2.INTER_AREA).astype(np.float32) / 255
            bbox = talent_bbox(a)
            if bbox is None or (a > 0.5).sum() < 64:
                continue
            plate = clean_plate(frame, a, round(15 * s * max(h, w) / 1280))  # 15 px at 1280 px
            real_lin = srgb_to_linear(frame.astype(np.float32) / 255)
            plate_lin = srgb_to_linear(plate.astype(np.float32) / 255)
            for _ in range(ts.views):
                context = CONTEXT * float(np.exp(rng.uniform(np.log(0.8), np.log(1.35))))
                qx, qy, side = view_square(bbox, (0.0, 0.0, 1.0), context)
                qx += rng.uniform(-0.1, 0.1) * side
                qy += rng.uniform(-0.1, 0.1) * side
                V = CUT_VIEW
                out.append((_crop(real_lin, qx, qy, side, V, fill=0.0).transpose(2, 0, 1),
                            _crop(plate_lin, qx, qy, side, V).transpose(2, 0, 1),
                            np.clip(_crop(a, qx, qy, side, V, fill=0.0), 0, 1)[None]))
    return out


def gather(data: Path, names: list[str], ts: TrainSettings, seed: int,
           progress: Callable[[int, int], None] | None = None) -> Views:
    rng = np.random.default_rng(seed)
    real, plate, alpha = [], [], []
    for i, name in enumerate(names):
        for r, p, a in prepare_clip(data, name, ts, rng):
            real.append(r)
            plate.append(p)
            alpha.append(a)
        if progress:
            progress(i + 1, len(names))
    if not real:
        raise HarmoVidError("no usable views (every matte empty?)")
    f16 = np.float16
    return Views(np.stack(real).astype(f16), np.stack(plate).astype(f16), np.stack(alpha).astype(f16))


# -- the perturbations (torch, per view) ------------------------------------------------------------------------------
def srgb_encode(torch, x):
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(1e-8) ** (1 / 2.4) - 0.055)


def srgb_decode(torch, v):
    v = v.clamp(0.0, 1.0)
    return torch.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def scene_change(torch, real, plate, rng):
    """The same change of exposure, white balance and saturation on the whole scene (talent and plate alike): a
    new scene in which the talent is still right, so the net cannot learn what each training person looks like."""
    b = real.shape[0]
    dev = real.device

    def u(lo, hi, shape=(b,)):
        return torch.from_numpy(rng.uniform(lo, hi, shape).astype(np.float32)).to(dev)

    log_w = u(-0.25, 0.25, (b, 3))
    gain = torch.exp(u(-0.7, 0.5).view(b, 1) + log_w - log_w.mean(1, keepdim=True)).view(b, 3, 1, 1)
    sat = u(0.7, 1.3).view(b, 1, 1, 1)
    luma = torch.tensor(LUMA_709, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
    out = []
    for x in (real, plate):
        x = x * gain
        y = (x * luma).sum(1, keepdim=True)
        out.append((y + sat * (x - y)).clamp(0.0, 1.0))
    return out


def perturb(torch, real, rng, identity: float = 0.15, strength: float = 1.0):
    """``real`` (B, 3, V, V) linear -> the talent with its light changed, per view (broader than the benchmark)."""
    b, _, V, _ = real.shape
    dev = real.device

    def u(lo, hi, shape=(b,)):
        return torch.from_numpy(rng.uniform(lo, hi, shape).astype(np.float32)).to(dev)

    s = strength
    keep = torch.from_numpy(rng.random(b) < identity).to(dev)
    luma = torch.tensor(LUMA_709, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
    x = real
    # exposure, white balance and tint
    log_g = u(np.log(0.4) * s, np.log(2.5) * s)
    log_w = u(-0.35 * s, 0.35 * s, (b, 3))
    log_w = log_w - log_w.mean(1, keepdim=True)
    x = x * torch.exp(log_g.view(b, 1, 1, 1) + log_w.view(b, 3, 1, 1))
    # saturation, and a hue shift (rotation about the grey axis) on a third of the views
    y = (x * luma).sum(1, keepdim=True)
    x = y + u(1 - 0.5 * s, 1 + 0.5 * s).view(b, 1, 1, 1) * (x - y)
    ang = u(-0.35 * s, 0.35 * s) * torch.from_numpy((rng.random(b) < 0.33).astype(np.float32)).to(dev)
    c, sn = torch.cos(ang).view(b, 1, 1), torch.sin(ang).view(b, 1, 1)
    k = 1 / math.sqrt(3)
    # Rodrigues rotation about (1, 1, 1) / sqrt 3
    eye = torch.eye(3, device=dev).expand(b, 3, 3)
    K = torch.tensor([[0, -k, k], [k, 0, -k], [-k, k, 0]], device=dev).expand(b, 3, 3)
    R = eye + sn * K + (1 - c) * (K @ K)
    x = torch.einsum("bij,bjhw->bihw", R, x)
    # a coloured directional ramp
    yy, xx = torch.meshgrid(torch.linspace(-0.5, 0.5, V, device=dev), torch.linspace(-0.5, 0.5, V, device=dev),
                            indexing="ij")
    th = u(0, 2 * np.pi)
    r = 2 * (torch.cos(th).view(b, 1, 1) * xx + torch.sin(th).view(b, 1, 1) * yy)
    tint = torch.exp(u(-0.3 * s, 0.3 * s, (b, 3))).view(b, 3, 1, 1)
    beta = u(0, 0.6 * s).view(b, 1, 1, 1)
    x = x * (1 + beta * r[:, None] * tint).clamp_min(0.05)
    # soft local light blobs on 40 % of the views
    on = torch.from_numpy((rng.random(b) < 0.4).astype(np.float32)).to(dev).view(b, 1, 1)
    cx, cy, sig = u(-0.4, 0.4), u(-0.4, 0.4), u(0.1, 0.35)
    blob = torch.exp(-((xx - cx.view(b, 1, 1)) ** 2 + (yy - cy.view(b, 1, 1)) ** 2) / (2 * sig.view(b, 1, 1) ** 2))
    amp = u(-0.5 * s, 0.8 * s, (b, 3)).view(b, 3, 1, 1)
    x = x * (1 + amp * (on * blob)[:, None]).clamp_min(0.05)
    # display gamma and contrast on the encoded values
    e = srgb_encode(torch, x)
    e = e ** torch.exp(u(np.log(0.75) * s, np.log(1.33) * s)).view(b, 1, 1, 1)
    con = torch.exp(u(np.log(0.8) * s, np.log(1.25) * s))
    con = torch.where(torch.from_numpy(rng.random(b) < 0.5).to(dev), con, torch.ones_like(con)).view(b, 1, 1, 1)
    e = (0.5 + (e - 0.5) * con).clamp(0, 1)
    x = srgb_decode(torch, e)
    return torch.where(keep.view(b, 1, 1, 1), real, x)


def apply_field(torch, talent, alpha, glob, grid):
    """The render graph's finishing arithmetic at the view's size: talent times exp(field) raised to alpha."""
    V = talent.shape[-1]
    up = torch.nn.functional.interpolate(grid, size=(V, V), mode="bilinear", align_corners=False)
    return talent * torch.exp(alpha * (glob[:, :, None, None] + up))


class Trainer(TrainerBase):
    kind = KIND
    default_config = HarmonizerConfig
    train_label = "train (log fmse ratio)"
    val_label = "validation fmse (held-out clips)"
    log_y = True

    @property
    def cache_path(self) -> Path:
        return self.out.with_suffix(".views.npz")

    def prepare(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Cut the views once (cached beside the checkpoint for a resume: the inpainting is the slow part)."""
        key = json.dumps({"train": self.train_names, "val": self.val_names, "frames": self.ts.frames,
                          "views": self.ts.views, "side": self.ts.side, "view": CUT_VIEW, "seed": self.ts.seed})
        c = self.cache_path
        if c.exists():
            with np.load(c, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    self.train = Views(z["tr_real"], z["tr_plate"], z["tr_alpha"])
                    self.val = Views(z["va_real"], z["va_plate"], z["va_alpha"])
                    return
        names = self.train_names + self.val_names
        done = [0]

        def tick(*_):
            done[0] += 1
            if progress:
                progress(done[0], len(names))

        self.train = gather(self.data, self.train_names, self.ts, self.ts.seed, tick)
        self.val = gather(self.data, self.val_names, self.ts, self.ts.seed + 1, tick)
        c.parent.mkdir(parents=True, exist_ok=True)
        tmp = c.with_name(c.stem + ".part.npz")
        np.savez(tmp, key=key, **{f"{p}_{k}": getattr(v, k) for p, v in (("tr", self.train), ("va", self.val))
                                  for k in ("real", "plate", "alpha")})
        tmp.replace(c)

    def _batch(self, views: Views, rng, b: int):
        torch = self.torch
        idx = rng.integers(len(views), size=b)
        flip = rng.random(b) < 0.5
        real, plate, alpha = (np.where(flip[:, None, None, None], v[idx][..., ::-1], v[idx]).astype(np.float32)
                              for v in (views.real, views.plate, views.alpha))
        dev = self.device
        return torch.from_numpy(real).to(dev), torch.from_numpy(plate).to(dev), torch.from_numpy(alpha).to(dev)

    def loss(self, batch, rng, use_net: bool = True):
        torch = self.torch
        real, plate, alpha = batch
        if real.shape[-1] != self.cfg.view:  # views cut larger than the net's size: average down
            k = real.shape[-1] // self.cfg.view
            real, plate, alpha = (torch.nn.functional.avg_pool2d(v, k) for v in (real, plate, alpha))
        real, plate = scene_change(torch, real, plate, rng)
        stats = plate_stats_t(torch, plate)
        talent = perturb(torch, real, rng, self.ts.identity)
        # the talent clip is the composite over the real frame (the benchmark's C), seen over the clean plate
        talent = alpha * talent + (1 - alpha) * real
        comp = alpha * talent + (1 - alpha) * plate
        x = torch.cat([encode_t(torch, comp), alpha, encode_t(torch, plate)], 1)
        m = (alpha > 0.5).to(x.dtype)
        target = srgb_encode(torch, real)

        def fmse(t):
            out = alpha * t + (1 - alpha) * plate
            return (((srgb_encode(torch, out) - target) * 255) ** 2 * m).sum((1, 2, 3)) / (3 * m.sum((1, 2, 3)) + 1.0)

        before = fmse(talent)
        if not use_net:
            return before.mean()
        glob, grid = self.net(x, stats)
        after = fmse(apply_field(torch, talent, alpha, glob, grid))
        if not self.net.training or self.ts.loss == "fmse":
            return after.mean()
        # "ratio": what the benchmark reports per case (fmse over the untouched composite's), in logs, so that making
        # a talent that needed little change worse costs as much as failing to fix a badly wrong one
        c = self.ts.ratio_floor
        return torch.log((after + c) / (before + c)).mean()

    def validate(self, use_net: bool = True, batches: int = 8) -> float:
        torch = self.torch
        rng = np.random.default_rng(12345)  # the same views and changes every time
        self.net.eval()
        with torch.no_grad():
            vals = [float(self.loss(self._batch(self.val, rng, 64), rng, use_net)) for _ in range(batches)]
        self.net.train()
        val = float(np.mean(vals))
        if use_net and self.step > 0 and val < self.history.get("best", (0, float("inf")))[1]:
            # the weights that generalise best so far (the held-out loss, not the training loss, picks them)
            self.history["best"] = (self.step, val)
            self.kind.save(self.best_path, self.net, self.cfg, self.meta(), None, self.step)
        return val

    @property
    def best_path(self) -> Path:
        return self.out.with_suffix(".best.pt")


def plate_stats_t(torch, plate):
    """``learned.plate_statistics`` of each view's plate, in torch (after the scene change)."""
    log = torch.log(plate.clamp_min(1e-3)).flatten(2)
    return torch.cat([log.mean(2), torch.std(log, 2, correction=0)], 1)


def encode_t(torch, lin):
    """The engine's ``encode`` (a 1/2.2 power) in torch."""
    return lin.clamp(0.0, 1.0) ** (1 / 2.2)
