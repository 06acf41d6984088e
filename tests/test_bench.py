"""The benchmark: protocol definitions, metrics, and `harmovid bench` end to end on a tiny data folder."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from harmovid_engine.bench.metrics import WarpReference, flicker, mse, psnr_from_mse, ssim_luma
from harmovid_engine.bench.protocols import Perturbation, draw_jitter, draw_static, perturb


def test_perturbations_are_seeded_by_clip_and_k():
    a, b = draw_static("d0", 1), draw_static("d0", 1)
    assert a.gain == b.gain and np.array_equal(a.wb, b.wb)
    assert draw_static("d0", 2).gain != a.gain
    assert 0.5 <= a.gain <= 2.0 and abs(a.wb.mean() - 1) < 1e-9 and 0.8 <= a.gamma <= 1.25
    j = draw_jitter("d0", 1, 5)
    assert len(j) == 5 and len({p.gain for p in j}) == 5 and all(p.gamma == a.gamma for p in j)


def test_identity_perturbation_changes_nothing():
    frame = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    same = perturb(frame, Perturbation(1.0, np.ones(3), 1.0, 0.0, 0.0, 1.0))
    assert np.abs(same - frame).max() < 0.6


def test_metrics_on_identical_and_different_videos():
    rng = np.random.default_rng(0)
    frames = [np.clip(rng.random((40, 50, 3)) * 255, 0, 255) for _ in range(4)]
    masks = [np.ones((40, 50), bool)] * 4
    assert mse(frames[0], frames[0]) == 0 and psnr_from_mse(255.0 ** 2) == 0
    assert abs(ssim_luma(frames[0], frames[0]) - 1) < 1e-9
    assert flicker(frames, frames, masks) == 0
    brighter = [f + 10 * (t % 2) for t, f in enumerate(frames)]
    assert abs(flicker(brighter, frames, masks) - 10) < 1e-6
    ref = WarpReference(frames, masks)
    assert abs(ref.error(frames) / ref.error(frames) - 1) < 1e-12


def test_reinhard_plate_statistics_are_reused_only_for_the_same_plate():
    """The plate's Lab statistics are computed once per plate array; a new plate, even one that takes over a freed
    plate's memory (and so its id), gets its own."""
    from harmovid_engine.bench import methods as bm

    rng = np.random.default_rng(1)
    talent = rng.random((24, 32, 3), dtype=np.float32) * 0.8
    alpha = np.zeros((24, 32), np.float32)
    alpha[4:20, 8:24] = 1.0
    plate = rng.random((24, 32, 3), dtype=np.float32) * [0.9, 0.3, 0.5]
    first = bm.reinhard(talent, alpha, plate)
    assert np.array_equal(bm.reinhard(talent, alpha, plate), first)
    for _ in range(5):  # freed and re-made plates of other colours, often at the same address
        old_id = id(plate)
        del plate
        plate = (rng.random((24, 32, 3), dtype=np.float32) * [0.2, 0.9, 0.4]).astype(np.float32)
        got = bm.reinhard(talent, alpha, plate)
        bm._PLATE_LAB.clear()
        reused = id(plate) == old_id
        assert np.array_equal(got, bm.reinhard(talent, alpha, plate)), f"address reused: {reused}"
    assert not np.allclose(got, first, atol=0.05)


@pytest.fixture
def tiny_data(tmp_path, data_dir):
    d = tmp_path / "data"
    (d / "clips").mkdir(parents=True)
    (d / "plates").mkdir()
    shutil.copy(data_dir / "clips" / "d0.mp4", d / "clips" / "d0.mp4")
    shutil.copy(data_dir / "clips" / "d0.alpha.npz", d / "clips" / "d0.alpha.npz")
    shutil.copy(data_dir / "plates" / "plate_8.jpg", d / "plates" / "plate_8.jpg")
    return d


@pytest.mark.heavy
def test_bench_writes_results_report_plots_and_sheets(tiny_data, tmp_path):
    out = tmp_path / "bench"
    res = subprocess.run([sys.executable, "-m", "harmovid_engine", "bench", str(tiny_data), "--out", str(out),
                          "--frames", "4", "--protocols", "lut_static", "lut_jitter", "relight", "-q"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"lut_static", "lut_jitter", "relight"}
    methods = {"composite", "reinhard", "ema", "analytic", "analytic+deflicker"}
    for proto in results:
        assert methods <= set(results[proto])
    for metric in ("mse", "fmse", "psnr", "fpsnr", "ssim", "worse_than_composite", "flicker", "tl_ratio"):
        assert metric in results["lut_jitter"]["analytic+deflicker"]
    assert results["relight"]["analytic"]["fps"] > 0 and "tl_ratio" in results["relight"]["analytic"]
    assert (out / "report.md").read_text().startswith("# HarmoVid benchmark")
    assert (out / "lut_static_fmse.png").exists() and (out / "contact_sheets" / "plate_8.png").exists()


def test_bench_refuses_a_folder_of_the_wrong_shape(tmp_path):
    res = subprocess.run([sys.executable, "-m", "harmovid_engine", "bench", str(tmp_path), "--out",
                          str(tmp_path / "o")], capture_output=True, text=True)
    assert res.returncode == 2 and "laid out like" in res.stderr


def test_report_lists_the_speed_and_its_stages_alone_and_inside_the_export(tmp_path):
    from harmovid_engine.bench.run import write_report

    results = {"speed": {"analytic+deflicker": {
        "export_ratio": 1.9, "render_seconds": 8.5, "ffmpeg_seconds": 4.4, "frames": 120,
        "stage_ms": {"deflicker": 22.0, "place + composite + encode": 21.5},
        "stage_ms_alone": {"deflicker": 10.6, "place + composite + encode": 7.4},
        "pairs": [{"render_seconds": 8.5, "ffmpeg_seconds": 4.4, "export_ratio": 1.93},
                  {"render_seconds": 8.0, "ffmpeg_seconds": 4.5, "export_ratio": 1.78}]}}}
    write_report(results, tmp_path, "harmovid bench DATA --out OUT --protocols speed", 30, 60.0)
    text = (tmp_path / "report.md").read_text()
    assert "| analytic+deflicker | 1.9 | 8.5 | 4.4 |" in text
    assert "median of 2 render + transcode pairs, alternated: 8.50 / 4.40 s = 1.93, 8.00 / 4.50 s = 1.78" in text
    assert "| deflicker | 10.6 | 22.0 |" in text and "| all | 18.0 | 43.5 |" in text


def test_the_speed_protocol_reports_the_median_of_alternated_pairs(tiny_data, monkeypatch):
    """The machine's speed drifts within minutes: the ratio is the median over render + transcode pairs, taken in
    turn, and every pair is kept."""
    import harmovid_engine.render as render_mod
    from harmovid_engine.bench import run as br

    order, walls = [], iter([3.0, 2.0, 9.0])  # the renders' wall times (fake clock, below)
    clock = [0.0]

    def fake_render(project, out, **kw):
        order.append("render")
        clock[0] += next(walls)
        yield from ()

    transcodes = iter([2.0, 1.0, 3.0])

    def fake_transcode(src, dst, settings):
        order.append("transcode")
        return next(transcodes)

    monkeypatch.setattr(render_mod, "render", fake_render)
    monkeypatch.setattr(br, "plain_transcode", fake_transcode)
    monkeypatch.setattr(br.time, "perf_counter", lambda: clock[0])
    res = br.run_speed(tiny_data, ["d0"], [tiny_data / "plates" / "plate_8.jpg"], ["analytic"], lambda m: None, 3)
    v = res["analytic+deflicker"]
    assert order == ["render", "transcode"] * 3
    assert [q["export_ratio"] for q in v["pairs"]] == [1.5, 2.0, 3.0]
    assert v["export_ratio"] == 2.0 and v["render_seconds"] == 3.0 and v["ffmpeg_seconds"] == 2.0
    assert v["stage_ms_alone"]  # the stages alone were still measured on the real compositor


def test_bench_refuses_fewer_than_one_speed_pair(tiny_data, tmp_path):
    res = subprocess.run([sys.executable, "-m", "harmovid_engine", "bench", str(tiny_data), "--out",
                          str(tmp_path / "o"), "--protocols", "speed", "--speed-pairs", "0"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--speed-pairs must be at least 1" in res.stderr
    assert not (tmp_path / "o" / "results.json").exists()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads process states from /proc (Linux)")
def test_an_interrupted_bench_stops_its_worker_processes_at_once(monkeypatch):
    """Ctrl-C, SIGTERM or an error while jobs run: the worker processes are stopped, not left running their jobs
    (a killed bench used to leave two processes computing for minutes)."""
    import time

    from harmovid_engine.bench import run as br

    pools = []
    make = br._pool
    monkeypatch.setattr(br, "_pool", lambda n: pools.append(make(n)) or pools[-1])
    jobs = br._run_jobs(time.sleep, {"quick": (0,), "slow": (300,)}, 2)
    first = next(jobs)
    assert first[0] == "quick", first
    procs = list(dict(pools[0]._processes or {}).values())
    assert procs and any(p.is_alive() for p in procs), procs
    pids = [p.pid for p in procs]

    def running(pid):  # alive and not a zombie (a terminated child not yet reaped by the pool's thread)
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    t0 = time.perf_counter()
    jobs.close()  # what an exception in the consumer does
    assert time.perf_counter() - t0 < 60  # it does not wait for the slow job (300 s)
    while any(running(pid) for pid in pids) and time.perf_counter() - t0 < 60:
        time.sleep(0.1)
    assert not [pid for pid in pids if running(pid)]


@pytest.mark.heavy
def test_the_bench_measures_the_product_its_frames_equal_a_cli_talent_render(tmp_path, data_dir):
    """A lut case's engine + deflicker row is what ``harmovid new`` + ``harmovid render --layer talent`` make of the
    same media (within one code value), not a second implementation of the stages."""
    import cv2

    from harmovid_engine.bench.graph import LutCase, talent_layers
    from harmovid_engine.bench.protocols import clean_plate, composite_codes, load_clip
    from harmovid_engine.bench.run import to_codes

    clip = load_clip(data_dir, "d0", 8)
    alpha_u8 = np.round(clip.alpha * 255).astype(np.uint8)
    alphas = alpha_u8.astype(np.float32) / 255
    plates = [clean_plate(f, a) for f, a in zip(clip.frames, alphas)]
    pert = draw_jitter("d0", 1, len(plates))
    talent = [np.clip(np.round(composite_codes(f, perturb(f, p), a)), 0, 255).astype(np.uint8)
              for f, p, a in zip(clip.frames, pert, alphas)]
    case = LutCase(tmp_path / "case", alpha_u8, plates)
    bench = [to_codes(h) for h in talent_layers(case.project("k1", talent), "analytic+deflicker")]

    proj, out = tmp_path / "cli_project", tmp_path / "cli_render"
    cli = [sys.executable, "-m", "harmovid_engine"]
    res = subprocess.run(cli + ["new", str(proj), "--fg", str(case.folder / "talent_k1" / "frame_%05d.png"),
                                "--plate", str(case.plate), "--matte", str(case.matte), "--no-shadow",
                                "--no-light-wrap"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run(cli + ["render", str(proj), "-o", str(out), "--format", "png", "--layer", "talent"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    files = sorted(out.glob("*.png"))
    assert len(files) == len(bench)
    for f, b, a in zip(files, bench, alphas):
        rgba = cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
        inside = a > 0.02  # where the talent is: outside it the layer holds no colour
        diff = np.abs(rgba[..., :3].astype(np.float32) - b)[inside]
        assert diff.max() <= 1.0, f"{f.name}: bench and render differ by {diff.max()} codes"
    # the row is a real harmonization, not the input handed back
    assert np.abs(bench[0][alphas[0] > 0.5] - talent[0][alphas[0] > 0.5].astype(np.float32)).mean() > 2.0
