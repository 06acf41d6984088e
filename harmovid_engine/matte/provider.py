"""The matte stage of a project: per-frame alpha from stored mattes, a chroma key, the talent's alpha channel or none.

Stored frames (``mattes/``) win over the source. The source's alpha then gets the project's edge settings
(choke/feather) and temporal smoothing of radius ``temporal_radius`` (frames [i - r, i + r] are read), so static
edges do not boil. Keyed talent also gets its spill suppressed.
"""

from __future__ import annotations

from collections import OrderedDict

import cv2
import numpy as np

from ..errors import MatteError
from ..media.source import FrameSource
from .chroma import ChromaKeyer, ChromaKeySettings, edge_ops
from .store import MatteStore
from .temporal import smooth_alpha_in_time


def codes_to_unit(frame: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8/uint16/float32 code values -> float32 in [0, 1] (RGB only)."""
    rgb = frame[..., :3]
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32) * (1 / 255.0)
    if rgb.dtype == np.uint16:
        return rgb.astype(np.float32) * (1 / 65535.0)
    return rgb.astype(np.float32)


class MatteStage:
    """``talent(i)`` -> ((H, W, 3) float32 talent code values in [0, 1] (despilled if keyed), (H, W) float32 alpha)."""

    def __init__(self, talent: FrameSource, settings, store: MatteStore, window_cache: int = 16):
        self.source = talent
        self.settings = settings
        self.store = store
        self.kind = settings.source
        self.keyer: ChromaKeyer | None = None
        if self.kind == "key":
            key = ChromaKeySettings.from_dict(settings.key)
            ref = None if key.key_colour else codes_to_unit(talent.read(0))
            self.keyer = ChromaKeyer(key, ref)
        elif self.kind == "alpha" and not talent.info.has_alpha:
            raise MatteError(f"the talent '{talent.info.path}' has no alpha channel to use as matte")
        elif self.kind not in ("stored", "none", "alpha"):
            raise MatteError(f"unknown matte source '{self.kind}'")
        self._stored = set(store.frames())
        if self.kind == "stored" and not self._stored:
            raise MatteError("the project's stored mattes are missing (mattes/ is empty): import a matte again")
        # Smoothing only applies to computed sources; stored mattes are final.
        self.radius = int(settings.temporal_radius) if self.kind in ("key", "alpha") else 0
        self._raw: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._raw_cap = max(window_cache, 2 * self.radius + 2)

    def refresh_store(self) -> None:
        self._stored = set(self.store.frames())

    def _raw_frame(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        hit = self._raw.get(i)
        if hit is not None:
            self._raw.move_to_end(i)
            return hit
        frame = self.source.read(i)
        rgb = codes_to_unit(frame)
        if self.kind == "key":
            alpha, rgb = self.keyer.key(rgb)
        elif self.kind == "alpha":
            from ..colour import alpha_to_float

            alpha = alpha_to_float(frame[..., 3])
        elif self.kind == "stored":
            alpha = self._stored_alpha(i)
        else:
            alpha = np.ones(rgb.shape[:2], np.float32)
        _check_size(i, alpha, rgb.shape[:2])
        self._raw[i] = (rgb, alpha)
        while len(self._raw) > self._raw_cap:
            self._raw.popitem(last=False)
        return rgb, alpha

    def talent_linear(self, i: int, temporal: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(linear RGB float32, alpha): 8-bit talent that needs no keying goes straight from its codes through one
        table lookup; everything else through :meth:`talent` and the 16-bit decoding table. ``temporal=False``:
        without the smoothing over neighbouring frames (one frame keyed instead of a window: a quick proxy)."""
        from ..colour import _DECODE_8, to_linear

        if self.kind in ("stored", "none") and not self.source.info.linear:
            frame = self.source.read(i)
            if frame.dtype == np.uint8:
                return cv2.LUT(np.ascontiguousarray(frame[..., :3]), _DECODE_8.reshape(1, 256)), self._alpha_only(i)
        codes, alpha = self.talent(i, temporal)
        if self.source.info.linear:
            return np.clip(codes, 0.0, None), alpha
        return to_linear((codes * 65535.0 + 0.5).astype(np.uint16)), alpha

    def _alpha_only(self, i: int) -> np.ndarray:
        """The matte of frame i for sources whose matte does not depend on the picture (stored, none)."""
        w, h = self.source.size
        if i in self._stored and self.kind != "stored":
            return self._edited(i, (h, w))  # an edited frame's matte is final
        alpha = self._stored_alpha(i) if self.kind == "stored" else np.ones((h, w), np.float32)
        _check_size(i, alpha, (h, w))
        return self._edges(alpha)

    def _edited(self, i: int, shape: tuple[int, int]) -> np.ndarray:
        """An edited frame's stored matte (the talent's size: a matte of another size is refused, never used)."""
        alpha = self.store.get(i)
        if alpha is None:  # deleted since the store was listed
            raise MatteError(f"the edited matte of frame {i} is gone from mattes/; edit the frame again")
        _check_size(i, alpha, shape)
        return alpha

    def _stored_alpha(self, i: int) -> np.ndarray:
        alpha = self.store.get(i)
        if alpha is None:
            raise MatteError(f"no stored matte for frame {i}: import a matte again or edit that frame")
        return alpha

    def _edges(self, alpha: np.ndarray) -> np.ndarray:
        """The matte after the user's choke and feather."""
        s = self.settings
        return edge_ops(alpha, s.choke, s.feather) if (s.choke or s.feather) else alpha

    def talent(self, i: int, temporal: bool = True) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.source)
        rgb, alpha = self._raw_frame(i)
        if i in self._stored and self.kind != "stored":
            return rgb, self._edited(i, rgb.shape[:2])
        if self.radius > 0 and temporal:
            lo, hi = max(0, i - self.radius), min(n - 1, i + self.radius)
            window = [self._raw_frame(k) for k in range(lo, hi + 1)]
            # the centre entry may have been evicted and re-read; take it from the window
            rgb, alpha = window[i - lo]
            alpha = smooth_alpha_in_time([a for _, a in window], [f for f, _ in window], i - lo)
        return rgb, self._edges(alpha)


def _check_size(i: int, alpha: np.ndarray, shape: tuple[int, int]) -> None:
    if alpha.shape != tuple(shape):
        raise MatteError(f"the matte of frame {i} is {alpha.shape[1]}x{alpha.shape[0]} but the talent is "
                         f"{shape[1]}x{shape[0]} (was the talent replaced by another file?): import the matte again, "
                         f"or delete mattes/alpha_{i:05d}.png to fall back to the matte source")
