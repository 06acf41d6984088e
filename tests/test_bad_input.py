"""Never lose an editor's work or footage: destinations a render must refuse, and what it may replace."""

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from harmovid_engine import cli
from harmovid_engine.media.writer import MARKER, PngSequenceWriter
from harmovid_engine.project import create_project
from harmovid_engine.render.destination import DestinationError, DestinationExists, check_destination

from conftest import decode_index, ffmpeg, write_clip


def digest(path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if p.is_file():
            h.update(p.relative_to(path).as_posix().encode() if path.is_dir() else b"")
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def project(tmp_path):
    (tmp_path / "media").mkdir()
    talent = write_clip(tmp_path / "media" / "talent.mp4", 6)
    plate = tmp_path / "media" / "plate.png"
    cv2.imwrite(str(plate), np.full((96, 160, 3), 90, np.uint8))
    yy, xx = np.mgrid[0:96, 0:160]
    matte = np.repeat((((xx - 80) ** 2 + (yy - 48) ** 2) < 30 ** 2).astype(np.uint8)[None] * 255, 6, 0)
    np.savez_compressed(tmp_path / "media" / "m.alpha.npz", alpha=matte)
    proj = create_project(tmp_path / "proj", talent, plate, matte=str(tmp_path / "media" / "m.alpha.npz"))
    proj.render.engine = "none"
    proj.save()
    return proj


def render_cli(project, out, *extra, capsys=None):
    rc = cli.main(["render", str(project.folder), "-o", str(out), "--quiet", *map(str, extra)])
    err = capsys.readouterr().err if capsys else ""
    return rc, err


@pytest.mark.parametrize("where", ["project", "inside", "inside_png", "parent_png", "talent", "plate"])
def test_render_refuses_the_project_its_folder_and_its_footage(project, where, capsys):
    root = project.folder.parent
    out = {"project": project.folder, "inside": project.folder / "render.mp4",
           "inside_png": project.folder / "frames", "parent_png": root,
           "talent": project.talent_path, "plate": project.plate_path}[where]
    before = digest(root)
    rc, err = render_cli(project, out, *(["--format", "png"] if where == "plate" else []), capsys=capsys)
    assert rc == 2 and err.startswith("harmovid: error: ") and len(err.strip().splitlines()) == 1, err
    assert "project" in err or "source" in err
    assert digest(root) == before  # nothing written, moved or removed
    assert not [p for p in root.rglob("*") if p.name.endswith(".part")]


def test_render_refuses_a_folder_of_other_files_and_an_existing_stranger_movie(project, tmp_path, capsys):
    keep = tmp_path / "stills"
    keep.mkdir()
    (keep / "holiday.jpg").write_bytes(b"not ours")
    rc, err = render_cli(project, keep, "--format", "png", capsys=capsys)
    assert rc == 2 and "did not write" in err
    assert (keep / "holiday.jpg").read_bytes() == b"not ours"
    # a movie file that is not an earlier render of this tool: refused, kept; --overwrite replaces it
    stranger = tmp_path / "theirs.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x64:d=0.2", "-c:v", "libx264", str(stranger))
    before = stranger.read_bytes()
    rc, err = render_cli(project, stranger, capsys=capsys)
    assert rc == 2 and "--overwrite" in err and stranger.read_bytes() == before
    rc, _ = render_cli(project, stranger, "--overwrite", capsys=capsys)
    assert rc == 0 and stranger.read_bytes() != before


def test_an_earlier_render_is_replaced_without_asking(project, tmp_path, capsys):
    mp4, frames = tmp_path / "out.mp4", tmp_path / "frames"
    for _ in range(2):
        assert render_cli(project, mp4, capsys=capsys)[0] == 0
        assert render_cli(project, frames, capsys=capsys)[0] == 0
    assert sorted(p.name for p in frames.iterdir()) == [MARKER] + [f"frame_{i:05d}.png" for i in range(6)]
    # an empty folder is fine too
    empty = tmp_path / "empty"
    empty.mkdir()
    assert render_cli(project, empty, "--format", "png", capsys=capsys)[0] == 0
    # a file the editor put into an earlier render's folder makes it someone else's
    (frames / "notes.txt").write_text("mine")
    rc, err = render_cli(project, frames, capsys=capsys)
    assert rc == 2 and (frames / "notes.txt").read_text() == "mine" and (frames / "frame_00000.png").exists()


def test_render_to_dot_or_a_missing_folder_is_refused_and_leaves_nothing(project, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = digest(tmp_path)
    for out in (".", "..", tmp_path / "no" / "such" / "out.mp4", "out.mp4/"):
        rc, err = render_cli(project, out, capsys=capsys)
        assert rc == 2 and "Traceback" not in err, (out, err)
    assert digest(tmp_path) == before


def test_the_png_writer_never_replaces_a_folder_that_became_someone_elses(tmp_path):
    """The check before a render can race with the editor: the writer checks again before it swaps folders in."""
    dest = tmp_path / "frames"
    w = PngSequenceWriter(dest, 16, 8, 25)
    w.write(np.zeros((8, 16, 3), np.float32))
    dest.mkdir()
    (dest / "theirs.png").write_bytes(b"x")
    with pytest.raises(Exception, match="nothing was replaced"):
        w.close()
    assert os.listdir(dest) == ["theirs.png"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_check_destination_is_one_rule_for_every_caller(project, tmp_path):
    with pytest.raises(DestinationError):
        check_destination(project, project.folder / "x.mov", "prores4444")
    other = tmp_path / "x.mov"
    other.write_bytes(b"data")
    with pytest.raises(DestinationExists):
        check_destination(project, other, "prores4444")
    assert check_destination(project, other, "prores4444", overwrite=True) == other.resolve()


def _mattes(proj):
    return {p.name: p.read_bytes() for p in sorted(proj.mattes_dir.iterdir())}


@pytest.mark.parametrize("bad", ["zero", "broken", "interrupt"])
def test_new_force_keeps_the_old_project_and_its_mattes_when_the_new_one_fails(project, tmp_path, bad, monkeypatch):
    from harmovid_engine.errors import HarmoVidError
    from harmovid_engine.project import Project

    before_json = (project.folder / "project.json").read_bytes()
    before = _mattes(project)
    assert len(before) == 6
    src = tmp_path / "new.alpha.npz"
    progress = None
    if bad == "zero":
        np.savez_compressed(src, alpha=np.zeros((6, 96, 160), np.uint8))
    elif bad == "broken":
        src.write_bytes(b"PK\x03\x04 truncated")
    else:
        np.savez_compressed(src, alpha=np.full((6, 96, 160), 200, np.uint8))

        def progress(done, total):
            if done == 3:
                raise KeyboardInterrupt

    with pytest.raises((HarmoVidError, KeyboardInterrupt)):
        create_project(project.folder, project.talent_path, project.plate_path, matte=str(src), overwrite=True,
                       progress=progress)
    assert (project.folder / "project.json").read_bytes() == before_json
    assert _mattes(Project.open(project.folder)) == before
    assert sorted(p.name for p in project.folder.iterdir()) == ["mattes", "project.json"]


def test_new_force_replaces_the_mattes_and_keeps_other_files(project, tmp_path):
    (project.folder / "notes.txt").write_text("mine")
    src = tmp_path / "new.alpha.npz"
    np.savez_compressed(src, alpha=np.full((6, 96, 160), 200, np.uint8))
    proj = create_project(project.folder, project.talent_path, project.plate_path, matte=str(src), overwrite=True)
    assert proj.matte.source == "stored" and (project.folder / "notes.txt").read_text() == "mine"
    from harmovid_engine.matte import MatteStore

    assert MatteStore(proj.mattes_dir).get(0).min() > 0.7
    assert sorted(p.name for p in project.folder.iterdir()) == ["mattes", "notes.txt", "project.json"]


def test_demo_force_replaces_a_demo_copy_and_refuses_any_other_folder(tmp_path, capsys):
    theirs = tmp_path / "work"
    theirs.mkdir()
    (theirs / "edit.prproj").write_text("a day's work")
    assert cli.main(["demo", str(theirs), "--force"]) == 2
    assert "not the demo's" in capsys.readouterr().err and (theirs / "edit.prproj").read_text() == "a day's work"
    demo = tmp_path / "demo"
    assert cli.main(["demo", str(demo)]) == 0
    (demo / "mattes").mkdir(exist_ok=True)
    (demo / "project.json").write_text("{}")  # an edit to throw away
    assert cli.main(["demo", str(demo), "--force"]) == 0
    assert (demo / "project.json").read_text() != "{}"


# -- one validation of every setting ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mutate, why", [
    (lambda d: d.update(schema=True), "schema"),
    (lambda d: d["talent"].update(path=["a", "b"]), "talent"),
    (lambda d: d["placement"][0].update(scale=float("nan")), "placement scale"),
    (lambda d: d["placement"][0].update(scale=0), "placement scale"),
    (lambda d: d["placement"][0].update(scale=-2), "placement scale"),
    (lambda d: d["matte"].update(feather=-50), "matte feather"),
    (lambda d: d["matte"].update(choke=1e9), "matte choke"),
    (lambda d: d["render"].update(deflicker="../etc/passwd"), "deflicker"),
    (lambda d: d["render"].update(crf=999), "crf"),
    (lambda d: d["render"].update(engine_settings={"colour": "abc"}), "colour"),
    (lambda d: d["render"].update(engine_settings={"colour": float("inf")}), "colour"),
    (lambda d: d["render"].update(engine=["analytic"]), "engine"),
    (lambda d: d.update(in_point=-3), "in_point"),
])
def test_nonsense_in_a_project_file_is_refused_on_open_and_never_saved(project, mutate, why):
    import json

    from harmovid_engine.errors import ProjectError
    from harmovid_engine.project import Project

    d = project.to_dict()
    mutate(d)
    (project.folder / "project.json").write_text(json.dumps(d))
    with pytest.raises(ProjectError, match=why.split()[0]):
        Project.open(project.folder)


@pytest.mark.parametrize("value", ["NaN", "1e308", "abc", "-1"])
def test_set_nonsense_is_refused_and_new_saves_nothing(tmp_path, project, value, capsys):
    out = tmp_path / "p2"
    rc = cli.main(["new", str(out), "--fg", str(project.talent_path), "--plate", str(project.plate_path),
                   "--set", f"colour={value}", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "colour" in err and not out.exists(), err
    rc, err = render_cli(project, tmp_path / "o.mp4", "--set", f"colour={value}", capsys=capsys)
    assert rc == 2 and "colour" in err and not (tmp_path / "o.mp4").exists()


def test_save_refuses_a_project_that_would_not_open(project):
    from harmovid_engine.errors import ProjectError
    from harmovid_engine.project import Project

    before = (project.folder / "project.json").read_bytes()
    for change in (lambda p: setattr(p.render, "crf", 999), lambda p: p.render.engine_settings.update(colour=None),
                   lambda p: setattr(p.placement.keys[0], "scale", 0.0)):
        proj = Project.open(project.folder)
        change(proj)
        with pytest.raises(ProjectError, match="cannot save"):
            proj.save()
        with pytest.raises(ProjectError, match="cannot autosave"):
            proj.autosave()
    assert (project.folder / "project.json").read_bytes() == before
    assert not proj.autosave_file.exists()


@pytest.mark.parametrize("dtype, scale", [(np.float32, 255.0), (np.float64, 1.0), (np.int32, 255.0),
                                          (np.int64, 65535.0), (np.uint16, 65535.0)])
def test_mattes_in_any_dtype_keep_their_soft_edges(tmp_path, dtype, scale):
    from harmovid_engine.matte import read_matte_frames

    ramp = np.tile(np.linspace(0, 1, 160), (96, 1))
    arr = np.repeat((ramp * scale)[None], 3, 0).astype(dtype)
    np.savez_compressed(tmp_path / "m.alpha.npz", alpha=arr)
    frames = list(read_matte_frames(tmp_path / "m.alpha.npz", 160, 96, 3))
    tol = 1e-3 if np.issubdtype(dtype, np.floating) else 1.0 / scale + 1e-4  # (ints truncate)
    assert np.abs(frames[1] - ramp).max() < tol  # soft, not binarised
    bad = arr.astype(np.float64)
    bad[0, 0, 0] = np.nan
    np.savez_compressed(tmp_path / "nan.alpha.npz", alpha=bad)
    with pytest.raises(Exception, match="not numbers"):
        list(read_matte_frames(tmp_path / "nan.alpha.npz", 160, 96, 3))


def test_a_matte_of_another_size_is_resized_with_a_note(project, tmp_path, capsys):
    small = np.repeat(np.full((48, 80), 255, np.uint8)[None], 6, 0)
    np.savez_compressed(tmp_path / "half.alpha.npz", alpha=small)
    rc = cli.main(["new", str(tmp_path / "p3"), "--fg", str(project.talent_path), "--plate", str(project.plate_path),
                   "--matte", str(tmp_path / "half.alpha.npz"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0 and "80x48" in err and "resized" in err


def test_info_reads_a_matte(tmp_path, capsys):
    import json

    arr = np.zeros((4, 96, 160), np.uint8)
    arr[1:, 20:70, 40:120] = 255
    np.savez_compressed(tmp_path / "m.alpha.npz", alpha=arr)
    assert cli.main(["info", str(tmp_path / "m.alpha.npz"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["frames"], info["width"], info["height"], info["empty_frames"]) == (4, 160, 96, 1)
    (tmp_path / "bad.alpha.npz").write_bytes(b"junk")
    assert cli.main(["info", str(tmp_path / "bad.alpha.npz")]) == 2


def test_the_studio_without_a_display_says_what_to_do():
    import subprocess
    import sys

    from app.main import display_problem

    assert display_problem({}, "linux") and "xvfb" in display_problem({}, "linux")
    assert display_problem({"DISPLAY": ":0"}, "linux") is None
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({}, "darwin") is None
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    res = subprocess.run([sys.executable, "main.py", "--demo"], capture_output=True, text=True, env=env, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert res.returncode == 2 and "headless commands" in res.stderr and "Traceback" not in res.stderr


# -- nothing left behind -----------------------------------------------------------------------------------------------
def _dead_pid() -> int:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_what_a_killed_process_left_is_cleaned_on_the_next_run(project, tmp_path, capsys):
    from harmovid_engine.cleanup import clean_stale
    from harmovid_engine.project import Project

    dead, alive = _dead_pid(), os.getpid()
    (tmp_path / f".out.mp4.{dead}.abc123.part").write_bytes(b"x" * 1000)
    (tmp_path / f".frames.{dead}.k9_z.part").mkdir()
    (tmp_path / f".other.mp4.{alive}.live01.part").write_bytes(b"busy")  # a render still running: kept
    (project.folder / f".project.json.{dead}.tmp").write_text("{")
    (project.folder / f".mattes.new-{dead}").mkdir()
    # a previous render moved aside when its process died mid-swap: the only copy, so it is put back
    (tmp_path / f".prev.old-{dead}").mkdir()
    (tmp_path / f".prev.old-{dead}" / "frame_00000.png").write_bytes(b"png")
    Project.open(project.folder)
    assert sorted(p.name for p in project.folder.iterdir()) == ["mattes", "project.json"]
    assert render_cli(project, tmp_path / "out.mp4", capsys=capsys)[0] == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert f".other.mp4.{alive}.live01.part" in names and (tmp_path / "prev" / "frame_00000.png").exists()
    assert not [n for n in names if str(dead) in n]
    assert clean_stale(tmp_path / "nowhere") == []


def test_os_errors_are_exit_2_with_one_line(project, tmp_path, capsys, monkeypatch):
    import errno

    from harmovid_engine.render import job

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out.mp4"))

    monkeypatch.setattr(job, "open_writer", full)
    rc, err = render_cli(project, tmp_path / "out.mp4", capsys=capsys)
    assert rc == 2 and err.strip() == f"harmovid: error: No space left on device: '{tmp_path / 'out.mp4'}'"


@pytest.mark.parametrize("sig", ["SIGHUP", "SIGTERM"])
def test_a_closed_terminal_or_a_kill_ends_a_render_cleanly(project, tmp_path, capsys, monkeypatch, sig):
    """The signal arrives in the middle of the render (sent from inside the writer at the second frame)."""
    import signal

    from harmovid_engine.render import job

    real = job.open_writer

    def writer_that_gets_a_signal(*a, **k):
        w = real(*a, **k)
        write = w.write

        def write_then_signal(*wa, **wk):
            write(*wa, **wk)
            if w.frames_written == 2:
                os.kill(os.getpid(), getattr(signal, sig))

        w.write = write_then_signal
        return w

    monkeypatch.setattr(job, "open_writer", writer_that_gets_a_signal)
    before = signal.getsignal(getattr(signal, sig))
    out = tmp_path / "hup.mov"
    rc, err = render_cli(project, out, capsys=capsys)
    assert rc == 130 and "interrupted" in err
    assert not out.exists() and not [q for q in tmp_path.iterdir() if q.name.endswith(".part")]
    assert signal.getsignal(getattr(signal, sig)) == before  # the command put the handlers back


# -- frames are what their index says ----------------------------------------------------------------------------------
def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    import struct

    tiff = b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1,
                                                                                   orientation, 0) + b"\x00" * 4
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def test_an_exif_rotated_jpeg_plate_is_used_as_shown(tmp_path):
    from harmovid_engine.media import open_source, probe

    img = np.zeros((40, 100, 3), np.uint8)
    img[:, :20] = (0, 0, 255)  # red (BGR) on the left of the stored picture
    ok, enc = cv2.imencode(".jpg", img)
    path = tmp_path / "phone.jpg"
    path.write_bytes(_with_exif_orientation(enc.tobytes(), 6))  # 6: shown rotated 90 degrees clockwise
    info = probe(path)
    assert (info.width, info.height) == (40, 100)
    frame = open_source(path).read(0)
    assert frame.shape == (100, 40, 3) and frame[:20, :, 0].mean() > 200 and frame[-20:, :, 0].mean() < 50


def test_a_plate_beyond_8k_is_refused_before_it_is_decoded(tmp_path, project, monkeypatch):
    from harmovid_engine.errors import MediaError
    from harmovid_engine.media import open_source, source

    monkeypatch.setattr(source, "MAX_PIXELS", 160 * 96 - 1)  # the fixture's talent stands in for a 16K plate
    with pytest.raises(MediaError, match="scale it down"):
        open_source(project.talent_path)


def test_a_variable_frame_rate_clip_is_refused_with_the_fix(tmp_path):
    from harmovid_engine.errors import MediaError
    from harmovid_engine.media import probe
    from harmovid_engine.media.probe import _variable_rate
    from fractions import Fraction

    vfr = tmp_path / "phone.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=160x96:r=25:d=2", "-vf", "setpts='if(lt(N,25),N,25+(N-25)*2)/25/TB'",
           "-fps_mode", "vfr", "-c:v", "libx264", str(vfr))
    with pytest.raises(MediaError, match="variable frame rate.*-fps_mode cfr"):
        probe(vfr)
    assert not _variable_rate(Fraction(25), Fraction(50))  # interlaced: fields at twice the rate
    assert not _variable_rate(Fraction(30000, 1001), Fraction(2997, 100))


def gop_clip(path, n=150, container_opts=()):
    """An index clip (``conftest.index_frame``) of n frames with a keyframe every 25, as a camera or NLE writes."""
    src = write_clip(path.with_name("src_" + path.stem + ".mp4"), n, w=320, h=192, crf=18)
    ffmpeg("-i", str(src), "-c:v", "libx264", "-g", "25", "-crf", "18", "-pix_fmt", "yuv420p", *container_opts,
           str(path))
    return path


def test_a_corrupt_stretch_of_h264_leaves_every_later_frame_at_its_index(project, tmp_path, capsys):
    from harmovid_engine.media import open_source

    clip = gop_clip(tmp_path / "damaged.mp4")
    data = bytearray(clip.read_bytes())
    mid = len(data) // 2  # 16 KB of noise mid-file: the decoder gives up on ~20 frames and drops them
    data[mid:mid + 16000] = np.random.default_rng(0).integers(0, 256, 16000, dtype=np.uint8).tobytes()
    clip.write_bytes(bytes(data))
    with open_source(clip) as src:
        streamed = [decode_index(f) for _, f in src.frames()]
        damaged = sorted(src.damaged)
    assert len(streamed) == 150 and len(damaged) >= 5
    lo, hi = damaged[0] - 25, damaged[-1] + 25  # within the damaged GOPs the pictures themselves are garbage
    assert all(v == i for i, v in enumerate(streamed) if not lo <= i <= hi), "frames after the damage moved"
    for k in (10, damaged[0], damaged[-1], damaged[-1] + 1, 120, 149):  # seeking shows what streaming shows
        with open_source(clip) as src:
            assert decode_index(src.read(k)) == streamed[k], k
    # a render through it tells the editor which frames, and keeps the rest in place
    os.replace(clip, project.talent_path.with_name("damaged.mp4"))
    proj = create_project(tmp_path / "p2", project.talent_path.with_name("damaged.mp4"), project.plate_path)
    rc = cli.main(["render", str(proj.folder), "-o", str(tmp_path / "out.mp4"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0 and f"{len(damaged)} frame(s) of the talent 'damaged.mp4' could not be decoded" in err
    from harmovid_engine.render.job import frame_ranges

    assert f"({frame_ranges(damaged)})" in err  # the same frames the streaming decoder found


def test_seeking_an_mpeg_ts_lands_on_the_frame_asked_for(tmp_path):
    from harmovid_engine.media import open_source

    clip = gop_clip(tmp_path / "broadcast.ts", container_opts=("-f", "mpegts"))
    for k in (1, 10, 40, 77, 120, 149):  # ffmpeg's seek in TS lands on a later keyframe (10 -> 25, 149 -> past the end)
        with open_source(clip) as src:
            assert decode_index(src.read(k)) == k
            assert not src.damaged


@pytest.mark.parametrize("trc, what", [("arib-std-b67", "HLG"), ("smpte2084", "PQ")])
def test_hdr_footage_is_refused_rather_than_shown_with_wrong_colours(tmp_path, trc, what):
    from harmovid_engine.errors import MediaError
    from harmovid_engine.media import probe

    clip = tmp_path / "hdr.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=160x96:r=25:d=0.4", "-vf",
           f"setparams=colorspace=bt2020nc:color_primaries=bt2020:color_trc={trc}", "-c:v", "libx264", "-pix_fmt",
           "yuv420p10le", str(clip))
    with pytest.raises(MediaError, match=what):
        probe(clip)


def test_a_bad_harmovid_ffmpeg_is_a_clear_error(project, monkeypatch, capsys):
    from harmovid_engine.media.ffmpeg import ffmpeg_exe

    monkeypatch.setenv("HARMOVID_FFMPEG", "/no/such/ffmpeg")
    ffmpeg_exe.cache_clear()
    try:
        rc = cli.main(["info", str(project.talent_path)])
    finally:
        monkeypatch.delenv("HARMOVID_FFMPEG")
        ffmpeg_exe.cache_clear()
    err = capsys.readouterr().err
    assert rc == 2 and "HARMOVID_FFMPEG" in err and len(err.strip().splitlines()) == 1


def test_a_project_file_that_is_not_utf8_and_a_name_too_long_are_clear_errors(project, tmp_path, capsys):
    (project.folder / "project.json").write_bytes(b'{"schema": 2, "name": "\\xff\\xfe"}' + bytes([0xff, 0xfe]))
    assert cli.main(["info", str(project.folder)]) == 2
    assert "harmovid: error:" in capsys.readouterr().err
    long = tmp_path / ("x" * 300 + ".mp4")
    rc, err = render_cli(project, long, capsys=capsys)
    assert rc == 2 and "Traceback" not in err


# -- fuzzing ------------------------------------------------------------------------------------------------------------
def _leaves(d, path=()):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(d, list) and d:
        for i, v in enumerate(d):
            yield from _leaves(v, path + (i,))
    else:
        yield path


def _set(d, path, value):
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


def _fuzzed_projects(max_examples):
    import copy
    import json

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12)
                               | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
                               lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids,
                                                                                          max_size=3), max_leaves=6)

    def decorate(test):
        @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def run(project, data):
            base = project.to_dict()
            base["render"]["engine_settings"] = {"colour": 1.0}
            paths = list(_leaves(base))
            d = copy.deepcopy(base)
            for _ in range(data.draw(st.integers(1, 3))):
                _set(d, data.draw(st.sampled_from(paths)), data.draw(json_values))
            # what json can carry (NaN and infinities included, as Python writes them)
            test(project, json.loads(json.dumps(d)))

        return run

    return decorate


@_fuzzed_projects(1000)
def test_fuzzed_project_files_load_cleanly_or_are_refused_with_a_project_error(project, d):
    from harmovid_engine.engines import create_engine
    from harmovid_engine.errors import ProjectError
    from harmovid_engine.project import Project

    try:
        proj = Project.from_dict(project.folder, d)
    except ProjectError:
        return
    assert proj.problems() == []
    create_engine(proj.render.engine, proj.render.engine_settings)
    proj.placement.at(3)
    Project.from_dict(project.folder, proj.to_dict())  # what it would save opens again


@pytest.mark.heavy
@_fuzzed_projects(40)
def test_fuzzed_project_files_that_load_render(project, d):
    from harmovid_engine.errors import HarmoVidError, ProjectError
    from harmovid_engine.project import Project
    from harmovid_engine.render import Compositor

    try:
        proj = Project.from_dict(project.folder, d)
    except ProjectError:
        return
    try:
        with Compositor(proj) as comp:
            rgb = comp.layers(0).composite
    except HarmoVidError:  # media that a mutated path no longer finds: a clear error, fine
        return
    assert np.isfinite(rgb).all()


def test_fuzzed_matte_files_import_cleanly_or_are_refused(tmp_path):
    """Matte arrays of any dtype, shape and values (what other tools write): frames in [0, 1] of the talent's size,
    or a clean MatteError; never a crash, never a binarised soft edge."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    from harmovid_engine.errors import MatteError
    from harmovid_engine.matte import read_matte_frames

    dtypes = st.sampled_from([np.uint8, np.uint16, np.int16, np.int32, np.int64, np.float16, np.float32,
                              np.float64, np.bool_])
    shapes = st.sampled_from([(4, 12, 20), (3, 12, 20), (4, 6, 10), (4, 12, 21), (4, 12), (2, 4, 12, 20)])

    @settings(max_examples=300, deadline=None)
    @given(arr=hnp.arrays(dtypes, shapes, elements=None))
    def check(arr):
        path = tmp_path / "fuzz.alpha.npz"
        np.savez_compressed(path, alpha=arr)
        try:
            frames = list(read_matte_frames(path, 20, 12, 4))
        except MatteError:
            return
        assert len(frames) == 4
        for f in frames:
            assert f.shape == (12, 20) and f.dtype == np.float32 and np.isfinite(f).all()
            assert f.min() >= 0 and f.max() <= 1

    check()


def _mutations():
    """A damaged copy of a file, as disks, downloads and bad cards make them: cut short, a run of noise, bytes lost."""
    from hypothesis import strategies as st

    where = st.floats(0.0, 1.0)
    return st.lists(st.one_of(
        st.tuples(st.just("truncate"), where),
        st.tuples(st.just("noise"), where, st.integers(1, 4096), st.integers(0, 2**32 - 1)),
        st.tuples(st.just("delete"), where, st.integers(1, 2048)),
        st.tuples(st.just("flip"), where, st.integers(0, 7)),
    ), min_size=1, max_size=3)


def _damage(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for op in ops:
        at = int(op[1] * max(len(b) - 1, 0))
        if op[0] == "truncate":
            del b[at:]
        elif op[0] == "noise":
            b[at:at + op[2]] = np.random.default_rng(op[3]).integers(0, 256, op[2], dtype=np.uint8).tobytes()
        elif op[0] == "delete":
            del b[at:at + op[2]]
        elif b:
            b[min(at, len(b) - 1)] ^= 1 << op[2]
    return bytes(b)


def _fuzz_media(tmp_path, original, max_examples):
    """Open a damaged copy and read it as a render would: frames of the probed size, or one clean MediaError."""
    from hypothesis import HealthCheck, given, settings

    from harmovid_engine.errors import MediaError
    from harmovid_engine.media import open_source

    data = original.read_bytes()

    @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(ops=_mutations())
    def check(ops):
        path = tmp_path / ("fuzz" + original.suffix)
        path.write_bytes(_damage(data, ops))
        try:
            with open_source(path) as src:
                w, h = src.size
                n = 1 if src.is_still else len(src)
                shapes = {src.read(k).shape[:2] for k in sorted({0, n // 2, n - 1})}
                if not src.is_still:
                    shapes |= {f.shape[:2] for _, f in src.frames()}
        except MediaError:
            return
        assert shapes == {(h, w)}

    check()


def test_fuzzed_video_files_decode_cleanly_or_are_refused(tmp_path):
    _fuzz_media(tmp_path, gop_clip(tmp_path / "v.mp4", n=30), 150)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_fuzzed_image_files_load_cleanly_or_are_refused(tmp_path, ext):
    from conftest import index_frame

    still = tmp_path / f"plate{ext}"
    cv2.imwrite(str(still), index_frame(3, 160, 96))
    _fuzz_media(tmp_path, still, 300)


# -- the system says no: exit 2, one line naming what the editor asked for, nothing left -----------------------------
@pytest.mark.parametrize("name", ["out.mp4", "frames"])
def test_a_read_only_destination_is_exit_2_naming_the_destination(project, tmp_path, capsys, monkeypatch, name):
    import errno
    import tempfile as tf

    from harmovid_engine.media import writer

    def refuse(*a, dir=None, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(Path(dir) / f".{name}.123.abc.part"))

    class ReadOnly:  # the tempfile module as a read-only folder answers it
        mkstemp = mkdtemp = staticmethod(refuse)
        TemporaryFile = staticmethod(tf.TemporaryFile)

    dest = tmp_path / "ro"
    dest.mkdir()
    monkeypatch.setattr(writer, "tempfile", ReadOnly)
    rc, err = render_cli(project, dest / name, capsys=capsys)
    assert rc == 2 and err.strip() == f"harmovid: error: Permission denied: '{dest / name}'"
    assert list(dest.iterdir()) == []


def test_a_full_disk_during_propagation_is_exit_2_and_leaves_no_half_matte(project, capsys, monkeypatch):
    import builtins
    import errno

    from harmovid_engine.matte import store
    from harmovid_engine.project import Project

    before = digest(project.mattes_dir)
    writes = []

    class Full:
        def __init__(self, path):
            self.path = path

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, data):
            Path(self.path).write_bytes(data[: len(data) // 2])  # what fits before the disk fills
            raise OSError(errno.ENOSPC, "No space left on device")

    def open_(path, mode="r", *a, **k):
        writes.append(path)
        if len(writes) > 2 and "w" in mode:
            return Full(path)
        return builtins.open(path, mode, *a, **k)

    monkeypatch.setattr(store, "open", open_, raising=False)
    rc = cli.main(["matte", "propagate", str(project.folder), "--keyframes", "0", "--quiet"])
    err = capsys.readouterr().err
    full = project.mattes_dir / "alpha_00002.png"
    assert rc == 2 and err.strip() == f"harmovid: error: No space left on device: '{full}'"
    left = sorted(p.name for p in project.mattes_dir.iterdir())
    assert left == [f"alpha_{i:05d}.png" for i in range(6)]  # no temporary file, no half-written matte
    for i in range(6):
        assert cv2.imread(str(project.mattes_dir / left[i]), cv2.IMREAD_UNCHANGED) is not None
    assert len(writes) == 3 and before != digest(project.mattes_dir)  # two frames were propagated before it filled
    Project.open(project.folder)  # the project still opens
