"""Studio soak: minutes of scripted editing in the real main window, watching for crashes, leaks and stalls.

The script repeats what an editor does all day, in random order (seeded): seek, play and stop, scrub (many seeks in
a row), change an Inspector setting, switch view modes, paint and erase the matte with the brush, undo and redo,
zoom, save. Every 10 s it records the process's memory (RSS), Python's reference counts of None/True/False (a Qt
binding that drops references, as PySide6 6.12.0 on Python 3.11 did, makes them fall until the interpreter dies),
the number of live Python objects, and the longest GUI-thread stall between actions (the time of each action itself,
run on the GUI thread as a user's click is, is listed per kind). It ends with a JSON summary; memory growth is
judged on the second half (the first fills caches).

    xvfb-run -a python benchmarks/soak_studio.py --minutes 10 --out soak.json
    QT_QPA_PLATFORM=offscreen python benchmarks/soak_studio.py --minutes 1
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from app.main_window import MainWindow
    from app.viewer import VIEW_MODES
    from harmovid_engine.resources import copy_demo

    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="hv-soak-"))
    demo = copy_demo(tmp / "demo")
    win = MainWindow(QSettings(str(tmp / "s.ini"), QSettings.IniFormat))
    errors: list[str] = []
    win.show_error = lambda title, msg: errors.append(f"{title}: {msg}")
    win.ask = lambda title, text, buttons, default: QMessageBox.Yes if buttons & QMessageBox.Yes else default
    win.resize(1400, 900)
    win.show()
    assert win.open_project(demo)
    rng = random.Random(args.seed)
    counts: dict[str, int] = {}
    samples = []
    stall = [0.0, time.perf_counter()]  # longest gap between heartbeats in this sample, last beat

    def beat():
        now = time.perf_counter()
        stall[0] = max(stall[0], now - stall[1])
        stall[1] = now

    heart = QTimer()
    heart.timeout.connect(beat)
    heart.start(10)
    spins = [(k, w) for k, w in win.inspector.widgets.items() if hasattr(w, "setValue") and hasattr(w, "maximum")]

    def act():
        n = win.frame_count
        kind = rng.choice(["seek", "seek", "scrub", "play", "stop", "setting", "view", "brush", "undo", "redo",
                           "zoom", "save"])
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "seek":
            win.seek(rng.randrange(n))
        elif kind == "scrub":
            start = rng.randrange(n)
            for k in range(12):
                win.seek((start + k * rng.choice([1, 2, 3])) % n)
                app.processEvents()
        elif kind == "play":
            win.shuttle(rng.choice([1, 1, -1]))
        elif kind == "stop":
            win.stop()
        elif kind == "setting" and spins:
            key, w = rng.choice(spins)
            lo, hi = w.minimum(), w.maximum()
            w.setValue(lo + (hi - lo) * rng.random() * 0.5)
        elif kind == "view":
            win.set_view_mode(rng.choice(list(VIEW_MODES)))
        elif kind == "brush":
            win.stop()
            mt = win.matte_tools
            mt.set_tool("brush")
            mt.refresh_view()
            x, y = rng.uniform(40, 400), rng.uniform(40, 400)
            mt.stroke([(x, y), (x + 30, y + 10)], erase=rng.random() < 0.5)
            mt.set_tool("off")
        elif kind == "undo" and win.undo.canUndo():
            win.undo.undo()
        elif kind == "redo" and win.undo.canRedo():
            win.undo.redo()
        elif kind == "zoom":
            win.viewer.set_zoom(rng.choice([None, 0.5, 1.0, 2.0]))
        elif kind == "save":
            win.save()
        return kind

    t0 = time.perf_counter()
    end = t0 + args.minutes * 60
    next_sample = t0
    actions = 0
    durations: dict[str, list[float]] = {}
    while time.perf_counter() < end:
        a0 = time.perf_counter()
        kind = act()
        durations.setdefault(kind, []).append(time.perf_counter() - a0)
        actions += 1
        stall[1] = time.perf_counter()  # stalls count between actions only (an action's own time is listed apart)
        pause = time.perf_counter() + rng.uniform(0.05, 0.6)
        while time.perf_counter() < pause:
            app.processEvents()
            time.sleep(0.005)
        if time.perf_counter() >= next_sample:
            gc.collect()
            samples.append({"t": round(time.perf_counter() - t0, 1), "rss_mb": round(rss_mb(), 1),
                            "none_refs": sys.getrefcount(None), "true_refs": sys.getrefcount(True),
                            "objects": len(gc.get_objects()), "stall_ms": round(stall[0] * 1000, 1)})
            stall[0] = 0.0
            next_sample += 10
    win.stop()
    win.undo.setClean()
    win.close()
    half = [s for s in samples if s["t"] >= samples[-1]["t"] / 2] or samples
    span_min = max((half[-1]["t"] - half[0]["t"]) / 60, 1e-6)
    summary = {
        "minutes": args.minutes, "actions": actions, "by_kind": counts, "errors": errors[:20],
        "rss_mb": {"start": samples[0]["rss_mb"], "end": samples[-1]["rss_mb"],
                   "max": max(s["rss_mb"] for s in samples),
                   "second_half_growth_mb_per_min": round((half[-1]["rss_mb"] - half[0]["rss_mb"]) / span_min, 2)},
        "none_refs": {"min": min(s["none_refs"] for s in samples), "max": max(s["none_refs"] for s in samples),
                      "end_minus_start": samples[-1]["none_refs"] - samples[0]["none_refs"]},
        "objects": {"start": samples[0]["objects"], "end": samples[-1]["objects"]},
        "longest_stall_ms": max(s["stall_ms"] for s in samples[1:] or samples),
        "stall_ms_median_of_samples": sorted(s["stall_ms"] for s in samples)[len(samples) // 2],
        "action_ms": {k: {"median": round(1000 * sorted(v)[len(v) // 2], 1), "max": round(1000 * max(v), 1)}
                      for k, v in sorted(durations.items())},
        "samples": samples,
    }
    text = json.dumps(summary, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    print(json.dumps({k: v for k, v in summary.items() if k != "samples"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
