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
