"""The analytic relighting engine and the analytic deflicker."""

import numpy as np
import pytest

from harmovid_engine.colour import LUMA_709, srgb_to_linear
from harmovid_engine.deflicker import AnalyticDeflicker
from harmovid_engine.engines import create_engine
from harmovid_engine.errors import HarmoVidError
from harmovid_engine.relight.analysis import matte_normals, plate_environment, irradiance


def portrait(h=160, w=128, seed=0, shift=0.0):
    """A skin-coloured head-and-shoulders silhouette with fine texture; (talent linear, alpha)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    head = ((xx - w / 2 - shift) / (0.28 * w)) ** 2 + ((yy - 0.38 * h) / (0.3 * h)) ** 2 < 1
    body = (yy > 0.7 * h) & (np.abs(xx - w / 2 - shift) < 0.45 * w)
    alpha = (head | body).astype(np.float32)
    skin = srgb_to_linear(np.array([0.78, 0.58, 0.48], np.float32))
    tex = 1 + 0.08 * rng.standard_normal((h, w)).astype(np.float32)
    talent = np.clip(skin[None, None, :] * tex[..., None], 0, 1).astype(np.float32)
    return talent, alpha


def skin_log_luma(img, alpha):
    return float(np.median(np.log(img[alpha > 0.9] @ LUMA_709)))


def test_exposure_and_white_balance_move_toward_the_plate_and_converge():
    talent, alpha = portrait()
    plate = np.full((160, 128, 3), 0.18, np.float32)
    eng = create_engine("analytic", {"direction": 0, "intensity": 1.0})  # exposure adaptation dialled in
    dark, bright = talent * 0.5, np.clip(talent * 1.6, 0, 1)
    out_dark, out_bright = (eng.harmonize(t, alpha, plate, 0) for t in (dark, bright))
    gap_in = skin_log_luma(bright, alpha) - skin_log_luma(dark, alpha)
    gap_out = skin_log_luma(out_bright, alpha) - skin_log_luma(out_dark, alpha)
    assert gap_out < 0.7 * gap_in
    # by default (fitted on train/) the talent's exposure is kept: only colour and direction change
    default = create_engine("analytic", {"direction": 0})
    assert abs(skin_log_luma(default.harmonize(dark, alpha, plate, 0), alpha) - skin_log_luma(dark, alpha)) < 0.03
    blue = talent * np.array([0.7, 0.9, 1.5], np.float32)
    out = eng.harmonize(blue, alpha, plate, 0)
    ratio_in = np.median(blue[alpha > 0.9][:, 2] / blue[alpha > 0.9][:, 0])
    ratio_out = np.median(out[alpha > 0.9][:, 2] / out[alpha > 0.9][:, 0])
    assert ratio_out < 0.95 * ratio_in  # the blue cast is reduced (a third of the way by default: fitted on train/)
    strong = create_engine("analytic", {"direction": 0, "colour": 2.0}).harmonize(blue, alpha, plate, 0)
    assert np.median(strong[alpha > 0.9][:, 2] / strong[alpha > 0.9][:, 0]) < ratio_out  # the colour control works


def test_coloured_side_light_of_the_plate_reaches_the_talent_sides():
    talent, alpha = portrait()
    plate = np.zeros((160, 128, 3), np.float32)
    plate[:, :64] = (0.8, 0.05, 0.05)  # red on the left
    plate[:, 64:] = (0.05, 0.05, 0.8)  # blue on the right
    out = create_engine("analytic", {"direction": 1.0}).harmonize(talent, alpha, plate, 0)
    rb = out[..., 0] / np.maximum(out[..., 2], 1e-4)
    left = rb[55:65, 34:44].mean()
    right = rb[55:65, 84:94].mean()
    assert left > 1.3 * right


def test_relight_keeps_skin_texture():
    talent, alpha = portrait()
    plate = np.full((160, 128, 3), 0.05, np.float32)
    out = create_engine("analytic", {"direction": 1.0}).harmonize(talent, alpha, plate, 0)
    import cv2

    # the interior (8 px from the silhouette): outside the matte the talent is not relit, which is invisible
    m = cv2.erode((alpha > 0.9).astype(np.uint8), np.ones((17, 17), np.uint8)) > 0
    hi_in = np.log(talent[..., 1]) - np.log(np.maximum(talent[..., 1], 1e-4)).mean()
    hi_out = np.log(out[..., 1]) - np.log(np.maximum(out[..., 1], 1e-4)).mean()

    def highpass(x):
        return x - cv2.GaussianBlur(x.astype(np.float32), (0, 0), 3)

    c = np.corrcoef(highpass(hi_in)[m], highpass(hi_out)[m])[0, 1]
    assert c > 0.98


def test_normals_point_outward_at_the_silhouette():
    _, alpha = portrait()
    n = matte_normals(alpha)
    assert n[60, 30, 0] < -0.3 and n[60, 98, 0] > 0.3 and n[60, 64, 2] > 0.9


def test_sh_environment_sees_the_bright_side():
    plate = np.zeros((32, 32, 3), np.float32)
    plate[:, :16] = 1.0
    sh = plate_environment(plate)
    left, right = irradiance(sh, np.array([[-1.0, 0, 0], [1.0, 0, 0]], np.float32))
    assert left[0] > 2 * right[0]


def test_unknown_engine_settings_are_refused():
    with pytest.raises(HarmoVidError, match="no setting"):
        create_engine("analytic", {"colr": 1})
    with pytest.raises(HarmoVidError, match="unknown engine"):
        create_engine("magic")


def _jittered_sequence(n=30, jitter=0.15, trend=0.0, move=0.0, seed=1):
    rng = np.random.default_rng(seed)
    outs, ins, alphas = [], [], []
    for t in range(n):
        talent, alpha = portrait(seed=0, shift=move * t)
        gain = np.exp(rng.normal(0, jitter, 3).astype(np.float32) * [1, 1, 1] + trend * t / n)
        ins.append(talent * np.exp(trend * t / n))
        outs.append(np.clip(talent * gain * np.exp(trend * t / n), 0, 1).astype(np.float32))
        alphas.append(alpha)
    return outs, ins, alphas


def _track(frames, alphas):
    return np.array([np.log(f[a > 0.9] @ LUMA_709).mean() for f, a in zip(frames, alphas)])


@pytest.mark.parametrize("move", [0.0, 0.7])
def test_deflicker_removes_jitter_and_follows_motion(move):
    outs, ins, alphas = _jittered_sequence(move=move)
    fixed = AnalyticDeflicker().run_sequence(outs, ins, alphas)
    before = np.abs(np.diff(_track(outs, alphas))).mean()
    after = np.abs(np.diff(_track(fixed, alphas))).mean()
    assert after < 0.2 * before


def test_deflicker_keeps_a_slow_real_lighting_change():
    outs, ins, alphas = _jittered_sequence(jitter=0.0, trend=0.3)  # no clipping: a pure lighting change
    fixed = AnalyticDeflicker().run_sequence(outs, ins, alphas)
    t_in, t_out = _track(outs, alphas), _track(fixed, alphas)

    def kept(a, b):
        return (t_out[b] - t_out[a]) / (t_in[b] - t_in[a])

    # the middle of the clip keeps the ramp; near the ends, where the window is cut on one side, the line fit keeps
    # most of it (a weighted mean over the cut window pulled the level toward the window's far side: ~0.7 there with
    # a window of 8 frames, ~0.4 with 16)
    assert kept(10, 20) > 0.95
    assert kept(0, 5) > 0.75 and kept(24, 29) > 0.75


def test_deflicker_removes_a_jittering_light_tilt():
    """A light whose direction wobbles tilts the lighting across the talent from frame to frame; the deflicker
    measures it as a plane per channel and takes the wobble out (the global level alone would leave it)."""
    rng = np.random.default_rng(3)
    outs, ins, alphas = [], [], []
    for t in range(30):
        talent, alpha = portrait(seed=0)
        h, w = alpha.shape
        u = (np.arange(w, dtype=np.float32) + 0.5) / w - 0.5
        tilt = np.exp(rng.normal(0, 0.15) * u)[None, :, None]  # log gain rising to the right, random each frame
        ins.append(talent)
        outs.append(np.clip(talent * tilt, 0, 1).astype(np.float32))
        alphas.append(alpha)

    def tilt_track(frames):
        left, right = (slice(None), slice(0, 48)), (slice(None), slice(80, 128))
        return np.array([np.log(f[left][a[left] > 0.9] @ LUMA_709).mean() -
                         np.log(f[right][a[right] > 0.9] @ LUMA_709).mean() for f, a in zip(frames, alphas)])

    fixed = AnalyticDeflicker().run_sequence(outs, ins, alphas)
    before = np.abs(np.diff(tilt_track(outs))).mean()
    after = np.abs(np.diff(tilt_track(fixed))).mean()
    assert after < 0.25 * before


def test_skin_prior_does_not_pull_dark_skin_toward_a_light_norm():
    """The skin prior has a dark mode: well-exposed dark skin (saturated, low luminance) keeps its level, while
    under-exposed light skin (same luminance, light-skin chroma) is brightened."""
    from harmovid_engine.relight.analysis import SKIN_MODES, skin_posterior

    dark_l, dark_c = SKIN_MODES[1][1], SKIN_MODES[1][3]
    light_c = SKIN_MODES[0][3]
    post_dark, _ = skin_posterior(dark_l, dark_c)
    post_light, _ = skin_posterior(dark_l, light_c)
    assert abs(post_dark - dark_l) < 0.1
    assert post_light - dark_l > 0.3


@pytest.mark.parametrize("x, y, scale", [(5.0, 3.0, 1.0), (-7.3, 4.6, 2.11), (10.25, -3.5, 0.7), (2.5, 1.0, 0.3)])
def test_fused_export_composite_equals_encoding_the_float_composite(monkeypatch, x, y, scale):
    """The export's fused place + over + encode kernel gives exactly the codes of encoding the float composite of
    ``place_talent``'s layers, on a strided window, with and without a shadow, and leaves the plate's codes where
    neither talent nor shadow reaches; without the compiled kernel the OpenCV/numpy path agrees with itself, and the
    two placements agree in geometry (OpenCV's bilinear weights are quantised to 1/32 pixel)."""
    import harmovid_engine.composite.fast as fast
    from harmovid_engine.colour import from_linear, to_linear
    from harmovid_engine.composite import place_talent
    from harmovid_engine.composite.fast import place_over_codes

    rng = np.random.default_rng(0)
    th, tw = 30, 24
    rgb = rng.random((th, tw, 3), dtype=np.float32)
    alpha = np.clip(rng.random((th, tw), dtype=np.float32) * 1.6 - 0.5, 0, 1)
    alpha[:, :3] = 0  # a clear band: the plate shows there
    h, w = 48, 60
    frame = (rng.random((h + 6, w + 6, 3)) * 255).astype(np.uint8)
    plate = to_linear(frame[3:h + 3, 2:w + 2])

    def expected(premult, a, shade):
        bg = (1.0 - a) if shade is None else (1.0 - a) * (1.0 - shade)
        return from_linear(premult + plate * bg[..., None], np.uint8)

    premult, a = place_talent(rgb, alpha, x, y, scale, (w, h))
    assert (a == 0).any() and (a > 0).any()
    for shade in (None, np.clip(rng.random((h, w), dtype=np.float32) - 0.4, 0, 0.9)):
        out = frame.copy()
        place_over_codes(rgb, alpha, x, y, scale, shade, out, (2, 3, w + 2, h + 3))
        np.testing.assert_array_equal(out[3:h + 3, 2:w + 2], expected(premult, a, shade))
        np.testing.assert_array_equal(out[:3], frame[:3])  # outside the window: untouched
    monkeypatch.setattr(fast, "_kernel", lambda: None)
    cv_premult, cv_a = place_talent(rgb, alpha, x, y, scale, (w, h))
    assert np.abs(cv_a - a).max() < 0.05 and np.abs(cv_premult - premult).max() < 0.05
    assert np.abs(cv_a - a).mean() < 0.005
    out = frame.copy()
    place_over_codes(rgb, alpha, x, y, scale, None, out, (2, 3, w + 2, h + 3))
    np.testing.assert_array_equal(out[3:h + 3, 2:w + 2], expected(cv_premult, cv_a, None))


def test_shadow_from_the_talents_matte_matches_the_shadow_of_the_placed_matte():
    from harmovid_engine.composite import place_talent
    from harmovid_engine.composite.extras import shadow_from_talent, shadow_map

    talent, alpha = portrait()
    x, y, s, canvas = 37.3, 20.0, 2.4, (520, 420)
    _, placed = place_talent(talent, alpha, x, y, s, canvas)
    direct = shadow_from_talent(alpha, x, y, s, canvas, None, 0.6, 0.35, 0.04)
    ref = shadow_map(placed, None, 0.6, 0.35, 0.04)
    assert direct.shape == ref.shape == (canvas[1], canvas[0])
    assert np.abs(direct - ref).mean() < 0.01 and ref.max() > 0.1


def test_plate_light_colour_is_not_taken_from_a_large_evenly_coloured_surface():
    """Grey-edge: a plate half filled by a flat green wall, the rest neutral detail under white light, reads as white
    light (the grey-world mean would call it green); the same scene under magenta light reads as magenta."""
    from harmovid_engine.relight.analysis import plate_stats

    rng = np.random.default_rng(3)
    detail = rng.random((48, 32, 1), dtype=np.float32).repeat(3, axis=2) * 0.6 + 0.1  # neutral texture
    wall = np.empty((48, 32, 3), np.float32)
    wall[:] = (0.05, 0.5, 0.05)
    scene = np.concatenate([wall, detail], axis=1)
    white = plate_stats(scene).chroma
    assert np.abs(white).max() < 0.15  # (the wall's own border is an edge too)
    grey_world = np.log(scene).mean((0, 1))
    assert np.ptp(grey_world) > 1.0  # what the plain mean would have said
    magenta = plate_stats(scene * np.array([1.0, 0.45, 0.9], np.float32)).chroma
    assert magenta[1] < -0.3 and magenta[0] > 0.15 and magenta[2] > 0.1


def test_plate_statistics_from_one_analysis_equal_those_of_the_plate_for_any_weight():
    """The engine analyses a plate once (edges, environment) and asks it for each talent rectangle's weight."""
    from harmovid_engine.relight.analysis import analyse_plate, plate_stats

    rng = np.random.default_rng(5)
    plate = (rng.random((36, 64, 3), dtype=np.float32) * [0.9, 0.5, 0.7]).astype(np.float32)
    plate[:4] = 1.0  # clipped rows: left out of the statistics
    analysis = analyse_plate(plate)
    for weight in (None, rng.random((36, 64), dtype=np.float32) * 3, np.zeros((36, 64), np.float32)):
        a, b = plate_stats(analysis, weight), plate_stats(plate, weight)
        assert a.log_key == b.log_key
        np.testing.assert_array_equal(a.chroma, b.chroma)
        np.testing.assert_array_equal(a.sh, b.sh)


def test_relight_finish_applies_gain_to_the_talent_part_and_wraps_plate_light_onto_edges(monkeypatch):
    """The talent's last pass (gain field upsampled from its grid, raised to alpha; light wrap) equals the plain
    formula, the compiled kernel and the OpenCV path agree, the wrap lightens edges toward a bright plate and leaves
    the talent's core and its empty pixels alone."""
    import cv2

    import harmovid_engine.composite.fast as fast
    from harmovid_engine.composite.extras import light_wrap_maps

    rng = np.random.default_rng(3)
    h, w = 97, 131
    rgb = rng.random((h, w, 3), dtype=np.float32) * 0.3
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = np.clip(1.5 - np.hypot((xx - w / 2) / 40, (yy - h / 2) / 35), 0, 1).astype(np.float32)
    assert ((alpha > 0) & (alpha < 1)).any() and (alpha == 0).any() and (alpha == 1).any()
    log_gain = (rng.random((25, 33, 3), dtype=np.float32) - 0.5) * 0.4
    out = fast.relight_finish(rgb, alpha, log_gain, None)
    g = cv2.resize(np.exp(log_gain), (w, h), interpolation=cv2.INTER_LINEAR)
    want = rgb * g ** alpha[..., None]
    np.testing.assert_allclose(out, want, rtol=2e-5, atol=1e-6)
    assert np.array_equal(out[alpha == 0], rgb[alpha == 0])

    plate = np.ones((h // 4, w // 4, 3), np.float32)  # a bright plate
    wrap = light_wrap_maps(alpha, plate, 0.5)
    wrapped = fast.relight_finish(rgb, alpha, log_gain, wrap)
    edge, core = (alpha > 0.05) & (alpha < 0.5), alpha == 1
    assert (wrapped[edge] - out[edge]).mean() > 0.05  # edges take on the plate's light
    assert np.abs(wrapped[alpha <= 0.01] - out[alpha <= 0.01]).max() == 0
    assert (wrapped[core] - out[core]).mean() < 0.5 * (wrapped[edge] - out[edge]).mean()
    monkeypatch.setattr(fast, "_kernel", lambda: None)
    np.testing.assert_allclose(fast.relight_finish(rgb, alpha, log_gain, wrap), wrapped, rtol=1e-5, atol=1e-6)


def test_light_wrap_does_not_wrap_around_a_body_cut_by_a_black_bar():
    """A keyed talent whose body is cut by a black bar (the key's garbage matte): the cut is not an edge the plate's
    light wraps around, while the body's real silhouette edge still is."""
    from harmovid_engine.composite.extras import light_wrap_maps

    h, w = 64, 64
    alpha = np.zeros((h, w), np.float32)
    alpha[8:48, 16:48] = 1.0  # the body, cut at row 48 by a bar below
    plate = np.ones((h // 4, w // 4, 3), np.float32)
    _, plain = light_wrap_maps(alpha, plate, 0.5)
    _, cut = light_wrap_maps(alpha, plate, 0.5, picture=(0, 0, w, 48))
    f = h // plain.shape[0]  # the maps' working size
    row, cols = 47 // f, slice(24 // f, 40 // f)  # the body's last row, next to the bar
    assert plain[row, cols].mean() > 0.1 and cut[row, cols].mean() < 0.2 * plain[row, cols].mean()
    side = (28 // f, 16 // f)  # the body's left edge still wraps
    assert plain[side] > 0.1 and abs(cut[side] - plain[side]) < 0.05 * plain[side]


def test_deflicker_windows_stop_at_a_cut_in_the_plate():
    """A moving plate that cuts (its light halves from one frame to the next) is not a lighting change to smooth
    across: frames before the cut are corrected from their own shot only. (Before: the plate's -3 log change at the
    cut, taken out of the talent's track, swung the talent's correction by up to +2.6 log units before it.)"""
    from harmovid_engine.deflicker.analytic import LOCAL_SHAPE, ZERO, PairDelta

    d = AnalyticDeflicker(16)
    rng = np.random.default_rng(0)
    n, cut = 60, 30
    deltas = {}
    for k in range(1, n):
        glob = rng.normal(0, 0.004, 3).astype(np.float32)  # stable talent, small measurement noise
        plate = np.zeros(3, np.float32)
        if k == cut:  # the plate cuts to a darker shot; the engine follows it with a darker talent
            glob, plate = np.full(3, -0.47, np.float32), np.full(3, -3.06, np.float32)
        deltas[k] = PairDelta(glob, np.zeros(LOCAL_SHAPE, np.float32), plate, 0.9)
    corr = [d.correction(deltas, t, 0, n - 1)[0] for t in range(n)]
    assert max(np.abs(c).max() for c in corr) < 0.02  # jitter-sized corrections only, on both sides of the cut
    assert d.shot(deltas, 29, 0, n - 1) == (0, 29) and d.shot(deltas, 30, 0, n - 1) == (30, n - 1)
    # a gentle real change of the plate's light (a few hundredths a frame) is still followed, not cut
    slow = {k: PairDelta(np.full(3, 0.02, np.float32), ZERO.local, np.full(3, 0.02, np.float32), 0.9)
            for k in range(1, n)}
    assert d.shot(slow, 30, 0, n - 1) == (0, n - 1)
    assert np.abs(d.correction(slow, 30, 0, n - 1)[0]).max() < 1e-3


def test_the_gain_box_of_a_resized_frame_stays_inside_it():
    """The analytic engine's box scaled to a smaller frame (the finishing pass's quarter-size field) never reaches past
    its edge, whatever the rounding (a talent touching the frame's bottom: 'operands could not be broadcast', 122 vs
    123 rows, on a training clip)."""
    from harmovid_engine.relight.engine import RelightParams

    eng = create_engine("analytic")
    rng = np.random.default_rng(3)
    for _ in range(2000):
        fw, fh = int(rng.integers(20, 1000)), int(rng.integers(20, 1000))
        x0, y0 = int(rng.integers(0, fw - 1)), int(rng.integers(0, fh - 1))
        x1, y1 = int(rng.integers(x0 + 1, fw + 1)), int(rng.integers(y0 + 1, fh + 1))
        params = RelightParams((x0, y0, x1, y1), np.zeros(3, np.float32), np.zeros((24, 24, 3), np.float32),
                               np.array([0, 1, 0], np.float32), 0.5, (fw, fh))
        w, h = max(8, -(-fw // 4)), max(8, -(-fh // 4))
        (bx0, by0, bx1, by1), g = eng.log_gain((h, w), params)
        assert 0 <= bx0 < bx1 <= w and 0 <= by0 < by1 <= h and g.shape == (by1 - by0, bx1 - bx0, 3)
