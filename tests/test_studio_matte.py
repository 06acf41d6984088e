"""The Studio's matte mode driven through the real window: SAM clicks (tiny model), brush + undo, propagation."""

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from test_studio import demo, window  # noqa: F401  (fixtures)

torch = pytest.importorskip("torch")


def to_widget(viewer, x, y) -> QPoint:
    r = viewer.image_rect()
    s = viewer.current_scale()
    return QPoint(int(r.x() + x * s), int(r.y() + y * s))


def current_alpha(w):
    return w.matte_tools.current()[2].copy()


@pytest.fixture
def tiny_session():
    from harmovid_engine.matte.sam import SamSession, build_sam

    torch.manual_seed(0)
    return SamSession(build_sam("tiny"))


def test_click_adds_a_point_and_changes_the_matte(qtbot, window, demo, tiny_session):  # noqa: F811
    assert window.open_project(demo)
    window.matte_tools.set_sam(tiny_session)
    window.matte_panel.buttons["click"].click()
    assert window.matte_tools.tool == "click" and window.viewer.matte_tool == "click"
    qtbot.waitUntil(lambda: window.viewer.matte_image is not None, timeout=10000)
    before = current_alpha(window)
    steps = window.undo.count()
    QTest.mouseClick(window.viewer, Qt.LeftButton, Qt.NoModifier, to_widget(window.viewer, 256, 200))
    # the embedding is computed in the background; the click is answered when it arrives
    qtbot.waitUntil(lambda: window.undo.count() == steps + 1, timeout=20000)
    (x, y), label = window.viewer.matte_points[0]
    assert len(window.viewer.matte_points) == 1 and label == 1 and abs(x - 256) < 2 and abs(y - 200) < 2
    after = current_alpha(window)
    assert not np.array_equal(before, after)
    assert 0 in window.project.matte.keyframes and 0 in window.project.matte_store()
    assert 0 in window.timeline.keyframes
    # a second click (exclude) refines the same frame with the previous answer's logits
    QTest.mouseClick(window.viewer, Qt.RightButton, Qt.NoModifier, to_widget(window.viewer, 30, 30))
    qtbot.waitUntil(lambda: len(window.viewer.matte_points) == 2, timeout=5000)
    assert window.viewer.matte_points[1][1] == 0
    assert window.matte_tools.sam.hits >= 1  # the second click reused the cached embedding
    window.matte_panel.buttons["off"].click()
    assert window.viewer.matte_tool is None


def test_click_without_sam_says_what_to_do(qtbot, window, demo):  # noqa: F811
    assert window.open_project(demo)
    window.matte_tools.set_tool("click")
    qtbot.waitUntil(lambda: window.viewer.matte_image is not None, timeout=10000)
    QTest.mouseClick(window.viewer, Qt.LeftButton, Qt.NoModifier, to_widget(window.viewer, 256, 200))
    assert window.errors and window.errors[-1][0] == "No SAM model"
    assert window.undo.count() == 0


def test_brush_edit_is_undone_by_ctrl_z(qtbot, window, demo):  # noqa: F811
    assert window.open_project(demo)
    window.seek(10)
    window.matte_tools.set_tool("brush")
    window.matte_panel.size.setValue(30)
    window.matte_panel.hard.setValue(1.0)
    qtbot.waitUntil(lambda: window.viewer.matte_image is not None, timeout=10000)
    before = current_alpha(window)
    v = window.viewer
    # erase across the face (right button = erase)
    QTest.mousePress(v, Qt.RightButton, Qt.NoModifier, to_widget(v, 200, 250))
    for x in range(200, 330, 10):
        QTest.mouseMove(v, to_widget(v, x, 250))
    QTest.mouseRelease(v, Qt.RightButton, Qt.NoModifier, to_widget(v, 330, 250))
    after = current_alpha(window)
    assert after[250, 260] == 0.0 and before[250, 260] > 0.9
    assert np.abs(after[:150] - before[:150]).max() <= 0.5 / 255 + 1e-6  # only the stroke's box changed (8-bit store)
    assert 10 in window.project.matte.keyframes
    window.activateWindow()
    window.setFocus()
    QTest.keyClick(window, Qt.Key_Z, Qt.ControlModifier)
    restored = current_alpha(window)
    assert np.abs(restored - before).max() <= 0.5 / 255 + 1e-6
    assert 10 not in window.project.matte.keyframes
    assert 10 not in window.project.matte_store()  # the frame is back on the keyer


def test_propagate_runs_and_can_be_cancelled(qtbot, window, demo):  # noqa: F811
    assert window.open_project(demo)
    window.seek(5)
    window.matte_tools.set_tool("brush")
    qtbot.waitUntil(lambda: window.viewer.matte_image is not None, timeout=10000)
    window.matte_tools.stroke([(40, 40), (80, 40)], erase=False)  # an edit makes frame 5 a keyframe
    assert window.project.matte.keyframes == [5]
    mattes_before = set(window.project.matte_store().frames())
    window.matte_panel.prop.click()
    assert window.matte_tools.prop_worker is not None and not window.matte_panel.prop.isEnabled()
    qtbot.waitUntil(lambda: getattr(window.matte_tools, "progress", (0, 1))[0] >= 4, timeout=30000)
    window.matte_panel.cancel.click()
    qtbot.waitUntil(lambda: window.matte_tools.prop_worker is None, timeout=30000)
    assert "cancelled" in window.matte_tools.status
    written = set(window.project.matte_store().frames())
    assert len(written) > len(mattes_before)  # what was done is kept...
    window.undo.undo()  # ...and one undo puts the mattes back as they were
    assert set(window.project.matte_store().frames()) == mattes_before
    assert window.project.matte.keyframes == [5]


@pytest.mark.heavy
def test_propagate_to_the_end_flags_and_updates_the_preview(qtbot, window, demo):  # noqa: F811
    assert window.open_project(demo)
    window.matte_tools.set_tool("brush")
    qtbot.waitUntil(lambda: window.viewer.matte_image is not None, timeout=10000)
    window.matte_tools.make_keyframe()
    assert window.project.matte.keyframes == [0]
    window.matte_tools.propagate()
    qtbot.waitUntil(lambda: window.matte_tools.prop_worker is None, timeout=240000)
    assert "propagation done" in window.matte_tools.status
    n = window.frame_count
    assert window.project.matte_store().frames() == list(range(n))
    window.save()
    from harmovid_engine.project import Project

    assert Project.open(demo).matte.keyframes == [0]


def test_export_with_the_diffusion_engine_shows_the_clip_forming(qtbot, window, tmp_path):  # noqa: F811
    pytest.importorskip("diffusers")
    from harmovid_engine.diffusion.model import HarmoVidModel
    from harmovid_engine.media import probe
    from test_diffusion import diffusion_project
    from test_studio import _export

    proj = diffusion_project(tmp_path, HarmoVidModel.tiny())
    assert window.open_project(proj.folder)
    result, dlg = _export(qtbot, window, tmp_path / "out.mp4")
    assert result == "ok" and probe(tmp_path / "out.mp4").frame_count == 9
    assert dlg.last_denoising == (3, 3)
    assert dlg.forming.pixmap() is not None and not dlg.forming.pixmap().isNull()
