"""The diffusion harmonizer with the tiny configuration on the CPU: conditioning, data recipe, training, inference."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from harmovid_engine.diffusion.model import DiffusionConfig, HarmoVidModel, widen_input  # noqa: E402
from harmovid_engine.diffusion.sampling import blend_weights, harmonize_clip, windows  # noqa: E402
from harmovid_engine.errors import Cancelled, ModelError  # noqa: E402


def diffusion_project(tmp_path, model, frames: int = 9, steps: int = 3):
    """A 64 px project whose engine is ``harmovid`` with ``model`` saved as its checkpoint."""
    import cv2

    from harmovid_engine.colour import to_linear
    from harmovid_engine.media.writer import open_writer
    from harmovid_engine.project import create_project

    model.save(tmp_path / "ck")
    talent = tmp_path / "t.mp4"
    with open_writer("h264", talent, 64, 64, 25, crf=10) as wr:
        for k in range(frames):
            wr.write(to_linear(np.full((64, 64, 3), 60 + 10 * k, np.uint8)))
    plate = tmp_path / "p.png"
    cv2.imwrite(str(plate), np.full((64, 64, 3), 120, np.uint8))
    proj = create_project(tmp_path / "proj", talent, plate)
    proj.render.engine = "harmovid"
    proj.render.engine_settings = {"checkpoint": str(tmp_path / "ck"), "steps": steps}
    proj.save()
    return proj


@pytest.fixture(scope="module")
def tiny():
    return HarmoVidModel.tiny(seed=0)


def video(f=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(f, 3, 64, 64, generator=g) * 2 - 1


def test_zero_initialised_channels_leave_the_pretrained_output_unchanged():
    from diffusers import CogVideoXTransformer3DModel

    from harmovid_engine.diffusion.model import TINY_TRANSFORMER

    torch.manual_seed(1)
    tr = CogVideoXTransformer3DModel(in_channels=4, out_channels=4, text_embed_dim=16, max_text_seq_length=8,
                                     sample_width=16, sample_height=16, sample_frames=9, **TINY_TRANSFORMER).eval()
    x = torch.randn(1, 3, 4, 16, 16)
    text = torch.randn(1, 8, 16)
    t = torch.tensor([300])
    with torch.no_grad():
        before = tr(hidden_states=x, encoder_hidden_states=text, timestep=t).sample
        widen_input(tr, 9)
        assert tr.config.in_channels == 13 and tr.patch_embed.proj.in_channels == 13
        cond = torch.randn(1, 3, 9, 16, 16) * 5
        after = tr(hidden_states=torch.cat([x, cond], 2), encoder_hidden_states=text, timestep=t).sample
    torch.testing.assert_close(after, before)


def test_conditioning_layout(tiny):
    comp, back = video(), video(seed=1)
    mask = torch.zeros(9, 1, 64, 64)
    mask[:, :, 16:48, 16:48] = 1
    cond = tiny.conditioning(comp[None], back[None], mask[None])
    c = tiny.cfg.latent_channels
    assert cond.shape == (1, 3, 2 * c + 1, 16, 16)
    m = cond[0, :, -1]
    assert m.min() >= 0 and m.max() <= 1
    assert (m[:, 8, 8] == 1).all() and (m[:, 0, 0] == 0).all()  # the mask is coverage on the latent grid
    assert tiny.predict(torch.randn(1, 3, c, 16, 16), cond, 500).shape == (1, 3, c, 16, 16)


def test_save_and_load_round_trip(tiny, tmp_path):
    tiny.save(tmp_path / "ck")
    back = HarmoVidModel.load(tmp_path / "ck")
    cond = tiny.conditioning(video()[None], video(seed=1)[None], torch.ones(1, 9, 1, 64, 64))
    z = torch.randn(1, 3, 4, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(back.predict(z, cond, 100), tiny.predict(z, cond, 100))
    with pytest.raises(ModelError, match="not a HarmoVid diffusion checkpoint"):
        HarmoVidModel.load(tmp_path)
    (tmp_path / "ck" / "harmovid.json").write_text('{"format": "harmovid-diffusion", "version": 7}')
    with pytest.raises(ModelError, match="v7"):
        HarmoVidModel.load(tmp_path / "ck")


def test_windows_cover_the_clip_with_a_partition_of_unity():
    for length, size, overlap in [(5, 3, 1), (13, 4, 2), (3, 3, 1), (20, 13, 4)]:
        spans = windows(length, size, overlap)
        assert spans[0][0] == 0 and spans[-1][1] == length
        total = np.zeros(length)
        for (s, e), w in zip(spans, blend_weights(length, spans)):
            assert len(w) == e - s and (w > 0).all()
            total[s:e] += w
        np.testing.assert_allclose(total, 1.0)


def test_two_window_inference_is_seamless(tiny):
    """If every window predicts its part of one global answer, the fused answer is that global answer exactly:
    fusion adds no seam. Then the real tiny model runs over two windows and gives a clip of the right length."""
    comp, back = video(17), video(17, seed=1)
    mask = torch.ones(17, 1, 64, 64)
    L = 5  # latent frames of 17 pixel frames; windows (0, 3) and (2, 5)
    glob = torch.linspace(-1, 1, L).view(1, L, 1, 1, 1).expand(1, L, 4, 16, 16)
    seen = []

    def predict(noisy, cond, t):
        # which window is this? the conditioning slice tells: compare with the full conditioning
        for s in range(L - noisy.shape[1] + 1):
            if torch.equal(cond, full[:, s: s + noisy.shape[1]]):
                seen.append(s)
                return glob[:, s: s + noisy.shape[1]].to(noisy.dtype)
        raise AssertionError("unknown window")

    full = tiny.conditioning(comp[None], back[None], mask[None])
    fused_inputs = []
    sched_step = tiny.scheduler.step

    def spy(model_output, t, sample, **kw):
        fused_inputs.append(model_output.clone())
        return sched_step(model_output, t, sample, **kw)

    tiny.scheduler.step = spy
    try:
        harmonize_clip(tiny, comp, back, mask, steps=2, predict=predict)
    finally:
        tiny.scheduler.step = sched_step
    assert sorted(set(seen)) == [0, 2]
    for f in fused_inputs:
        torch.testing.assert_close(f, glob.to(f.dtype))
    out = harmonize_clip(tiny, comp, back, mask, steps=2, overlap=1)
    assert out.shape == (17, 3, 64, 64) and torch.isfinite(out).all()


def test_previews_arrive_once_per_step_and_cancel_stops_within_one(tiny):
    from harmovid_engine.render.job import CancelToken

    comp, back, mask = video(), video(seed=1), torch.ones(9, 1, 64, 64)
    got = []
    harmonize_clip(tiny, comp, back, mask, steps=4, preview=lambda k, n, x: got.append((k, n, tuple(x.shape))))
    assert [g[0] for g in got] == [1, 2, 3, 4] and all(g[1] == 4 for g in got)
    assert got[0][2] == (9, 3, 32, 32)  # decoded at half resolution
    token = CancelToken()
    calls = []

    def predict(noisy, cond, t):
        calls.append(t)
        return tiny.predict(noisy, cond, t)

    with pytest.raises(Cancelled):
        harmonize_clip(tiny, comp, back, mask, steps=10, predict=predict,
                       preview=lambda k, n, x: token.cancel() if k == 2 else None, cancel=token)
    assert len(calls) == 2  # the step after the cancel never ran


@pytest.fixture(scope="module")
def trainer(tmp_path_factory, data_dir):
    from harmovid_engine.diffusion.train import DiffusionTrainer, DiffusionTrainSettings

    out = tmp_path_factory.mktemp("diff")
    ts = DiffusionTrainSettings(steps=1, max_frames=12, val_every=1, ckpt_every=1, clips=["d18", "d3"])
    return DiffusionTrainer(data_dir, out, ts)


def test_batches_follow_the_asymmetric_mask_rule(trainer):
    b = trainer.pairs.batch(4, np.random.default_rng(3))
    assert b["path"] == ["synthetic", "real", "synthetic", "real"]
    for path, mask, comp, target in zip(b["path"], b["mask"], b["composite"], b["target"]):
        soft = ((mask > 0) & (mask < 1)).float().mean()
        if path == "synthetic":
            assert soft == 0 and set(torch.unique(mask).tolist()) <= {0.0, 1.0}  # binary
        else:
            assert soft > 0.01  # the soft pseudo-alpha
            bg = mask[:, 0] < 0.01  # real path: outside the talent the input is the real video itself
            assert (comp - target).abs().permute(1, 0, 2, 3)[:, bg].max() < 5e-3
        assert comp.shape == (9, 3, 64, 64) and comp.min() >= -1 and comp.max() <= 1


def test_one_training_step_runs_both_paths_with_a_finite_loss(trainer):
    hist = trainer.run()
    assert trainer.step == 1 and np.isfinite(hist["train"][0][1]) and np.isfinite(hist["val"][0][1])
    assert (trainer.out / "latest" / "harmovid.json").exists() and (trainer.out / "loss.png").exists()
    loaded = HarmoVidModel.load(trainer.out / "latest")
    assert loaded.cfg == DiffusionConfig()
    from harmovid_engine.diffusion.train import DiffusionTrainer

    ts = trainer.ts
    ts.steps = 2
    again = DiffusionTrainer(trainer.data, trainer.out, ts, resume=True)
    assert again.step == 1 and len(again.history["train"]) == 1  # resumed, not restarted
    again.run()
    assert again.step == 2 and len(again.history["train"]) == 2


def test_render_with_the_diffusion_engine(tmp_path, tiny):
    import cv2

    from harmovid_engine.cli import main
    from harmovid_engine.colour import to_linear
    from harmovid_engine.media import probe
    from harmovid_engine.media.writer import open_writer

    tiny.save(tmp_path / "ck")
    talent = tmp_path / "t.mp4"
    rng = np.random.default_rng(0)
    with open_writer("h264", talent, 96, 80, 25, crf=10) as wr:
        for _ in range(11):
            wr.write(to_linear((rng.random((80, 96, 3)) * 200).astype(np.uint8)))
    plate = tmp_path / "p.png"
    cv2.imwrite(str(plate), np.full((80, 96, 3), 120, np.uint8))
    proj = tmp_path / "proj"
    assert main(["new", str(proj), "--fg", str(talent), "--plate", str(plate), "-q"]) == 0
    out = tmp_path / "o.mp4"
    assert main(["render", str(proj), "-o", str(out), "--engine", "harmovid", "--checkpoint", str(tmp_path / "ck"),
                 "--set", "steps=2", "-q"]) == 0
    assert probe(out).frame_count == 11
    assert main(["render", str(proj), "-o", str(out), "--engine", "harmovid", "-q"]) == 2
    assert main(["render", str(proj), "-o", str(out), "--engine", "harmovid", "--checkpoint", str(tmp_path),
                 "-q"]) == 2


def test_render_streams_denoising_previews_then_frames(tmp_path, tiny):
    from harmovid_engine.render import CancelToken, render

    proj = diffusion_project(tmp_path, tiny)
    got = list(render(proj, tmp_path / "o.mp4"))
    steps = [p for p in got if p.phase == "denoising"]
    assert [p.done for p in steps] == [1, 2, 3] and steps[0].preview.shape == (9, 3, 32, 32)
    assert [p.index for p in got if p.phase == "render"] == list(range(9))
    token = CancelToken()
    with pytest.raises(Cancelled):
        for p in render(proj, tmp_path / "o2.mp4", cancel=token):
            if p.phase == "denoising" and p.done == 1:
                token.cancel()
    assert not (tmp_path / "o2.mp4").exists()
