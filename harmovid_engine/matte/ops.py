"""Project-level matte jobs: propagate keyframes through the clip, export all mattes as ``.alpha.npz``.

Both are generators of progress so the CLI (tqdm) and the Studio (worker thread with a cancel button) drive them the
same way; a cancelled propagation keeps what it wrote so far and the keyframes untouched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..colour import alpha_from_float
from ..errors import MatteError
from ..media import open_source
from ..project import Project
from .propagate import MatteFrame, PropagationSettings, count_steps, propagate
from .provider import MatteStage, codes_to_unit
from .store import MatteStore
from .temporal import smooth_alpha_in_time


@dataclass
class MatteProgress:
    done: int
    total: int
    frame: MatteFrame | None = None  # the matte just written (for the viewer)


def project_matte(project: Project, index: int, source=None) -> np.ndarray:
    """The project's current matte of frame ``index`` ((H, W) float32): stored edit, else the matte source."""
    own = source is None
    src = source or open_source(project.talent_path)
    try:
        return MatteStage(src, project.matte, project.matte_store()).talent(index)[1]
    finally:
        if own:
            src.close()


def rgb8(frame: np.ndarray) -> np.ndarray:
    """Any decoded frame -> (H, W, 3) uint8 RGB (what flow, colour models and SAM look at)."""
    rgb = frame[..., :3]
    if rgb.dtype == np.uint16:
        return (rgb >> 8).astype(np.uint8)
    if rgb.dtype != np.uint8:
        return np.clip(rgb.astype(np.float32) * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def propagate_project(project: Project, keyframes: list[int] | None = None, sam=None,
                      settings: PropagationSettings | None = None, cancel=None,
                      smooth_radius: int = 1) -> Iterator[MatteProgress]:
    """Keep the mattes of ``keyframes`` (default: the project's), recompute every other frame by propagation.

    Results are written to the project's ``mattes/`` as they come; the project's keyframe list and review flags are
    updated (the caller saves the project). A talent with no matte source becomes ``stored``.
    """
    keys = sorted(set(keyframes if keyframes is not None else project.matte.keyframes))
    src = open_source(project.talent_path)
    try:
        n = len(src)
        bad = [k for k in keys if not 0 <= k < n]
        if bad:
            raise MatteError(f"keyframe {bad[0]} is outside the clip (frames 0-{n - 1})")
        if not keys:
            raise MatteError("no keyframes: make a matte on at least one frame (click, box or brush) first")
        store = project.matte_store()
        key_alpha = {k: project_matte(project, k, src) for k in keys}

        def read(i):
            return rgb8(src.read(i))

        project.matte.keyframes = keys
        project.matte.review = {}
        done = 0
        written = set()
        total = count_steps(n, keys) + ((n - len(keys)) if smooth_radius else 0)
        for mf in propagate(read, n, key_alpha, settings, sam=sam, cancel=cancel,
                            sam_key=lambda i: f"{i:06d}"):
            store.put(mf.index, mf.alpha)  # provisional results too, so a viewer sees the matte arrive
            written.add(mf.index)
            if mf.final:
                if mf.flag:
                    project.matte.review[str(mf.index)] = mf.flag
                else:
                    project.matte.review.pop(str(mf.index), None)
            done += 1
            yield MatteProgress(done, total, mf)
        if project.matte.source == "none":
            project.matte.source = "stored"
            project.matte.imported_from = f"propagated from keyframes {', '.join(map(str, keys))}"
        if smooth_radius > 0:
            yield from _smooth(src, store, set(keys), sorted(written), smooth_radius, done, total, cancel)
    finally:
        src.close()


def _smooth(src, store: MatteStore, keys: set, frames: list[int], r: int, done: int, total: int, cancel):
    """Temporal joint-bilateral smoothing of propagated mattes (a static edge must not boil); keyframes stay."""
    window: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    have = set(frames)
    for i in frames:
        if cancel is not None:
            cancel.check()
        for k in range(i - r, i + r + 1):
            if k in have and k not in window:
                window[k] = (codes_to_unit(src.read(k)), store.get(k))
        for k in [k for k in window if k < i - r]:
            del window[k]
        if i in keys:
            continue
        ks = [k for k in range(i - r, i + r + 1) if k in window]
        alpha = smooth_alpha_in_time([window[k][1] for k in ks], [window[k][0] for k in ks], ks.index(i))
        store.put(i, alpha)
        done += 1
        yield MatteProgress(done, total, None)


def export_alpha_npz(project: Project, out: str | os.PathLike, cancel=None) -> Iterator[MatteProgress]:
    """Write every frame's matte to ``out`` as ``alpha`` (T, H, W) uint8, the layout of ``../shared/data``."""
    out = Path(out)
    if not out.name.endswith(".npz"):
        raise MatteError(f"'{out.name}': the matte export is a .alpha.npz file")
    src = open_source(project.talent_path)
    try:
        stage = MatteStage(src, project.matte, project.matte_store())
        n = len(src)
        w, h = src.size
        arr = np.empty((n, h, w), np.uint8)
        for i in range(n):
            if cancel is not None:
                cancel.check()
            arr[i] = alpha_from_float(stage.talent(i)[1], np.uint8)
            yield MatteProgress(i + 1, n)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part.npz")
        try:
            np.savez_compressed(tmp, alpha=arr)
            os.replace(tmp, out)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise MatteError(f"cannot write '{out}': {e.strerror or e}") from e
    finally:
        src.close()
