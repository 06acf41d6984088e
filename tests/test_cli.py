"""The harmovid command line, end to end on the shared footage."""

import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from harmovid_engine import cli
from harmovid_engine.media import open_source, probe


def run_cli(*args, check_rc=None):
    res = subprocess.run([sys.executable, "-m", "harmovid_engine", *map(str, args)], capture_output=True, text=True)
    if check_rc is not None:
        assert res.returncode == check_rc, res.stderr
    return res


@pytest.mark.parametrize("command", ["new", "render", "info", "demo"])
def test_every_command_has_help(command):
    res = run_cli(command, "--help", check_rc=0)
    assert "usage: harmovid " + command in res.stdout


@pytest.mark.parametrize("args", [
    ["info", "/nonexistent/clip.mp4"],
    ["render", "/nonexistent/project", "-o", "/tmp/x.mp4"],
    ["new", "{tmp}/p", "--fg", "{tmp}/empty.mp4", "--plate", "{tmp}/empty.mp4"],
    ["new", "{tmp}/p", "--fg", "{data}/clips/d3.mp4", "--plate", "{data}/plates/plate_1.jpg", "--key", "green"],
    ["new", "{tmp}/p", "--fg", "{data}/clips/d3.mp4", "--plate", "{data}/plates/plate_1.jpg",
     "--matte", "{data}/clips/d0.alpha.npz"],
])
def test_bad_input_exits_2_with_one_clear_line(args, tmp_path, data_dir):
    (tmp_path / "empty.mp4").write_bytes(b"")
    args = [a.format(tmp=tmp_path, data=data_dir) for a in args]
    res = run_cli(*args, check_rc=2)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("harmovid: error: ") and "Traceback" not in res.stderr
    assert not (tmp_path / "p").exists()  # a failed `new` leaves nothing behind


def test_internal_errors_exit_1_without_traceback(monkeypatch, capsys):
    def boom(args):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(cli, "cmd_info", boom)
    assert cli.main(["info", "x"]) == 1
    err = capsys.readouterr().err
    assert "internal error" in err and "Traceback" not in err


@pytest.mark.heavy
def test_green_screen_talent_layer_prores(tmp_path, data_dir):
    proj, out = tmp_path / "p", tmp_path / "p.mov"
    run_cli("new", proj, "--fg", data_dir / "clips/d0.mp4", "--plate", data_dir / "plates/plate_11.jpg",
            "--key", "green", check_rc=0)
    # the key's own edges, without the relight: under plate_11's cyan/blue neon the directional relight gives the
    # talent's right-hand edge a cyan rim on purpose, which is not spill (checked: engine 'none' leaves no excess)
    run_cli("render", proj, "-o", out, "--format", "prores4444", "--layer", "talent", "--engine", "none", "-q",
            check_rc=0)
    info = probe(out)
    assert (info.width, info.height) == (896, 1152) and info.frame_count == 78 and info.fps == Fraction(25)
    assert info.has_alpha and info.codec == "prores"
    src = open_source(out)
    rgb, alpha = src.read_linear(40)
    # the talent (512 px) is scaled to the plate's height (2.25x), centred, its sides cropped
    assert alpha[:300, :10].max() < 0.01 and alpha[600, 448] > 0.99
    # no green fringe: on the soft edge, straight colour is not greener than red/blue
    edge = (alpha > 0.1) & (alpha < 0.9)
    assert edge.sum() > 1000
    g_excess = rgb[edge][:, 1] - np.maximum(rgb[edge][:, 0], rgb[edge][:, 2])
    assert np.percentile(g_excess, 99) < 0.02


@pytest.mark.heavy
def test_imported_matte_over_a_moving_plate_with_another_rate(tmp_path, data_dir):
    proj, out = tmp_path / "p", tmp_path / "p.mov"
    run_cli("new", proj, "--fg", data_dir / "clips/d3.mp4", "--plate", data_dir / "plates/plate_bikes.mp4",
            "--matte", data_dir / "clips/d3.alpha.npz", check_rc=0)
    run_cli("render", proj, "-o", out, "--layer", "talent", "-q", check_rc=0)
    info = probe(out)
    # output: the plate's size, the talent's frame count and rate (the 25 fps plate is retimed to 30 fps)
    assert (info.width, info.height) == (640, 272) and info.frame_count == 180 and info.fps == Fraction(30)
    ref = np.load(data_dir / "clips/d3.alpha.npz")["alpha"][100].astype(np.float32) / 255
    import cv2

    expected = cv2.resize(ref, (272, 272), interpolation=cv2.INTER_AREA)
    _, alpha = open_source(out).read_linear(100)
    assert np.abs(alpha[:, 184:456] - expected).mean() < 0.02
    comp = tmp_path / "c.mp4"
    run_cli("render", proj, "-o", comp, "--start", "10", "--end", "19", "-q", check_rc=0)
    assert probe(comp).frame_count == 10


def test_info_on_a_project(tmp_path, data_dir):
    proj = tmp_path / "p"
    run_cli("new", proj, "--fg", data_dir / "clips/d0.mp4", "--plate", data_dir / "plates/plate_11.jpg",
            "--key", "green", check_rc=0)
    res = run_cli("info", proj, "--json", check_rc=0)
    import json

    d = json.loads(res.stdout)
    assert d["matte"]["source"] == "key" and d["talent_info"]["frame_count"] == 78 and d["missing_media"] == []


def test_demo_copy_renders(tmp_path):
    dest = tmp_path / "demo"
    res = run_cli("demo", dest, check_rc=0)
    assert res.stdout.strip() == str(dest)
    run_cli("render", dest, "-o", tmp_path / "demo.mp4", "--end", "4", "-q", check_rc=0)
    assert probe(tmp_path / "demo.mp4").frame_count == 5


def test_render_settings_and_engine_flags_are_saved_and_checked(tmp_path, data_dir):
    import json

    proj = tmp_path / "p"
    run_cli("new", proj, "--fg", data_dir / "clips/d0.mp4", "--plate", data_dir / "plates/plate_11.jpg",
            "--key", "green", "--no-shadow", "--no-deflicker", "--set", "colour=0.5", "--set",
            "light_wrap_strength=0.1", check_rc=0)
    render = json.loads((proj / "project.json").read_text())["render"]
    assert render["engine"] == "analytic" and render["shadow"] is False and render["deflicker"] is False
    assert render["engine_settings"] == {"colour": 0.5} and render["light_wrap_strength"] == 0.1
    bad = run_cli("render", proj, "-o", tmp_path / "x.mp4", "--set", "colr=1", check_rc=2)
    assert "no setting(s) colr" in bad.stderr
    bad = run_cli("render", proj, "-o", tmp_path / "x.mp4", "--set", "shadow_opacity=dark", check_rc=2)
    assert "expected a float" in bad.stderr
    for setting, message in (("deflicker_radius=1000", "deflicker_radius must be between 1 and 48"),
                             ("deflicker_radius=0", "deflicker_radius must be between 1 and 48"),
                             ("shadow_opacity=7", "shadow_opacity must be between 0.0 and 1.0"),
                             ("crf=99", "crf must be between 0 and 51"),
                             ("preset=turbo", "preset must be one of")):
        bad = run_cli("render", proj, "-o", tmp_path / "x.mp4", "--set", setting, check_rc=2)
        assert message in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli("new", tmp_path / "q", "--fg", data_dir / "clips/d0.mp4", "--plate", data_dir / "plates/plate_11.jpg",
                  "--set", "deflicker_radius=-3", check_rc=2)
    assert "deflicker_radius must be between" in bad.stderr and not (tmp_path / "q").exists()
    run_cli("render", proj, "-o", tmp_path / "none.mp4", "--engine", "none", "--end", "2", "-q", check_rc=0)
    assert probe(tmp_path / "none.mp4").frame_count == 3
    assert not (tmp_path / "x.mp4").exists()
    bad = run_cli("render", proj, "-o", tmp_path / "x.avi2", check_rc=2)
    assert "cannot tell the format" in bad.stderr
