"""Engine ``harmovid``: the diffusion harmonizer inside renders.

The model works at its own size (64 px for ``tiny``, 720x480 for 2b/5b). The talent, its matte and the plate under
it are resized to that size, the whole clip is denoised once (MultiDiffusion windows), and what the model changed is
kept as a per-frame log-gain field (harmonized over composite, smoothed: lighting, not texture). Renders then apply
that field to the full-resolution talent, so detail and edges stay those of the footage and any output size works.
The field of every frame is computed on the first frame a render asks for (with progress and cancel) and cached.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from ..colour import from_linear, srgb_to_linear
from ..engines import Engine
from ..errors import HarmoVidError


class DiffusionEngine(Engine):
    name = "harmovid"
    needs_preparation = True  # the whole clip is denoised before the first frame
    defaults = {"checkpoint": "", "steps": 25, "overlap": 1, "seed": 0, "strength": 1.0, "device": "auto"}
    limits = {"steps": (1, 1000), "overlap": (0, 64), "seed": (0, 2 ** 31 - 1), "strength": (0.0, 2.0)}
    choices = {"device": ("auto", "cpu", "cuda")}

    def __init__(self, settings: dict | None = None):
        super().__init__(settings)
        if not self.settings["checkpoint"]:
            raise HarmoVidError("engine 'harmovid' needs a trained checkpoint: --checkpoint DIR (see "
                                "'harmovid train diffusion' and docs/diffusion.md)")
        self._fields: np.ndarray | None = None
        self._model = None
        self.preview: Callable | None = None  # (step, total, frames) during prepare

    def model(self):
        if self._model is None:
            import torch

            from .model import HarmoVidModel

            dev = self.settings["device"]
            if dev == "auto":
                dev = "cuda" if torch.cuda.is_available() else "cpu"
            dtype = torch.bfloat16 if dev == "cuda" else None
            self._model = HarmoVidModel.load(self.settings["checkpoint"], dev, dtype)
            self._model.transformer.eval()
        return self._model

    @property
    def prepared(self) -> bool:
        return self._fields is not None

    def prepare(self, n: int, frame: Callable[[int], tuple], cancel=None, progress: Callable | None = None,
                preview: Callable | None = None) -> None:
        """Denoise the clip. ``frame(i)`` -> (talent linear (h, w, 3), alpha (h, w), plate under the talent (h, w, 3))."""
        import torch

        from .sampling import harmonize_clip

        m = self.model()
        W, H = m.cfg.width, m.cfg.height
        comps, backs, masks = [], [], []
        for i in range(n):
            lin, a, plate = frame(i)
            lin_s = cv2.resize(lin, (W, H), interpolation=cv2.INTER_AREA)
            a_s = cv2.resize(a, (W, H), interpolation=cv2.INTER_AREA)
            p_s = cv2.resize(plate, (W, H), interpolation=cv2.INTER_AREA)
            comps.append(lin_s * a_s[..., None] + p_s * (1 - a_s[..., None]))
            backs.append(p_s)
            masks.append(a_s)
            if progress:
                progress("reading", i + 1, n)

        def model_video(frames):
            codes = np.stack([from_linear(np.clip(f, 0, 1), np.float32) for f in frames])
            return torch.from_numpy(np.ascontiguousarray(codes.transpose(0, 3, 1, 2) * 2 - 1))

        def on_step(k, total, x0):
            if progress:
                progress("denoising", k, total)
            show = preview or self.preview
            if show is not None:
                show(k, total, x0)

        out = harmonize_clip(m, model_video(comps), model_video(backs), torch.from_numpy(np.stack(masks)[:, None]),
                             steps=int(self.settings["steps"]), overlap=int(self.settings["overlap"]),
                             seed=int(self.settings["seed"]), preview=on_step, cancel=cancel)
        res = srgb_to_linear(np.clip((out.numpy().transpose(0, 2, 3, 1) + 1) / 2, 0, 1))
        fields = []
        for r, c, a in zip(res, comps, masks):
            g = np.log(np.maximum(r, 1e-4)) - np.log(np.maximum(c, 1e-4))
            g = cv2.GaussianBlur(g, (0, 0), max(1.0, W / 48))  # lighting, not texture
            fields.append((g * float(self.settings["strength"])).astype(np.float32))
        self._fields = np.stack(fields)

    def field(self, i: int) -> np.ndarray:
        """(h, w, 3) log gain of frame i at the model's size, over the whole talent frame."""
        if self._fields is None:
            raise HarmoVidError("the diffusion engine was not prepared for this clip")
        return self._fields[min(i, len(self._fields) - 1)]

    def estimate(self, talent, alpha, plate, placement=(0.0, 0.0, 1.0), index: int | None = None):
        if index is None:
            raise HarmoVidError("the diffusion engine works on whole clips: it needs the frame's index")
        return self.field(index)

    def log_gain(self, shape: tuple[int, int], params):
        h, w = shape
        return (0, 0, w, h), cv2.resize(params, (w, h), interpolation=cv2.INTER_LINEAR)
