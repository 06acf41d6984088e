"""Render jobs: progress, cancel (no partial file), chunked == long render, layers, retimed plates."""

from fractions import Fraction

import numpy as np
import pytest

from conftest import green_screen_frame
from harmovid_engine.colour import to_linear
from harmovid_engine.errors import Cancelled, HarmoVidError
from harmovid_engine.media import open_source, open_writer, probe
from harmovid_engine.project import create_project
from harmovid_engine.render import CancelToken, Compositor, render


@pytest.fixture
def keyed_project(tmp_path):
    """A 12-frame green-screen talent (moving disc, lossless PNG) over a 25 fps moving plate of another size."""
    talent = tmp_path / "talent"
    with open_writer("png", talent, 128, 96, Fraction(25)) as w:
        for i in range(12):
            frame, _ = green_screen_frame(cx=40 + 3 * i, seed=i)
            w.write(to_linear((frame * 255 + 0.5).astype(np.uint8)))
    plate = tmp_path / "plate.mp4"
    with open_writer("h264", plate, 160, 120, Fraction(25)) as w:
        for i in range(30):
            w.write(np.full((120, 160, 3), 0.05 + 0.01 * i, np.float32))
    return create_project(tmp_path / "proj", talent, plate, key="green")


def test_render_yields_progress_and_writes_all_frames(keyed_project, tmp_path):
    out = tmp_path / "o.mp4"
    events = list(render(keyed_project, out, fmt="h264"))
    assert [e.done for e in events] == list(range(1, 13)) and events[-1].total == 12
    info = probe(out)
    assert info.frame_count == 12 and (info.width, info.height) == (160, 120) and info.fps == Fraction(25)


def test_cancel_leaves_no_file(keyed_project, tmp_path):
    for fmt, name in (("h264", "c.mp4"), ("prores4444", "c.mov"), ("png", "cseq")):
        cancel = CancelToken()
        out = tmp_path / "renders" / name
        out.parent.mkdir(exist_ok=True)
        with pytest.raises(Cancelled):
            for p in render(keyed_project, out, fmt=fmt, cancel=cancel):
                if p.done == 3:
                    cancel.cancel()
        assert list(out.parent.iterdir()) == [], fmt


def test_chunked_render_equals_one_long_render(keyed_project, tmp_path):
    assert Compositor(keyed_project).radius >= 1  # the key's temporal smoothing reads neighbours
    long = tmp_path / "long"
    list(render(keyed_project, long, fmt="png", layer="talent"))
    a, b = tmp_path / "a", tmp_path / "b"
    list(render(keyed_project, a, fmt="png", layer="talent", start=0, end=4))
    list(render(keyed_project, b, fmt="png", layer="talent", start=5, end=11))
    whole = open_source(long)
    parts = [(open_source(a), 0), (open_source(b), 5)]
    for src, first in parts:
        for k in range(len(src)):
            assert np.array_equal(src.read(k), whole.read(first + k)), first + k
    assert sorted(p.name for p in b.glob("*.png"))[0] == "frame_00005.png"  # numbered by source frame


def test_talent_layer_carries_the_matte_as_alpha(keyed_project, tmp_path):
    out = tmp_path / "t.mov"
    list(render(keyed_project, out, fmt="prores4444", layer="talent", start=2, end=2))
    src = open_source(out)
    rgb, alpha = src.read_linear(0)
    comp = Compositor(keyed_project)
    _, expected = comp.frame(2, "talent")
    assert alpha is not None and np.abs(alpha - expected).max() < 0.01
    assert 0.05 < alpha.mean() < 0.6


def test_h264_talent_layer_and_bad_ranges_are_refused(keyed_project, tmp_path):
    with pytest.raises(HarmoVidError, match="no alpha"):
        list(render(keyed_project, tmp_path / "x.mp4", fmt="h264", layer="talent"))
    with pytest.raises(HarmoVidError, match="outside"):
        list(render(keyed_project, tmp_path / "x.mp4", start=5, end=40))
    assert not (tmp_path / "x.mp4").exists()


def test_stored_mattes_override_the_key_on_edited_frames(keyed_project):
    from harmovid_engine.matte import MatteStore

    store = MatteStore(keyed_project.mattes_dir)
    edited = np.zeros((96, 128), np.float32)
    edited[10:20, 10:20] = 1.0
    store.put(4, edited)
    comp = Compositor(keyed_project)
    _, alpha = comp.matte.talent(4)
    assert np.array_equal(alpha, store.get(4))


def test_allocator_tuning_is_harmless_and_idempotent():
    from harmovid_engine.perf import tune_allocator

    import platform

    first = tune_allocator()
    if platform.libc_ver()[0] == "glibc":
        assert first  # applied where glibc is the allocator
    assert tune_allocator() == first  # a second call changes nothing
    a = np.ones((1024, 1024, 4), np.float32)  # large buffers still allocate and free normally
    del a


def test_exports_run_the_compiled_kernels_on_their_own_thread_only():
    """Beside an encoder the kernels run single-threaded on the exporting thread; other threads (the preview) keep
    their threads, and the count is restored afterwards."""
    import threading

    numba = pytest.importorskip("numba")
    from harmovid_engine.composite.fast import kernel_available, one_thread

    if not kernel_available():
        pytest.skip("no compiled kernels here")
    before = numba.get_num_threads()
    seen = {}
    with one_thread():
        seen["inside"] = numba.get_num_threads()
        t = threading.Thread(target=lambda: seen.setdefault("other", numba.get_num_threads()))
        t.start()
        t.join()
    assert seen["inside"] == 1 and seen["other"] == numba.config.NUMBA_NUM_THREADS
    assert numba.get_num_threads() == before


def _assert_threaded_export_equals_ordered(project, tmp_path, monkeypatch):
    """A PNG export (analysis on a worker thread too) equals one computing everything in order on one thread."""
    threaded, ordered = tmp_path / "threaded", tmp_path / "ordered"
    list(render(project, threaded, fmt="png"))
    monkeypatch.setattr(Compositor, "can_prefetch", property(lambda self: False))
    list(render(project, ordered, fmt="png"))
    a, b = open_source(threaded), open_source(ordered)
    assert len(a) == len(b) == 12
    for k in range(len(a)):
        assert np.array_equal(a.read(k), b.read(k)), k


def test_export_prefetching_on_a_worker_thread_gives_the_same_frames(keyed_project, tmp_path, monkeypatch):
    """Exports prepare frame i + 1's analysis on a worker while frame i is composited: the frames equal those of a
    render that computes everything in order, and an error in the worker reaches the exporting thread (nothing
    written)."""
    from harmovid_engine.errors import MediaError

    keyed_project.render.deflicker = True
    _assert_threaded_export_equals_ordered(keyed_project, tmp_path, monkeypatch)
    monkeypatch.undo()

    def broken(self, i):
        if i == 6:
            raise MediaError("frame 6 of the talent could not be decoded")
        return original(self, i)

    original = Compositor.prefetch
    monkeypatch.setattr(Compositor, "prefetch", broken)
    with pytest.raises(MediaError, match="frame 6"):
        list(render(keyed_project, tmp_path / "broken.mp4"))
    assert not (tmp_path / "broken.mp4").exists()


def test_export_reads_each_talent_frame_once_when_few_fit_in_memory(keyed_project, tmp_path, monkeypatch):
    """A talent frame is read when it enters the deflicker window of the frame being prepared and again when it is
    composited, radius + 1 frames later. With a memory budget for a few frames only (a 1080p talent's 33 MB a frame
    against the 512 MB budget, scaled down here), the cache must still keep those: each frame is decoded and
    converted once. (Least-recently-used eviction converted a 1080p talent 1.7 times per frame at radius 16.)"""
    import harmovid_engine.render.pipeline as pipeline
    from harmovid_engine.matte.provider import MatteStage

    monkeypatch.setattr(pipeline, "TALENT_CACHE_BYTES", 128 * 96 * 16 * 2)  # two frames' worth
    keyed_project.render.deflicker_radius = 4
    reads = []
    original = MatteStage.talent_linear
    monkeypatch.setattr(MatteStage, "talent_linear", lambda self, i: reads.append(i) or original(self, i))
    for _ in render(keyed_project, tmp_path / "o.mp4", fmt="h264"):
        pass
    assert sorted(reads) == list(range(12))


def test_first_window_analysed_on_two_threads_gives_the_same_frames(keyed_project, tmp_path, monkeypatch):
    """The first frame of an export analyses its whole deflicker window on two threads. The frames equal those
    computed in order, in a compositor and in an export."""
    from concurrent.futures import ThreadPoolExecutor

    import cv2

    plate = tmp_path / "still.png"
    cv2.imwrite(str(plate), np.full((120, 160, 3), (40, 90, 160), np.uint8))
    proj = create_project(tmp_path / "still_proj", keyed_project.talent_path, plate, key="green")
    proj.render.deflicker_radius = 8
    warmed = Compositor(proj)
    with ThreadPoolExecutor(1) as pool:
        warmed.warm_window(5, pool)
    assert all(k in warmed.deflicker._samples for k in range(12))
    assert all(k in warmed.deflicker._deltas for k in range(1, 12))
    assert np.array_equal(warmed.layers(5).composite, Compositor(proj).layers(5).composite)
    _assert_threaded_export_equals_ordered(proj, tmp_path, monkeypatch)
