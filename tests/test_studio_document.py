"""Matte edits are part of the document: saved with the project, thrown away by Discard and by "No" to recovery,
marked on the timeline (issue: edits that should be gone are not)."""

import subprocess
import sys
import textwrap

import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from harmovid_engine.project import Project
from test_studio import demo, window  # noqa: F401  (fixtures)


def _saved_mattes(folder):
    d = folder / "mattes"
    return {p.name: p.read_bytes() for p in d.glob("alpha_*.png")} if d.is_dir() else {}


def _paint(qtbot, w, frame=10):
    w.seek(frame)
    w.matte_tools.set_tool("brush")
    qtbot.waitUntil(lambda: w.viewer.matte_image is not None, timeout=10000)
    w.matte_tools.stroke([(40, 40), (120, 40)], erase=False)
    assert frame in w.project.matte.keyframes


def test_discard_throws_the_matte_edit_away(qtbot, window, demo):  # noqa: F811
    saved = _saved_mattes(demo)
    assert window.open_project(demo)
    _paint(qtbot, window)
    assert 10 in window.timeline.edited  # marked as an unsaved edit
    assert _saved_mattes(demo) == saved  # nothing saved yet
    window.answers.append(QMessageBox.Discard)
    assert window.close()
    assert _saved_mattes(demo) == saved
    assert not (demo / "mattes_unsaved").exists()
    reopened = Project.open(demo)
    assert 10 not in reopened.matte.keyframes and 10 not in reopened.matte_store()
    assert not reopened.has_recovery()


def test_save_keeps_the_matte_edit_and_clears_its_mark(qtbot, window, demo):  # noqa: F811
    assert window.open_project(demo)
    _paint(qtbot, window)
    edited = window.project.matte_store().get(10)
    assert window.save()
    assert "alpha_00010.png" in _saved_mattes(demo)
    assert not window.timeline.edited
    assert not (demo / "mattes_unsaved").exists()
    again = Project.open(demo)  # a CLI render reads what was saved
    assert 10 in again.matte.keyframes
    assert np.array_equal(again.matte_store().get(10), edited)


def test_no_to_recovery_throws_the_matte_edit_away_and_yes_keeps_it(qtbot, tmp_path, demo, monkeypatch):  # noqa: F811
    from app.main_window import MainWindow

    saved = _saved_mattes(demo)
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)
    for answer in (QMessageBox.Yes, QMessageBox.No):
        crashed = MainWindow(settings)
        qtbot.addWidget(crashed)
        assert crashed.open_project(demo)
        _paint(qtbot, crashed)
        crashed.autosave()
        crashed.worker.stop()  # the process dies: no save, no clean close
        crashed.matte_tools.close()
        again = MainWindow(settings)
        qtbot.addWidget(again)
        asked = []
        monkeypatch.setattr(again, "ask", lambda *a, answer=answer: asked.append(a[0]) or answer)
        assert again.open_project(demo)
        assert asked == ["Recover unsaved changes?"]
        if answer == QMessageBox.Yes:
            assert 10 in again.project.matte.keyframes and 10 in again.project.matte_store()
            assert 10 in again.timeline.edited
            again.undo.setClean()
            again.project.discard_recovery()  # leave the folder as saved for the "No" round
        else:
            assert 10 not in again.project.matte.keyframes and 10 not in again.project.matte_store()
            assert _saved_mattes(demo) == saved and not (demo / "mattes_unsaved").exists()
        again.undo.setClean()
        again.close()
        crashed.undo.setClean()


def test_undo_of_a_propagation_restores_unsaved_edits_too(qtbot, window, demo):  # noqa: F811
    assert window.open_project(demo)
    _paint(qtbot, window, 5)
    store = window.project.matte_store()
    before = {i: store.get(i) for i in store.frames()}
    window.matte_panel.prop.click()
    qtbot.waitUntil(lambda: getattr(window.matte_tools, "progress", (0, 1))[0] >= 3, timeout=30000)
    window.matte_panel.cancel.click()
    qtbot.waitUntil(lambda: window.matte_tools.prop_worker is None, timeout=30000)
    assert len(store.frames()) > len(before)
    window.undo.undo()
    assert store.frames() == sorted(before)
    assert all(np.array_equal(store.get(i), a) for i, a in before.items())


def test_quitting_after_discard_prints_no_traceback(tmp_path, demo):  # noqa: F811
    script = textwrap.dedent(f"""
        import os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtCore import QSettings, QTimer
        from PySide6.QtWidgets import QApplication, QMessageBox
        app = QApplication([])
        from app.main_window import MainWindow
        w = MainWindow(QSettings(r"{tmp_path / 's.ini'}", QSettings.IniFormat))
        w.ask = lambda *a: QMessageBox.Discard
        w.show()
        assert w.open_project(r"{demo}")
        w.seek(10)
        w.matte_tools.set_tool("brush")
        w.matte_tools.refresh_view()
        w.matte_tools.stroke([(40, 40), (120, 40)], erase=False)
        QTimer.singleShot(500, w.close)
        QTimer.singleShot(1500, app.quit)
        app.exec()
        del w
        print("closed")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                       cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "closed" in r.stdout
    assert "Traceback" not in r.stderr, r.stderr[-2000:]


def test_propagate_says_what_it_replaces_asks_shows_progress_and_sums_up(qtbot, window, demo):  # noqa: F811
    from harmovid_engine.matte import MatteStore

    saved = MatteStore(demo / "mattes")
    for i in range(12, 20):  # mattes that came with the project (say, imported)
        saved.put(i, np.full((64, 64), 0.5, np.float32))
    saved_bytes = _saved_mattes(demo)
    assert window.open_project(demo)
    _paint(qtbot, window, 5)
    asked = []
    window.ask = lambda title, text, *a: asked.append((title, text)) or QMessageBox.No
    window.matte_tools.propagate()
    assert asked and asked[0][0] == "Replace stored mattes?"
    assert "replaces 8 stored matte(s)" in asked[0][1] and "12-19" in asked[0][1]
    assert window.matte_tools.prop_worker is None  # "No": nothing started, nothing changed
    assert _saved_mattes(demo) == saved_bytes
    window.ask = lambda *a: QMessageBox.Yes
    window.matte_tools.propagate()
    assert window.matte_tools.prop_worker is not None
    qtbot.waitUntil(lambda: window.prop_cancel.isVisible() and window.prop_bar.value() >= 3, timeout=30000)
    window.prop_cancel.click()  # Cancel is in the status bar, whatever the docks show
    qtbot.waitUntil(lambda: window.matte_tools.prop_worker is None, timeout=30000)
    assert not window.prop_bar.isVisible()
    assert "frame(s) changed so far are kept" in window.matte_tools.status
    assert _saved_mattes(demo) == saved_bytes  # still unsaved edits only
