"""The learned per-frame harmonizer (engine ``learned``): a small network predicts the talent's change of light.

What it sees (the **view**, ``VIEW`` x ``VIEW`` pixels): a square of the output canvas around the talent (``CONTEXT``
times the talent's larger side), holding the composite (talent over plate), the matte and the plate alone, plus the
whole plate's log-colour statistics. What it predicts, all smooth and interpretable:

- a global log gain per channel: its luminance part is the exposure change (``intensity`` scales it), its chroma
  part the white balance (``colour``);
- a coarse ``GRID_NET`` x ``GRID_NET`` log-gain grid of 3 channels over the view, zero-mean over the talent: the
  light's direction and colour across the talent (``direction``).

They become the same kind of log-gain field as the analytic engine's (:class:`~.engine.RelightParams`), applied at
full resolution by the render graph's finishing pass, so texture and matte edges stay the footage's and the deflicker,
shadow and Studio treat both engines alike.

**Unsure means smaller.** The net runs on the view and on its mirror image; where the two predictions disagree (an
ambiguous talent or plate), or little of the talent is visible, the change shrinks toward none
(``shrink = 1 / (1 + (disagreement / confidence)^2)``), so the engine is never much worse than doing nothing.

Weights: ``resources/models/harmonizer_learned.pt`` (trained by ``harmovid train harmonizer`` on
``../shared/data/train``; ``docs/models/harmonizer_learned.md``), or the ``checkpoint`` setting, or
``$HARMOVID_HARMONIZER_MODEL``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..colour import LUMA_709
from ..training import CheckpointKind
from .analysis import light_of_sh
from .engine import GRID, AnalyticEngine, FieldEngine, RelightParams, talent_bbox

FORMAT = "harmovid-harmonizer"
VERSION = 1
# The network's working size (pixels of the view's side). 32: at 64 the net learnt to recognise the training people
# and scenes (held-out loss rising after 200 steps); at 32 it generalises as well or better and runs 4x cheaper.
VIEW = 32
GRID_NET = 8  # the predicted directional grid (the net's last feature map)
CONTEXT = 1.6  # the view's side over the talent's larger side
MIN_COVER = 0.04  # a talent covering less of its view than this is too small to judge: the change fades out
MAX_LOG_GAIN = 1.5  # bound of the global change (~2 stops); the grid is bounded by ``max_shade``


@dataclass
class HarmonizerConfig:
    width: int = 12  # channels of the first stage (then 1.5x, 2x); 24 did no better on held-out clips
    view: int = VIEW
    grid: int = GRID_NET
    max_shade: float = 0.7  # bound of the grid's log gain (tanh)


def _torch():
    import torch

    return torch


def build_net(cfg: HarmonizerConfig):
    torch = _torch()
    nn = torch.nn
    w1, w2, w3 = cfg.width, int(cfg.width * 1.5), cfg.width * 2
    stages = max(1, int(round(np.log2(cfg.view / cfg.grid))) - 1)  # after the first, strided, layer

    class HarmonizerNet(nn.Module):
        """(B, 7, V, V) view [composite | matte | plate] in display-encoded values + (B, 6) the view's plate's
        log-colour statistics ->
        ((B, 3) global log gain, (B, 3, G, G) directional log-gain grid, zero-mean over the talent)."""

        def __init__(self):
            super().__init__()
            layers = [nn.Conv2d(7, w1, 3, stride=2, padding=1), nn.ReLU()]
            c = w1
            for k in range(stages):
                nxt = w2 if k < stages - 1 else w3
                layers += [nn.Conv2d(c, nxt, 3, stride=2, padding=1), nn.ReLU(),
                           nn.Conv2d(nxt, nxt, 3, padding=1), nn.ReLU()]
                c = nxt
            self.encoder = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Linear(2 * c + 6, 64), nn.ReLU(), nn.Linear(64, 3))
            self.grid = nn.Conv2d(c + 1, 3, 3, padding=1)
            self.max_shade = cfg.max_shade

        def forward(self, x, stats):
            f = self.encoder(x)
            a = torch.nn.functional.adaptive_avg_pool2d(x[:, 3:4], f.shape[-2:])
            pooled = f.mean((2, 3))
            talent = (f * a).sum((2, 3)) / (a.sum((2, 3)) + 1e-3)
            glob = MAX_LOG_GAIN * torch.tanh(self.head(torch.cat([pooled, talent, stats], 1)) / MAX_LOG_GAIN)
            g = self.max_shade * torch.tanh(self.grid(torch.cat([f, a], 1)))
            mean = (g * a).sum((2, 3), keepdim=True) / (a.sum((2, 3), keepdim=True) + 1e-3)
            return glob, g - mean

    return HarmonizerNet()


# -- the view --------------------------------------------------------------------------------------------------------
def encode(lin: np.ndarray) -> np.ndarray:
    """Display-like values for the network (a 1/2.2 power: close to sRGB, cheap)."""
    return np.power(np.clip(lin, 0.0, 1.0), 1 / 2.2, dtype=np.float32)


def _crop(img: np.ndarray, x0: float, y0: float, side: float, out: int, fill=None) -> np.ndarray:
    """The square [x0, x0 + side) x [y0, y0 + side) of ``img`` (pixel coordinates, may reach outside) area-averaged to
    ``out`` x ``out``; outside the image: ``fill`` (None: the nearest edge pixel)."""
    h, w = img.shape[:2]
    # only the pixels the square covers (and one more for the interpolation): a 1080p plate is not resized whole
    ix0, iy0 = max(0, int(np.floor(x0)) - 1), max(0, int(np.floor(y0)) - 1)
    ix1, iy1 = min(w, int(np.ceil(x0 + side)) + 2), min(h, int(np.ceil(y0 + side)) + 2)
    if ix1 - ix0 >= 2 and iy1 - iy0 >= 2:
        img, x0, y0 = img[iy0:iy1, ix0:ix1], x0 - ix0, y0 - iy0
        h, w = img.shape[:2]
    step = side / out
    if step > 1.0:  # average over the source pixels: shrink the source first, then sample
        f = 1.0 / step
        small = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        sx, sy = small.shape[1] / w, small.shape[0] / h
        img, x0, y0, step = small, x0 * sx, y0 * sy, step * sx
    m = np.float32([[step, 0, x0 + 0.5 * step - 0.5], [0, step, y0 + 0.5 * step - 0.5]])
    border = cv2.BORDER_REPLICATE if fill is None else cv2.BORDER_CONSTANT
    return cv2.warpAffine(img, m, (out, out), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border,
                          borderValue=0 if fill is None else fill)


def view_square(bbox, placement, context: float = CONTEXT):
    """(x0, y0, side) of the view on the canvas for a talent ``bbox`` (talent pixels) placed at ``placement``."""
    px, py, sc = placement
    x0, y0, x1, y1 = bbox
    cx, cy = px + (x0 + x1) / 2 * sc, py + (y0 + y1) / 2 * sc
    side = context * max(x1 - x0, y1 - y0) * sc
    return cx - side / 2, cy - side / 2, side


def make_view(talent: np.ndarray, alpha: np.ndarray, plate: np.ndarray, placement, square, size: int = VIEW):
    """((7, size, size) float32 network input, (size, size) matte) for the canvas ``square`` = (x0, y0, side):
    the talent (linear, its own pixels) placed over the plate (linear canvas), encoded."""
    qx, qy, side = square
    px, py, sc = placement
    p = _crop(plate, qx, qy, side, size)
    # the same square in the talent's pixels
    tx, ty, tside = (qx - px) / sc, (qy - py) / sc, side / sc
    t = _crop(talent, tx, ty, tside, size, fill=0.0)
    a = _crop(np.ascontiguousarray(alpha, np.float32), tx, ty, tside, size, fill=0.0)
    a = np.clip(a, 0.0, 1.0)
    comp = t * a[..., None] + p * (1 - a[..., None])
    x = np.concatenate([encode(comp), a[..., None], encode(p)], axis=2).transpose(2, 0, 1)
    return np.ascontiguousarray(x, np.float32), a, p


def plate_statistics(plate: np.ndarray) -> np.ndarray:
    """(6,) mean and spread of the log colour of the view's plate (its key and illuminant, for the net's head)."""
    log = np.log(np.maximum(plate.reshape(-1, 3), 1e-3))
    return np.concatenate([log.mean(0), log.std(0)]).astype(np.float32)


# -- checkpoint -------------------------------------------------------------------------------------------------------
KIND = CheckpointKind(FORMAT, VERSION, "harmonizer", HarmonizerConfig, build_net, "harmovid train harmonizer")


def save_checkpoint(path, net, cfg: HarmonizerConfig, meta: dict | None = None, optimizer=None, step: int = 0):
    KIND.save(path, net, cfg, meta, optimizer, step)


def load_checkpoint(path, device: str = "cpu"):
    """(net, config, raw dict); ModelError with a clear reason otherwise."""
    return KIND.load(path, device)


def default_checkpoint() -> Path:
    from ..resources import resources_dir

    return resources_dir() / "models" / "harmonizer_learned.pt"


def model_path(setting: str = "") -> Path:
    """The harmonizer in use: the engine's ``checkpoint`` setting, ``$HARMOVID_HARMONIZER_MODEL``, or the shipped
    weights."""
    if setting:
        return Path(setting)
    env = os.environ.get("HARMOVID_HARMONIZER_MODEL")
    return Path(env) if env else default_checkpoint()


_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def _load_cached(path: Path):
    key = (str(path.resolve()), path.stat().st_mtime_ns if path.exists() else 0)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE.clear()
            _CACHE[key] = load_checkpoint(path)
        return _CACHE[key]


# -- the engine -------------------------------------------------------------------------------------------------------
class LearnedEngine(FieldEngine):
    name = "learned"
    defaults = {
        "checkpoint": "",  # a harmonizer checkpoint; empty: $HARMOVID_HARMONIZER_MODEL or the shipped weights
        "colour": 1.0,  # strength of the predicted white-balance change
        "intensity": 1.0,  # strength of the predicted exposure change
        "direction": 1.0,  # strength of the predicted directional light
        # How much the net's two looks (the view and its mirror) may disagree, in log units, before the change is
        # halved. Fitted on the net's 10 held-out train/ clips (benchmarks/fit_analytic.py --stage learned,
        # docs/bench/fit_analytic_learned.json): 0.15 and 0.25 tie (score 0.027; mean fmse ratio 0.75 / 0.74, worst
        # 3.5x / 3.7x); 0.03 holds back almost always (0.93, worst 1.5x); 10 never (0.74, worst 3.8x).
        "confidence": 0.15,
    }
    limits = {"colour": (0.0, 2.0), "intensity": (0.0, 2.0), "direction": (0.0, 2.0), "confidence": (0.001, 10.0)}

    def __init__(self, settings=None):
        super().__init__(settings)
        self.net, self.cfg, _ = _load_cached(model_path(self.settings["checkpoint"]))
        # A net this small runs best on one thread: two made each frame's ~2 ms of convolutions ~40 ms on a busy
        # 2-core machine (an export's encoder holds the other core).
        _torch().set_num_threads(1)

    def predict(self, x: np.ndarray, stats: np.ndarray):
        """((3,) global log gain, (3, G, G) grid, disagreement) for one view, looked at as is and mirrored."""
        torch = _torch()
        xb = torch.from_numpy(np.stack([x, x[:, :, ::-1].copy()]))
        sb = torch.from_numpy(np.stack([stats, stats]))
        with torch.inference_mode():
            glob, grid = self.net(xb, sb)
        glob, grid = glob.numpy(), grid.numpy()
        grid[1] = grid[1][:, :, ::-1]
        disagreement = float(np.sqrt(np.mean((glob[0] - glob[1]) ** 2) + np.mean((grid[0] - grid[1]) ** 2)))
        return glob.mean(0), grid.mean(0), disagreement

    def estimate(self, talent, alpha, plate, placement=(0.0, 0.0, 1.0), index=None):
        bbox = talent_bbox(alpha)
        if bbox is None:
            return None
        s = self.settings
        # the plate's dominant light, for the cast shadow (the analytic engine's analysis and front fill)
        light_dir, directionality = light_of_sh(self.plate_analysis(plate, AnalyticEngine.defaults["front_fill"]).sh)
        square = view_square(bbox, placement, CONTEXT)
        x, a, p = make_view(talent, alpha, plate, placement, square, self.cfg.view)
        glob, grid, disagreement = self.predict(x, plate_statistics(p))
        cover = float((a > 0.5).mean())
        shrink = 1.0 / (1.0 + (disagreement / s["confidence"]) ** 2)
        shrink *= float(np.clip(cover / MIN_COVER, 0.0, 1.0))
        luma = float(glob @ LUMA_709)
        gain = shrink * (s["intensity"] * luma + s["colour"] * (glob - luma))
        shade = shrink * s["direction"] * grid_over_bbox(grid, square, bbox, placement)
        return RelightParams(bbox, gain.astype(np.float32), shade.astype(np.float32), light_dir, directionality,
                             (alpha.shape[1], alpha.shape[0]))


def grid_over_bbox(grid: np.ndarray, square, bbox, placement, out: int = GRID) -> np.ndarray:
    """The net's (3, G, G) grid over the view ``square`` (canvas), resampled to ``out`` x ``out`` over the talent's
    ``bbox`` (talent pixels): (out, out, 3)."""
    g = np.ascontiguousarray(grid.transpose(1, 2, 0), np.float32)
    G = g.shape[0]
    qx, qy, side = square
    px, py, sc = placement
    x0, y0, x1, y1 = bbox
    # bbox grid cell centre (i + 0.5) -> canvas -> view grid coordinates
    ax = (x1 - x0) * sc / out / side * G
    ay = (y1 - y0) * sc / out / side * G
    bx = ((px + x0 * sc) - qx) / side * G + 0.5 * ax - 0.5
    by = ((py + y0 * sc) - qy) / side * G + 0.5 * ay - 0.5
    m = np.float32([[ax, 0, bx], [0, ay, by]])
    return cv2.warpAffine(g, m, (out, out), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
