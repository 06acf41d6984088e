"""What the fit scripts share: the split of ``train/`` clips, the run of a settings grid over them, the report.

Every fit runs its protocol through the render graph (``bench/graph.py``), so the constants it chooses are chosen on
what ``harmovid render`` does. Clips are split by name into a fitting part and a held-out part (every fourth clip,
sorted, from the fourth); a setting is chosen on the fitting part and reported on both.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def split(clips: list[str]) -> tuple[list[str], list[str]]:
    """(fitting clips, held-out validation clips): every fourth clip by name is held out."""
    clips = sorted(clips)
    return [c for i, c in enumerate(clips) if i % 4 != 3], [c for i, c in enumerate(clips) if i % 4 == 3]


def run_grid(clip_cases, score, data: str, frames: int, grid: list[dict], workers: int,
             wanted: set | None = None) -> dict:
    """Run ``clip_cases(data, clip, frames, grid)`` on every clip (in ``workers`` processes) and score every setting
    on both parts with ``score(rows, j)``; returns the result record (without ``shipped``/``best``)."""
    from harmovid_engine.bench.run import _run_jobs, find_data

    clips, _ = find_data(Path(data))
    fit, held = split(clips)
    if wanted:
        clips, fit, held = ([c for c in x if c in wanted] for x in (clips, fit, held))
    t0 = time.perf_counter()
    rows = {}
    for name, res in _run_jobs(clip_cases, {c: (data, c, frames, grid) for c in clips}, workers):
        rows[name] = res
        print(f"{name} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    fit_rows = [r for c in fit for r in rows[c]]
    held_rows = [r for c in held for r in rows[c]]
    table = [{"settings": s, "fit": score(fit_rows, j) if fit_rows else None,
              "held_out": score(held_rows, j) if held_rows else None} for j, s in enumerate(grid)]
    return {"data": data, "frames": frames, "fit_clips": fit, "held_out_clips": held, "table": table, "cases": rows,
            "seconds": time.perf_counter() - t0}


def report(result: dict, shipped: dict, objective: str, out: Path) -> None:
    """Add the shipped setting and the best on the fitting part, write ``out`` and print both."""
    table = result["table"]
    best = min(table, key=lambda t: (t["fit"] or t["held_out"])["score"])
    result.update(objective=objective, shipped=shipped, best=best)
    out.write_text(json.dumps(result, indent=1) + "\n")
    ship = next((t for t in table if t["settings"] == shipped), None)
    for label, t in (("shipped", ship), ("best on fit", best)):
        if t:
            print(f"{label}: {t['settings']}\n  fit {t['fit']}\n  held-out {t['held_out']}")
