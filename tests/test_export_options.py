"""Export options an editor hands on with a render: handles, a start timecode, straight or premultiplied alpha; and
the render queue that runs several exports one after another."""

import json

import cv2
import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

from harmovid_engine import cli
from harmovid_engine.media import open_source
from harmovid_engine.media.ffmpeg import run_ffmpeg
from harmovid_engine.media.timecode import format_timecode, parse_timecode
from harmovid_engine.resources import copy_demo
from test_studio import demo, wait_full, window  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def shared_demo(tmp_path_factory):
    return copy_demo(tmp_path_factory.mktemp("exp") / "demo")


def _timecode_of(path) -> str:
    lines = run_ffmpeg(["-i", str(path)]).stderr.decode().splitlines()
    return next(ln.split(":", 1)[1].strip() for ln in lines if ln.strip().startswith("timecode"))


def test_timecode_parses_formats_and_refuses_what_is_not_one():
    assert parse_timecode("01:00:00:00", 25) == 90000
    assert parse_timecode("00:00:01:05", 30000 / 1001) == 35  # 29.97 counts frames as 30 (non-drop)
    assert format_timecode(90000 + 7, 25) == "01:00:00:07"
    assert format_timecode(parse_timecode("23:59:59:24", 25) + 1, 25) == "00:00:00:00"  # wraps at 24 h
    assert format_timecode(13, 12.5) == "00:00:01:00"  # 12.5 fps counts 13 a second, as ffmpeg's tmcd track
    for bad, why in (("1:00:00", "HH:MM:SS:FF"), ("00:61:00:00", "up to 59"), ("00:00:00:25", "up to 24"),
                     ("00:00:01;02", "non-drop-frame")):
        with pytest.raises(Exception, match=why):
            parse_timecode(bad, 25)


def test_handles_and_timecode_reach_the_file(shared_demo, tmp_path):
    out = tmp_path / "h.mp4"
    rc = cli.main(["render", str(shared_demo), "-o", str(out), "--start", "10", "--end", "14", "--handles", "3",
                   "--timecode", "01:00:00:00", "--quiet"])
    assert rc == 0
    assert len(open_source(out)) == 11  # 7..17
    assert _timecode_of(out) == "01:00:00:07"  # the first frame's: frame 7 of a clip that starts at 01:00:00:00
    # handles stop at the clip's ends
    rc = cli.main(["render", str(shared_demo), "-o", str(tmp_path / "e.mp4"), "--start", "2", "--end", "3",
                   "--handles", "5", "--quiet"])
    assert rc == 0 and len(open_source(tmp_path / "e.mp4")) == 9  # 0..8
    assert _timecode_of(tmp_path / "e.mp4") == "00:00:00:00"


def test_premultiplied_alpha_is_the_straight_colour_times_the_matte(shared_demo, tmp_path, capsys):
    folders = {}
    for mode in ("straight", "premultiplied"):
        folders[mode] = tmp_path / mode
        rc = cli.main(["render", str(shared_demo), "-o", str(folders[mode]), "--format", "png", "--layer", "talent",
                       "--alpha", mode, "--start", "4", "--end", "4", "--timecode", "10:00:00:00", "--quiet"])
        assert rc == 0
    read = {m: cv2.imread(str(f / "frame_00004.png"), cv2.IMREAD_UNCHANGED).astype(np.float64)
            for m, f in folders.items()}
    a = read["straight"][..., 3] / 255.0
    assert 0 < (a > 0).mean() < 1 and np.array_equal(read["straight"][..., 3], read["premultiplied"][..., 3])
    expect = np.floor(read["straight"][..., :3] * a[..., None] + 0.5)
    assert np.abs(read["premultiplied"][..., :3] - expect).max() <= 1
    soft = (a > 0.1) & (a < 0.9)
    assert soft.any() and (read["premultiplied"][..., :3][soft] < read["straight"][..., :3][soft] - 2).any()
    marker = json.loads((folders["premultiplied"] / ".harmovid-render.json").read_text())
    assert marker["alpha"] == "premultiplied" and marker["timecode"] == "10:00:00:04"
    # H.264 has no alpha to premultiply by: refused, nothing written
    rc = cli.main(["render", str(shared_demo), "-o", str(tmp_path / "p.mp4"), "--alpha", "premultiplied", "--quiet"])
    assert rc == 2 and "no alpha channel" in capsys.readouterr().err and not (tmp_path / "p.mp4").exists()
    rc = cli.main(["render", str(shared_demo), "-o", str(tmp_path / "t.mp4"), "--timecode", "1:00", "--quiet"])
    assert rc == 2 and "HH:MM:SS:FF" in capsys.readouterr().err and not (tmp_path / "t.mp4").exists()


def test_the_export_dialog_passes_the_options_and_refuses_a_wrong_timecode(qtbot, window, demo, tmp_path):
    from app.export_dialog import FORMATS, ExportDialog

    window.open_project(demo)
    wait_full(qtbot, window, 0)
    dlg = ExportDialog(window)
    dlg.format.setCurrentIndex(next(i for i, f in enumerate(FORMATS) if f[1] == "h264"))
    assert not dlg.alpha.isEnabled()  # H.264: no alpha
    dlg.format.setCurrentIndex(next(i for i, f in enumerate(FORMATS) if f[1] == "prores4444"))
    dlg.layer.setCurrentIndex(dlg.layer.findData("talent"))
    assert dlg.alpha.isEnabled()
    dlg.alpha.setCurrentIndex(dlg.alpha.findData("premultiplied"))
    dlg.handles.setValue(2)
    dlg.timecode.setText("00:00:00:99")
    dlg.dest.setText(str(tmp_path / "t.mov"))
    dlg.start()
    assert dlg.worker is None and window.errors and "frames go up to 24" in window.errors[-1][1]
    dlg.timecode.setText("01:00:00:00")
    dlg.range.setCurrentIndex(1)
    window.project.in_point, window.project.out_point = 10, 12
    dlg.start()
    assert dlg.worker.options == {"alpha": "premultiplied", "timecode": "01:00:00:00", "handles": 2}
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=120000)
    assert len(open_source(tmp_path / "t.mov")) == 7 and _timecode_of(tmp_path / "t.mov") == "01:00:00:08"
    # remembered for the next export
    again = ExportDialog(window)
    assert again.handles.value() == 2 and again.timecode.text() == "01:00:00:00"


def test_the_render_queue_runs_exports_one_after_another(qtbot, window, demo, tmp_path):
    from app.export_dialog import ExportDialog

    window.open_project(demo)
    wait_full(qtbot, window, 0)
    dlg = ExportDialog(window)
    dlg.range.setCurrentIndex(1)
    queue = window.render_queue
    ends = []
    # (told after the next render has started: a message box about one must not hold the others)
    queue.finished.connect(lambda job: ends.append((job.output, job.status)) or nexts.append(
        queue.current.output if queue.current else None))
    nexts = []
    for k, (a, b) in enumerate(((0, 3), (5, 9), (20, 22))):
        window.project.in_point, window.project.out_point = a, b
        dlg.dest.setText(str(tmp_path / f"q{k}.mp4"))
        dlg.add_to_queue()
    assert queue.current is not None and queue.current.output.endswith("q0.mp4")
    assert [j.status for j in queue.jobs] == ["rendering", "queued", "queued"]
    assert "render queue" in window.worker._holds  # the preview's idle work waits
    # the same destination twice is refused; a waiting render can be removed
    dlg.add_to_queue()
    assert len(queue.jobs) == 3 and "is the destination of a render in the render queue" in window.errors[-1][1]
    queue.table.selectRow(2)
    queue.remove_selected()
    assert [j.output.endswith(n) for j, n in zip(queue.jobs, ("q0.mp4", "q1.mp4"))] == [True, True]
    # edits after queueing do not change a queued render (it renders the project as it was)
    window.edit_setting("render.shadow_opacity", 0.9)
    qtbot.waitUntil(lambda: len(ends) == 2, timeout=180000)
    assert ends == [(str(tmp_path / "q0.mp4"), "done"), (str(tmp_path / "q1.mp4"), "done")]
    assert nexts == [str(tmp_path / "q1.mp4"), None]
    assert len(open_source(tmp_path / "q0.mp4")) == 4 and len(open_source(tmp_path / "q1.mp4")) == 5
    assert queue.jobs[1].project.render.shadow_opacity != 0.9
    assert not (tmp_path / "q2.mp4").exists() and not window.worker._holds
    queue.clear_finished()
    assert queue.jobs == [] and not queue.busy()


def test_quitting_with_a_running_queue_asks_and_cancel_keeps_the_window(qtbot, window, demo, tmp_path):
    from app.export_dialog import ExportDialog

    window.open_project(demo)
    wait_full(qtbot, window, 0)
    dlg = ExportDialog(window)
    dlg.range.setCurrentIndex(0)
    dlg.dest.setText(str(tmp_path / "long.mp4"))
    dlg.add_to_queue()
    window.answers.append(QMessageBox.Cancel)
    window.close()
    assert window.isVisible() and window.render_queue.busy()
    window.render_queue.shutdown()  # what "Yes" does: cancelled, nothing left
    assert not (tmp_path / "long.mp4").exists()
    assert not any(p.name.startswith(".long.mp4") for p in tmp_path.iterdir())
