"""Speed of the deflicker stages at the Studio's 540p proxy: analytic alone and analytic + learned, per frame.

    python benchmarks/bench_deflicker.py [--data ../shared/data] [--clip d18] [--frames 60] [--model PATH]

The talent clip is scaled to 960x540 (letterboxed talent at full height), harmonized per frame by the analytic
engine (not timed), then each deflicker runs over the sequence the way ``run_sequence`` does (samples, flows,
corrections, application at full resolution); the report is milliseconds per frame and frames per second, with
``torch`` limited to the machine's cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harmovid_engine.colour import srgb_to_linear  # noqa: E402
from harmovid_engine.deflicker import AnalyticDeflicker  # noqa: E402
from harmovid_engine.deflicker.learned import LearnedDeflicker  # noqa: E402
from harmovid_engine.engines import create_engine  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--clip", default="d18")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--model")
    args = ap.parse_args()
    data = Path(args.data)
    cap = cv2.VideoCapture(str(data / "clips" / f"{args.clip}.mp4"))
    alpha = np.load(data / "clips" / f"{args.clip}.alpha.npz")["alpha"]
    W, H = 960, 540
    talents, alphas = [], []
    while len(talents) < args.frames:
        ok, f = cap.read()
        if not ok:
            break
        h, w = f.shape[:2]
        s = H / h
        tw = round(w * s)
        x0 = (W - tw) // 2
        canvas = np.zeros((H, W, 3), np.uint8)
        acanvas = np.zeros((H, W), np.float32)
        canvas[:, x0:x0 + tw] = cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2RGB), (tw, H), interpolation=cv2.INTER_AREA)
        acanvas[:, x0:x0 + tw] = cv2.resize(alpha[len(talents)], (tw, H)).astype(np.float32) / 255
        talents.append(srgb_to_linear(canvas.astype(np.float32) / 255))
        alphas.append(acanvas)
    plate = srgb_to_linear(np.full((H, W, 3), 0.4, np.float32))
    eng = create_engine("analytic")
    per_frame = [eng.harmonize(t, a, plate, i) for i, (t, a) in enumerate(zip(talents, alphas))]
    n = len(per_frame)
    res = {}
    for name, stage in [("analytic", AnalyticDeflicker()), ("analytic + learned", LearnedDeflicker(args.model))]:
        stage.run_sequence(per_frame[:12], talents[:12], alphas[:12])  # warm-up (torch kernels, caches)
        t0 = time.perf_counter()
        stage.run_sequence(per_frame, talents, alphas)
        ms = (time.perf_counter() - t0) * 1000 / n
        res[name] = ms
        print(f"{name:20s} {ms:6.1f} ms/frame  ({1000 / ms:5.1f} fps) at {W}x{H}, {n} frames of {args.clip}")
    learned_only = res["analytic + learned"] - res["analytic"]
    print(f"{'learned stage alone':20s} {learned_only:6.1f} ms/frame  ({1000 / max(learned_only, 1e-6):5.1f} fps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
