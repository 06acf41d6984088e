"""RAM preview: a range rendered at full quality into bounded preview memory, then played looped from there."""

from harmovid_engine.project import Project
from test_studio import demo, wait_full, window  # noqa: F401  (fixtures)


def _run(qtbot, worker, start, end, project):
    done = []
    worker.ram_done.connect(lambda rid, n, total, msg: done.append((n, total, msg)))
    worker.ram_preview(1, start, end, project, 0)
    qtbot.waitUntil(lambda: bool(done), timeout=120000)
    return done[0]


def test_a_ram_preview_renders_its_range_and_keeps_it(qtbot, demo):
    from app.workers import PreviewWorker

    project = Project.open(demo)
    worker = PreviewWorker()
    worker.start()
    try:
        assert _run(qtbot, worker, 5, 12, project) == (8, 8, "")
        key = worker._ram.key
        assert all((key, k) in worker._cache for k in range(5, 13))
        # requests elsewhere keep coming into the cache: the RAM preview's frames are never the ones evicted
        worker._cache_bytes = worker._cached_bytes + 1
        got = []
        worker.ready.connect(lambda rid, f, p, images: got.append((f, p)))
        for rid, f in enumerate((40, 50, 60), start=2):
            worker.request(rid, f, project, 0)
            qtbot.waitUntil(lambda: (f, "full") in got, timeout=60000)
        assert all((key, k) in worker._cache for k in range(5, 13))
    finally:
        worker.stop()


def test_a_range_larger_than_the_memory_renders_what_fits_and_says_so(qtbot, demo):
    from app.workers import PreviewWorker

    project = Project.open(demo)
    worker = PreviewWorker(cache_bytes=3 * 6 * 2**20)  # three demo frames (~5.6 MB each, every view mode)
    worker.start()
    try:
        n, total, message = _run(qtbot, worker, 0, 9, project)
        assert total == 10 and 2 <= n <= 3 and f"{n} of 10 frames fit in the preview memory" in message
        assert len(worker._pinned) == n  # what did not fit is not held for: later frames may use the room
        assert worker._cached_bytes <= worker._cache_bytes
    finally:
        worker.stop()


def test_ram_preview_in_the_studio_plays_full_frames_looped_and_stops_on_k(qtbot, window, demo):
    window.open_project(demo)
    wait_full(qtbot, window, 0)
    window.seek(20)
    window.set_in()
    window.seek(27)
    window.set_out()
    shown = []
    window.worker.ready.connect(lambda rid, f, p, images: shown.append((f, p)) if window._ram_state == "playing"
                                else None)
    window.findChild(type(window.loop_action), "ram_preview").trigger()
    assert window._ram_state == "rendering"
    qtbot.waitUntil(lambda: window._ram_state == "playing", timeout=120000)
    assert set(range(20, 28)) <= window.timeline.cached
    qtbot.waitUntil(lambda: len(shown) >= 12, timeout=30000)  # past the out point: looped back to the in point
    frames = [f for f, _ in shown]
    assert all(20 <= f <= 27 for f in frames) and frames.count(20) + frames.count(21) >= 2
    assert all(p == "full" for _, p in shown)  # from memory, never a proxy
    window.stop()  # K
    assert window._ram_state is None and not window.play_timer.isActive()
    # an edit while it renders ends it
    window.ram_preview()
    window.edit_setting("render.shadow_opacity", 0.5)
    assert window._ram_state is None


def test_frames_outside_a_ram_preview_keep_a_smaller_share_of_the_memory(qtbot, demo):
    from app.workers import PreviewWorker

    project = Project.open(demo)
    worker = PreviewWorker(viewed_bytes=2 * 6 * 2**20)  # two demo frames
    got = []
    worker.ready.connect(lambda rid, f, p, images: got.append((f, p)))
    worker.hold_idle("test")  # no idle neighbours: only what is asked for
    worker.start()
    try:
        for rid, f in enumerate((3, 9, 15, 21), start=1):
            worker.request(rid, f, project, 0)
            qtbot.waitUntil(lambda: (f, "full") in got, timeout=60000)
        assert [k[1] for k in worker._cache] == [15, 21] and worker._cached_bytes <= 12 * 2**20
    finally:
        worker.stop()
