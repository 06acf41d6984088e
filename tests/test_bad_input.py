"""Never lose an editor's work or footage: destinations a render must refuse, and what it may replace."""

import hashlib
import os

import cv2
import numpy as np
import pytest

from harmovid_engine import cli
from harmovid_engine.media.writer import MARKER, PngSequenceWriter
from harmovid_engine.project import create_project
from harmovid_engine.render.destination import DestinationError, DestinationExists, check_destination

from conftest import ffmpeg, write_clip


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
