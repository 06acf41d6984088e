"""Harmonization engines, selectable by name (project render settings, ``harmovid render --engine NAME``).

An engine looks at the talent (in its own pixels), its matte and the plate around it, and describes how the talent's
light must change as a smooth **log-gain field** over a box of the talent. The render graph applies that field (with
the deflicker's) in one finishing pass, so texture and matte edges stay the footage's. Interface::

    engine = create_engine(name, settings)          # settings: dict of engine options
    engine.contract                                 # radius, whole-clip preparation, what it reads and produces
    engine.prepare(n, frame, cancel, progress)      # whole-clip engines only (needs_preparation), once per clip
    params = engine.estimate(talent, alpha, plate, placement, index)   # per-frame parameters (small), or None
    engine.log_gain((h, w), params) -> (box, field) # the change for a frame (or a resized copy) of size (h, w)
    engine.apply(talent, alpha, params) -> talent   # the same change applied with numpy (small working copies)
    engine.light(params) -> (direction, directionality)   # for the cast shadow

Engines are listed here explicitly (no registration by import side effect): adding one is a module with an
``Engine`` subclass and one line in ``BUILTIN``. ``none`` leaves the talent unchanged (a plain composite).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping

import numpy as np

from ..composite.gain import apply_log_gain
from ..errors import HarmoVidError
from ..stage import Contract


NUMERIC_BOUND = 1e6


def setting_problems(label: str, value, default, limits=None, choices=None) -> list[str]:
    """Problems of one setting's ``value`` judged by its ``default``'s type: a number must be a finite real number
    (an int where the default is an int; never a bool), within ``limits`` (lo, hi); a bool must be a bool; a string a
    string; and any value one of ``choices`` when given."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            return [f"{label} must be true or false, not {value!r}"]
    elif isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"{label} must be a number, not {value!r}"]
        if not math.isfinite(value):
            return [f"{label} must be a finite number, not {value!r}"]
        if isinstance(default, int) and not float(value).is_integer():
            return [f"{label} must be a whole number, not {value!r}"]
        lo, hi = limits or (-NUMERIC_BOUND, NUMERIC_BOUND)
        if not lo <= value <= hi:
            return [f"{label} must be between {lo} and {hi}, not {value!r}"]
    elif isinstance(default, str) and not isinstance(value, str):
        return [f"{label} must be text, not {value!r}"]
    if choices and value not in choices:
        return [f"{label} must be one of {', '.join(map(str, choices))}, not {value!r}"]
    return []


class Engine:
    name = "base"
    radius = 0  # temporal radius of the engine itself (0: per frame)
    needs_preparation = False  # True: the whole clip is processed once before the first frame (``prepare``)
    defaults: dict = {}
    # (low, high) of numeric settings; a numeric setting not listed must be finite and within +-NUMERIC_BOUND
    limits: dict = {}
    choices: dict = {}  # allowed values of string settings that are not free text (paths)

    def __init__(self, settings: dict | None = None):
        bad = self.problems(settings)
        if bad:
            raise HarmoVidError("; ".join(bad))
        self.settings = {**self.defaults, **(settings or {})}

    @classmethod
    def problems(cls, settings: dict | None) -> list[str]:
        """What is wrong with ``settings`` for this engine (empty when all is well): unknown names, wrong types,
        numbers that are not finite or out of range. The one check behind the CLI's ``--set``, project load and save,
        the Studio and the engine itself."""
        if settings is None:
            return []
        if not isinstance(settings, dict):
            return [f"engine settings must be a mapping of name to value, not {type(settings).__name__}"]
        unknown = sorted(set(settings) - set(cls.defaults), key=str)
        if unknown:
            return [f"engine '{cls.name}' has no setting(s) {', '.join(map(str, unknown))}; "
                    f"known: {', '.join(sorted(cls.defaults)) or 'none'}"]
        out = []
        for k, v in settings.items():
            out += setting_problems(f"engine setting {k}", v, cls.defaults[k], cls.limits.get(k),
                                    cls.choices.get(k))
        return out

    @property
    def contract(self) -> Contract:
        return Contract("harmonize", radius=self.radius, prepare=self.needs_preparation,
                        reads=("talent", "alpha", "plate"), produces=("gain",))

    @property
    def prepared(self) -> bool:
        return True

    def prepare(self, n: int, frame, cancel=None, progress=None, preview=None) -> None:
        """Whole-clip engines: process frames 0..n-1 once; ``frame(i)`` -> (talent linear (h, w, 3), alpha (h, w),
        plate under the talent (h, w, 3)). ``preview(step, total, clip)`` receives intermediate results."""

    def estimate(self, talent: np.ndarray, alpha: np.ndarray, plate: np.ndarray, placement=(0.0, 0.0, 1.0),
                 index: int | None = None):
        """Per-frame parameters, or None for no change. talent/alpha are in the talent's pixels, placed at
        ``placement = (x, y, scale)`` on the plate; ``index`` is the frame's number in the clip."""
        return None

    def log_gain(self, shape: tuple[int, int], params):
        """((x0, y0, x1, y1), (y1 - y0, x1 - x0, 3) float32 log gain) for a frame of ``shape`` = (h, w): the frame
        the parameters were estimated on or a resized copy; None: no change. Applied weighted by alpha."""
        return None

    def apply(self, talent: np.ndarray, alpha: np.ndarray, params) -> np.ndarray:
        """``talent`` (h, w, 3) float32 linear with the engine's change (at the size of ``talent``)."""
        if params is None:
            return talent
        gain = self.log_gain(alpha.shape, params)
        if gain is None:
            return talent
        return apply_log_gain(talent, gain[0], gain[1], alpha)

    def light(self, params) -> tuple[np.ndarray | None, float]:
        """(dominant light direction (3,) or None, directionality 0..~1) of the plate, for the cast shadow."""
        return None, 0.5

    def harmonize(self, talent: np.ndarray, alpha: np.ndarray, plate: np.ndarray, index: int) -> np.ndarray:
        return self.apply(talent, alpha, self.estimate(talent, alpha, plate, index=index))


class NoneEngine(Engine):
    """The plain composite: talent as shot."""

    name = "none"


# name -> the class, or "module:Class" imported when first asked for (torch-heavy engines load only when used)
BUILTIN: dict[str, object] = {
    "none": NoneEngine,
    "analytic": "harmovid_engine.relight.engine:AnalyticEngine",
    "learned": "harmovid_engine.relight.learned:LearnedEngine",
    "harmovid": "harmovid_engine.diffusion.engine:DiffusionEngine",
}


class _Registry(Mapping):
    """The engines by name; a class is imported when first looked up."""

    def __init__(self, entries: dict):
        self._entries = entries

    def __getitem__(self, name: str):
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, cls = entry.partition(":")
            entry = getattr(importlib.import_module(module), cls)
            self._entries[name] = entry
        return entry

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


ENGINES = _Registry(BUILTIN)


def create_engine(name: str, settings: dict | None = None) -> Engine:
    if name not in ENGINES:
        raise HarmoVidError(f"unknown engine '{name}' (available: {', '.join(sorted(ENGINES))})")
    return ENGINES[name](settings)
