"""Project folders: create/open/save, relative media, atomic saves, autosave recovery, refusing bad files."""

import json
import os
import shutil

import pytest

from conftest import write_clip
from harmovid_engine.errors import ProjectError
from harmovid_engine.project import Placement, Project, create_project
from harmovid_engine.project import model as project_model


@pytest.fixture
def project(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    talent = write_clip(media / "talent.mp4", 10, w=64, h=48)
    plate = write_clip(media / "plate.mp4", 10, w=128, h=96)
    return create_project(tmp_path / "proj", talent, plate)


def test_create_open_round_trip_with_relative_media(project, tmp_path):
    data = json.loads(project.file.read_text())
    assert data["schema"] == project_model.SCHEMA_VERSION
    assert data["talent"]["path"] == os.path.join("..", "media", "talent.mp4")
    again = Project.open(project.folder)
    assert again.to_dict() == project.to_dict()
    # Moving the project together with its media keeps working (paths are relative).
    shutil.move(str(tmp_path), str(tmp_path.parent / "moved"))
    moved = Project.open(tmp_path.parent / "moved" / "proj")
    assert moved.missing_media() == [] and moved.talent_path.exists()
    shutil.move(str(tmp_path.parent / "moved"), str(tmp_path))


def test_default_placement_rules():
    same = Placement.default((100, 50), (100, 50))
    assert same.at(0) == (0.0, 0.0, 1.0)
    fit = Placement.default((100, 50), (300, 200))  # scaled to plate height, centred, bottom-aligned
    x, y, s = fit.at(0)
    assert s == 4.0 and x == (300 - 400) / 2 and y == 0.0
    p = Placement()
    p.set_key(0, 0, 0, 1)
    p.set_key(10, 10, 20, 2)
    assert p.at(5) == (5, 10, 1.5) and p.at(-3) == (0, 0, 1) and p.at(99) == (10, 20, 2)
    # a picture area inside black bars (x0, y0, x1, y1) is what gets fitted, centred and bottom-aligned
    x, y, s = Placement.default((100, 50), (300, 200), (10, 0, 90, 40)).at(0)
    assert s == 5.0 and x + 50 * s == 150 and y + 40 * s == 200
    assert Placement.default((100, 50), (100, 50), (0, 0, 100, 40)).at(0) != (0.0, 0.0, 1.0)


def test_keyed_talent_with_a_black_bar_leaves_no_strip_of_plate_under_it(tmp_path, data_dir):
    """d0 has a black bar under the picture: the keyer excludes it, and the default placement fits the picture,
    so the talent's cut-off body reaches the plate's bottom edge (no line of plate shows under it)."""
    import cv2
    import numpy as np

    from harmovid_engine.render import Compositor

    plate = tmp_path / "plate.png"
    cv2.imwrite(str(plate), np.full((360, 640, 3), 90, np.uint8))
    proj = create_project(tmp_path / "p", data_dir / "clips" / "d0.mp4", plate, key="green")
    gx, gy, gw, gh = proj.matte.key["garbage"]
    assert gy + gh < 512  # the bar is there
    x, y, s = proj.placement.at(0)
    assert y + (gy + gh) * s == 360
    with Compositor(proj) as comp:
        alpha = comp.layers(0).alpha
    body = alpha[-40:-1, 300:340].mean()
    assert body > 0.95 and alpha[-1, 300:340].mean() > 0.9 * body


def test_missing_media_is_reported_clearly(project, tmp_path):
    (tmp_path / "media" / "plate.mp4").unlink()
    proj = Project.open(project.folder)  # opening still works, so the user can relink
    assert len(proj.missing_media()) == 1 and "plate" in proj.missing_media()[0]
    with pytest.raises(ProjectError, match="plate 'media/plate.mp4'|plate '../media/plate.mp4'"):
        proj.check_media()


def test_newer_schema_is_refused_and_left_untouched(project):
    data = json.loads(project.file.read_text())
    data["schema"] = project_model.SCHEMA_VERSION + 1
    project.file.write_text(json.dumps(data))
    before = (project.file.read_bytes(), project.file.stat().st_mtime_ns, sorted(os.listdir(project.folder)))
    with pytest.raises(ProjectError, match="newer HarmoVid"):
        Project.open(project.folder)
    after = (project.file.read_bytes(), project.file.stat().st_mtime_ns, sorted(os.listdir(project.folder)))
    assert before == after


def test_schema_1_deflicker_window_reads_as_the_same_local_window(project):
    """Schema 1 used ``deflicker_radius`` for the deflicker's global and local terms; schema 2 uses it for the global
    window and half of it for the local terms. An old project keeps its local window (r -> 2r); the file is not
    rewritten until the user saves, then as schema 2."""
    data = json.loads(project.file.read_text())
    data["schema"] = 1
    data["render"]["deflicker_radius"] = 5
    project.file.write_text(json.dumps(data))
    before = project.file.read_bytes()
    proj = Project.open(project.folder)
    assert proj.render.deflicker_radius == 10
    assert project.file.read_bytes() == before
    proj.save()
    again = json.loads(project.file.read_text())
    assert again["schema"] == 2 and again["render"]["deflicker_radius"] == 10
    assert Project.open(project.folder).render.deflicker_radius == 10  # read back as schema 2: not doubled again
    data["render"]["deflicker_radius"] = 30  # the old maximum opens at the new one
    project.file.write_text(json.dumps(data))
    assert Project.open(project.folder).render.deflicker_radius == 48


def test_out_of_range_render_settings_in_a_file_are_refused_untouched(project):
    data = json.loads(project.file.read_text())
    data["render"]["deflicker_radius"] = 5000  # a render would keep ~5000 talent frames in memory
    project.file.write_text(json.dumps(data))
    before = project.file.read_bytes()
    with pytest.raises(ProjectError, match="deflicker_radius must be between 1 and 48"):
        Project.open(project.folder)
    assert project.file.read_bytes() == before


def test_inspector_offers_the_ranges_the_project_accepts():
    from app.inspector import FIELDS

    offered = {key.split(".", 1)[1]: rng[:2] for _, fields in FIELDS for key, _, kind, rng in fields
               if key.startswith("render.") and kind in ("int", "float")}
    assert offered == {k: v for k, v in project_model.RENDER_LIMITS.items() if k in offered}
    assert set(offered) == set(project_model.RENDER_LIMITS) - {"crf"}  # crf: set with --set or in the file


@pytest.mark.parametrize("payload", ['{"schema": 1, "talent": ', "[1, 2, 3]", '{"schema": 1}', "",
                                     '{"schema": 2, "talent": {"path": "a"}, "plate": {"path": "b"}, "render": 7}'])
def test_corrupt_project_files_are_refused_untouched(project, payload):
    project.file.write_text(payload)
    with pytest.raises(ProjectError):
        Project.open(project.folder)
    assert project.file.read_text() == payload


def test_atomic_save_survives_a_crash_mid_write(project, monkeypatch):
    original = project.file.read_bytes()
    project.placement.set_key(3, 5.0, 6.0, 1.5)

    def crash(*_):
        raise OSError("power cut")

    monkeypatch.setattr(project_model.os, "fsync", crash)
    with pytest.raises(OSError):
        project.save()
    monkeypatch.undo()
    assert project.file.read_bytes() == original  # the old file, whole
    assert [p.name for p in project.folder.iterdir() if p.name.endswith(".tmp")] == []
    project.save()
    assert Project.open(project.folder).placement.at(3) == (5.0, 6.0, 1.5)


def test_autosave_offers_recovery_after_a_crash(project):
    assert not project.has_recovery()
    project.placement.set_key(0, 7.0, 8.0, 2.0)
    project.autosave()  # ... and then the app dies without saving
    reopened = Project.open(project.folder)
    assert reopened.placement.at(0) != (7.0, 8.0, 2.0)
    assert reopened.has_recovery()
    recovered = reopened.recover()
    assert recovered.placement.at(0) == (7.0, 8.0, 2.0)
    recovered.save()
    assert not Project.open(project.folder).has_recovery()


def test_opening_something_that_is_not_a_project(tmp_path):
    with pytest.raises(ProjectError, match="does not exist"):
        Project.open(tmp_path / "nope")
    with pytest.raises(ProjectError, match="not a HarmoVid project"):
        Project.open(tmp_path)


def test_create_refuses_to_overwrite_and_cleans_up_on_failure(project, tmp_path):
    with pytest.raises(ProjectError, match="already holds a project"):
        create_project(project.folder, project.talent_path, project.plate_path)
    bad_matte = tmp_path / "m.npz"
    bad_matte.write_bytes(b"garbage")
    from harmovid_engine.errors import MatteError

    with pytest.raises(MatteError):
        create_project(tmp_path / "fresh", project.talent_path, project.plate_path, matte=bad_matte)
    assert not (tmp_path / "fresh").exists()
