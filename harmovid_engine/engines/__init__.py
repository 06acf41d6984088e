"""Harmonization engines, selectable by name (project render settings, ``harmovid render --engine NAME``).

An engine turns the placed talent into talent lit like the plate. Interface::

    engine = create_engine(name, settings)       # settings: dict of engine options
    engine.radius                                 # temporal radius of the engine itself (0: per frame)
    params = engine.estimate(talent, alpha, plate)    # per-frame parameters (small), or None
    engine.apply(talent, alpha, params) -> talent     # (H, W, 3) float32 linear, canvas size
    engine.harmonize(talent, alpha, plate, index)     # estimate + apply

``none`` leaves the talent unchanged (a plain composite).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import HarmoVidError


class Engine:
    name = "base"
    radius = 0
    defaults: dict = {}

    def __init__(self, settings: dict | None = None):
        self.settings = {**self.defaults, **(settings or {})}
        unknown = set(self.settings) - set(self.defaults)
        if unknown:
            raise HarmoVidError(f"engine '{self.name}' has no setting(s) {', '.join(sorted(unknown))}; "
                                f"known: {', '.join(sorted(self.defaults)) or 'none'}")

    def estimate(self, talent: np.ndarray, alpha: np.ndarray, plate: np.ndarray, placement=(0.0, 0.0, 1.0)):
        """Per-frame parameters. talent/alpha are in the talent's pixels, placed at ``(x, y, scale)`` on the plate."""
        return None

    def apply(self, talent: np.ndarray, alpha: np.ndarray, params) -> np.ndarray:
        return talent

    def harmonize(self, talent: np.ndarray, alpha: np.ndarray, plate: np.ndarray, index: int) -> np.ndarray:
        return self.apply(talent, alpha, self.estimate(talent, alpha, plate))


class NoneEngine(Engine):
    """The plain composite: talent as shot."""

    name = "none"


ENGINES: dict[str, Callable[..., Engine]] = {"none": NoneEngine}


def register_engine(cls) -> None:
    ENGINES[cls.name] = cls


def load_builtin_engines() -> None:
    from .. import relight  # noqa: F401  (registers "analytic")
    from ..diffusion import engine  # noqa: F401  (registers "harmovid")


def create_engine(name: str, settings: dict | None = None) -> Engine:
    load_builtin_engines()
    if name not in ENGINES:
        raise HarmoVidError(f"unknown engine '{name}' (available: {', '.join(sorted(ENGINES))})")
    return ENGINES[name](settings)
