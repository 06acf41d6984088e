"""HarmoVid's data recipe, in three stages, from real portrait clips with pseudo-alpha mattes and plates.

1. **Pseudo pairs** (stage 1): the real talent is cut out with its pseudo-alpha and put on another background (a
   plate, or another clip's frames) and harmonized frame by frame by an image harmonizer (the analytic engine, or any
   callable ``(talent, alpha, plate) -> harmonized`` in linear light). Per-frame harmonization flickers.
2. **Refinement** (stage 2): those clips are deflickered (the analytic or learned deflicker: any callable on the whole
   sequence).
3. **Joint batches** (stage 3) mixing two paths:
   - ``synthetic`` path: real talent on a synthetic background; input = the unharmonized cut-out over the new
     background, target = the stage-2 clip (keeps expressive relighting). Its mask is **binary** (the cut-out's own
     hard mask), jittered (erode/dilate, shift) so the model does not trust edges blindly.
   - ``real`` path: synthetic talent on the real background; the clip's own talent is relit/recoloured (exposure,
     white balance, saturation, a directional ramp; constant over the window) and composited back with the soft
     pseudo-alpha; target = the real video (teaches temporal coherence and physical plausibility). Its mask is the
     **soft** pseudo-alpha, lightly blurred or sharpened, so clean boundaries (hair) are learned from real footage.
   The background video given as conditioning is the plate for the synthetic path and the real frame with the talent
   inpainted away for the real path.

Videos are returned in [-1, 1] sRGB code values, (F, 3, H, W); masks (F, 1, H, W) in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..colour import from_linear, srgb_to_linear
from ..errors import HarmoVidError
from .model import DiffusionConfig

PATHS = ("synthetic", "real")


@dataclass
class Clip:
    name: str
    frames: np.ndarray  # (T, H, W, 3) float32 linear at the model's size
    alpha: np.ndarray  # (T, H, W) float32 soft pseudo-alpha
    fps: float


def _fit(img: np.ndarray, w: int, h: int, interp=cv2.INTER_AREA) -> np.ndarray:
    """Scale to cover (w, h) and centre-crop."""
    ih, iw = img.shape[:2]
    s = max(w / iw, h / ih)
    nw, nh = max(w, round(iw * s)), max(h, round(ih * s))
    r = cv2.resize(img, (nw, nh), interpolation=interp)
    x0, y0 = (nw - w) // 2, (nh - h) // 2
    return r[y0:y0 + h, x0:x0 + w]


def load_clips(data: Path, cfg: DiffusionConfig, names: list[str] | None = None, max_frames: int = 120) -> list[Clip]:
    clips_dir = Path(data) / "clips"
    found = sorted(p.name[: -len(".alpha.npz")] for p in clips_dir.glob("*.alpha.npz"))
    names = names or found
    out = []
    for n in names:
        if n not in found or not (clips_dir / f"{n}.mp4").exists():
            raise HarmoVidError(f"clip '{n}' (NAME.mp4 + NAME.alpha.npz) is not in '{clips_dir}'")
        cap = cv2.VideoCapture(str(clips_dir / f"{n}.mp4"))
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        frames = []
        while len(frames) < max_frames:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(_fit(cv2.cvtColor(f, cv2.COLOR_BGR2RGB), cfg.width, cfg.height))
        with np.load(clips_dir / f"{n}.alpha.npz") as z:
            raw = z["alpha"][: len(frames)]
        frames = frames[: len(raw)]
        if len(frames) < cfg.frames:
            raise HarmoVidError(f"clip '{n}' has {len(frames)} frames; the model needs windows of {cfg.frames}")
        alpha = np.stack([_fit(a, cfg.width, cfg.height) for a in raw]).astype(np.float32) / 255
        lin = srgb_to_linear(np.stack(frames).astype(np.float32) / 255)
        out.append(Clip(n, lin, alpha, fps))
    if not out:
        raise HarmoVidError(f"no clips in '{clips_dir}'")
    return out


def load_plates(data: Path, cfg: DiffusionConfig) -> list[np.ndarray]:
    plates = []
    for p in sorted((Path(data) / "plates").glob("*")):
        if p.suffix.lower() in (".jpg", ".jpeg", ".png"):
            img = cv2.imread(str(p))
            if img is not None:
                plates.append(srgb_to_linear(_fit(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), cfg.width,
                                                  cfg.height).astype(np.float32) / 255))
    return plates


def analytic_harmonizer():
    from ..engines import create_engine

    eng = create_engine("analytic")
    return lambda talent, alpha, plate: eng.harmonize(talent, alpha, plate, 0)


def analytic_deflicker(radius: int | None = None):
    from ..deflicker import AnalyticDeflicker

    d = AnalyticDeflicker() if radius is None else AnalyticDeflicker(radius)
    return lambda outs, talents, alphas, plates: d.run_sequence(outs, talents, alphas, plates)


def to_model(lin: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) linear -> (..., 3, H, W) sRGB in [-1, 1]."""
    codes = from_linear(np.clip(lin, 0, 1), np.float32)
    return np.moveaxis(codes * 2 - 1, -1, -3).astype(np.float32)


def relight(frames: np.ndarray, rng) -> np.ndarray:
    """Synthetic talent: the clip's own talent relit/recoloured, constant over the window (linear light)."""
    g = np.exp(rng.uniform(np.log(0.55), np.log(1.8)))
    w = np.exp(rng.uniform(-0.25, 0.25, 3))
    w /= w.mean()
    s = rng.uniform(0.6, 1.4)
    lum = frames @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    out = lum[..., None] + s * (frames - lum[..., None])
    h, wd = frames.shape[1:3]
    th = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:wd].astype(np.float32)
    ramp = 1 + rng.uniform(0, 0.4) * 2 * (np.cos(th) * (xx / wd - 0.5) + np.sin(th) * (yy / h - 0.5))
    return np.clip(out * g * w * ramp[..., None], 0, 1).astype(np.float32)


def binary_mask(alpha: np.ndarray, rng) -> np.ndarray:
    """Hard mask with the jitter that makes mask conditioning robust: erode/dilate up to 2 px, shift up to 1 px."""
    m = (alpha > 0.5).astype(np.uint8)
    k = int(rng.integers(-2, 3))
    dx, dy = (int(v) for v in rng.integers(-1, 2, 2))
    out = []
    for f in m:
        if k:
            se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(k) + 1, 2 * abs(k) + 1))
            f = cv2.dilate(f, se) if k > 0 else cv2.erode(f, se)
        f = np.roll(f, (dy, dx), (0, 1))
        out.append(f)
    return np.stack(out).astype(np.float32)


def soft_mask(alpha: np.ndarray, rng) -> np.ndarray:
    """The pseudo-alpha itself, lightly blurred or sharpened (kept soft: values strictly between 0 and 1 stay)."""
    gamma = float(np.exp(rng.uniform(-0.3, 0.3)))
    out = np.clip(alpha, 0, 1) ** gamma
    if rng.random() < 0.5:
        out = np.stack([cv2.GaussianBlur(a, (0, 0), rng.uniform(0.3, 1.0)) for a in out])
    return out.astype(np.float32)


def inpaint_talent(frame_lin: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The real background with the talent removed (OpenCV Telea, as in EVALUATION.md)."""
    codes = from_linear(frame_lin, np.uint8)
    hole = cv2.dilate((alpha > 0.02).astype(np.uint8), np.ones((7, 7), np.uint8))
    filled = cv2.inpaint(codes, hole, 5, cv2.INPAINT_TELEA)
    return srgb_to_linear(filled.astype(np.float32) / 255)


class PseudoPairs:
    """Makes training windows for both paths; stage-1/2 clips are computed once per (clip, plate) and cached."""

    def __init__(self, clips: list[Clip], plates: list[np.ndarray], cfg: DiffusionConfig,
                 harmonizer: Callable | None = None, deflicker: Callable | None = None):
        if not plates:
            raise HarmoVidError("the synthetic path needs at least one plate (plates/*.jpg)")
        self.clips, self.plates, self.cfg = clips, plates, cfg
        self.harmonizer = harmonizer or analytic_harmonizer()
        self.deflicker = deflicker or analytic_deflicker()
        self._stage2: dict[tuple[int, int], np.ndarray] = {}
        self._inpainted: dict[tuple[int, int], np.ndarray] = {}

    def stage1(self, ci: int, pi: int) -> list[np.ndarray]:
        """Per-frame harmonized talent (linear, full frame) of clip ci for plate pi."""
        c, p = self.clips[ci], self.plates[pi]
        return [self.harmonizer(f, a, p) for f, a in zip(c.frames, c.alpha)]

    def stage2(self, ci: int, pi: int) -> np.ndarray:
        """Deflickered stage-1 composite over the plate (T, H, W, 3) linear."""
        key = (ci, pi)
        if key not in self._stage2:
            c, p = self.clips[ci], self.plates[pi]
            h1 = self.stage1(ci, pi)
            h2 = self.deflicker(h1, list(c.frames), list(c.alpha), None)
            a = c.alpha[..., None]
            self._stage2[key] = np.stack([hh * aa + p * (1 - aa) for hh, aa in zip(h2, a)]).astype(np.float32)
        return self._stage2[key]

    def background(self, ci: int, t: int) -> np.ndarray:
        key = (ci, t)
        if key not in self._inpainted:
            c = self.clips[ci]
            self._inpainted[key] = inpaint_talent(c.frames[t], c.alpha[t])
        return self._inpainted[key]

    def sample(self, path: str, rng) -> dict:
        f = self.cfg.frames
        ci = int(rng.integers(len(self.clips)))
        c = self.clips[ci]
        t0 = int(rng.integers(len(c.frames) - f + 1))
        sl = slice(t0, t0 + f)
        frames, alpha = c.frames[sl], c.alpha[sl]
        if path == "synthetic":
            pi = int(rng.integers(len(self.plates)))
            plate = self.plates[pi]
            a = alpha[..., None]
            composite = frames * a + plate * (1 - a)
            background = np.broadcast_to(plate, frames.shape)
            target = self.stage2(ci, pi)[sl]
            mask = binary_mask(alpha, rng)
        elif path == "real":
            a = alpha[..., None]
            composite = relight(frames, rng) * a + frames * (1 - a)
            background = np.stack([self.background(ci, t) for t in range(t0, t0 + f)])
            target = frames
            mask = soft_mask(alpha, rng)
        else:
            raise ValueError(path)
        return {"composite": to_model(composite), "background": to_model(background), "target": to_model(target),
                "mask": mask[:, None].astype(np.float32), "path": path, "clip": c.name, "start": t0}

    def batch(self, n: int, rng, paths: tuple[str, ...] = PATHS) -> dict:
        """``n`` windows alternating the paths (both present whenever n >= 2), as torch tensors."""
        import torch

        items = [self.sample(paths[i % len(paths)], rng) for i in range(n)]
        out = {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in ("composite", "background", "target",
                                                                                 "mask")}
        out["path"] = [it["path"] for it in items]
        out["clip"] = [it["clip"] for it in items]
        return out
