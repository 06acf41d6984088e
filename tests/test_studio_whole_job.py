"""The whole job an editor does, driven through the real window: a new project with an imported matte, a brush fix,
propagation between two keyframes, a relight tweak, a ProRes export of an in-out range, save, reopen."""

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

from harmovid_engine.media import probe
from harmovid_engine.project import Project
from test_studio import _export, window  # noqa: F401  (fixtures)
from test_studio_new_project import importing


@pytest.mark.heavy
def test_new_project_fix_propagate_relight_export_save_reopen(qtbot, window, tmp_path, data_dir):  # noqa: F811
    window.run_dialog = importing(data_dir, tmp_path, "job", plate="plate_11.jpg")
    window.new_project()
    folder = tmp_path / "job"
    assert window.project is not None and window.project.folder == folder
    assert window.project.matte.source == "stored"
    # a brush fix on two frames: both become keyframes
    mt = window.matte_tools
    for frame, x in ((10, 40), (30, 60)):
        window.seek(frame)
        mt.set_tool("brush")
        qtbot.waitUntil(lambda: window.viewer.matte_image is not None, timeout=20000)
        mt.stroke([(x, 30), (x + 60, 30)], erase=False)
    fixed10 = window.project.matte_store().get(10)
    assert window.project.matte.keyframes == [10, 30]
    # propagate between them (it asks before replacing the imported mattes)
    window.answers.append(QMessageBox.Yes)
    mt.propagate()
    assert mt.prop_worker is not None
    qtbot.waitUntil(lambda: mt.prop_worker is None, timeout=300000)
    assert "propagation done" in mt.status
    mt.set_tool("off")
    # a relight tweak
    window.inspector.widgets["render.light_wrap_strength"].setValue(0.5)
    # ProRes 4444 of frames 12-19
    window.seek(12)
    window.set_in()
    window.seek(19)
    window.set_out()
    dest = tmp_path / "job.mov"
    result, _ = _export(qtbot, window, dest, fmt_index=1)
    assert result == "ok"
    info = probe(dest)
    assert info.frame_count == 8 and info.has_alpha
    # save, close, reopen: everything is there
    assert window.save()
    window.close()
    again = Project.open(folder)
    assert again.matte.keyframes == [10, 30] and again.matte.source == "stored"
    assert again.render.light_wrap_strength == pytest.approx(0.5)
    assert (again.in_point, again.out_point) == (12, 19)
    assert np.array_equal(again.matte_store().get(10), fixed10)
    assert not (folder / "mattes_unsaved").exists()
