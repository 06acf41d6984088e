"""Media I/O benchmark: decode and encode fps at 1080p, and peak memory of a 3000-frame streamed render.

    python benchmarks/bench_media.py [--frames 240] [--long 3000] [--out results.json]

Memory must not grow with clip length: the script renders a 3000-frame synthetic talent clip over a still plate to
H.264 through the real render job and samples this process's resident memory every 100 frames.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harmovid_engine.media import open_source, open_writer
from harmovid_engine.media.ffmpeg import ffmpeg_exe


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_clip(path: Path, frames: int, size: str, extra: list[str] | None = None) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=25:duration={frames / 25}", *(extra or []),
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", str(path)],
                   check=True)


def bench_decode_encode(tmp: Path, frames: int) -> dict:
    clip = tmp / "hd.mp4"
    make_clip(clip, frames, "1920x1080")
    src = open_source(clip)
    t = time.perf_counter()
    decoded = []
    for i, f in src.frames():
        if i < 8:
            decoded.append(f)
    decode_fps = frames / (time.perf_counter() - t)
    from harmovid_engine.colour import to_linear

    lin = to_linear(decoded[0])
    t = time.perf_counter()
    for _ in range(20):
        to_linear(decoded[0])
    to_linear_ms = (time.perf_counter() - t) / 20 * 1000
    res = {"decode_fps_1080p": round(decode_fps, 1), "to_linear_ms_1080p": round(to_linear_ms, 2)}
    for fmt, name, opts in (("h264", "e.mp4", {"crf": 18, "preset": "medium"}), ("h264", "f.mp4",
                            {"crf": 18, "preset": "veryfast"}), ("prores4444", "e.mov", {})):
        k = min(frames, 60)
        t = time.perf_counter()
        with open_writer(fmt, tmp / name, 1920, 1080, src.info.fps, **opts) as w:
            for j in range(k):
                w.write(lin)
        key = f"encode_fps_1080p_{fmt}" + (f"_{opts['preset']}" if fmt == "h264" else "")
        res[key] = round(k / (time.perf_counter() - t), 1)
    return res


def bench_long_render(tmp: Path, frames: int) -> dict:
    from harmovid_engine.project import create_project
    from harmovid_engine.render import render

    talent = tmp / "long.mp4"
    make_clip(talent, frames, "320x240")
    plate = tmp / "plate.png"
    import cv2

    cv2.imwrite(str(plate), np.full((240, 320, 3), 90, np.uint8))
    proj = create_project(tmp / "proj", talent, plate)
    samples = []
    t = time.perf_counter()
    for p in render(proj, tmp / "long_out.mp4", fmt="h264"):
        if p.done % 100 == 0:
            samples.append((p.done, rss_mb()))
    elapsed = time.perf_counter() - t
    first = np.mean([m for d, m in samples if d <= 500])
    last = np.mean([m for d, m in samples if d > frames - 500])
    return {"long_render_frames": frames, "long_render_fps_320x240": round(frames / elapsed, 1),
            "rss_mb_first_500": round(float(first), 1), "rss_mb_last_500": round(float(last), 1),
            "rss_mb_peak": round(max(m for _, m in samples), 1),
            "rss_growth_mb_per_1000_frames": round(float(np.polyfit([d for d, _ in samples],
                                                                    [m for _, m in samples], 1)[0] * 1000), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=240, help="frames of the 1080p decode test")
    ap.add_argument("--long", type=int, default=3000, help="frames of the memory test")
    ap.add_argument("--out", help="write results as JSON here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        res = {"machine": f"{platform.machine()} {platform.processor() or ''} cores={__import__('os').cpu_count()}",
               "python": sys.version.split()[0]}
        res.update(bench_decode_encode(tmp, args.frames))
        res.update(bench_long_render(tmp, args.long))
    print(json.dumps(res, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
