"""Click-to-matte with Segment Anything: a session that caches image embeddings and answers prompts fast.

The heavy step (the ViT image encoder, seconds per frame on a CPU) runs once per frame, off the GUI thread, and its
embedding is kept in an in-memory LRU and optionally on disk (``cache/sam/<model>/<frame>.npz`` in the project), so a
click on a frame seen before costs only the prompt encoder and the mask decoder (tens of milliseconds).

Prompts are positive/negative points and an optional box. SAM answers three candidates with predicted IoU scores;
the session picks the best, keeps the others for the user to cycle through, and feeds the chosen candidate's low-res
logits back as ``mask_input`` with the next click so refinements build on the previous answer.

``torch`` and ``segment_anything`` are imported lazily: the rest of the engine (keying, brush, propagation) works
without them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import MatteError

# Architectures by name. The three published SAM models, plus "tiny": the same classes at 256 px with a 2-block
# encoder, for tests and for exercising the whole path without a download.
SAM_ARCHS = {
    "vit_b": dict(embed_dim=768, depth=12, num_heads=12, global_attn=(2, 5, 8, 11), img_size=1024),
    "vit_l": dict(embed_dim=1024, depth=24, num_heads=16, global_attn=(5, 11, 17, 23), img_size=1024),
    "vit_h": dict(embed_dim=1280, depth=32, num_heads=16, global_attn=(7, 15, 23, 31), img_size=1024),
    "tiny": dict(embed_dim=32, depth=2, num_heads=2, global_attn=(1,), img_size=256, window_size=4,
                 decoder_mlp_dim=64, iou_hidden=32),
}
_EMBED_TO_ARCH = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}


def build_sam(arch: str | dict):
    """An untrained ``segment_anything.modeling.Sam`` of the named architecture (or an architecture dict)."""
    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    cfg = dict(SAM_ARCHS[arch]) if isinstance(arch, str) else dict(arch)
    img = int(cfg["img_size"])
    patch = 16
    prompt_dim = 256
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=cfg["depth"], embed_dim=cfg["embed_dim"], img_size=img, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=cfg["num_heads"], patch_size=patch,
            qkv_bias=True, use_rel_pos=True, global_attn_indexes=tuple(cfg["global_attn"]),
            window_size=cfg.get("window_size", 14), out_chans=prompt_dim),
        prompt_encoder=PromptEncoder(embed_dim=prompt_dim, image_embedding_size=(img // patch, img // patch),
                                     input_image_size=(img, img), mask_in_chans=16),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=prompt_dim, mlp_dim=cfg.get("decoder_mlp_dim", 2048),
                                          num_heads=8),
            transformer_dim=prompt_dim, iou_head_depth=3, iou_head_hidden_dim=cfg.get("iou_hidden", 256)),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    sam.eval()
    return sam


def save_sam(model, path: str | Path, arch: str | dict) -> None:
    """Save a SAM model as a HarmoVid checkpoint (architecture + weights), written atomically."""
    import torch

    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    cfg = dict(SAM_ARCHS[arch]) if isinstance(arch, str) else dict(arch)
    torch.save({"harmovid_sam": {"arch": cfg}, "model": model.state_dict()}, tmp)
    tmp.replace(path)


def load_sam(path: str | Path, device: str | None = None):
    """Load a SAM checkpoint: the official ``sam_vit_*.pth`` state dicts or a HarmoVid checkpoint.

    Raises MatteError with a readable reason for a missing, truncated or incompatible file.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise MatteError(f"SAM checkpoint '{path}' does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle junk, not a torch file
        raise MatteError(f"'{path.name}' is not a readable SAM checkpoint ({type(e).__name__}); download it again") from e
    if isinstance(data, dict) and "harmovid_sam" in data:
        arch, state = data["harmovid_sam"]["arch"], data["model"]
    elif isinstance(data, dict) and "image_encoder.patch_embed.proj.weight" in data:
        dim = int(data["image_encoder.patch_embed.proj.weight"].shape[0])
        if dim not in _EMBED_TO_ARCH:
            raise MatteError(f"'{path.name}' has an image encoder of width {dim}, which is no SAM model we know")
        arch, state = _EMBED_TO_ARCH[dim], data
    else:
        raise MatteError(f"'{path.name}' is a torch file but not a SAM checkpoint")
    model = build_sam(arch)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise MatteError(f"'{path.name}' does not match the SAM architecture: {str(e).splitlines()[0]}") from e
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(dev)


@dataclass
class SamAnswer:
    """SAM's answer to one set of prompts, at the frame's resolution."""

    masks: np.ndarray  # (C, H, W) bool candidates
    scores: np.ndarray  # (C,) predicted IoU
    logits: np.ndarray  # (C, h, w) low-res logits, to feed back as mask_input
    best: int  # index of the chosen candidate
    ms: float = 0.0  # time of the prompt/decoder step

    @property
    def mask(self) -> np.ndarray:
        return self.masks[self.best]


@dataclass
class Prompts:
    """Points as (x, y) in frame pixels with labels 1 (include) / 0 (exclude), and an optional box (x0, y0, x1, y1)."""

    points: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    box: tuple | None = None

    def add(self, x: float, y: float, positive: bool = True) -> None:
        self.points.append((float(x), float(y)))
        self.labels.append(1 if positive else 0)

    def empty(self) -> bool:
        return not self.points and self.box is None


class SamSession:
    """One SAM model plus an embedding cache. Thread-safe: ``embed`` may run in a worker while the GUI prompts."""

    def __init__(self, model, name: str = "sam", cache_items: int = 6, disk_cache: str | Path | None = None):
        from segment_anything import SamPredictor

        self.model = model
        self.name = name
        self._predictor = SamPredictor(model)
        self._lock = threading.RLock()
        self._cache: OrderedDict[str, tuple] = OrderedDict()
        self._cache_items = max(1, cache_items)
        self.disk_cache = Path(disk_cache) if disk_cache else None
        self._current: str | None = None
        self.hits = 0
        self.misses = 0

    @property
    def device(self) -> str:
        return str(self._predictor.device)

    # -- embeddings --------------------------------------------------------------------------------------------
    def _disk_path(self, key: str) -> Path | None:
        return self.disk_cache / f"{key}.npz" if self.disk_cache else None

    def has_embedding(self, key: str) -> bool:
        with self._lock:
            if key in self._cache:
                return True
        p = self._disk_path(key)
        return bool(p and p.exists())

    def embed(self, key: str, image: np.ndarray) -> bool:
        """Make ``image`` (H, W, 3 uint8 RGB) the current frame under ``key``; True when the embedding was cached."""
        import torch

        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                entry = self._load_disk(key, image.shape[:2])
            hit = entry is not None
            if hit:
                self.hits += 1
            else:
                self.misses += 1
                if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] < 3:
                    raise MatteError("SAM needs an 8-bit RGB frame")
                with torch.inference_mode():
                    self._predictor.set_image(np.ascontiguousarray(image[..., :3]), image_format="RGB")
                p = self._predictor
                entry = (p.features, p.original_size, p.input_size)
                self._save_disk(key, entry)
            self._cache[key] = entry
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_items:
                self._cache.popitem(last=False)
            self._activate(key, entry)
            return hit

    def _activate(self, key: str, entry) -> None:
        p = self._predictor
        p.features, p.original_size, p.input_size = entry
        p.is_image_set = True
        self._current = key

    def _save_disk(self, key: str, entry) -> None:
        path = self._disk_path(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".part.npz")
            np.savez(tmp, features=entry[0].detach().cpu().numpy().astype(np.float16),
                     original_size=np.array(entry[1]), input_size=np.array(entry[2]))
            tmp.replace(path)
        except OSError:
            pass  # the disk cache is an optimisation; a full disk must not break clicking

    def _load_disk(self, key: str, shape: tuple[int, int]):
        import torch

        path = self._disk_path(key)
        if path is None or not path.exists():
            return None
        try:
            with np.load(path) as z:
                if tuple(z["original_size"]) != tuple(shape):
                    return None
                feats = torch.from_numpy(z["features"].astype(np.float32)).to(self._predictor.device)
                return feats, tuple(int(v) for v in z["original_size"]), tuple(int(v) for v in z["input_size"])
        except Exception:
            path.unlink(missing_ok=True)  # corrupt cache entry: recompute
            return None

    # -- prompts -----------------------------------------------------------------------------------------------
    def predict(self, prompts: Prompts, mask_input: np.ndarray | None = None, multimask: bool = True) -> SamAnswer:
        """Masks for ``prompts`` on the current frame. ``mask_input``: (h, w) low-res logits of a previous answer."""
        import torch

        if prompts.empty():
            raise MatteError("add a point or a box first")
        with self._lock:
            if self._current is None:
                raise MatteError("no frame is loaded in the SAM session")
            t0 = time.perf_counter()
            pts = np.array(prompts.points, np.float32) if prompts.points else None
            lab = np.array(prompts.labels, np.int64) if prompts.points else None
            box = np.array(prompts.box, np.float32) if prompts.box is not None else None
            mi = mask_input[None].astype(np.float32) if mask_input is not None else None
            # one positive point alone is ambiguous (face, person, shirt): ask for three; several prompts: trust SAM
            multi = multimask and (box is None and (pts is None or len(pts) == 1))
            with torch.inference_mode():
                masks, scores, logits = self._predictor.predict(point_coords=pts, point_labels=lab, box=box,
                                                                mask_input=mi, multimask_output=multi)
            best = int(np.argmax(scores))
            return SamAnswer(masks, scores, logits, best, (time.perf_counter() - t0) * 1000.0)


def prompts_from_matte(alpha: np.ndarray, n_pos: int = 3, n_neg: int = 4, pad: float = 0.05) -> Prompts:
    """Box plus inside/outside points that describe an existing matte (for re-prompting SAM on the next frame)."""
    import cv2

    fg = (alpha > 0.5).astype(np.uint8)
    if not fg.any():
        return Prompts()
    h, w = fg.shape
    ys, xs = np.nonzero(fg)
    px, py = pad * (xs.max() - xs.min() + 1), pad * (ys.max() - ys.min() + 1)
    box = (max(0.0, xs.min() - px), max(0.0, ys.min() - py), min(w - 1.0, xs.max() + px), min(h - 1.0, ys.max() + py))
    pr = Prompts(box=box)
    dist = cv2.distanceTransform(fg, cv2.DIST_L2, 5)
    for _ in range(n_pos):  # deepest interior points, spread apart
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        if dist[y, x] <= 1:
            break
        pr.add(x, y, True)
        cv2.circle(dist, (int(x), int(y)), int(max(dist[y, x], 8)), 0, -1)
    # background inside the box, farthest from the matte first (around a head and shoulders: the upper corners)
    x0, y0, x1, y1 = (int(v) for v in box)
    bg_dist = cv2.distanceTransform(1 - fg, cv2.DIST_L2, 5)
    inside = np.zeros_like(bg_dist)
    inside[y0:y1 + 1, x0:x1 + 1] = bg_dist[y0:y1 + 1, x0:x1 + 1]
    for _ in range(n_neg):
        y, x = np.unravel_index(int(np.argmax(inside)), inside.shape)
        if inside[y, x] < 4:
            break
        pr.add(x, y, False)
        cv2.circle(inside, (int(x), int(y)), int(max(inside[y, x], 8)), 0, -1)
    return pr
