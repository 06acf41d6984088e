"""Colour scopes: the numbers (waveform, vectorscope, picker) and the panel in the Studio."""

import numpy as np
from PySide6.QtCore import QPoint, Qt

from harmovid_engine.render import scopes as sc
from test_studio import demo, wait_full, window  # noqa: F401  (fixtures)


def _images(rgb, matte):
    talent = np.dstack([rgb, matte])
    return {"composite": rgb, "talent": talent, "matte": matte, "original": rgb}


def test_waveform_and_vectorscope_put_known_colours_where_a_scope_does():
    h, w = 60, 80
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, :40] = (128, 128, 128)  # grey on the left: Y' 50 %, on the centre of the vectorscope
    rgb[:, 40:] = (191, 0, 0)  # 75 % red on the right
    matte = np.full((h, w), 255, np.uint8)
    wave = sc.waveform(rgb, matte > 127, columns=8, levels=100)
    assert wave[50, :4].min() == 1.0 and wave[:, :4].sum() == 4  # one level per column, all at 50 %
    red_y = int(0.2126 * 191 / 255 * 100)
    assert wave[red_y, 4:].min() == 1.0 and wave[:, 4:].sum() == 4
    vec = sc.vectorscope(rgb, matte > 127, size=64)
    assert vec[32, 32] > 0  # grey: no chroma
    _, cb, cr = sc.ycbcr(np.array([[191, 0, 0]], np.uint8))
    assert vec[int((cr[0] + 0.5) * 64), int((cb[0] + 0.5) * 64)] > 0
    hue = np.degrees(np.arctan2(cr[0], cb[0])) % 360
    assert 100 < hue < 106  # where a vectorscope draws red (103 degrees)
    # an odd width into fewer bins: no column of bins is brighter for taking more picture columns
    flat = np.full((10, 7, 3), 100, np.uint8)
    wf = sc.waveform(flat, np.ones((10, 7), bool), columns=4)
    assert np.allclose(wf.max(axis=0), 1.0)


def test_the_parts_split_the_picture_by_the_matte_and_the_picker_reads_a_proxy():
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, 30:] = (200, 150, 120)
    matte = np.zeros((40, 60), np.uint8)
    matte[:, 30:] = 255
    matte[:, 29] = 100  # a soft edge: in neither part
    res = sc.scopes(_images(rgb, matte))
    assert res["talent"]["pixels"] == 40 * 30 and res["plate"]["pixels"] == 40 * 29
    assert not sc.scopes(_images(rgb, np.zeros_like(matte)))["talent"]["waveform"].any()
    # the images are a half-size proxy of a 120 x 80 frame: full-frame (100, 10) is proxy (50, 5)
    info = sc.pick(_images(rgb, matte), 100.0, 10.0, (120, 80))
    assert info["part"] == "talent" and info["rgb"] == (200, 150, 120) and info["alpha"] == 1.0
    assert sc.pick(_images(rgb, matte), 58.5, 10.0, (120, 80))["part"] == "edge"
    assert sc.pick(_images(rgb, matte), 10.0, 10.0, (120, 80))["part"] == "plate"
    assert sc.pick(_images(rgb, matte), 130.0, 10.0, (120, 80)) is None


def test_the_studio_scopes_the_frame_and_picks_without_moving_anything(qtbot, window, demo):
    window.open_project(demo)
    window.colour_dock.show()
    window.colour_dock.raise_()
    wait_full(qtbot, window, 0)
    qtbot.waitUntil(lambda: window.colour_scopes.last is not None, timeout=10000)
    assert window.colour_scopes.last["talent"]["pixels"] > 1000 and window.colour_scopes.last["plate"]["pixels"] > 1000
    placement = [vars(k) for k in window.project.placement.keys]
    qtbot.keyClick(window.viewer, Qt.Key_P)  # the picker, application-wide
    assert window.viewer.picking and window.colour_scopes.pick_button.isChecked()
    r = window.viewer.talent_rect
    img = window.viewer.image_rect()
    s = window.viewer.current_scale()
    at = QPoint(int(img.x() + r.center().x() * s), int(img.y() + (r.top() + 0.3 * r.height()) * s))
    fit = window.viewer.fit
    qtbot.mouseClick(window.viewer, Qt.LeftButton, pos=at)
    text = window.colour_scopes.readout.text()
    assert "(talent, matte 1.00)" in text and "R " in text and "Y'" in text
    assert window.viewer.fit == fit and [vars(k) for k in window.project.placement.keys] == placement
    assert window.undo.isClean()  # a pick is no edit
    # the next frame's picture re-reads the same pixel
    prefix = text.split(" (")[0]
    window.colour_scopes.readout.setText("")
    window.seek(10)
    wait_full(qtbot, window, 10)
    qtbot.waitUntil(lambda: window.colour_scopes.readout.text().startswith(prefix), timeout=5000)
    window.colour_scopes.pick_button.click()
    assert not window.viewer.picking and not window.pick_action.isChecked()
