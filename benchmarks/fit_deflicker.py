"""Fit the analytic deflicker's windows on ``../shared/data/train`` (never on the report set), through the product.

    python benchmarks/fit_deflicker.py [--data ../shared/data/train] [--frames 30] [--out docs/bench/fit_deflicker.json]

The lut_jitter protocol of EVALUATION.md (three seeded draws per clip, perturbation jittered per frame) is run on the
training clips; every case is handed to the render graph as ``harmovid render`` would take it (``bench/graph.py``),
once with the analytic engine alone and once per candidate deflicker setting. Clips are split as in
``fit_analytic.py`` (every fourth clip by name held out). A setting's score on a part is the mean over its cases of
``log(flicker / flicker_0) + log(tl_ratio / tl_ratio_0) + log(fmse / fmse_0)``, where ``_0`` is the engine without
the deflicker: flicker and warping error removed count, and so does any harm to the colour match. The candidates are
the constants the issue says were chosen on the report clips: the window radius (``render.deflicker_radius``; the
local terms use half), the line fit's slope prior and the local residual grid. Nothing is changed in the code by this
script.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fitting import report, run_grid  # noqa: E402

# One constant at a time around the shipped setting (a render per setting and draw costs ~5 s on 2 cores, so the full
# product of these values, 40 settings over 39 clips, would take a day): each value below with the others shipped.
# The centre is the setting chosen on the report clips before the refit (docs/bench/fit_deflicker.json was run so).
CENTRE = {"radius": 16, "slope_prior": 0.1, "grid": 12}
AXES = {
    "radius": [4, 8, 16, 24],
    "slope_prior": [0.0, 0.1, 0.3],
    "grid": [6, 12, 16],
}
METRICS = ("flicker", "tl_ratio", "fmse")


def settings_grid() -> list[dict]:
    out = [dict(CENTRE)]
    for key, values in AXES.items():
        out += [{**CENTRE, key: v} for v in values if v != CENTRE[key]]
    return out


def use_constants(slope_prior: float, grid: int) -> None:
    """Set the analytic deflicker's module constants in this (worker) process; they are read at call time."""
    from harmovid_engine.deflicker import analytic

    analytic.SLOPE_PRIOR = slope_prior
    analytic.GRID = grid
    analytic.LOCAL_SHAPE = (2 + grid * grid, 3)
    analytic.ZERO = analytic.PairDelta(np.zeros(3, np.float32), np.zeros(analytic.LOCAL_SHAPE, np.float32),
                                       np.zeros(3, np.float32), 0.0)


def clip_cases(data_dir: str, name: str, frames: int, grid: list[dict]) -> list[dict]:
    """flicker, tl_ratio and fMSE of the engine alone, the ideal row and every setting, per lut_jitter draw."""
    import cv2

    cv2.setNumThreads(1)
    from harmovid_engine.bench.graph import talent_layers
    from harmovid_engine.bench.run import LutClip
    from harmovid_engine.deflicker import analytic

    shipped = (analytic.SLOPE_PRIOR, analytic.GRID)
    pick = lambda row: {m: row[m] for m in METRICS}  # noqa: E731
    rows = []
    with tempfile.TemporaryDirectory(prefix="harmovid-fit-") as tmp:
        clip = LutClip(Path(data_dir), name, frames, Path(tmp), jitter=True, ssim=False)
        ideal = pick(clip.draws("lut_jitter")[0].measure(clip.ideal))
        for draw in clip.draws("lut_jitter"):
            row = {"clip": name, "k": draw.k, "ideal": ideal, "composite": pick(draw.measure(draw.talents)),
                   "engine": pick(draw.measure(talent_layers(draw.project(), "analytic"))), "settings": []}
            try:
                for s in grid:
                    use_constants(s["slope_prior"], s["grid"])
                    out = talent_layers(draw.project(), "analytic+deflicker", render={"deflicker_radius": s["radius"]})
                    row["settings"].append(pick(draw.measure(out)))
            finally:
                use_constants(*shipped)
            rows.append(row)
    return rows


def score(rows: list[dict], j: int) -> dict:
    logs = {m: np.log(np.array([max(r["settings"][j][m], 1e-6) / max(r["engine"][m], 1e-6) for r in rows]))
            for m in METRICS}
    out = {"score": float(sum(v.mean() for v in logs.values()))}
    for m in METRICS:
        out[m] = float(np.mean([r["settings"][j][m] for r in rows]))
        out[f"{m}_engine"] = float(np.mean([r["engine"][m] for r in rows]))
        out[f"{m}_worse_than_engine"] = float((logs[m] > 0).mean())
    out["tl_excess"] = out["tl_ratio"] / float(np.mean([r["ideal"]["tl_ratio"] for r in rows]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--clips", help="comma-separated subset of the clips (default: all)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench" / "fit_deflicker.json"))
    ap.add_argument("--grid", help='JSON list of settings instead of the grid, e.g. \'[{"radius": 16, '
                                   '"slope_prior": 0.1, "grid": 12}]\'')
    args = ap.parse_args()
    from harmovid_engine.deflicker import analytic

    grid = json.loads(args.grid) if args.grid else settings_grid()
    result = run_grid(clip_cases, score, args.data, args.frames, grid, args.workers,
                      set(args.clips.split(",")) if args.clips else None)
    report(result, {"radius": analytic.RADIUS, "slope_prior": analytic.SLOPE_PRIOR, "grid": analytic.GRID},
           "mean log(flicker/flicker_engine) + mean log(tl_ratio/tl_ratio_engine) + mean log(fmse/fmse_engine)",
           Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
