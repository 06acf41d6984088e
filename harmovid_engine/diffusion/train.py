"""Training of the HarmoVid diffusion harmonizer on the three-stage data recipe (``data.py``).

One step: both paths in the batch (``PseudoPairs.batch`` alternates them), the VAE (frozen) encodes target,
composite and background, a timestep is drawn per sample, the target latent is noised by the scheduler, and the
transformer learns the scheduler's prediction target (``v`` for CogVideoX: ``get_velocity``; epsilon otherwise) with an
MSE loss. On CUDA: bf16 autocast and gradient checkpointing. Checkpoints (diffusers layout + optimiser state +
history) go to ``OUT/latest`` every ``ckpt_every`` steps and at the end; ``--resume`` continues from there. Validation:
the loss on held-out windows with fixed noise, and a short sampling run whose frames are saved as a PNG strip.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import HarmoVidError
from ..training import finish, plot_losses, record_step
from .data import PseudoPairs, load_clips, load_plates
from .model import PRESETS, HarmoVidModel


@dataclass
class DiffusionTrainSettings:
    config: str = "tiny"
    steps: int = 200
    batch: int = 2
    lr: float = 1e-3  # tiny; a pretrained 2b/5b wants ~1e-5
    max_frames: int = 60  # frames read per clip
    val_every: int = 50
    ckpt_every: int = 100
    sample_steps: int = 10
    seed: int = 0
    device: str = "cpu"
    clips: list = field(default_factory=list)


class DiffusionTrainer:
    def __init__(self, data, out, ts: DiffusionTrainSettings, pretrained=None, resume: bool = False,
                 log: Callable[[str], None] = print):
        import torch

        self.torch = torch
        self.data, self.out, self.ts, self.log = Path(data), Path(out), ts, log
        if ts.device == "cuda" and not torch.cuda.is_available():
            raise HarmoVidError("--device cuda was asked for but no CUDA GPU is available")
        if ts.config not in PRESETS:
            raise HarmoVidError(f"unknown config '{ts.config}' (tiny, 2b, 5b)")
        latest = self.out / "latest"
        self.step = 0
        self.history = {"train": [], "val": []}
        if resume and latest.exists():
            self.model = HarmoVidModel.load(latest, ts.device)
            state = json.loads((latest / "trainer.json").read_text())
            self.step, self.history = state["step"], state["history"]
        elif ts.config == "tiny":
            self.model = HarmoVidModel.tiny(ts.seed)
        else:
            if not pretrained:
                raise HarmoVidError(f"--config {ts.config} fine-tunes a pretrained CogVideoX: pass --pretrained DIR "
                                    "(a diffusers folder of THUDM/CogVideoX-2b or -5b)")
            self.model = HarmoVidModel.from_cogvideox(pretrained, ts.config)
        m = self.model
        m.transformer.to(ts.device).train()
        m.vae.to(ts.device).requires_grad_(False)
        if ts.device == "cuda":
            m.transformer.enable_gradient_checkpointing()
        self.opt = torch.optim.AdamW([p for p in m.transformer.parameters() if p.requires_grad], lr=ts.lr,
                                     weight_decay=1e-4)
        if resume and (latest / "optimizer.pt").exists():
            self.opt.load_state_dict(torch.load(latest / "optimizer.pt", weights_only=True))
        cfg = m.cfg
        clips = load_clips(self.data, cfg, ts.clips or None, ts.max_frames)
        if len(clips) < 2:
            raise HarmoVidError("training needs at least two clips (one is held out for validation)")
        self.val_clips = clips[-1:]
        self.pairs = PseudoPairs(clips[:-1], load_plates(self.data, cfg), cfg)
        self.val_pairs = PseudoPairs(self.val_clips, self.pairs.plates, cfg, self.pairs.harmonizer,
                                     self.pairs.deflicker)
        self.rng = np.random.default_rng(ts.seed + self.step)

    def loss(self, batch, gen=None):
        torch = self.torch
        m = self.model
        dev = m.device
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else _null()
        with autocast:
            cond = m.conditioning(batch["composite"].to(dev), batch["background"].to(dev), batch["mask"].to(dev))
            x0 = m.encode(batch["target"].to(dev))
            b = x0.shape[0]
            n_t = m.scheduler.config.num_train_timesteps
            t = torch.randint(0, n_t, (b,), generator=gen).to(dev)
            noise = torch.randn(x0.shape, generator=gen).to(dev, x0.dtype)
            noisy = m.scheduler.add_noise(x0, noise, t)
            pred = m.predict(noisy, cond, t)
            if m.scheduler.config.prediction_type == "v_prediction":
                target = m.scheduler.get_velocity(x0, noise, t)
            else:
                target = noise
            return torch.nn.functional.mse_loss(pred.float(), target.float())

    def validate(self) -> float:
        torch = self.torch
        rng = np.random.default_rng(777)
        gen = torch.Generator().manual_seed(777)
        self.model.transformer.eval()
        with torch.no_grad():
            vals = [float(self.loss(self.val_pairs.batch(2, rng), gen)) for _ in range(3)]
        self.model.transformer.train()
        return float(np.mean(vals))

    def run(self, progress: Callable[[int, int, float], None] | None = None, cancel=None) -> dict:
        torch = self.torch
        torch.manual_seed(self.ts.seed + self.step)
        t0 = time.time()
        while self.step < self.ts.steps:
            if cancel is not None and cancel.cancelled:
                break
            lr = self.ts.lr * min(1.0, (self.step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * self.step /
                                                                                   max(1, self.ts.steps)))
            for g in self.opt.param_groups:
                g["lr"] = lr
            loss = self.loss(self.pairs.batch(self.ts.batch, self.rng))
            self.opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.transformer.parameters(), 1.0)
            self.opt.step()
            record_step(self, float(loss.detach()), progress)
        return finish(self, t0)

    def save(self) -> None:
        torch = self.torch
        latest = self.out / "latest"
        self.model.save(latest)
        torch.save(self.opt.state_dict(), latest / "optimizer.pt")
        (latest / "trainer.json").write_text(json.dumps({"step": self.step, "history": self.history,
                                                         "settings": asdict(self.ts)}))
        self.plot()

    def plot(self) -> Path:
        return plot_losses(self.history, self.out / "loss.png", "train (MSE)",
                           f"validation ({self.val_clips[0].name})", log_y=True, smooth_points=50)

    def validation_render(self, path: Path, steps: int | None = None) -> Path:
        """Sample one held-out window and save composite / result / target strips as a PNG."""
        import cv2

        from .sampling import harmonize_clip

        rng = np.random.default_rng(5)
        item = self.val_pairs.sample("real", rng)
        torch = self.torch
        self.model.transformer.eval()
        out = harmonize_clip(self.model, torch.from_numpy(item["composite"]), torch.from_numpy(item["background"]),
                             torch.from_numpy(item["mask"]), steps=steps or self.ts.sample_steps)
        self.model.transformer.train()
        rows = []
        for vid in (item["composite"], out.numpy(), item["target"]):
            frames = [(np.moveaxis(f, 0, -1) + 1) * 127.5 for f in vid[:: max(1, len(vid) // 4)]]
            rows.append(np.concatenate(frames, 1))
        img = np.clip(np.concatenate(rows, 0), 0, 255).astype(np.uint8)
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        return path


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False
