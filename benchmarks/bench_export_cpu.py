"""Where an export's time goes: the speed protocol's 1080p render with the CPU it used, ours and the encoder's.

    python benchmarks/bench_export_cpu.py [--data ../shared/data] [--clip d10] [--frames 120] [--runs 1]
                                          [--engines analytic learned]

Renders ``--clip`` (talent) upscaled onto a 1920x1080 still (the first plate), like ``harmovid bench --protocols
speed``, and times a plain ffmpeg transcode of the result with the same encoder settings. Beside the wall times it
prints the CPU seconds of this process (decode reading, matte, estimate, deflicker, composite, 4:2:0 conversion) and
of its child processes (ffmpeg: the talent's decoder and the x264 encoder), and how many of the two cores were busy.
Alternate runs of two checkouts (``PYTHONPATH=OTHER python benchmarks/bench_export_cpu.py``) to compare them: the
machine's speed drifts by several percent within an hour.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import cv2


def cpu() -> tuple[float, float]:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--clip", default="d10")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--engines", nargs="+", default=["analytic"], help="engines to time, alternated in each run")
    args = ap.parse_args()

    from harmovid_engine.composite.fast import warm_up
    from harmovid_engine.bench.run import plain_transcode
    from harmovid_engine.project import create_project
    from harmovid_engine.render import Compositor, render

    warm_up()  # the kernels compile once per install; not part of an export
    plate = sorted((args.data / "plates").glob("*.jpg"))[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cv2.imwrite(str(tmp / "plate.png"), cv2.resize(cv2.imread(str(plate)), (1920, 1080),
                                                       interpolation=cv2.INTER_AREA))
        proj = create_project(tmp / "proj", args.data / "clips" / f"{args.clip}.mp4", tmp / "plate.png",
                              matte=str(args.data / "clips" / f"{args.clip}.alpha.npz"))
        for run, engine in ((r, e) for r in range(args.runs) for e in args.engines):
            proj.render.engine, proj.render.engine_settings = engine, {}
            s0, c0 = cpu()
            t0 = time.perf_counter()
            comp = Compositor(proj)
            comp.streaming()
            for _ in render(proj, tmp / "render.mp4", fmt="h264", end=args.frames - 1, compositor=comp):
                pass
            wall = time.perf_counter() - t0
            comp.close()
            s1, c1 = cpu()
            ff = plain_transcode(tmp / "render.mp4", tmp / "transcode.mp4", proj.render)
            ours, theirs, ref = s1 - s0, c1 - c0, cpu()[1] - c1
            print(f"run {run + 1} {engine}: render {wall:.2f} s (ours {ours:.2f} + ffmpeg {theirs:.2f} CPU-s, "
                  f"{(ours + theirs) / wall:.2f} cores busy); transcode {ff:.2f} s ({ref:.2f} CPU-s); ratio {wall / ff:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
