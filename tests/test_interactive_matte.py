"""Interactive mattes: tiny SAM sessions, checkpoints, the model manager (loopback HTTP), brush, edge refinement,
propagation (synthetic and real footage), and the ``harmovid matte`` CLI."""

from __future__ import annotations

import hashlib
import http.server
import threading

import cv2
import numpy as np
import pytest

from harmovid_engine.errors import Cancelled, MatteError, ModelError
from harmovid_engine.matte.brush import Stroke, apply_stroke
from harmovid_engine.matte.propagate import PropagationSettings, count_steps, propagate
from harmovid_engine.matte.refine import mask_iou, refine_edges
from harmovid_engine.matte.sam import Prompts, SamSession, build_sam, load_sam, prompts_from_matte, save_sam
from harmovid_engine.models import ModelManager, ModelSpec

torch = pytest.importorskip("torch")


# -- SAM ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_sam():
    torch.manual_seed(0)
    return build_sam("tiny")


def scene(w=200, h=150):
    rng = np.random.default_rng(1)
    img = (rng.random((h, w, 3)) * 60 + 40).astype(np.uint8)
    cv2.circle(img, (100, 80), 40, (220, 170, 140), -1)
    return img


def test_sam_session_caches_embeddings_and_answers_prompts(tiny_sam, tmp_path):
    s = SamSession(tiny_sam, cache_items=2, disk_cache=tmp_path / "emb")
    img = scene()
    assert s.embed("f0", img) is False and s.embed("f0", img) is True
    assert (s.hits, s.misses) == (1, 1)
    one = s.predict(Prompts([(100, 80)], [1]))
    assert one.masks.shape == (3, 150, 200) and one.masks.dtype == bool
    assert one.scores.shape == (3,) and one.best == int(np.argmax(one.scores))
    assert one.logits.shape == (3, 64, 64)  # 256 px model: low-res logits at a quarter size
    # more prompts -> a single answer; the previous logits feed the refinement
    pr = Prompts([(100, 80)], [1])
    pr.add(20, 20, positive=False)
    refined = s.predict(pr, mask_input=one.logits[one.best])
    assert refined.masks.shape == (1, 150, 200)
    assert not np.array_equal(refined.logits[0], s.predict(pr).logits[0])  # mask_input changes the answer
    box = s.predict(Prompts(box=(50, 30, 150, 130)))
    assert box.masks.shape == (1, 150, 200)
    # LRU of 2 in memory; the disk cache brings an evicted frame back without running the encoder
    s.embed("f1", img[::-1].copy())
    s.embed("f2", img[:, ::-1].copy())
    misses = s.misses
    assert s.embed("f0", img) is True and s.misses == misses
    assert len(list((tmp_path / "emb").glob("*.npz"))) == 3
    # a fresh session (next launch) starts from the disk cache
    s2 = SamSession(tiny_sam, disk_cache=tmp_path / "emb")
    assert s2.embed("f0", img) is True
    np.testing.assert_allclose(s2.predict(Prompts([(100, 80)], [1])).logits, one.logits, atol=0.05)


def test_sam_errors_are_clear(tiny_sam):
    s = SamSession(tiny_sam)
    with pytest.raises(MatteError, match="no frame"):
        s.predict(Prompts([(1, 1)], [1]))
    s.embed("x", scene())
    with pytest.raises(MatteError, match="add a point"):
        s.predict(Prompts())


def test_sam_checkpoint_round_trip_and_bad_files(tiny_sam, tmp_path):
    ck = tmp_path / "tiny.pth"
    save_sam(tiny_sam, ck, "tiny")
    loaded = load_sam(ck, device="cpu")
    img = scene()
    a, b = SamSession(tiny_sam), SamSession(loaded)
    a.embed("k", img)
    b.embed("k", img)
    pr = Prompts([(100, 80)], [1])
    np.testing.assert_array_equal(a.predict(pr).logits, b.predict(pr).logits)
    with pytest.raises(MatteError, match="does not exist"):
        load_sam(tmp_path / "missing.pth")
    trunc = tmp_path / "trunc.pth"
    trunc.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
    with pytest.raises(MatteError, match="not a readable SAM checkpoint"):
        load_sam(trunc)
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, other)
    with pytest.raises(MatteError, match="not a SAM checkpoint"):
        load_sam(other)


def test_prompts_from_matte_describe_the_matte():
    alpha = np.zeros((120, 160), np.float32)
    cv2.circle(alpha, (80, 60), 30, 1.0, -1)
    pr = prompts_from_matte(alpha)
    x0, y0, x1, y1 = pr.box
    assert x0 <= 50 and y0 <= 30 and x1 >= 110 and y1 >= 90
    for (x, y), lab in zip(pr.points, pr.labels):
        assert (alpha[int(y), int(x)] > 0.5) == (lab == 1)
    assert 1 in pr.labels and 0 in pr.labels
    assert prompts_from_matte(np.zeros((10, 10))).empty()


# -- model manager ----------------------------------------------------------------------------------------------------
class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""
    ranges: list = []

    def do_GET(self):  # noqa: N802 - http.server API
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        data, start = self.payload, 0
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def server():
    payload = np.random.default_rng(0).bytes(300_000)
    handler = type("H", (_RangeHandler,), {"payload": payload, "ranges": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield httpd, handler, payload
    httpd.shutdown()


def _manager(tmp_path, url, sha="", prefix=""):
    spec = ModelSpec("vit_b", "sam_test.pth", url, 300_000, sha256=sha, sha256_prefix=prefix)
    return ModelManager(folders=[], cache=tmp_path / "cache", models={"vit_b": spec})


def test_download_with_progress_and_checksum(server, tmp_path):
    httpd, handler, payload = server
    url = f"http://127.0.0.1:{httpd.server_port}/sam_test.pth"
    mm = _manager(tmp_path, url, sha=hashlib.sha256(payload).hexdigest())
    assert mm.find("vit_b") is None
    seen = []
    path = mm.download("vit_b", progress=lambda d, t: seen.append((d, t)))
    assert path.read_bytes() == payload and mm.find("vit_b") == path
    assert seen[-1] == (300_000, 300_000) and len(seen) > 2
    assert handler.ranges == [None]


def test_download_resumes_a_partial_file(server, tmp_path):
    httpd, handler, payload = server
    url = f"http://127.0.0.1:{httpd.server_port}/sam_test.pth"
    mm = _manager(tmp_path, url, prefix=hashlib.sha256(payload).hexdigest()[:6])
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "sam_test.pth.part").write_bytes(payload[:120_000])
    path = mm.download("vit_b")
    assert handler.ranges == ["bytes=120000-"]
    assert path.read_bytes() == payload


def test_download_checksum_failure_and_no_network(server, tmp_path):
    httpd, _, _ = server
    url = f"http://127.0.0.1:{httpd.server_port}/sam_test.pth"
    mm = _manager(tmp_path, url, sha="0" * 64)
    with pytest.raises(ModelError, match="corrupt"):
        mm.download("vit_b")
    assert not list((tmp_path / "cache").iterdir())  # nothing half-valid left behind
    dead = _manager(tmp_path, "http://127.0.0.1:9/none.pth")
    with pytest.raises(ModelError, match="cannot download"):
        dead.download("vit_b", timeout=2)
    with pytest.raises(ModelError, match="unknown model"):
        dead.download("vit_x")


def test_download_can_be_cancelled(server, tmp_path):
    from harmovid_engine.render.job import CancelToken

    httpd, _, payload = server
    mm = _manager(tmp_path, f"http://127.0.0.1:{httpd.server_port}/x", sha=hashlib.sha256(payload).hexdigest())
    token = CancelToken()
    with pytest.raises(Cancelled):
        mm.download("vit_b", progress=lambda d, t: token.cancel(), cancel=token, chunk=10_000)
    assert (tmp_path / "cache" / "sam_test.pth.part").exists()  # kept for a resume
    assert mm.download("vit_b").read_bytes() == payload


def test_explicit_checkpoint_path(tmp_path):
    mm = ModelManager(folders=[], cache=tmp_path, explicit=tmp_path / "nope.pth")
    with pytest.raises(ModelError, match="does not exist"):
        mm.find()
    (tmp_path / "mine.pth").write_bytes(b"x")
    assert ModelManager(folders=[], cache=tmp_path, explicit=tmp_path / "mine.pth").find() == tmp_path / "mine.pth"


# -- brush and edges --------------------------------------------------------------------------------------------------
def test_brush_adds_erases_and_undoes_exactly():
    alpha = np.zeros((100, 120), np.float32)
    a1, e1 = apply_stroke(alpha, Stroke([(20, 50), (90, 50)], radius=8, hardness=1.0), frame=3)
    assert a1[50, 20:91].min() == 1.0 and a1[50 + 12, 50] == 0.0
    assert e1.frame == 3 and e1.box[0] <= 12 and e1.box[2] >= 98
    assert e1.nbytes < 0.3 * alpha.size * 2  # the atom holds only the stroke's box
    a2, e2 = apply_stroke(a1, Stroke([(55, 50)], radius=10, hardness=0.0, erase=True))
    assert a2[50, 55] == 0.0 and 0.0 < a2[50, 62] < 1.0  # soft brush: partial at the rim
    np.testing.assert_array_equal(e2.apply(a2, undo=True), a1)
    np.testing.assert_array_equal(e1.apply(e2.apply(a2, undo=True), undo=True), alpha)
    same, none = apply_stroke(alpha, Stroke([(500, 500)], radius=5))
    assert none is None and same is alpha


def test_edge_refinement_snaps_a_rough_matte_to_the_image_edge():
    img = np.zeros((80, 80, 3), np.uint8)
    img[:, 40:] = 200
    rough = np.zeros((80, 80), np.float32)
    rough[:, 37:] = 1  # 3 px off
    soft = refine_edges(img, rough, radius=6)
    assert soft[:, 46:].min() > 0.95 and soft[:, :28].max() < 0.05
    crossing = int(np.argmax(soft[40] > 0.5))
    assert abs(crossing - 40) < abs(37 - 40)  # the half-way point moved onto the image's edge


# -- propagation ------------------------------------------------------------------------------------------------------
def moving_clip(n=20, w=160, h=120):
    """A textured disc moving right over a textured background, with its true mattes."""
    rng = np.random.default_rng(3)
    bg = cv2.GaussianBlur((rng.random((h, w + 60, 3)) * 120 + 20).astype(np.uint8), (0, 0), 1.5)
    tex = cv2.GaussianBlur((rng.random((h, w, 3)) * 80 + 150).astype(np.uint8), (0, 0), 1.5)
    frames, mattes = [], []
    for t in range(n):
        m = np.zeros((h, w), np.uint8)
        cv2.circle(m, (50 + 2 * t, 60), 30, 1, -1)
        f = bg[:, t: t + w].copy()  # the camera pans as well
        shifted = np.roll(tex, 2 * t, axis=1)
        f[m > 0] = shifted[m > 0]
        frames.append(f)
        mattes.append(m.astype(np.float32))
    return frames, mattes


def test_propagation_follows_a_moving_object_both_ways():
    frames, mattes = moving_clip()
    out = {mf.index: mf for mf in propagate(lambda i: frames[i], 20, {0: mattes[0]}) if mf.final}
    assert sorted(out) == list(range(20)) and out[0].origin == "keyframe"
    assert min(mask_iou(out[i].alpha, mattes[i]) for i in out) > 0.9
    back = {mf.index: mf for mf in propagate(lambda i: frames[i], 20, {19: mattes[19]}) if mf.final}
    assert back[0].origin == "backward" and mask_iou(back[0].alpha, mattes[0]) > 0.9


def test_two_keyframes_blend_and_are_kept():
    frames, mattes = moving_clip()
    k5 = mattes[5].copy()
    k15 = mattes[15].copy()
    all_ = list(propagate(lambda i: frames[i], 20, {5: k5, 15: k15}))
    assert len(all_) == count_steps(20, [5, 15])
    final = {mf.index: mf for mf in all_ if mf.final}
    assert np.array_equal(final[5].alpha, k5) and np.array_equal(final[15].alpha, k15)
    assert final[10].origin == "blend" and final[2].origin == "backward" and final[18].origin == "forward"
    assert all(mask_iou(final[i].alpha, mattes[i]) > 0.9 for i in final)


def test_disagreeing_passes_are_not_averaged_into_a_ghost():
    from harmovid_engine.matte.propagate import blend_passes

    a_f = np.array([[1.0, 1.0, 0.0]], np.float32)
    a_b = np.array([[1.0, 0.0, 0.0]], np.float32)  # the passes disagree on the middle pixel
    near_left, near_right = blend_passes(a_f, a_b, 0.3, 0.2), blend_passes(a_f, a_b, 0.7, 0.2)
    assert near_left[0, 1] == 1.0 and near_right[0, 1] == 0.0  # the nearer key's pass, not 0.5 for half the span
    assert blend_passes(a_f, a_b, 0.5, 0.2)[0, 1] == pytest.approx(0.5)  # the switch-over, in the middle only
    soft_f, soft_b = np.full((1, 1), 0.8, np.float32), np.full((1, 1), 0.6, np.float32)
    assert blend_passes(soft_f, soft_b, 0.25, 0.2)[0, 0] == pytest.approx(0.75)  # agreeing: by distance


def test_a_region_the_flow_cannot_vouch_for_is_decided_by_colour():
    from harmovid_engine.matte.refine import ColourModel

    rng = np.random.default_rng(1)
    img = np.empty((90, 120, 3), np.uint8)
    img[:] = (40, 120, 40)
    img[20:70, 30:90] = (200, 150, 120)  # the talent
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    truth = np.zeros((90, 120), np.float32)
    truth[20:70, 30:90] = 1
    model = ColourModel(img, truth)
    prior = truth.copy()
    prior[20:70, 60:90] = 0  # the warped matte lost the talent's right half (a fast limb)
    kept = model.segment(img, prior, 3)
    unsure = np.zeros_like(truth, bool)
    unsure[15:75, 55:95] = True
    fixed = model.segment(img, prior, 3, unsure)
    assert mask_iou(kept, truth) < 0.7  # outside the narrow band the prior's loss stays
    assert mask_iou(fixed, truth) > 0.95


def test_propagation_carries_a_soft_edge():
    frames, mattes = moving_clip(8)
    key = cv2.GaussianBlur(mattes[0], (0, 0), 2.0)  # a soft keyframe edge
    hard = PropagationSettings(soft_carry=0.0)
    soft_err, hard_err = [], []
    truth = [cv2.GaussianBlur(m, (0, 0), 2.0) for m in mattes]
    for s, errs in ((PropagationSettings(), soft_err), (hard, hard_err)):
        for mf in propagate(lambda i: frames[i], 8, {0: key}, s):
            band = (truth[mf.index] > 0.02) & (truth[mf.index] < 0.98)
            if mf.index:
                errs.append(np.abs(mf.alpha[band] - truth[mf.index][band]).mean())
    assert np.mean(soft_err) < np.mean(hard_err)


def test_propagation_flags_drift_and_validates_input():
    frames, mattes = moving_clip(8)
    blank = [f.copy() for f in frames]
    for f in blank[4:]:
        f[:] = 90  # the talent vanishes: the matte must not silently stay
    flags = {mf.index: mf.flag for mf in propagate(lambda i: blank[i], 8, {0: mattes[0]})}
    assert any(flags[i] for i in range(4, 8))
    stopped = list(propagate(lambda i: blank[i], 8, {0: mattes[0]}, PropagationSettings(stop_on_drift=True)))
    assert len(stopped) < 8
    with pytest.raises(MatteError, match="at least one keyframe"):
        list(propagate(lambda i: frames[i], 8, {}))
    with pytest.raises(MatteError, match="empty"):
        list(propagate(lambda i: frames[i], 8, {0: np.zeros((120, 160), np.float32)}))


def test_propagation_is_cancellable():
    from harmovid_engine.render.job import CancelToken

    frames, mattes = moving_clip(10)
    token = CancelToken()
    got = []
    with pytest.raises(Cancelled):
        for mf in propagate(lambda i: frames[i], 10, {0: mattes[0]}, cancel=token):
            got.append(mf.index)
            if len(got) == 3:
                token.cancel()
    assert len(got) == 3


def test_propagation_with_a_sam_model_reprompts_each_frame(tiny_sam):
    frames, mattes = moving_clip(5)
    s = SamSession(tiny_sam)
    out = list(propagate(lambda i: frames[i], 5, {0: mattes[0]}, sam=s))
    assert s.misses == 4  # one embedding per propagated frame
    # an untrained SAM disagrees with the flow: its answer is not taken and the frames are flagged
    assert all(mf.flag.startswith("SAM disagrees") for mf in out if mf.origin != "keyframe")
    assert all(mask_iou(mf.alpha, mattes[mf.index]) > 0.9 for mf in out)


@pytest.mark.heavy
def test_propagation_on_real_footage(data_dir):
    cap = cv2.VideoCapture(str(data_dir / "clips" / "d18.mp4"))
    frames = []
    while len(frames) < 40:
        ok, f = cap.read()
        assert ok
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    ref = np.load(data_dir / "clips" / "d18.alpha.npz")["alpha"][:40].astype(np.float32) / 255
    ious = [mask_iou(mf.alpha, ref[mf.index]) for mf in propagate(lambda i: frames[i], 40, {0: ref[0]})]
    assert np.mean(ious) > 0.97 and min(ious) > 0.95


# -- CLI ----------------------------------------------------------------------------------------------------------------
def test_cli_matte_propagate_and_export(tmp_path):
    from harmovid_engine.cli import main
    from harmovid_engine.media.writer import open_writer
    from harmovid_engine.colour import to_linear
    from harmovid_engine.project import Project

    frames, mattes = moving_clip(12)
    talent = tmp_path / "talent.mp4"
    with open_writer("h264", talent, 160, 120, 25, crf=10) as w:
        for f in frames:
            w.write(to_linear(f))
    plate = tmp_path / "plate.png"
    cv2.imwrite(str(plate), np.full((120, 160, 3), 90, np.uint8))
    np.savez(tmp_path / "m.alpha.npz", alpha=(np.array(mattes) * 255).astype(np.uint8))
    proj = tmp_path / "p"
    assert main(["new", str(proj), "--fg", str(talent), "--plate", str(plate), "--matte",
                 str(tmp_path / "m.alpha.npz"), "-q"]) == 0
    assert main(["matte", "propagate", str(proj), "--keyframes", "0", "-q"]) == 0
    p = Project.open(proj)
    assert p.matte.keyframes == [0]
    out = tmp_path / "out.alpha.npz"
    assert main(["matte", "export", str(proj), "-o", str(out), "-q"]) == 0
    got = np.load(out)["alpha"]
    assert got.shape == (12, 120, 160) and got.dtype == np.uint8
    assert np.array_equal(got[0], (mattes[0] * 255).astype(np.uint8))  # the keyframe is kept exactly
    assert min(mask_iou(got[i] / 255, mattes[i]) for i in range(12)) > 0.85
    assert main(["matte", "propagate", str(proj), "--keyframes", "99", "-q"]) == 2
    assert main(["matte", "propagate", str(proj), "--keyframes", "x", "-q"]) == 2
    assert main(["matte", "propagate", str(proj), "--keyframes", "0", "--sam", "vit_h", "-q"]) == 2
    assert main(["matte", "export", str(proj), "-o", str(tmp_path / "m.txt"), "-q"]) == 2
