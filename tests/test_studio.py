"""HarmoVid Studio driven through its real main window (pytest-qt, offscreen)."""

import time

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import QMessageBox

from harmovid_engine.media import probe
from harmovid_engine.project import Project
from harmovid_engine.resources import copy_demo


@pytest.fixture
def demo(tmp_path):
    return copy_demo(tmp_path / "demo")


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    from app.main_window import MainWindow

    errors, answers = [], []
    w = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    w.errors = errors
    w.answers = answers  # answers to give to questions, in order (default: Yes/Save)
    monkeypatch.setattr(w, "show_error", lambda title, msg: errors.append((title, msg)))
    monkeypatch.setattr(w, "ask", lambda title, text, buttons, default: answers.pop(0) if answers else default)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.undo.setClean()
    w.close()


def wait_full(qtbot, w, frame, timeout=30000):
    qtbot.waitUntil(lambda: getattr(w, "last_pass", (None, None, None))[1:] == (frame, "full")
                    and w.last_pass[0] == w._rid, timeout=timeout)
    return {k: v for k, v in w.viewer.images.items()}


def composite_array(w) -> np.ndarray:
    img = w.viewer.images["composite"]
    ptr = img.constBits()
    return np.frombuffer(ptr, np.uint8, img.sizeInBytes()).copy()


def test_open_demo_scrub_and_see_frames(qtbot, window, demo):
    assert window.open_project(demo)
    wait_full(qtbot, window, 0)
    first = composite_array(window)
    window.timeline.frameRequested.emit(40)  # what a click/drag on the timeline does
    assert window.frame == 40
    wait_full(qtbot, window, 40)
    assert not np.array_equal(first, composite_array(window))
    assert 40 in window.timeline.cached
    assert window.frame_label.text() == "frame 40 / 77"


def test_change_a_setting_updates_the_preview_and_undo_restores_it(qtbot, window, demo):
    window.open_project(demo)
    before = (wait_full(qtbot, window, 0), composite_array(window))[1]
    spin = window.inspector.widgets["engine.direction"]
    spin.setValue(0.0)
    assert window.project.render.engine_settings["direction"] == 0.0
    assert not window.undo.isClean()
    wait_full(qtbot, window, 0)
    changed = composite_array(window)
    assert np.abs(changed.astype(int) - before.astype(int)).mean() > 0.5
    window.undo.undo()
    # the demo dials the relight in (its neon plate's light is nothing like the talent's; the default is off)
    assert window.project.render.engine_settings["direction"] == 1.0 and spin.value() == 1.0
    wait_full(qtbot, window, 0)
    assert np.array_equal(composite_array(window), before)
    assert window.undo.isClean()


def test_the_inspector_shows_only_the_settings_of_the_chosen_engine(qtbot, window, demo):
    window.open_project(demo)
    form = window.inspector._forms["engine.plate_adaptation"]
    plate_colour = window.inspector.widgets["engine.plate_adaptation"]
    assert window.project.render.engine == "analytic" and form.isRowVisible(plate_colour)
    window.inspector.widgets["render.engine"].setCurrentText("learned")
    assert window.project.render.engine == "learned"
    assert not form.isRowVisible(plate_colour)  # the learned engine has no plate colour control
    assert form.isRowVisible(window.inspector.widgets["engine.direction"])
    window.undo.undo()
    assert window.project.render.engine == "analytic" and form.isRowVisible(plate_colour)


def test_view_modes_and_zoom(qtbot, window, demo):
    window.open_project(demo)
    wait_full(qtbot, window, 0)
    for mode in ("talent", "original", "matte", "overlay", "wipe", "composite"):
        window.set_view_mode(mode)
        window.viewer.repaint()
    assert window.viewer.images["matte"].width() == 560
    window.viewer.set_zoom(1.0)
    assert window.zoom_label.text() == "100%"
    window.viewer.set_zoom(None)


def test_transport_keys(qtbot, window, demo):
    window.open_project(demo)
    window.step(1)
    window.step(1)
    assert window.frame == 2
    window.shuttle(1)  # L
    qtbot.waitUntil(lambda: window.frame >= 6, timeout=5000)
    window.stop()  # K
    f = window.frame
    window.seek(window.frame_count - 1)  # End
    window.set_out()
    window.seek(10)
    window.set_in()
    assert (window.project.in_point, window.project.out_point) == (10, 77)
    window.undo.undo()
    assert window.project.in_point is None
    assert f >= 6


def _export(qtbot, window, dest, fmt_index=0, cancel_at=None):
    from app.export_dialog import ExportDialog

    dlg = ExportDialog(window)
    dlg.format.setCurrentIndex(fmt_index)
    dlg.dest.setText(str(dest))
    dlg.range.setCurrentIndex(1)
    ends = []
    if cancel_at is None:
        dlg.start()
        dlg.worker.finished_ok.connect(lambda p: ends.append("ok"))
        dlg.worker.failed.connect(lambda m: ends.append(m))
    else:
        dlg.start()
        dlg.worker.progress.connect(lambda d, t, e: dlg.cancel() if d >= cancel_at else None)
        dlg.worker.cancelled.connect(lambda: ends.append("cancelled"))
        dlg.worker.finished_ok.connect(lambda p: ends.append("ok"))
    qtbot.waitUntil(lambda: bool(ends), timeout=120000)
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=10000)
    return ends[0], dlg


def test_export_a_short_range_off_the_gui_thread(qtbot, window, demo, tmp_path, monkeypatch):
    """The export renders on a worker thread and the GUI thread keeps handling events meanwhile. How long the GUI
    thread may stall is a number for ``benchmarks/bench_studio.py`` (gui_longest_stall_ms_during_export), not a
    timed test: on a busy 2-core machine any wall-clock bound here is a coin toss."""
    import threading

    from harmovid_engine.render import job

    window.open_project(demo)
    window.seek(5)
    window.set_in()
    window.seek(16)
    window.set_out()
    gui = threading.get_ident()
    render_threads = set()
    real = job.open_writer

    def recording_writer(*a, **k):
        render_threads.add(threading.get_ident())
        return real(*a, **k)

    monkeypatch.setattr(job, "open_writer", recording_writer)
    beats = []
    timer = QTimer()
    timer.timeout.connect(lambda: beats.append(time.perf_counter()))
    timer.start(10)
    dest = tmp_path / "out.mp4"
    result, dlg = _export(qtbot, window, dest)
    timer.stop()
    assert result == "ok"
    assert probe(dest).frame_count == 12
    assert render_threads and gui not in render_threads  # rendered off the GUI thread
    assert len(beats) > 5  # and the GUI thread ran its timers while it rendered
    assert "Exported" in dlg.status.text()


def test_cancelled_export_leaves_no_file(qtbot, window, demo, tmp_path):
    window.open_project(demo)
    dest = tmp_path / "cancel.mov"
    result, dlg = _export(qtbot, window, dest, fmt_index=1, cancel_at=2)
    assert result == "cancelled"
    assert not dest.exists() and [p for p in tmp_path.iterdir() if p.name.startswith(".cancel")] == []
    assert "nothing was written" in dlg.status.text()


def test_export_asks_before_replacing_a_file_it_did_not_write_and_refuses_the_project(qtbot, window, demo, tmp_path,
                                                                                     monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from app.export_dialog import ExportDialog

    window.open_project(demo)
    asked, errors = [], []
    monkeypatch.setattr(window, "ask", lambda *a: asked.append(a[1]) or QMessageBox.Cancel)
    monkeypatch.setattr(window, "show_error", lambda title, msg: errors.append(msg))
    dlg = ExportDialog(window)
    theirs = tmp_path / "theirs.mp4"
    theirs.write_bytes(b"someone's film")
    dlg.dest.setText(str(theirs))
    dlg.start()
    assert asked and "not written by HarmoVid" in asked[0] and dlg.worker is None
    assert theirs.read_bytes() == b"someone's film" and "Not exported" in dlg.status.text()
    dlg.dest.setText(str(window.project.folder / "inside.mp4"))
    dlg.start()
    assert dlg.worker is None and errors and "inside the project folder" in errors[0]
    assert not (window.project.folder / "inside.mp4").exists()


def test_recover_after_a_crash(qtbot, tmp_path, demo, monkeypatch):
    from app.main_window import MainWindow

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)
    crashed = MainWindow(settings)
    qtbot.addWidget(crashed)
    crashed.open_project(demo)
    crashed.inspector.widgets["render.shadow_opacity"].setValue(0.8)
    crashed.autosave()
    crashed.worker.stop()  # ... and the process dies: no save, no clean close
    assert Project.open(demo).render.shadow_opacity == 0.35
    again = MainWindow(settings)
    qtbot.addWidget(again)
    asked = []
    monkeypatch.setattr(again, "ask", lambda *a: asked.append(a[0]) or QMessageBox.Yes)
    assert again.open_project(demo)
    assert asked == ["Recover unsaved changes?"]
    assert again.project.render.shadow_opacity == 0.8 and not again.undo.isClean()
    assert again.inspector.widgets["render.shadow_opacity"].value() == 0.8
    assert again.save()
    assert Project.open(demo).render.shadow_opacity == 0.8 and not Project.open(demo).has_recovery()
    again.close()
    crashed.undo.setClean()  # the "dead" window is only closed by the test's teardown


def test_unsaved_changes_are_not_lost_on_close(qtbot, window, demo):
    window.open_project(demo)
    window.inspector.widgets["render.light_wrap_strength"].setValue(0.6)
    window.answers.append(QMessageBox.Cancel)
    assert not window.close()  # the user cancelled
    window.answers.append(QMessageBox.Save)
    assert window.maybe_save()
    assert Project.open(demo).render.light_wrap_strength == 0.6


def test_bad_media_gives_a_message_not_a_traceback(qtbot, window, demo, tmp_path):
    (demo / "media" / "talent.mp4").rename(demo / "media" / "gone.mp4")
    assert not window.open_project(demo)
    assert window.errors and "missing" in window.errors[-1][1]
    (demo / "media" / "gone.mp4").rename(demo / "media" / "talent.mp4")
    assert window.open_project(demo)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    window.answers.append(QMessageBox.No)  # use as plate
    window.handle_dropped([junk])
    assert "junk.mp4" in window.errors[-1][1]
    assert window.project.plate_path.name == "plate.jpg"


def test_drop_a_plate_image_is_undoable(qtbot, window, demo, data_dir):
    window.open_project(demo)
    window.handle_dropped([data_dir / "plates" / "plate_8.jpg"])
    assert window.project.plate_path.name == "plate_8.jpg"
    wait_full(qtbot, window, 0)
    assert window.viewer.images["composite"].width() == 1024
    window.undo.undo()
    assert window.project.plate_path.name == "plate.jpg"


def test_placement_drag_in_the_viewer_is_one_undo_step(qtbot, window, demo):
    window.open_project(demo)
    before = window.project.placement.at(0)
    window.viewer.placementDragged.emit(10.0, 5.0, 1.0)
    window.viewer.placementDragged.emit(20.0, 8.0, 1.0)
    window.viewer.placementDropped.emit()
    x, y, s = window.project.placement.at(0)
    assert (x - before[0], y - before[1], s) == (20.0, 8.0, before[2])
    assert window.undo.count() == 1
    window.undo.undo()
    assert window.project.placement.at(0) == before


def test_placement_fields_edit_the_key_at_the_playhead_when_animated(qtbot, window, demo):
    window.open_project(demo)
    window.project.placement.set_key(40, 0.0, 37.0, 1.0)  # animated placement: keys at 0 and 40
    window.seek(20)
    assert window.inspector.widgets["placement.x"].value() == -40.0  # interpolated at the playhead
    window.seek(40)
    window.inspector.widgets["placement.x"].setValue(12.0)
    assert window.project.placement.at(40)[0] == 12.0
    assert window.project.placement.at(0)[0] == -80.0
    window.undo.undo()
    assert window.project.placement.at(40)[0] == 0.0


def test_a_stale_or_oversized_saved_layout_still_gives_a_window_that_fits(qtbot, tmp_path):
    """A window layout saved by an older version (other docks) is not restored: the Matte panel stays a tab beside
    the Inspector; a saved geometry larger than this screen is brought back onto it."""
    from PySide6.QtWidgets import QDockWidget, QMainWindow

    from app.main_window import MainWindow

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)
    old = QMainWindow()  # an old layout: only an Inspector dock, stacked, saved with version 0
    for name in ("Inspector", "Matte"):
        d = QDockWidget(name, old)
        d.setObjectName(name)
        old.addDockWidget(Qt.RightDockWidgetArea, d)
    old.resize(5000, 4000)
    settings.setValue("windowState", old.saveState(0))
    settings.setValue("geometry", old.saveGeometry())
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.show()
    inspector, matte = w.findChild(QDockWidget, "Inspector"), w.findChild(QDockWidget, "Matte")
    assert matte in w.tabifiedDockWidgets(inspector)
    avail = w.screen().availableGeometry()
    assert w.width() <= avail.width() and w.height() <= avail.height()
    w.undo.setClean()
    w.close()


def test_undo_of_a_placement_edit_restores_the_key_it_changed_even_after_a_seek(qtbot, window, demo):
    """A placement value edited at one frame and undone after seeking elsewhere restores that frame's key; edits at
    different frames are separate undo steps (before: undo wrote the old value into a new key at the playhead, and
    the two edits merged into one)."""
    window.open_project(demo)
    p = window.project
    x0, y0, s0 = p.placement.at(0)
    p.placement.set_key(60, x0 + 40, y0, s0)  # an animated placement: two keys
    window.seek(0)
    window.edit_setting("placement.x", x0 + 10)
    window.seek(60)
    window.edit_setting("placement.x", x0 + 70)
    assert window.undo.count() == 2  # not merged across frames
    assert [k.frame for k in p.placement.keys] == [0, 60]
    window.seek(30)
    window.undo.undo()  # the edit at frame 60
    assert p.placement.at(60)[0] == pytest.approx(x0 + 40) and p.placement.at(0)[0] == pytest.approx(x0 + 10)
    window.undo.undo()  # the edit at frame 0
    assert p.placement.at(0)[0] == pytest.approx(x0) and p.placement.at(60)[0] == pytest.approx(x0 + 40)
    assert sorted(k.frame for k in p.placement.keys) == [0, 60]  # no key made at the playhead (30)


def test_an_edit_at_a_frame_without_a_key_is_undone_by_removing_the_key_it_made(qtbot, window, demo):
    window.open_project(demo)
    p = window.project
    x0, y0, s0 = p.placement.at(0)
    p.placement.set_key(60, x0 + 40, y0, s0)
    window.seek(20)
    window.edit_setting("placement.scale", s0 * 1.5)
    assert sorted(k.frame for k in p.placement.keys) == [0, 20, 60]
    window.seek(70)
    window.undo.undo()
    assert sorted(k.frame for k in p.placement.keys) == [0, 60]
    assert not hasattr(p, "_current_frame")  # the playhead is the session's, not the project's


def test_replacing_the_talent_by_a_clip_of_another_length_keeps_the_mattes_of_the_old_one(qtbot, window, tmp_path):
    from conftest import write_clip
    from harmovid_engine.project import create_project

    talent = write_clip(tmp_path / "t.mp4", 8)
    plate = tmp_path / "plate.png"
    cv2.imwrite(str(plate), np.full((96, 160, 3), 90, np.uint8))
    np.savez_compressed(tmp_path / "m.alpha.npz", alpha=np.full((8, 96, 160), 255, np.uint8))
    proj = create_project(tmp_path / "p", talent, plate, matte=str(tmp_path / "m.alpha.npz"))
    window.open_project(proj.folder)
    shorter = write_clip(tmp_path / "short.mp4", 5)
    assert not window.replace_media("talent", shorter)
    assert window.errors and "5 frames" in window.errors[-1][1]
    assert window.project.talent_path == talent.resolve() or window.project.talent_path.name == "t.mp4"
