"""Fit the engines' constants on ``../shared/data/train`` (never on the report set), through the product.

    python benchmarks/fit_analytic.py [--stage prior|light|learned] [--data ../shared/data/train] [--frames 8]

Stages ``prior`` and ``light`` fit the analytic engine; ``learned`` fits the learned engine's ``confidence`` (how
much its two looks may disagree before it holds back), on the clips its network was validated on (the checkpoint's
``val_clips``: it never trained on them).

The lut_static protocol of EVALUATION.md (three seeded draws per clip) is run on the training clips, each case handed
to the render graph as ``harmovid render`` would take it (``bench/graph.py``), once per candidate setting of the
engine. Clips are split by name into a fitting part and a held-out validation part (every fourth clip, sorted). A
setting's score on a part is ``mean log(fmse / fmse_composite) + 0.25 * max log(fmse / fmse_composite)`` over its
cases: better on average, and penalised by the case it ruins most (an editor cannot trust a harmonizer that is much
worse than doing nothing on one talent in ten). The setting with the best fitting score is reported with its
validation score; nothing is changed in the code by this script.
"""

from __future__ import annotations

import argparse
import itertools
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

# The candidates, in two stages. "prior": the weights with which the skin prior pulls the talent (the constants the
# issue says were chosen on the report clips), around the old defaults (docs/bench/fit_analytic_grid.json). "light":
# with stage one's result, how much of the plate's light the talent takes on: the plate's illuminant colour and the
# directional relight (docs/bench/fit_analytic_light.json).
GRIDS = {
    "prior": {
        "intensity_weight": [0.0, 0.33, 0.67, 1.0],
        "colour_weight": [0.0, 0.33, 0.67, 1.0],
    },
    "light": {
        "intensity_weight": [0.0],
        "colour_weight": [0.33],
        "plate_adaptation": [0.0, 0.15, 0.35],
        "direction": [0.0, 0.5, 1.0],
    },
    "learned": {
        "engine": ["learned"],
        "confidence": [0.03, 0.06, 0.1, 0.15, 0.25, 0.5, 10.0],
    },
}


def settings_grid(stage: str) -> list[dict]:
    grid = GRIDS[stage]
    keys = list(grid)
    return [dict(zip(keys, v)) for v in itertools.product(*(grid[k] for k in keys))]


def clip_cases(data_dir: str, name: str, frames: int, grid: list[dict]) -> list[dict]:
    """fMSE of the plain composite and of every setting, for the clip's three lut_static draws."""
    import cv2

    cv2.setNumThreads(1)
    from harmovid_engine.bench.graph import talent_layers
    from harmovid_engine.bench.run import LutClip

    rows = []
    with tempfile.TemporaryDirectory(prefix="harmovid-fit-") as tmp:
        clip = LutClip(Path(data_dir), name, frames, Path(tmp), jitter=False, ssim=False)
        for draw in clip.draws("lut_static"):
            row = {"clip": name, "k": draw.k, "composite": draw.measure(draw.talents)["fmse"], "settings": []}
            for s in grid:
                s = dict(s)
                engine = s.pop("engine", "analytic")
                row["settings"].append(draw.measure(talent_layers(draw.project(), engine, s))["fmse"])
            rows.append(row)
    return rows


def score(rows: list[dict], j: int) -> dict:
    r = np.array([max(row["settings"][j], 1e-9) / max(row["composite"], 1e-9) for row in rows])
    lr = np.log(r)
    return {"score": float(lr.mean() + 0.25 * lr.max()), "mean_ratio": float(np.exp(lr.mean())),
            "worst_ratio": float(r.max()), "worse_than_composite": float((r > 1).mean()),
            "fmse": float(np.mean([row["settings"][j] for row in rows])),
            "composite_fmse": float(np.mean([row["composite"] for row in rows]))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", help="results (default docs/bench/fit_analytic_STAGE.json)")
    ap.add_argument("--stage", choices=sorted(GRIDS), default="light", help="which grid (default: light)")
    ap.add_argument("--grid", help='JSON list of settings to measure instead of the grid, e.g. \'[{"colour_weight": 0.33}]\'')
    args = ap.parse_args()
    from harmovid_engine.engines import ENGINES

    grid = json.loads(args.grid) if args.grid else settings_grid(args.stage)
    engine = grid[0].get("engine", "analytic")
    wanted = None
    if engine == "learned":  # the clips the network never trained on
        import torch

        from harmovid_engine.relight.learned import model_path

        wanted = set(torch.load(model_path(), weights_only=True)["meta"]["val_clips"])
    result = run_grid(clip_cases, score, args.data, args.frames, grid, args.workers, wanted)
    name = "grid" if args.stage == "prior" else args.stage
    defaults = ENGINES[engine].defaults
    report(result, {k: (engine if k == "engine" else defaults[k]) for k in grid[0]},
           "mean log(fmse/fmse_composite) + 0.25 max log(fmse/fmse_composite)",
           Path(args.out or ROOT / "docs" / "bench" / f"fit_analytic_{name}.json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
