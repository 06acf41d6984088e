"""Studio benchmark: preview latency (proxy and full passes) after seeks (back to back, and at an editor's pace with
a second's pause), after Inspector changes, while scrubbing the timeline, and the longest GUI-thread stall during an
export.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_studio.py [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import numpy as np
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from app.export_dialog import ExportDialog
    from app.main_window import MainWindow
    from harmovid_engine.resources import copy_demo

    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp())
    demo = copy_demo(tmp / "demo")
    win = MainWindow(QSettings(str(tmp / "s.ini"), QSettings.IniFormat))
    win.show()
    arrivals = {}
    win.worker.ready.connect(lambda rid, f, p, img: arrivals.setdefault((rid, p), time.perf_counter()))
    win.open_project(demo)

    def pump(cond, timeout=60):
        t0 = time.perf_counter()
        while not cond() and time.perf_counter() - t0 < timeout:
            app.processEvents()
            time.sleep(0.002)

    pump(lambda: (win._rid, "full") in arrivals)

    def seek_latency(frames, pause):
        """Latency of the proxy and full passes after each seek; ``pause`` seconds of idle time before each."""
        proxy, full = [], []
        for f in frames:
            pump(lambda: False, timeout=pause)
            t0 = time.perf_counter()
            win.seek(f)
            rid = win._rid
            pump(lambda: (rid, "full") in arrivals)
            if (rid, "proxy") in arrivals:
                proxy.append(arrivals[(rid, "proxy")] - t0)
            full.append(arrivals[(rid, "full")] - t0)
        return proxy, full

    # back to back: the next seek as soon as the last full frame is shown (idle analysis has no time to run)
    proxy, full = seek_latency((10, 40, 70, 25, 55, 5, 60, 33), 0.0)
    # an editor's pace: a second's pause before each seek (the idle analysis runs around the playhead)
    proxy_paused, full_paused = seek_latency((48, 18, 66, 2, 38, 74, 12, 52), 1.0)

    # Inspector changes: the time until the preview shows the new value (proxy first, then full)
    edits = {"engine.intensity": (0.8, 1.0), "render.shadow_opacity": (0.5, 0.35), "matte.choke": (1.0, 0.0)}
    inspector = {}
    for key, values in edits.items():
        for v in values:
            pump(lambda: False, timeout=1.0)
            t0 = time.perf_counter()
            win.edit_setting(key, v)
            rid = win._rid
            pump(lambda: (rid, "full") in arrivals)
            proxy_at = arrivals.get((rid, "proxy"))  # none when the frame was cached (a value set back)
            inspector.setdefault(key, []).append((None if proxy_at is None else round(1000 * (proxy_at - t0)),
                                                  round(1000 * (arrivals[(rid, "full")] - t0))))

    # scrubbing: the playhead dragged over the whole clip in 2 s (a mouse move every 16 ms), then released
    shown = []
    original_set = win.viewer.set_images

    def counting(images, pass_name):
        shown.append((time.perf_counter(), win.frame, pass_name))
        return original_set(images, pass_name)

    win.viewer.set_images = counting
    pump(lambda: False, timeout=1.0)
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent

    tl = win.timeline

    def mouse(kind, frame, buttons):
        x = tl._x(frame)
        pos = QPointF(x, tl.height() / 2)
        ev = QMouseEvent(kind, pos, tl.mapToGlobal(pos), Qt.LeftButton, buttons, Qt.NoModifier)
        QApplication.sendEvent(tl, ev)

    n = win.frame_count
    t_start = time.perf_counter()
    mouse(QEvent.MouseButtonPress, 0, Qt.LeftButton)
    moves = 0
    while True:
        t = time.perf_counter() - t_start
        if t >= 2.0:
            break
        mouse(QEvent.MouseMove, t / 2.0 * (n - 1), Qt.LeftButton)
        moves += 1
        pump(lambda: False, timeout=0.016)
    mouse(QEvent.MouseButtonRelease, n - 1, Qt.NoButton)
    t_release = time.perf_counter()
    last = win.frame
    pump(lambda: any(f == last and p == "full" and ts >= t_release for ts, f, p in shown), timeout=30)
    during = [s for s in shown if s[0] < t_release]
    after = [s for s in shown if s[0] >= t_release and s[1] == last]
    win.viewer.set_images = original_set
    scrub = {"moves": moves, "pictures_shown_during_drag": len(during),
             "distinct_frames_shown_during_drag": len({f for _, f, _ in during}),
             "longest_gap_between_pictures_ms": round(1000 * float(np.max(np.diff([t_start] + [s[0] for s in during]))))
             if during else None,
             "after_release_first_picture_ms": round(1000 * (after[0][0] - t_release)) if after else 0,
             "after_release_full_ms": next((round(1000 * (s[0] - t_release)) for s in after if s[2] == "full"), None)}

    # longest GUI stall during an export of the whole demo clip
    beats = []
    timer = QTimer()
    timer.timeout.connect(lambda: beats.append(time.perf_counter()))
    timer.start(5)
    dlg = ExportDialog(win)
    dlg.dest.setText(str(tmp / "export.mp4"))
    dlg.range.setCurrentIndex(0)
    t0 = time.perf_counter()
    dlg.start()
    pump(lambda: dlg.worker is None, timeout=600)
    export_s = time.perf_counter() - t0
    timer.stop()
    gaps = np.diff(beats)
    def ms(v, f):
        return round(1000 * float(f(v)), 1) if v else None

    res = {"preview_proxy_latency_ms_median": ms(proxy, np.median), "preview_proxy_latency_ms_max": ms(proxy, np.max),
           "preview_full_latency_ms_median": ms(full, np.median), "preview_full_latency_ms_max": ms(full, np.max),
           "paused_proxy_latency_ms_median": ms(proxy_paused, np.median),
           "paused_proxy_latency_ms_max": ms(proxy_paused, np.max),
           "paused_full_latency_ms_median": ms(full_paused, np.median),
           "paused_full_latency_ms_max": ms(full_paused, np.max),
           "inspector_ms_proxy_full": inspector,
           "scrub": scrub,
           "export_seconds_demo_78_frames": round(export_s, 2),
           "gui_longest_stall_ms_during_export": round(1000 * float(gaps.max()), 1),
           "gui_heartbeats": len(beats)}
    print(json.dumps(res, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    win.undo.setClean()
    win.close()
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown of Qt objects (PySide can crash in GC at exit)


if __name__ == "__main__":
    sys.exit(main())
