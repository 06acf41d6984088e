"""What keeps the Studio's preview quick: stages keep what they computed across Inspector changes that do not touch
them, a stale pass stops for the newer request, a timeline drag shows pictures as they come, and background work
(the flicker scope, idle analysis) gives way to the picture an editor asked for. How quick is measured by
``benchmarks/bench_studio.py``, not here."""

import copy
import time

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from harmovid_engine.errors import Cancelled
from harmovid_engine.project import Project
from harmovid_engine.render import Compositor
from test_studio import _export, demo, wait_full, window  # noqa: F401  (fixtures)


def _same_as_fresh(comp, project, i):
    fresh = Compositor(project)
    try:
        a, b = comp.layers(i, with_original=True), fresh.layers(i, with_original=True)
        for name in ("composite", "talent", "alpha", "original"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
    finally:
        fresh.close()


def test_a_setting_change_keeps_what_the_stages_before_it_computed(demo):
    project = Project.open(demo)
    comp = Compositor(project)
    try:
        comp.layers(5)
        talents, harmonize = comp._talents, comp.harmonize
        assert talents.get(5) is not None and harmonize.has_params(5)

        project.render.shadow_opacity = 0.6  # after the harmonizer: the matte and the engine's analysis stay
        comp.configure(project)
        assert comp._talents is talents and talents.get(5) is not None
        assert comp.harmonize is harmonize and harmonize.has_params(5)
        _same_as_fresh(comp, project, 5)

        project.render.engine_settings["intensity"] = 0.7  # the engine's parameters go, the keyed talent stays
        comp.configure(project)
        assert comp._talents.get(5) is not None and not comp.harmonize.has_params(6)
        _same_as_fresh(comp, project, 6)

        project.matte.choke = 1.5  # the matte changes: every frame is keyed again
        comp.configure(project)
        assert comp._talents.get(5) is None
        _same_as_fresh(comp, project, 5)
    finally:
        comp.close()


def test_a_matte_edit_on_disk_is_seen_by_a_kept_talent_cache(demo):
    """The talent cache is keyed by the stored mattes too: a painted frame is never shown with its old matte."""
    project = Project.open(demo)
    comp = Compositor(project)
    try:
        before = comp.layers(3).alpha.copy()
        w, h = comp.talent_src.size
        store = project.matte_store()
        edited = np.zeros((h, w), np.float32)
        edited[h // 4: h // 2, w // 4: w // 2] = 1.0
        store.put(3, edited)
        comp.configure(project)
        assert comp.layers(3).alpha.sum() < before.sum() / 2
        _same_as_fresh(comp, project, 3)
    finally:
        comp.close()


def test_an_edited_matte_of_another_size_is_refused_not_used(demo):
    """(A talent relinked to a file of another size.) Such a matte once reached the compiled kernels, which wrote
    past the talent's buffers: a segfault or a corrupted heap."""
    from harmovid_engine.errors import MatteError

    project = Project.open(demo)
    w, h = Compositor(project).talent_src.size
    project.matte_store().put(3, np.ones((h + 208, w + 48), np.float32))
    comp = Compositor(project)
    try:
        with pytest.raises(MatteError, match=r"matte of frame 3 is .* but the talent is"):
            comp.layers(3)
    finally:
        comp.close()


def test_an_interrupted_frame_stops_and_finishes_later_the_same(demo):
    project = Project.open(demo)
    comp = Compositor(project)
    try:
        calls = []
        comp.interrupt = lambda: calls.append(1) or len(calls) > 2  # a newer request arrives mid-frame
        with pytest.raises(Cancelled):
            comp.layers(12)
        comp.interrupt = None
        _same_as_fresh(comp, project, 12)
    finally:
        comp.close()


def _mouse(tl, kind, frame, buttons):
    pos = QPointF(tl._x(frame), tl.height() / 2)
    QApplication.sendEvent(tl, QMouseEvent(kind, pos, tl.mapToGlobal(pos), Qt.LeftButton, buttons, Qt.NoModifier))


def test_dragging_the_playhead_shows_pictures_while_the_mouse_moves(qtbot, window, demo):
    """Each move asks for a new frame before the last one is ready: the window shows the newest picture that comes
    (it once showed nothing until the mouse stopped), then the frame under the playhead once it rests."""
    window.open_project(demo)
    wait_full(qtbot, window, 0)
    shown = []
    original = window.viewer.set_images
    window.viewer.set_images = lambda images, p: (shown.append((window.timeline.dragging, p)), original(images, p))
    tl = window.timeline
    _mouse(tl, QEvent.MouseButtonPress, 1, Qt.LeftButton)
    t0, k = time.monotonic(), 1
    while sum(d for d, _ in shown) < 2 and time.monotonic() - t0 < 60:
        k = k % (window.frame_count - 2) + 1
        _mouse(tl, QEvent.MouseMove, k, Qt.LeftButton)  # a move every 10 ms: no request is ever the latest
        qtbot.wait(10)
    assert sum(d for d, _ in shown) >= 2, "no picture while the playhead was dragged"
    _mouse(tl, QEvent.MouseButtonRelease, k, Qt.NoButton)
    wait_full(qtbot, window, window.frame)
    window.viewer.set_images = original


def test_an_export_holds_the_background_work_and_releases_it(qtbot, window, demo, tmp_path):
    window.open_project(demo)
    wait_full(qtbot, window, 0)
    assert not window.worker.wants_cpu()
    seen = []
    window.worker.hold_idle = (lambda f: lambda reason, on=True: (seen.append((reason, on)), f(reason, on)))(
        window.worker.hold_idle)
    result, _ = _export(qtbot, window, tmp_path / "out.mp4")
    assert result == "ok"
    assert seen == [("export", True), ("export", False)]
    assert not window.worker.wants_cpu()


def test_the_flicker_scope_waits_while_the_preview_wants_the_cpu(qtbot, demo):
    from app.workers import ScopeWorker

    busy = [True]
    scope = ScopeWorker(Project.open(demo), yield_to=lambda: busy[0])
    points = []
    scope.point.connect(lambda i, v: points.append(i))
    scope.start()
    try:
        qtbot.wait(1500)
        assert points == []  # nothing while the preview is busy
        busy[0] = False
        qtbot.waitUntil(lambda: len(points) >= 3, timeout=60000)
        assert points[:3] == [0, 1, 2]
    finally:
        scope.cancel()
        scope.wait(30000)


def test_the_preview_worker_abandons_a_stale_full_pass(qtbot, demo):
    """A full pass whose request is no longer the latest stops (``Cancelled`` between stages) and the newest request
    gets its picture; the proxy of the stale request still comes (the window decides whether to show it)."""
    from app.workers import PreviewWorker

    project = Project.open(demo)
    worker = PreviewWorker()
    got = []
    worker.ready.connect(lambda rid, frame, p, images: got.append((rid, frame, p)))
    worker.start()
    try:
        worker.request(1, 0, project, 0)
        qtbot.waitUntil(lambda: (1, 0, "full") in got, timeout=60000)
        started = []
        full = worker._pair.full
        orig = full.layers

        def slow_layers(i, *a, **k):  # the stale full pass: a newer request arrives while it runs
            if i == 30 and not started:
                started.append(i)
                worker.request(3, 50, copy.deepcopy(project), 0)
                try:
                    return orig(i, *a, **k)
                except Cancelled:
                    started.append("stopped")
                    raise
            return orig(i, *a, **k)

        full.layers = slow_layers
        worker.request(2, 30, project, 0)
        qtbot.waitUntil(lambda: (3, 50, "full") in got, timeout=60000)
        assert started == [30, "stopped"]  # it stopped instead of finishing a picture nobody waits for
        assert (2, 30, "proxy") in got and (2, 30, "full") not in got
    finally:
        worker.stop()


def test_the_proxy_keys_one_frame_and_the_full_pass_its_smoothed_window(demo):
    """The proxy's quick matte keys only the frame shown (the matte's smoothing over neighbours is the full pass's
    work); the full pass still gives exactly what a render gives."""
    project = Project.open(demo)
    assert project.matte.source == "key" and project.matte.temporal_radius > 0
    full = Compositor(project)
    proxy_project = copy.deepcopy(project)
    proxy_project.render.deflicker = False  # as the Studio's proxy: per frame
    proxy = Compositor(proxy_project, scale=0.5, share_media=full)
    proxy.quick_matte = True
    try:
        keyer = full.matte.keyer
        calls = []
        original = keyer.key
        keyer.key = lambda rgb: (calls.append(1), original(rgb))[1]
        proxy.layers(30)
        assert len(calls) == 1
        assert full._talents.get(30) is None  # the quick matte is not what the full pass shows
        _same_as_fresh(full, project, 30)
    finally:
        proxy.close()
        full.close()


def test_idle_neighbours_after_a_cache_hit_are_made_with_that_requests_settings(qtbot, demo):
    """A request served from the cache configures nothing; the idle work after it must still render the neighbours
    with its settings (they were once made with the previous request's and filed under this one's)."""
    from app.workers import PreviewWorker, snapshot_key
    from harmovid_engine.render.preview import preview_images

    a = Project.open(demo)
    b = copy.deepcopy(a)
    b.render.engine_settings["colour"] = 0.0
    b.render.light_wrap = False
    worker = PreviewWorker()
    got = []
    worker.ready.connect(lambda rid, f, p, images: got.append((rid, p)))
    worker.start()
    try:
        for rid, project in ((1, a), (2, b)):
            worker.hold_idle("test")
            worker.request(rid, 10, project, 0)
            qtbot.waitUntil(lambda: (rid, "full") in got, timeout=60000)
        key_a = snapshot_key(copy.deepcopy(a), 0)
        assert (key_a, 11) not in worker._cache
        worker.request(3, 10, a, 0)  # a cache hit: the compositors stay configured for b
        qtbot.waitUntil(lambda: (3, "full") in got, timeout=60000)
        worker.hold_idle("test", False)
        qtbot.waitUntil(lambda: (key_a, 11) in worker._cache, timeout=60000)
        fresh = Compositor(a)
        try:
            expect = preview_images(fresh.layers(11, with_original=True))["composite"]
        finally:
            fresh.close()
        assert np.array_equal(worker._cache[(key_a, 11)]["composite"], expect)
    finally:
        worker.stop()


def test_an_analysed_range_longer_than_the_window_stays_analysed(demo):
    """The idle analysis keeps engine parameters and pair changes beyond the deflicker window (its samples, ~1 MB a
    frame, are not kept): a frame analysed once is not analysed again when the idle work is planned anew."""
    project = Project.open(demo)
    comp = Compositor(project, analysis_frames=80)
    try:
        n = comp.frame_count
        assert n > 2 * comp.deflicker.radius + 8  # the range is longer than the samples kept
        for k in range(n):
            comp.analyse(k)
        assert all(comp.is_analysed(k) for k in range(n))
        calls = []
        original = comp.matte.talent_linear
        comp.matte.talent_linear = lambda *a, **kw: (calls.append(a[0]), original(*a, **kw))[1]
        for k in range(n):
            if not comp.is_analysed(k):
                comp.analyse(k)
        assert calls == []  # nothing decoded or keyed again
    finally:
        comp.close()
