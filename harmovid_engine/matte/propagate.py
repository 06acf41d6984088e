"""Matte propagation: carry keyframe mattes through a clip, forward and backward.

Per step (frame t from its neighbour s = t -/+ 1 whose matte is known):

1. **warp**: DIS optical flow of the talent footage from t to s (computed at <= ``flow_side`` px, resampled), the
   matte of s warped onto t;
2. **colour check**: the ring of +-``band`` around the warped matte's edge is re-decided by a graph cut with the
   foreground/background colour models learned on the keyframe and then frozen (``ColourModel``), so a matte that
   the flow drags onto a moving, low-texture background (camera pans) is pulled back;
3. **SAM** (when a model is loaded): SAM is prompted on t with a box and points derived from that matte; its answer
   replaces the matte when the two agree (IoU >= ``sam_agreement``), else the frame is flagged;
4. **edges**: the binary matte becomes soft along the frame's own edges (guided filter);
5. **drift check**: an IoU between consecutive mattes below ``review_iou`` or an area jump above ``area_jump`` flags the
   frame for review (and stops the pass when ``stop_on_drift``).

Between two keyframes the forward and the backward passes are blended: by distance to each key where they agree, the
nearer key's pass where they disagree (``blend_passes``); before the first and after the last keyframe a single pass
runs. Keyframes are never changed. Soft edges: where the warped matte is soft and the decision agrees with it, part of
it is carried (``soft_carry``); where the flow fails its forward-backward check (occlusion, fast limbs), the colour
model re-decides a wider band (``fb_check``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import cv2
import numpy as np

from ..errors import MatteError
from ..flow import grey_u8, resize_flow, warp
from .refine import ColourModel, mask_iou, refine_edges


@dataclass
class PropagationSettings:
    flow_side: int = 640  # long side of the flow computation
    work_side: int = 360  # long side of the colour graph cut
    band: float = 0.02  # half-width of the re-decided ring, fraction of the long side
    review_iou: float = 0.85  # consecutive-frame IoU below this flags a frame
    area_jump: float = 0.25  # relative area change between consecutive frames that flags a frame
    sam_agreement: float = 0.75  # SAM's answer is taken when it overlaps the propagated matte this much
    stop_on_drift: bool = False
    chunk: int = 24  # frames read at a time for the backward pass
    # Occlusion-aware flow: where the flow from t to s and back does not return within ``fb_tolerance`` px (flow
    # resolution), the warped matte is not trusted: those pixels, up to ``unsure_band`` (fraction of the long side)
    # from its edge, are re-decided by the colour model too (things passing in front). Off by default: measured on
    # train/'s musepose_dance (100 frames from frame 0's matte) it did not help (mean IoU 0.843 -> 0.838; with a
    # 0.12 band 0.817) for one more optical flow per frame: the arms it loses move onto flat sky, where the flow is
    # consistent and wrong.
    fb_check: bool = False
    fb_tolerance: float = 1.0
    unsure_band: float = 0.06
    # Soft edges: where the warped previous matte is soft (hair, motion blur) and the decision agrees with it, this
    # share of it is kept over the guided filter's edge, so a keyframe's soft profile is carried instead of remade.
    soft_carry: float = 0.5
    # Between two keyframes, where the forward and backward mattes agree (both in or both out) they are blended by
    # distance to each key; where they disagree, the nearer key's pass wins, switching over in the middle
    # ``blend_width`` of the span (a linear blend left ghosts of alpha 0.5 there for half the span).
    blend_width: float = 0.2


@dataclass
class MatteFrame:
    index: int
    alpha: np.ndarray  # (H, W) float32
    origin: str  # "keyframe" | "forward" | "backward" | "blend"
    flag: str = ""  # why a person should look at this frame; "" when it looks fine
    final: bool = True  # False: a forward-pass result the backward pass will blend and yield again


def _scaled(size_wh: tuple[int, int], side: int) -> tuple[int, int]:
    w, h = size_wh
    s = min(1.0, side / max(w, h))
    return max(1, int(round(w * s))), max(1, int(round(h * s)))


class _Tracker:
    """One propagation pass: started on a keyframe, stepped frame by frame in one direction."""

    def __init__(self, settings: PropagationSettings, sam=None, sam_key: Callable[[int], str] | None = None):
        self.s = settings
        self.sam = sam
        self.sam_key = sam_key
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def start(self, frame: np.ndarray, alpha: np.ndarray) -> None:
        h, w = alpha.shape
        self.size = (w, h)
        self.flow_size = _scaled(self.size, self.s.flow_side)
        self.work_size = _scaled(self.size, self.s.work_side)
        self.band = max(3, int(round(self.s.band * max(self.work_size))))
        self.model = ColourModel(self._work(frame), cv2.resize(alpha, self.work_size, interpolation=cv2.INTER_AREA))
        self.prev_grey = self._grey(frame)
        self.prev_alpha = alpha.astype(np.float32)

    def _grey(self, frame):
        return cv2.resize(grey_u8(frame), self.flow_size, interpolation=cv2.INTER_AREA)

    def _work(self, frame):
        return cv2.resize(np.ascontiguousarray(frame[..., :3]), self.work_size, interpolation=cv2.INTER_AREA)

    def step(self, index: int, frame: np.ndarray) -> tuple[np.ndarray, str]:
        if frame.shape[:2] != self.prev_alpha.shape:
            raise MatteError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, the matte is "
                             f"{self.prev_alpha.shape[1]}x{self.prev_alpha.shape[0]}")
        grey = self._grey(frame)
        back = self._dis.calc(grey, self.prev_grey, None)  # t -> s, at flow resolution
        flow = resize_flow(back, self.size)
        warped = np.clip(warp(self.prev_alpha, flow, cv2.BORDER_CONSTANT, 0.0), 0.0, 1.0)
        binary = warped > 0.5
        small = cv2.resize(warped, self.work_size, interpolation=cv2.INTER_AREA)
        unsure = self._unsure(grey, back, small) if self.s.fb_check else None
        seg = self.model.segment(self._work(frame), small, self.band, unsure)
        # keep the full-resolution warped edge where the graph cut agrees; take the cut where it flipped a pixel
        seg_up = cv2.resize(seg, self.size, interpolation=cv2.INTER_LINEAR) > 0.5
        small_up = cv2.resize((small > 0.5).astype(np.float32), self.size, interpolation=cv2.INTER_LINEAR) > 0.5
        binary = np.where(seg_up != small_up, seg_up, binary).astype(np.float32)
        flag = ""
        if self.sam is not None and binary.any():
            from .sam import prompts_from_matte

            self.sam.embed(self.sam_key(index), np.ascontiguousarray(frame[..., :3]))
            answer = self.sam.predict(prompts_from_matte(binary), multimask=False)
            if mask_iou(answer.mask.astype(np.float32), binary) >= self.s.sam_agreement:
                binary = answer.mask.astype(np.float32)
            else:
                flag = "SAM disagrees with the propagated matte"
        alpha = refine_edges(frame, binary)
        if self.s.soft_carry > 0:
            soft = (warped > 0.02) & (warped < 0.98) & ((warped > 0.5) == (binary > 0.5))
            alpha = np.where(soft, (1 - self.s.soft_carry) * alpha + self.s.soft_carry * warped, alpha)
        iou = mask_iou(alpha, self.prev_alpha)
        a0, a1 = np.count_nonzero(self.prev_alpha > 0.5), np.count_nonzero(alpha > 0.5)
        if not flag:
            if a1 == 0 and a0 > 0:
                flag = "the matte vanished"
            elif iou < self.s.review_iou:
                flag = f"matte changed a lot (IoU {iou:.2f} with the previous frame)"
            elif a0 and abs(a1 - a0) / a0 > self.s.area_jump:
                flag = f"matte area jumped by {100 * (a1 - a0) / a0:+.0f}%"
        self.prev_grey, self.prev_alpha = grey, alpha
        return alpha, flag


    def _unsure(self, grey, back, small):
        """Pixels (work resolution) near the warped matte's edge where the flow fails its forward-backward check."""
        fwd = self._dis.calc(self.prev_grey, grey, None)  # s -> t
        # p in t goes to q = p + back(p) in s; fwd(q) should bring it back: back(p) + fwd(q) = 0
        err = back + warp(fwd, back, cv2.BORDER_REPLICATE)
        bad = (np.hypot(err[..., 0], err[..., 1]) > self.s.fb_tolerance).astype(np.uint8)
        bad = cv2.resize(bad, self.work_size, interpolation=cv2.INTER_NEAREST) > 0
        r = max(self.band, int(round(self.s.unsure_band * max(self.work_size))))
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        m = (small > 0.5).astype(np.uint8)
        near = (cv2.dilate(m, k) > 0) & ~(cv2.erode(m, k) > 0)
        return bad & near


def count_steps(n_frames: int, keyframes) -> int:
    """How many frames ``propagate`` yields (provisional ones included): for progress bars."""
    keys = sorted(k for k in keyframes if 0 <= k < n_frames)
    if not keys:
        return 0
    steps = len(keys)
    for left, right in _segments(n_frames, keys):
        span = (n_frames - 1 - left) if right is None else (right if left is None else right - left - 1)
        steps += span * (2 if left is not None and right is not None else 1)
    return steps


def _segments(n: int, keys: list[int]) -> list[tuple[int, int | None, int | None]]:
    """(start, end) spans between keyframes as (left key or None, right key or None) pairs."""
    spans = []
    if keys[0] > 0:
        spans.append((None, keys[0]))
    for a, b in zip(keys, keys[1:]):
        if b > a + 1:
            spans.append((a, b))
    if keys[-1] < n - 1:
        spans.append((keys[-1], None))
    return spans


def propagate(read: Callable[[int], np.ndarray], n_frames: int, keyframes: dict[int, np.ndarray],
              settings: PropagationSettings | None = None, sam=None, sam_key: Callable[[int], str] | None = None,
              cancel=None, frames: range | None = None) -> Iterator[MatteFrame]:
    """Yield a ``MatteFrame`` for every frame of the clip (keyframes included, unchanged).

    read(i) -> (H, W, 3+) uint8 RGB frame. keyframes: {index: (H, W) float alpha}. ``cancel``: an object with
    ``.check()`` raising ``Cancelled``. Frames are yielded span by span (a forward-only span streams frame by frame; a
    span between two keyframes is yielded after its forward pass, during the backward pass).
    """
    s = settings or PropagationSettings()
    keys = sorted(k for k in keyframes if 0 <= k < n_frames)
    if not keys:
        raise MatteError("propagation needs at least one keyframe matte: draw or click a matte on a frame first")
    for k in keys:
        if not np.any(keyframes[k] > 0.5):
            raise MatteError(f"the keyframe matte on frame {k} is empty: draw the talent on it first")
    sam_key = sam_key or (lambda i: f"{i:06d}")
    check = cancel.check if cancel is not None else (lambda: None)
    for k in keys:
        yield MatteFrame(k, keyframes[k].astype(np.float32), "keyframe")
    for left, right in _segments(n_frames, keys):
        if right is None:  # forward to the end
            yield from _pass(read, left, range(left + 1, n_frames), keyframes[left], s, sam, sam_key, check, "forward")
        elif left is None:  # backward to the start
            yield from _pass(read, right, _backward(right - 1, 0, s.chunk), keyframes[right], s, sam, sam_key,
                             check, "backward", read_chunked=True)
        else:
            fwd = {}
            for mf in _pass(read, left, range(left + 1, right), keyframes[left], s, sam, sam_key, check, "forward"):
                fwd[mf.index] = (np.round(mf.alpha * 255).astype(np.uint8), mf.flag)
                mf.final = False
                yield mf
            span = right - left
            for mf in _pass(read, right, _backward(right - 1, left + 1, s.chunk), keyframes[right], s, sam, sam_key,
                            check, "backward", read_chunked=True):
                if mf.index in fwd:
                    a_f, flag_f = fwd.pop(mf.index)
                    w = (mf.index - left) / span  # 0 near the left key, 1 near the right one
                    alpha = blend_passes(a_f.astype(np.float32) / 255, mf.alpha, w, s.blend_width)
                    flag = flag_f if (flag_f and w < 0.5) or not mf.flag else mf.flag
                    yield MatteFrame(mf.index, alpha.astype(np.float32), "blend", flag)
                else:
                    yield mf
            for i, (a_f, flag_f) in sorted(fwd.items()):  # backward pass stopped early
                yield MatteFrame(i, a_f.astype(np.float32) / 255, "forward", flag_f)


def blend_passes(a_f: np.ndarray, a_b: np.ndarray, w: float, width: float) -> np.ndarray:
    """The forward pass's matte ``a_f`` and the backward pass's ``a_b`` of a frame at ``w`` (0: the left key, 1: the
    right one) of the span: by distance where they agree, the nearer key's where they disagree."""
    t = float(np.clip((w - 0.5) / max(width, 1e-6) + 0.5, 0.0, 1.0))
    t = t * t * (3 - 2 * t)
    weight = np.where((a_f > 0.5) == (a_b > 0.5), np.float32(w), np.float32(t))
    return ((1 - weight) * a_f + weight * a_b).astype(np.float32)


class _backward:
    """Indices from ``hi`` down to ``lo`` (inclusive), with the chunking hint for reading."""

    def __init__(self, hi: int, lo: int, chunk: int):
        self.hi, self.lo, self.chunk = hi, lo, chunk

    def __iter__(self):
        return iter(range(self.hi, self.lo - 1, -1))

    def __len__(self):
        return max(0, self.hi - self.lo + 1)


def _frames_backward(read, order: _backward):
    """Read frames hi..lo in chunks read forward (cheap for video), yielded in reverse."""
    hi = order.hi
    while hi >= order.lo:
        lo = max(order.lo, hi - order.chunk + 1)
        block = [read(i) for i in range(lo, hi + 1)]
        for i in range(hi, lo - 1, -1):
            yield i, block[i - lo]
        hi = lo - 1


def _pass(read, key: int, order, key_alpha, s, sam, sam_key, check, origin: str, read_chunked: bool = False):
    tracker = _Tracker(s, sam, sam_key)
    tracker.start(read(key), key_alpha)
    it = _frames_backward(read, order) if read_chunked else ((i, read(i)) for i in order)
    for i, frame in it:
        check()
        alpha, flag = tracker.step(i, frame)
        yield MatteFrame(i, alpha, origin, flag)
        if flag and s.stop_on_drift:
            return
