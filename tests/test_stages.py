"""Every stage of the render graph run alone, on small synthetic frames, through its own interface (no Compositor)."""

from __future__ import annotations

import numpy as np
import pytest

from harmovid_engine.engines import ENGINES, BUILTIN, Engine, create_engine
from harmovid_engine.project import RenderSettings
from harmovid_engine.render.stages import (DeflickerStage, FinishStage, HarmonizeStage, PlaceOverStage, ShadowStage,
                                           Timer, WindowCache)
from harmovid_engine.stage import Contract

H, W = 48, 40


class Frames:
    """What a stage reads from the scheduler, made up: a lit disc of talent that jitters in brightness, a still plate."""

    frame_count = 12
    plate_is_still = True
    talent_cache_cap = 64

    def __init__(self, jitter=0.15, seed=0):
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:H, 0:W]
        self.alpha = np.clip(15.5 - np.hypot(xx - W / 2, yy - H / 2), 0, 1).astype(np.float32)
        skin = np.array([0.55, 0.38, 0.30], np.float32)
        texture = 1 + 0.05 * rng.standard_normal((H, W, 1)).astype(np.float32)
        self.gains = np.exp(rng.normal(0, jitter, self.frame_count)).astype(np.float32)
        self.base = skin * texture
        self.plate = np.empty((H, W, 3), np.float32)
        self.plate[:] = (0.2, 0.25, 0.5)
        self.reads = 0

    def talent(self, i):
        self.reads += 1
        return np.ascontiguousarray(self.base * self.gains[i]), self.alpha

    def plate_linear(self, i):
        return self.plate

    def placement(self, i):
        return 0.0, 0.0, 1.0

    def plate_under_talent(self, i, size):
        import cv2

        return cv2.resize(self.plate, size, interpolation=cv2.INTER_AREA)


def test_engines_are_listed_explicitly_and_declare_their_contract():
    assert set(BUILTIN) == {"none", "analytic", "learned", "harmovid"} and set(ENGINES) == set(BUILTIN)
    c = create_engine("analytic").contract
    assert isinstance(c, Contract) and c.produces == ("gain",) and not c.prepare and c.radius == 0
    assert ENGINES["harmovid"].needs_preparation  # imported only when looked up
    assert issubclass(ENGINES["none"], Engine)


def test_harmonize_stage_caches_parameters_per_frame_and_adds_the_engines_gain():
    frames = Frames()
    stage = HarmonizeStage(create_engine("analytic"), frames, cap=4, timer=Timer())
    p = stage.params(3)
    assert stage.params(3) is p and frames.reads == 1  # cached
    field = np.zeros((12, 10, 3), np.float32)
    stage.add_gain(field, p)
    assert np.abs(field).max() > 0.01  # the blue plate moves the talent's light
    none = HarmonizeStage(create_engine("none"), frames, cap=4, timer=Timer())
    assert none.params(3) is None


def test_deflicker_stage_alone_removes_brightness_jitter_of_a_still_talent():
    frames = Frames(jitter=0.15)
    harmonize = HarmonizeStage(create_engine("none"), frames, 40, Timer())

    class Identity(Engine):  # a per-frame "harmonizer" that changes nothing but is on (params not None)
        name = "identity"

        def estimate(self, talent, alpha, plate, placement=(0, 0, 1), index=None):
            return 0

    harmonize.engine = Identity()
    stage = DeflickerStage("analytic", 4, harmonize, frames, Timer())
    assert stage.contract.radius == 4 and stage.contract.produces == ("gain",)
    means = []
    for i in range(frames.frame_count):
        gain = stage.log_gain(i, (10, 12))
        lin, alpha = frames.talent(i)
        means.append(float(np.log((lin * np.exp(gain.mean((0, 1)))).mean())))
    jumps, before = np.abs(np.diff(means)).mean(), np.abs(np.diff(np.log(frames.gains))).mean()
    assert jumps < 0.3 * before, (jumps, before)  # frame-to-frame brightness jumps (flicker) mostly gone
    with pytest.raises(Exception, match="unknown deflicker method"):
        DeflickerStage("magic", 4, harmonize, frames, Timer())


def test_finish_stage_applies_a_gain_weighted_by_alpha_and_nothing_without_one():
    frames = Frames()
    lin, alpha = frames.talent(0)
    finish = FinishStage(RenderSettings(light_wrap=False), frames, None, Timer())
    assert finish(lin, alpha, None, None) is lin
    field = np.full((12, 10, 3), np.log(2.0), np.float32)
    out = finish(lin, alpha, field, None)
    inside, outside = alpha > 0.99, alpha == 0
    assert np.allclose(out[inside], 2 * lin[inside], rtol=1e-3)
    assert np.allclose(out[outside], lin[outside])
    assert finish.wrap_maps(0, alpha) is None
    wrapped = FinishStage(RenderSettings(light_wrap=True, light_wrap_strength=0.5), frames, None, Timer())
    assert wrapped.wrap_maps(0, alpha) is not None


def test_shadow_and_place_over_stages_alone():
    frames = Frames()
    lin, alpha = frames.talent(0)
    shadow = ShadowStage(RenderSettings(shadow=True, shadow_opacity=0.5), Timer())
    shade = shadow(alpha, 5.0, 4.0, 1.0, (W + 10, H + 8), (None, 0.5))
    assert shade is not None and shade.shape == (H + 8, W + 10) and 0 < shade.max() <= 0.5 + 1e-6
    assert ShadowStage(RenderSettings(shadow=False), Timer())(alpha, 0, 0, 1, (W, H), (None, 0.5)) is None
    po = PlaceOverStage(Timer())
    plate = np.full((H + 8, W + 10, 3), 0.3, np.float32)
    premult, a, comp = po.layers(lin, alpha, 5.0, 4.0, 1.0, None, plate)
    assert a.shape == plate.shape[:2] and np.allclose(comp[a == 0], 0.3)
    assert np.allclose(comp[4 + H // 2, 5 + W // 2], lin[H // 2, W // 2], atol=1e-5)


def test_window_cache_evicts_in_insertion_order_or_lowest_index_first():
    c = WindowCache(2)
    c.put(1, "a"), c.put(2, "b")
    c.get(1)  # reading does not make it recent
    c.put(3, "c")
    assert list(c) == [2, 3]
    low = WindowCache(2, lowest_first=True)
    low.put(5, "x"), low.put(3, "y"), low.put(9, "z")
    assert sorted(low) == [5, 9]
