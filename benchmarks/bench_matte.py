"""Interactive matte benchmarks: SAM click latency with a cached embedding, and propagation quality.

    python benchmarks/bench_matte.py [--data ../shared/data] [--out docs/bench] [--clips d0 d18 ...] [--skip-sam]

Propagation (issue #5's protocol): for each clip, start from the reference pseudo-alpha on frame 0 only, propagate
through the whole clip with flow + colour model + edge refinement (no SAM weights), and compare every frame with the
reference (IoU of alpha > 0.5) and, where the reference is soft (0.02 < alpha < 0.98), the mean absolute alpha
error (``soft_edge_error``). Writes ``propagation.json``, ``propagation_contact.png`` (middle and last frame of
each clip: red = missed, blue = extra) and prints a table. SAM latency uses the real ViT-B architecture with random
weights (the compute is the same as the published checkpoint's).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harmovid_engine.matte.propagate import propagate  # noqa: E402
from harmovid_engine.matte.refine import mask_iou  # noqa: E402


def read_clip(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    return frames


def overlay(frame, alpha, ref):
    v = frame.copy()
    m, r = alpha > 0.5, ref > 0.5
    v[r & ~m] = (230, 40, 40)
    v[m & ~r] = (40, 80, 230)
    return v


def run_clip(args):
    data, name = args
    cv2.setNumThreads(1)
    frames = read_clip(data / "clips" / f"{name}.mp4")
    ref = np.load(data / "clips" / f"{name}.alpha.npz")["alpha"].astype(np.float32) / 255
    n = min(len(frames), len(ref))
    t0 = time.perf_counter()
    ious = np.zeros(n)
    soft = np.full(n, np.nan)
    keep = {}
    for mf in propagate(lambda i: frames[i], n, {0: ref[0]}):
        if mf.final:
            ious[mf.index] = mask_iou(mf.alpha, ref[mf.index])
            band = (ref[mf.index] > 0.02) & (ref[mf.index] < 0.98)  # the reference's soft edge (hair, motion blur)
            if band.any():
                soft[mf.index] = float(np.abs(mf.alpha[band] - ref[mf.index][band]).mean())
            if mf.index in (n // 2, n - 1):
                keep[mf.index] = overlay(frames[mf.index], mf.alpha, ref[mf.index])
    ms = (time.perf_counter() - t0) * 1000 / max(1, n - 1)
    tiles = [keep[n // 2], keep[n - 1]]
    return name, {"frames": n, "mean_iou": float(ious[1:].mean()), "min_iou": float(ious[1:].min()),
                  "worst_frame": int(np.argmin(ious[1:]) + 1), "ms_per_frame": ms,
                  "soft_edge_error": float(np.nanmean(soft[1:])) if np.isfinite(soft[1:]).any() else None}, tiles


def contact_sheet(rows: dict, out: Path, height: int = 220) -> None:
    lines = []
    for name, tiles in rows.items():
        scaled = [cv2.resize(t, (int(t.shape[1] * height / t.shape[0]), height), interpolation=cv2.INTER_AREA)
                  for t in tiles]
        row = np.concatenate(scaled, 1)
        cv2.putText(row, name, (8, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
        lines.append(row)
    w = max(r.shape[1] for r in lines)
    lines = [np.pad(r, ((0, 4), (0, w - r.shape[1]), (0, 0))) for r in lines]
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(lines, 0), cv2.COLOR_RGB2BGR))


def sam_latency(frame: np.ndarray) -> dict:
    import torch

    from harmovid_engine.matte.sam import Prompts, SamSession, build_sam

    torch.manual_seed(0)
    s = SamSession(build_sam("vit_b"))
    t0 = time.perf_counter()
    s.embed("f", frame)
    embed_s = time.perf_counter() - t0
    h, w = frame.shape[:2]
    cases = {
        "one point": (Prompts([(w / 2, h / 2)], [1]), None),
        "three points": (Prompts([(w / 2, h / 2), (w / 2, h / 3), (w / 8, h / 8)], [1, 1, 0]), None),
        "box": (Prompts(box=(w / 4, h / 8, 3 * w / 4, h - 1)), None),
    }
    first = s.predict(cases["one point"][0])
    cases["point + previous logits"] = (Prompts([(w / 2, h / 2), (w / 3, h / 2)], [1, 1]), first.logits[first.best])
    out = {"embedding_s": embed_s, "frame": f"{w}x{h}", "threads": torch.get_num_threads()}
    for label, (pr, mi) in cases.items():
        times = []
        for _ in range(15):
            t0 = time.perf_counter()
            s.embed("f", frame)  # cache hit, as when the user clicks
            s.predict(pr, mask_input=mi)
            times.append((time.perf_counter() - t0) * 1000)
        out[label] = {"median_ms": statistics.median(times), "max_ms": max(times)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench"))
    ap.add_argument("--clips", nargs="*")
    ap.add_argument("--skip-sam", action="store_true")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = args.clips or sorted(p.name[:-10] for p in (data / "clips").glob("*.alpha.npz"))
    results = {"command": "python benchmarks/bench_matte.py " + " ".join(sys.argv[1:]), "propagation": {}}
    rows = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for name, r, tiles in pool.map(run_clip, [(data, n) for n in names]):
            results["propagation"][name] = r
            rows[name] = tiles
            se = r["soft_edge_error"]
            print(f"{name:5s} mean IoU {r['mean_iou']:.4f}  min {r['min_iou']:.4f} (frame {r['worst_frame']})  "
                  f"soft-edge error {se if se is None else round(se, 4)}  {r['ms_per_frame']:.0f} ms/frame",
                  flush=True)
    contact_sheet(rows, out / "propagation_contact.png")
    if not args.skip_sam:
        frame = read_clip(data / "clips" / f"{names[0]}.mp4")[0]
        frame = cv2.resize(frame, (1280, 720)) if max(frame.shape[:2]) < 720 else frame
        results["sam_click"] = sam_latency(frame)
        print(json.dumps(results["sam_click"], indent=1))
    (out / "matte.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
