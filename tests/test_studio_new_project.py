"""File > New Project and Matte > Matte Source: one dialog for talent, plate, matte source (key with a live preview
and a colour picker, a matte file, the talent's alpha, none) and the project folder (issue: no way to make a project
with a matte in the GUI)."""

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QDialog

from app.new_project import MATTE_SOURCES, NewProjectDialog
from harmovid_engine.matte import MatteStore
from harmovid_engine.project import Project
from test_studio import demo, window  # noqa: F401  (fixtures)


def _dialog(qtbot, tmp_path, **kw):
    dlg = NewProjectDialog(None, QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), **kw)
    qtbot.addWidget(dlg)
    return dlg


def _set_talent(dlg, path):
    dlg.talent.setText(str(path))
    dlg._talent_changed()
    dlg.update_preview()


def importing(data_dir, location, name, plate="plate_1.jpg"):
    """A ``run_dialog`` that fills New Project with d0 and its ``.alpha.npz`` matte and presses Create."""
    def drive(dlg):
        _set_talent(dlg, data_dir / "clips" / "d0.mp4")
        dlg.plate.setText(str(data_dir / "plates" / plate))
        dlg.matte_file.setText(str(data_dir / "clips" / "d0.alpha.npz"))
        dlg._matte_changed()
        dlg.update_preview()
        assert dlg.mode() == "file" and dlg.warning.text() == ""
        dlg.location.setText(str(location))
        dlg.name.setText(name)
        dlg._accept()
        return dlg.result()

    return drive


def _source(dlg, key):
    dlg.source.setCurrentIndex([k for k, _ in MATTE_SOURCES].index(key))
    dlg.update_preview()


def test_new_project_with_a_chroma_key_made_in_the_dialog(qtbot, window, tmp_path, data_dir):  # noqa: F811
    def drive(dlg):
        _set_talent(dlg, data_dir / "clips" / "d0.mp4")
        dlg.plate.setText(str(data_dir / "plates" / "plate_1.jpg"))
        dlg.location.setText(str(tmp_path / "projects"))  # does not exist yet: it is made
        assert dlg.name.text() == "d0"  # named after the talent
        assert dlg.mode() == "key" and dlg._matte_alpha is not None
        cover = float((dlg._matte_alpha > 0.5).mean())
        assert 0.05 < cover < 0.9 and dlg.warning.text() == ""
        # pick the screen colour with a click on the preview's corner (the green screen)
        dlg.pick.setChecked(True)
        dlg.preview.picked.emit(3, 3)
        assert dlg._key_colour is not None and dlg._key_colour[1] > dlg._key_colour[0]
        dlg.tolerance.setValue(0.35)
        dlg._accept()
        return dlg.result()

    window.run_dialog = drive
    window.new_project()
    folder = tmp_path / "projects" / "d0"
    assert window.project is not None and window.project.folder == folder
    p = Project.open(folder)
    assert p.matte.source == "key" and p.matte.key["tolerance"] == pytest.approx(0.35)
    assert p.matte.key["screen"] == "green"
    assert not window.errors


def test_new_project_importing_a_matte_file(qtbot, window, tmp_path, data_dir):  # noqa: F811
    window.run_dialog = importing(data_dir, tmp_path, "imported")
    window.new_project()
    p = Project.open(tmp_path / "imported")
    assert p.matte.source == "stored" and len(MatteStore(p.mattes_dir).frames()) == 78


@pytest.mark.parametrize("value, words", [(0, "is empty"), (255, "covers the whole frame")])
def test_the_dialog_warns_of_an_empty_or_full_frame_matte(qtbot, tmp_path, data_dir, value, words):
    bad = tmp_path / "bad.alpha.npz"
    np.savez(bad, alpha=np.full((78, 64, 64), value, np.uint8))
    dlg = _dialog(qtbot, tmp_path)
    _set_talent(dlg, data_dir / "clips" / "d0.mp4")
    dlg.matte_file.setText(str(bad))
    dlg._matte_changed()
    dlg.update_preview()
    assert words in dlg.warning.text()


def test_no_matte_yet_says_so_and_the_project_opens_with_a_hint(qtbot, window, tmp_path, data_dir):  # noqa: F811
    def drive(dlg):
        _set_talent(dlg, data_dir / "clips" / "d0.mp4")
        _source(dlg, "none")
        assert "No matte yet" in dlg.warning.text()
        dlg.plate.setText(str(data_dir / "plates" / "plate_1.jpg"))
        dlg.location.setText(str(tmp_path))
        dlg._accept()
        return dlg.result()

    window.run_dialog = drive
    window.new_project()
    assert Project.open(tmp_path / "d0").matte.source == "none"
    assert "No matte yet" in window.statusBar().currentMessage()


def test_create_is_refused_with_a_reason_and_folders_are_remembered(qtbot, tmp_path, data_dir):
    dlg = _dialog(qtbot, tmp_path)
    dlg._accept()
    assert dlg.result() != QDialog.Accepted and "talent" in dlg.warning.text()
    _set_talent(dlg, data_dir / "clips" / "d0.mp4")
    dlg.plate.setText(str(tmp_path / "missing.jpg"))
    dlg._accept()
    assert dlg.result() != QDialog.Accepted and "does not exist" in dlg.warning.text()
    dlg.plate.setText(str(data_dir / "plates" / "plate_1.jpg"))
    # an existing project of that name is not replaced
    (tmp_path / "loc" / "d0").mkdir(parents=True)
    (tmp_path / "loc" / "d0" / "project.json").write_text("{}")
    dlg.location.setText(str(tmp_path / "loc"))
    dlg._accept()
    assert dlg.result() != QDialog.Accepted and "already holds a project" in dlg.warning.text()
    dlg.name.setText("d0 take 2")
    dlg._accept()
    assert dlg.result() == QDialog.Accepted
    again = _dialog(qtbot, tmp_path)
    assert again.location.text() == str(tmp_path / "loc")
    assert again._last("talent") == str(data_dir / "clips")


def test_a_file_dropped_on_the_talent_field_is_taken(qtbot, tmp_path, data_dir):
    dlg = _dialog(qtbot, tmp_path)
    dlg.show()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(data_dir / "clips" / "d0.mp4"))])
    ev = QDropEvent(QPointF(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    dlg.talent.dropEvent(ev)
    dlg.update_preview()
    assert dlg.talent.text().endswith("d0.mp4") and dlg._frame is not None and dlg._matte_alpha is not None


def test_matte_source_on_an_open_project_is_one_undo_step(qtbot, window, demo, data_dir):  # noqa: F811
    assert window.open_project(demo)
    before = window.project.matte.source

    def drive(dlg):
        assert dlg.rematte and not dlg.form.isRowVisible(1)  # the plate row: the project has one
        _source(dlg, "none")
        dlg._accept()
        return dlg.result()

    window.run_dialog = drive
    window.matte_source_dialog()
    assert window.project.matte.source == "none"
    window.undo.undo()
    assert window.project.matte.source == before
