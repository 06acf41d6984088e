"""Compositing: placement (sub-pixel, crop), premultiplied over in linear light, plate retiming."""

from fractions import Fraction

import numpy as np

from harmovid_engine.composite import over, place_talent, plate_index_for, unpremultiply


def _disc(w=40, h=40, r=10.0):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.clip(r + 0.5 - np.sqrt((xx - w / 2 + 0.5) ** 2 + (yy - h / 2 + 0.5) ** 2), 0, 1).astype(np.float32)


def _centroid(a):
    yy, xx = np.mgrid[0:a.shape[0], 0:a.shape[1]]
    return (a * xx).sum() / a.sum(), (a * yy).sum() / a.sum()


def test_identity_and_subpixel_translation():
    a = _disc()
    rgb = np.ones((40, 40, 3), np.float32) * 0.5
    pre, al = place_talent(rgb, a, 0, 0, 1.0, (40, 40))
    assert np.array_equal(al, a)
    _, shifted = place_talent(rgb, a, 3.25, -1.5, 1.0, (40, 40))
    cx0, cy0 = _centroid(a)
    cx1, cy1 = _centroid(shifted)
    assert abs(cx1 - cx0 - 3.25) < 0.02 and abs(cy1 - cy0 + 1.5) < 0.02


def test_scaling_keeps_the_centre_mapping_and_crops_outside():
    a = _disc()
    rgb = np.ones((40, 40, 3), np.float32)
    _, big = place_talent(rgb, a, -20, -20, 2.0, (40, 40))  # talent larger than the canvas: cropped
    assert big.shape == (40, 40)
    cx, cy = _centroid(big)
    assert abs(cx - 19.5) < 0.05 and abs(cy - 19.5) < 0.05
    _, small = place_talent(rgb, a, 10, 10, 0.25, (40, 40))  # area-averaged downscale
    assert abs(small.sum() - a.sum() * 0.0625) / (a.sum() * 0.0625) < 0.05


def test_premultiplied_over_has_no_edge_fringe():
    """White talent with a soft edge over a white plate stays white everywhere (no dark halo)."""
    a = _disc()
    white = np.ones((40, 40, 3), np.float32)
    pre, al = place_talent(white, a, 0.37, 0.61, 1.3, (40, 40))
    out = over(pre, al, np.ones((40, 40, 3), np.float32))
    assert np.abs(out - 1.0).max() < 1e-5
    straight = unpremultiply(pre, al)
    assert np.abs(straight[al > 0.01] - 1.0).max() < 1e-4


def test_plate_is_retimed_to_the_talent_rate_and_holds_its_last_frame():
    # 30 fps talent over a 25 fps plate: talent frame 6 (0.2 s) shows plate frame 5
    assert plate_index_for(6, Fraction(30), Fraction(25), 250) == 5
    assert [plate_index_for(i, Fraction(25), Fraction(50), 100) for i in range(3)] == [0, 2, 4]
    assert plate_index_for(1000, Fraction(30), Fraction(25), 250) == 249
    assert plate_index_for(17, Fraction(30), None, None) == 0  # a still


def test_a_body_cut_by_the_talents_frame_reaches_the_canvas_edge_and_frame_edges_are_exactly_antialiased(
        monkeypatch):
    """Talent fitted to the canvas height and bottom-aligned (the default placement) covers the last row in full: no
    line of plate under a body cut by the frame. A frame edge inside the canvas takes its exact coverage, so the
    placed alpha's area is the footprint's; the compiled kernel and the OpenCV path agree."""
    import harmovid_engine.composite.fast as fast

    th, tw = 512, 384
    a = np.ones((th, tw), np.float32)
    rgb = np.full((th, tw, 3), 0.5, np.float32)
    H, W = 1080, 1920
    s = H / th
    x, y = (W - tw * s) / 2, H - th * s
    pre, al = place_talent(rgb, a, x, y, s, (W, H))
    cols = slice(int(x) + 2, int(x + tw * s) - 2)
    assert al[-1, cols].min() == 1.0 and al[0, cols].min() == 1.0
    assert np.abs(pre[-1, cols] - 0.5).max() < 1e-6
    # frame edges inside the canvas: exact coverage, area preserved
    pre, al = place_talent(rgb[:40, :30], a[:40, :30], 10.25, 5.5, 1.5, (80, 80))
    assert abs(al.sum() - 40 * 30 * 1.5 ** 2) < 1e-3
    assert abs(al[30, 10] - 0.75) < 1e-6 and al[30, 9] == 0 and al[30, 11] == 1.0
    assert abs(al[5, 20] - 0.5) < 1e-6 and al[4, 20] == 0
    monkeypatch.setattr(fast, "_kernel", lambda: None)
    cv_pre, cv_al = place_talent(rgb[:40, :30], a[:40, :30], 10.25, 5.5, 1.5, (80, 80))
    assert np.abs(cv_al - al).max() < 1e-5 and np.abs(cv_pre - pre).max() < 1e-5
