"""Learned deflicker: checkpoints, deterministic inference, training (loss goes down, resume), the render path."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from harmovid_engine.colour import srgb_to_linear, to_linear
from harmovid_engine.errors import ModelError

torch = pytest.importorskip("torch")

from harmovid_engine.deflicker.learned import (DeflickerConfig, LearnedDeflicker, build_net,  # noqa: E402
                                               load_checkpoint, save_checkpoint)


def talent_clip(n=24, w=96, h=96, seed=0):
    """A skin-toned textured head moving over a grey background, with its mattes (uint8 RGB, float alpha)."""
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.random((h, w + 40)).astype(np.float32), (0, 0), 2)
    frames, mattes = [], []
    for t in range(n):
        m = np.zeros((h, w), np.uint8)
        cv2.ellipse(m, (40 + t, 50), (22, 30), 0, 0, 360, 1, -1)
        img = np.full((h, w, 3), 90, np.float32)
        skin = np.array([200, 150, 120], np.float32) * (0.8 + 0.4 * tex[:, t: t + w, None])
        img[m > 0] = skin[m > 0]
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
        mattes.append(cv2.GaussianBlur(m.astype(np.float32), (0, 0), 1.0))
    return frames, mattes


@pytest.fixture
def tiny_data(tmp_path):
    from harmovid_engine.media.writer import open_writer

    root = tmp_path / "data"
    (root / "clips").mkdir(parents=True)
    (root / "plates").mkdir()
    for k, name in enumerate(["a", "b"]):
        frames, mattes = talent_clip(seed=k)
        with open_writer("h264", root / "clips" / f"{name}.mp4", 96, 96, 25, crf=8) as wr:
            for f in frames:
                wr.write(to_linear(f))
        np.savez(root / "clips" / f"{name}.alpha.npz", alpha=(np.array(mattes) * 255).astype(np.uint8))
    plate = np.zeros((120, 90, 3), np.uint8)
    plate[:] = (40, 60, 200)  # BGR: a warm plate
    cv2.imwrite(str(root / "plates" / "plate_1.jpg"), plate)
    return root


@pytest.fixture
def small_model(tmp_path):
    torch.manual_seed(0)
    cfg = DeflickerConfig(radius=2, size=32, width=8)
    path = tmp_path / "m.pt"
    save_checkpoint(path, build_net(cfg), cfg)
    return path


def flickering_sequence(n=16):
    frames, mattes = talent_clip(n)
    lin = [srgb_to_linear(f.astype(np.float32) / 255) for f in frames]
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:96, 0:96] / 95.0 - 0.5
    out = []
    for t, f in enumerate(lin):
        ramp = 1 + rng.normal(0, 0.12) * 2 * (np.cos(t) * xx + np.sin(t) * yy)  # local shading that jitters
        out.append((f * np.exp(rng.normal(0, 0.1)) * ramp[..., None]).astype(np.float32))
    return out, lin, mattes


def test_checkpoint_round_trip_and_deterministic_inference(small_model, tmp_path):
    out, lin, mattes = flickering_sequence()
    a = LearnedDeflicker(small_model, base_radius=2).run_sequence(out, lin, mattes)
    b = LearnedDeflicker(small_model, base_radius=2).run_sequence(out, lin, mattes)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    net, cfg, data = load_checkpoint(small_model)
    again = tmp_path / "again.pt"
    save_checkpoint(again, net, cfg, {"note": "copy"})
    c = LearnedDeflicker(again, base_radius=2).run_sequence(out, lin, mattes)
    np.testing.assert_array_equal(a[5], c[5])
    assert load_checkpoint(again)[2]["meta"] == {"note": "copy"}


def test_learned_deflicker_steadies_local_flicker(small_model):
    from harmovid_engine.bench.metrics import mean_luma

    out, lin, mattes = flickering_sequence(20)
    fixed = LearnedDeflicker(small_model, base_radius=2).run_sequence(out, lin, mattes)
    fg = [m > 0.5 for m in mattes]

    def jumps(frames):
        mu = [mean_luma(f, m) for f, m in zip(frames, fg)]
        ref = [mean_luma(f, m) for f, m in zip(lin, fg)]
        return np.mean([abs((mu[t] - mu[t - 1]) - (ref[t] - ref[t - 1])) for t in range(1, len(mu))])

    assert jumps(fixed) < 0.5 * jumps(out)
    # detail is kept: the correction is a smooth field, so the ratio to the input is smooth
    ratio = np.log(fixed[10][fg[10]] / np.maximum(out[10][fg[10]], 1e-4))
    assert ratio.std() < 0.2


def test_bad_checkpoints_are_clear_errors(tmp_path, small_model):
    with pytest.raises(ModelError, match="does not exist"):
        LearnedDeflicker(tmp_path / "none.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="not a readable"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ModelError, match="not a HarmoVid"):
        load_checkpoint(other)
    data = torch.load(small_model, weights_only=True)
    data["version"] = 99
    newer = tmp_path / "newer.pt"
    torch.save(data, newer)
    with pytest.raises(ModelError, match="version 99"):
        load_checkpoint(newer)
    data["version"] = 1
    data["config"]["width"] = 16  # weights no longer fit the network
    wrong = tmp_path / "wrong.pt"
    torch.save(data, wrong)
    with pytest.raises(ModelError, match="does not match"):
        load_checkpoint(wrong)


def test_training_lowers_the_loss(tiny_data, tmp_path):
    from harmovid_engine.deflicker.train import Trainer, TrainSettings

    ts = TrainSettings(steps=1, batch=4, frames=24, plates=1, val_clips=["b"], lr=3e-3)
    tr = Trainer(tiny_data, tmp_path / "t.pt", ts, cfg=DeflickerConfig(radius=2, size=32, width=8))
    tr.prepare()
    assert [c.name for c in tr.train] == ["a"] and [c.name for c in tr.val] == ["b"]
    batch = tr._batch(tr.train, np.random.default_rng(0), 4)

    def fixed_loss():
        return float(tr.loss(batch, np.random.default_rng(1)).detach())

    before = fixed_loss()
    for _ in range(40):
        loss = tr.loss(batch, np.random.default_rng(1))
        tr.opt.zero_grad()
        loss.backward()
        tr.opt.step()
    assert fixed_loss() < 0.9 * before


def test_train_cli_writes_checkpoint_curve_and_resumes(tiny_data, tmp_path):
    from harmovid_engine.cli import main

    out = tmp_path / "run" / "d.pt"
    args = ["train", "deflicker", "--data", str(tiny_data), "--out", str(out), "--frames", "24", "--plates", "1",
            "--batch", "2", "-q"]
    assert main(args + ["--steps", "3"]) == 0
    assert out.exists() and out.with_suffix(".loss.png").exists() and out.with_suffix(".log.json").exists()
    net, cfg, data = load_checkpoint(out)
    assert data["step"] == 3 and data["meta"]["val_clips"] == ["b"]
    assert main(args + ["--steps", "3"]) == 2  # refuses to overwrite a run silently
    assert main(args + ["--steps", "5", "--resume"]) == 0
    assert load_checkpoint(out)[2]["step"] == 5
    assert main(["train", "deflicker", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.pt"),
                 "-q"]) == 2


def test_render_with_learned_deflicker_chunked_equals_long(tmp_path, small_model, monkeypatch):
    """The learned stage declares its window: frames rendered in pieces equal one long render."""
    from harmovid_engine.media.writer import open_writer
    from harmovid_engine.project import create_project
    from harmovid_engine.render import Compositor

    monkeypatch.setenv("HARMOVID_DEFLICKER_MODEL", str(small_model))
    out, lin, mattes = flickering_sequence(14)
    talent = tmp_path / "t.mp4"
    with open_writer("h264", talent, 96, 96, 25, crf=8) as wr:
        for f in out:
            wr.write(f)
    np.savez(tmp_path / "t.alpha.npz", alpha=(np.array(mattes) * 255).astype(np.uint8))
    plate = tmp_path / "p.png"
    cv2.imwrite(str(plate), np.full((96, 96, 3), 80, np.uint8))
    proj = create_project(tmp_path / "proj", talent, plate, matte=tmp_path / "t.alpha.npz")
    proj.render.deflicker_method = "learned"
    proj.render.deflicker_radius = 2
    a = Compositor(proj)
    assert a.radius >= 2 + 2
    long = [a.layers(i).composite for i in range(14)]
    b = Compositor(proj)
    piece = [b.layers(i).composite for i in (9, 10, 11)]
    for x, y in zip(piece, long[9:12]):
        np.testing.assert_allclose(x, y, atol=1e-5)
    proj.render.deflicker_method = "analytic"
    c = Compositor(proj)
    assert not np.allclose(c.layers(7).composite, long[7])  # the learned stage did something
    proj.render.deflicker_method = "learned"
    monkeypatch.setenv("HARMOVID_DEFLICKER_MODEL", str(tmp_path / "missing.pt"))
    with pytest.raises(ModelError, match="does not exist"):
        Compositor(proj)


def test_cli_selects_the_learned_deflicker(tmp_path):
    from harmovid_engine.cli import main
    from harmovid_engine.media.writer import open_writer
    from harmovid_engine.project import Project

    talent = tmp_path / "t.mp4"
    with open_writer("h264", talent, 64, 64, 25) as wr:
        for k in range(4):
            wr.write(to_linear(np.full((64, 64, 3), 50 + k, np.uint8)))
    plate = tmp_path / "p.png"
    cv2.imwrite(str(plate), np.full((64, 64, 3), 80, np.uint8))
    assert main(["new", str(tmp_path / "a"), "--fg", str(talent), "--plate", str(plate), "--deflicker", "learned",
                 "-q"]) == 0
    p = Project.open(tmp_path / "a")
    assert p.render.deflicker and p.render.deflicker_method == "learned"
    with pytest.raises(SystemExit) as e:  # contradictory flags are refused by the parser (usage, status 2)
        main(["new", str(tmp_path / "b"), "--fg", str(talent), "--plate", str(plate), "--deflicker", "learned",
              "--no-deflicker", "-q"])
    assert e.value.code == 2
