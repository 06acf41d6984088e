"""What the trainers share (learned deflicker, learned harmonizer, diffusion): step records, validation and checkpoint
cadence, checkpoint files of the per-frame models, and the per-frame trainers' split, loop and loss curve."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


def record_step(trainer, loss: float, progress=None) -> None:
    """After an optimiser step: count it, log the loss, validate and save on their cadence, report progress.

    ``trainer`` has ``step``, ``history`` ({"train": [], "val": []}), ``ts`` (``steps``, ``val_every``,
    ``ckpt_every``), ``validate()`` and ``save()``."""
    trainer.step += 1
    last = trainer.step == trainer.ts.steps
    trainer.history["train"].append((trainer.step, loss))
    if trainer.step % trainer.ts.val_every == 0 or last:
        trainer.history["val"].append((trainer.step, trainer.validate()))
    if trainer.step % trainer.ts.ckpt_every == 0 or last:
        trainer.save()
    if progress:
        progress(trainer.step, trainer.ts.steps, loss)


def finish(trainer, started: float) -> dict:
    """Add this run's wall time to the history and save once more."""
    trainer.history["seconds"] = trainer.history.get("seconds", 0) + time.time() - started
    trainer.save()
    return trainer.history


def plot_losses(history: dict, path, train_label: str, val_label: str, baseline: float | None = None,
                log_y: bool = False, smooth_points: int = 100):
    """The loss curve of a run (train smoothed, validation as points, an optional baseline line) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    tr = np.array(history["train"]) if history["train"] else np.zeros((0, 2))
    if len(tr):
        k = max(1, len(tr) // smooth_points)
        ax.plot(tr[k - 1:, 0], np.convolve(tr[:, 1], np.ones(k) / k, mode="valid"), lw=1, label=train_label)
    va = np.array(history["val"]) if history["val"] else np.zeros((0, 2))
    if len(va):
        ax.plot(va[:, 0], va[:, 1], "o-", ms=3, label=val_label)
    if baseline is not None:
        ax.axhline(baseline, color="grey", ls="--", lw=1, label="validation, prior only")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def clip_names(data) -> list[str]:
    """Names of the clips of a data folder (``clips/NAME.mp4`` with its ``clips/NAME.alpha.npz``), sorted."""
    from pathlib import Path

    clips = Path(data) / "clips"
    return sorted(p.name[: -len(".alpha.npz")] for p in clips.glob("*.alpha.npz")
                  if (clips / (p.name[: -len(".alpha.npz")] + ".mp4")).exists())


@dataclass
class RunSettings:
    """What :class:`TrainerBase` itself reads of a trainer's settings (each trainer's ``TrainSettings`` extends it)."""

    val_clips: list = field(default_factory=list)  # default: every fourth clip by name, from the second
    val_every: int = 100
    ckpt_every: int = 250
    seed: int = 0
    device: str = "cpu"


class CheckpointKind:
    """How one kind of per-frame model (learned deflicker, learned harmonizer) is saved and loaded: a torch dict with
    ``format``, ``version``, ``config`` (the dataclass as a dict), ``model`` (state dict), ``meta``, ``step`` and, for a
    resume, ``optimizer``. Loading says in one sentence why a file is not such a model."""

    def __init__(self, fmt: str, version: int, what: str, config, build, train_command: str):
        self.format, self.version, self.what = fmt, version, what
        self.config, self.build, self.train_command = config, build, train_command

    def save(self, path, net, cfg, meta: dict | None = None, optimizer=None, step: int = 0) -> None:
        import os
        from dataclasses import asdict
        from pathlib import Path

        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"format": self.format, "version": self.version, "config": asdict(cfg), "model": net.state_dict(),
                "meta": meta or {}, "step": step}
        if optimizer is not None:
            data["optimizer"] = optimizer.state_dict()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(data, tmp)
        tmp.replace(path)

    def load(self, path, device: str = "cpu"):
        """(net in eval mode, config, raw dict); ModelError with a clear reason otherwise."""
        from pathlib import Path

        import torch

        from .errors import ModelError

        path, what = Path(path), self.what
        if not path.is_file():
            raise ModelError(f"{what} model '{path}' does not exist")
        try:
            data = torch.load(path, map_location=device, weights_only=True)
        except Exception as e:
            raise ModelError(f"'{path.name}' is not a readable {what} model ({type(e).__name__})") from e
        if not isinstance(data, dict) or data.get("format") != self.format:
            raise ModelError(f"'{path.name}' is not a HarmoVid learned-{what} checkpoint")
        if data.get("version") != self.version:
            raise ModelError(f"'{path.name}' is a version {data.get('version')} {what} model; this HarmoVid reads "
                             f"version {self.version}: retrain it with '{self.train_command}'")
        try:
            cfg = self.config(**data["config"])
            net = self.build(cfg)
            net.load_state_dict(data["model"])
        except (TypeError, RuntimeError, KeyError) as e:
            raise ModelError(f"'{path.name}' does not match the {what} network: {str(e).splitlines()[0]}") from e
        net.to(device).eval()
        return net, cfg, data


class TrainerBase:
    """What the per-frame trainers share: the by-name split of a data folder's clips (every fourth from the second
    held out, or ``ts.val_clips``), a fresh or resumed net and optimiser, the step loop with a cosine learning rate,
    checkpoints and the loss curve. A subclass sets ``kind``, ``default_config`` and the plot labels and implements
    ``prepare``, ``_batch(clips, rng, b)`` and ``loss(batch, rng, use_net=True)``; ``self.train``/``self.val`` hold
    what ``prepare`` made; ``ts.weight_decay`` (if the settings have it) goes to AdamW."""

    kind: CheckpointKind
    default_config = None
    train_label = "train"
    val_label = "validation (held-out clips)"
    log_y = False

    def __init__(self, data, out, ts, cfg=None, resume: bool = False, log=print):
        from pathlib import Path

        import numpy as np
        import torch

        from .errors import HarmoVidError

        self.torch = torch
        self.data, self.out, self.ts = Path(data), Path(out), ts
        self.log = log
        names = clip_names(self.data)
        if len(names) < 2:
            raise HarmoVidError(f"'{data}' needs at least two clips (clips/NAME.mp4 + clips/NAME.alpha.npz) to "
                                "train and validate")
        self.check_data()
        val = list(ts.val_clips) or names[1::4]
        unknown = [v for v in val if v not in names]
        if unknown:
            raise HarmoVidError(f"validation clip '{unknown[0]}' is not in {data}/clips")
        self.train_names = [n for n in names if n not in val]
        self.val_names = val
        if not self.train_names:
            raise HarmoVidError("every clip is in the validation split; leave at least one for training")
        self.step = 0
        self.history = {"train": [], "val": [], "val_prior": None}
        self.device = ts.device
        if self.device == "cuda" and not torch.cuda.is_available():
            raise HarmoVidError("--device cuda was asked for but no CUDA GPU is available")
        state = None
        if resume and self.out.exists():
            net, cfg, state = self.kind.load(self.out, self.device)
            self.net = net.train()
        else:
            cfg = cfg or self.default_config()
            self.net = self.kind.build(cfg).to(self.device)
        self.cfg = cfg
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=ts.lr, weight_decay=getattr(ts, "weight_decay", 0.0))
        if state is not None:
            if "optimizer" in state:
                self.opt.load_state_dict(state["optimizer"])
            self.step = int(state.get("step", 0))
            self.history = state.get("meta", {}).get("history", self.history)
        self.rng = np.random.default_rng(ts.seed + self.step)

    def check_data(self) -> None:
        """Refuse a data folder this trainer cannot use (beyond the clips every trainer needs)."""

    def run(self, progress=None, cancel=None) -> dict:
        import math

        torch = self.torch
        torch.manual_seed(self.ts.seed + self.step)
        if self.history.get("val_prior") is None:
            self.history["val_prior"] = self.validate(use_net=False)
            self.history["val_untrained"] = self.validate()
        self.net.train()
        t0 = time.time()
        while self.step < self.ts.steps:
            if cancel is not None and cancel.cancelled:
                break
            lr = self.ts.lr * 0.5 * (1 + math.cos(math.pi * self.step / max(1, self.ts.steps)))
            for g in self.opt.param_groups:
                g["lr"] = lr
            loss = self.loss(self._batch(self.train, self.rng, self.ts.batch), self.rng)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            record_step(self, float(loss.detach()), progress)
        return finish(self, t0)

    def meta(self) -> dict:
        from dataclasses import asdict

        return {"history": self.history, "train_clips": self.train_names, "val_clips": self.val_names,
                "settings": asdict(self.ts), "data": str(self.data)}

    def save(self) -> None:
        self.kind.save(self.out, self.net, self.cfg, self.meta(), self.opt, self.step)
        self.plot()

    def plot(self):
        import json

        path = plot_losses(self.history, self.out.with_suffix(".loss.png"), self.train_label, self.val_label,
                           baseline=self.history.get("val_prior"), log_y=self.log_y)
        self.out.with_suffix(".log.json").write_text(json.dumps(self.history))
        return path
