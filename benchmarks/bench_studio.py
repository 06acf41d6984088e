"""Studio benchmark: preview latency (proxy and full passes) while scrubbing, and the longest GUI-thread stall
during an export.

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
    proxy, full = [], []
    for f in (10, 40, 70, 25, 55, 5, 60, 33):
        t0 = time.perf_counter()
        win.seek(f)
        rid = win._rid
        pump(lambda: (rid, "full") in arrivals)
        if (rid, "proxy") in arrivals:
            proxy.append(arrivals[(rid, "proxy")] - t0)
        full.append(arrivals[(rid, "full")] - t0)
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
    res = {"preview_proxy_latency_ms_median": round(1000 * float(np.median(proxy)), 1) if proxy else None,
           "preview_proxy_latency_ms_max": round(1000 * float(np.max(proxy)), 1) if proxy else None,
           "preview_full_latency_ms_median": round(1000 * float(np.median(full)), 1),
           "preview_full_latency_ms_max": round(1000 * float(np.max(full)), 1),
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
