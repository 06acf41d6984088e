"""The viewer's geometry is the full frame's whatever image is on screen (issue: the viewer jumps)."""

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from harmovid_engine.media import probe
from test_studio import demo, wait_full, window  # noqa: F401 (fixtures)


def _show_proxy(w, factor=0.25):
    """Put what the worker's proxy pass sends on screen: the same frame's images, smaller."""
    arrays = {}
    for name, img in w.viewer.images.items():
        ptr = img.constBits()
        ch = img.bytesPerLine() // img.width()
        a = np.frombuffer(ptr, np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
        a = a[:, : img.width() * ch].reshape(img.height(), img.width(), ch) if ch > 1 else a[:, : img.width()]
        arrays[name] = cv2.resize(np.ascontiguousarray(a), None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    w._on_preview(w._rid, w.frame, "proxy", arrays)  # as the worker's signal delivers it


def _screen_rect(v):
    """The placement box on screen (widget pixels)."""
    r, s, tr = v.image_rect(), v.current_scale(), v.talent_rect
    return (r.x() + tr.x() * s, r.y() + tr.y() * s, tr.width() * s, tr.height() * s)


def test_the_proxy_is_drawn_at_the_full_frames_geometry(qtbot, window, demo):
    window.resize(1200, 800)
    assert window.open_project(demo)
    wait_full(qtbot, window, 0)
    v = window.viewer
    plate = probe(window.project.plate_path)
    assert v.image_size() == (plate.width, plate.height)
    full_scale, full_box, full_zoom = v.current_scale(), _screen_rect(v), window.zoom_label.text()
    _show_proxy(window)
    assert v.current_scale() == pytest.approx(full_scale)
    assert _screen_rect(v) == pytest.approx(full_box)
    assert window.zoom_label.text() == full_zoom
    # at 100 % a proxy fills the same on-screen area as the full frame (no quarter-size flash after a seek)
    v.set_zoom(1.0)
    assert v.image_rect().width() == pytest.approx(plate.width)
    assert window.zoom_label.text() == "100%"


def test_dragging_the_scale_handle_over_a_proxy_scales_by_the_drag(qtbot, window, demo):
    window.resize(1200, 800)
    assert window.open_project(demo)
    wait_full(qtbot, window, 0)
    v = window.viewer
    x, y, s0 = window.project.placement.at(0)
    bx, by, bw, bh = _screen_rect(v)  # where the talent is on screen (the full frame shown)
    _show_proxy(window)
    corner = QPoint(round(bx + bw), round(by + bh))
    QTest.mousePress(v, Qt.LeftButton, Qt.NoModifier, corner)
    assert v._drag and v._drag[0] == "scale"
    drag = 60
    QTest.mouseMove(v, corner + QPoint(0, drag))
    QTest.mouseRelease(v, Qt.LeftButton, Qt.NoModifier, corner + QPoint(0, drag))
    s1 = window.project.placement.at(0)[2]
    # the box's bottom edge follows the mouse: its height on screen grows by the drag
    assert s1 / s0 == pytest.approx((bh + drag) / bh, rel=0.03)
    assert window.undo.count() == 1


def test_a_click_on_the_plate_in_fit_mode_does_not_change_the_zoom(qtbot, window, demo):
    window.resize(1200, 800)
    assert window.open_project(demo)
    wait_full(qtbot, window, 0)
    v = window.viewer
    for shown in ("full", "proxy"):
        if shown == "proxy":
            v.set_zoom(None)
            _show_proxy(window)
        before_scale, before_rect = v.current_scale(), v.image_rect()
        r = v.image_rect()
        spot = QPoint(round(r.x() + 5), round(r.y() + 5))  # the plate's corner, away from the talent
        QTest.mouseClick(v, Qt.LeftButton, Qt.NoModifier, spot)
        assert v.current_scale() == pytest.approx(before_scale)
        assert v.image_rect() == before_rect


def _focus_spin(qtbot, window):
    from PySide6.QtWidgets import QAbstractSpinBox

    spins = [s for s in window.inspector.findChildren(QAbstractSpinBox) if s.isVisible() and s.isEnabled()]
    assert spins
    spin = spins[0]
    spin.setFocus()
    qtbot.waitUntil(lambda: spin.hasFocus() or spin.lineEdit().hasFocus(), timeout=2000)
    return spin


def test_shortcuts_work_with_the_focus_in_an_inspector_number_field(qtbot, window, demo):
    assert window.open_project(demo)
    wait_full(qtbot, window, 0)
    spin = _focus_spin(qtbot, window)
    target = spin.lineEdit()
    # L plays, K stops (letters are not part of a number)
    QTest.keyClick(target, Qt.Key_L)
    qtbot.waitUntil(lambda: window._play_dir == 1, timeout=2000)
    QTest.keyClick(target, Qt.Key_K)
    assert window._play_dir == 0
    # B picks the brush
    QTest.keyClick(target, Qt.Key_B)
    assert window.matte_tools.tool == "brush"
    # Esc leaves the tool and gives the keyboard back to the viewer; there 1-6 switch the view mode
    QTest.keyClick(target, Qt.Key_Escape)
    assert window.matte_tools.tool == "off"
    qtbot.waitUntil(lambda: window.viewer.hasFocus(), timeout=2000)
    QTest.keyClick(window.viewer, Qt.Key_4)
    assert window.viewer.mode == "matte"
    # Ctrl+Z in a number field is the project's undo, not the field's
    window.undo.push(__import__("app.main_window", fromlist=["_Marker"])._Marker(window))
    spin = _focus_spin(qtbot, window)
    count = window.undo.index()
    QTest.keyClick(spin.lineEdit(), Qt.Key_Z, Qt.ControlModifier)
    assert window.undo.index() == count - 1


def test_a_number_field_still_takes_digits_and_enter_returns_to_the_viewer(qtbot, window, demo):
    assert window.open_project(demo)
    wait_full(qtbot, window, 0)
    spin = _focus_spin(qtbot, window)
    mode = window.viewer.mode
    spin.lineEdit().selectAll()
    QTest.keyClicks(spin.lineEdit(), "1")
    assert window.viewer.mode == mode  # typed, not a view-mode switch
    assert "1" in spin.lineEdit().text()
    QTest.keyClick(spin.lineEdit(), Qt.Key_Return)
    qtbot.waitUntil(lambda: window.viewer.hasFocus(), timeout=2000)


def test_loop_playback_wraps_over_the_in_out_range(qtbot, window, demo):
    assert window.open_project(demo)
    window.seek(10)
    window.set_in()
    window.seek(14)
    window.set_out()
    window.loop_action.setChecked(True)
    window.seek(13)
    window._play_dir = 1
    seen = []
    for _ in range(6):
        window._play_step()
        seen.append(window.frame)
    assert seen == [14, 10, 11, 12, 13, 14]
    window.loop_action.setChecked(False)
    window.seek(window.frame_count - 1)
    window._play_step()  # no loop: playback stops at the end
    assert window.frame == window.frame_count - 1 and window._play_dir == 0


def test_the_history_panel_lists_edits_and_a_click_goes_back(qtbot, window, demo):
    assert window.open_project(demo)
    w = window.inspector.widgets["render.shadow_opacity"]
    w.setValue(0.5)
    window.inspector.widgets["render.light_wrap_strength"].setValue(0.4)
    model = window.history.model()
    assert model.rowCount() == 3  # "<opened>" + two edits
    window.history.setCurrentIndex(model.index(1, 0))  # back to after the first edit
    assert window.undo.index() == 1
    assert window.project.render.shadow_opacity == 0.5


def test_channel_views_show_one_channel_as_grey(qtbot, window, demo):
    import numpy as np

    assert window.open_project(demo)
    wait_full(qtbot, window, 0)
    arrays = window.viewer._arrays
    for ch, expect in (("r", arrays["composite"][..., 0]), ("b", arrays["composite"][..., 2]), ("a", arrays["matte"])):
        window.set_channel(ch)
        img = window.viewer.images["composite"]
        got = np.frombuffer(img.constBits(), np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
        assert np.array_equal(got[:, : img.width()], expect)
    window.set_channel("rgb")
    assert window.viewer.images["composite"].format() != window.viewer.images["matte"].format()


def test_a_settings_change_does_not_wait_for_the_scope_worker_on_the_gui_thread(qtbot, window, demo, monkeypatch):
    from app.workers import ScopeWorker

    assert window.open_project(demo)
    window._restart_scope()
    busy = window.scope_worker
    waited = []
    monkeypatch.setattr(ScopeWorker, "wait", lambda self, *a: waited.append(self) or True)
    window._restart_scope()  # what a settings change does 400 ms later
    assert busy not in waited and busy.token.cancelled
    assert window.scope_worker is not busy
    monkeypatch.undo()
    qtbot.waitUntil(lambda: not busy.isRunning(), timeout=60000)
    qtbot.waitUntil(lambda: busy not in window._retired_scopes, timeout=5000)
