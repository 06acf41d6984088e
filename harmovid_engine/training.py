"""Bookkeeping shared by the trainers (learned deflicker, diffusion): step records, validation and checkpoint cadence."""

from __future__ import annotations

import time


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
