"""``harmovid bench``: the protocols of the shared EVALUATION.md on any folder laid out like ``../shared/data``.

Writes ``OUT/results.json`` shaped ``{protocol: {method: {metric: value}}}``, ``OUT/report.md``, plots and contact
sheets. Methods: ``composite``, ``reinhard``, ``ema``, and each engine as ``ENGINE`` and ``ENGINE+deflicker``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..colour import from_linear, srgb_to_linear
from ..errors import HarmoVidError
from .methods import BASELINES, run_baseline
from .metrics import SsimReference, WarpReference, flicker, mse, psnr_from_mse
from .protocols import clean_plate, composite_codes, draw_jitter, draw_static, load_clip, perturb

PROTOCOLS = ("lut_static", "lut_jitter", "relight", "speed")
# Reference row of the lut protocols: the real clip composited over the inpainted plate, i.e. a perfect harmonizer.
# Its tl_ratio is the protocol's floor: the plate is inpainted frame by frame, and that flicker shows through the soft
# edge of the matte whatever the harmonizer does.
IDEAL = "ideal"
RELIGHT_MAX_SIDE = 640  # relight flicker/tl_ratio are computed with the plate scaled to at most this long side


def find_data(data_dir: Path) -> tuple[list[str], list[Path]]:
    clips_dir, plates_dir = data_dir / "clips", data_dir / "plates"
    if not clips_dir.is_dir() or not plates_dir.is_dir():
        raise HarmoVidError(f"'{data_dir}' is not laid out like the sample data (clips/ and plates/ folders)")
    clips = sorted(p.stem for p in clips_dir.glob("*.mp4") if (clips_dir / f"{p.stem}.alpha.npz").exists())
    plates = sorted(p for p in plates_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".mp4", ".mov"))
    if not clips:
        raise HarmoVidError(f"no clips with mattes (NAME.mp4 + NAME.alpha.npz) in '{clips_dir}'")
    return clips, plates


def select_data(all_clips: list[str], all_plates: list[Path], clips: list[str] | None,
                plates: list[str] | None) -> tuple[list[str], list[Path]]:
    """The ``--clips`` / ``--plates`` subsets (all when not given); a name that is not there is an error."""
    if clips:
        missing = [c for c in clips if c not in all_clips]
        if missing:
            raise HarmoVidError(f"no clip(s) {', '.join(missing)} in the data (there: {', '.join(all_clips)})")
        all_clips = [c for c in all_clips if c in clips]
    if plates:
        names = {p.name: p for p in all_plates} | {p.stem: p for p in all_plates}
        missing = [p for p in plates if p not in names]
        if missing:
            raise HarmoVidError(f"no plate(s) {', '.join(missing)} in the data "
                                f"(there: {', '.join(p.name for p in all_plates)})")
        chosen = {names[p] for p in plates}
        all_plates = [p for p in all_plates if p in chosen]
    return all_clips, all_plates


def methods_for(engines: list[str]) -> list[str]:
    from ..deflicker.learned import model_path

    learned = model_path().is_file()
    out = ["composite", "reinhard", "ema"]
    for e in engines:
        out += [e, f"{e}+deflicker"] + ([f"{e}+learned-deflicker"] if learned else [])
    return out


def to_codes(lin: np.ndarray) -> np.ndarray:
    """float32 linear -> code values 0..255 (float32), rounded exactly as the 8-bit writers round."""
    return from_linear(lin, np.uint8).astype(np.float32)


def _composite_lin(h, a, b):
    return h * a[..., None] + b * (1.0 - a[..., None])


# -- lut protocols -------------------------------------------------------------------------------------------------
class LutDraw:
    """One (clip, protocol, k) case of a lut protocol: the recoloured talent (linear, from the 8-bit codes a clip
    holds), the render-graph project that holds it (``project()``, written on first use) and the metrics of any
    harmonized talent layer against the real clip (``measure``)."""

    def __init__(self, clip: "LutClip", proto: str, k: int):
        self.clip, self.proto, self.k = clip, proto, k
        c = clip.clip
        T = len(c.frames)
        pert = draw_jitter(c.name, k, T) if proto == "lut_jitter" else [draw_static(c.name, k)] * T
        self.codes = [np.clip(np.round(composite_codes(c.frames[t], perturb(c.frames[t], pert[t]), clip.alphas[t])),
                              0, 255).astype(np.uint8) for t in range(T)]
        self.talents = [srgb_to_linear(x.astype(np.float32) / 255.0) for x in self.codes]
        self._project = None

    def project(self):
        if self._project is None:
            self._project = self.clip.case.project(f"{self.proto}_{self.k}", self.codes)
        return self._project

    def measure(self, harmonized) -> dict:
        """mse, fmse, psnr, fpsnr, ssim (+ flicker and tl_ratio on lut_jitter) of ``harmonized`` talent layers
        composited over the inpainted plate with the matte."""
        c = self.clip
        outs = [to_codes(_composite_lin(h, a, b)) for h, a, b in zip(harmonized, c.alphas, c.plates_lin)]
        f_mse = [mse(o, i) for o, i in zip(outs, c.refs)]
        f_fmse = [mse(o, i, m_) for o, i, m_ in zip(outs, c.refs, c.fg)]
        row = {
            "clip": c.clip.name, "k": self.k,
            "mse": float(np.mean(f_mse)), "fmse": float(np.mean(f_fmse)),
            "psnr": float(np.mean([psnr_from_mse(v) for v in f_mse])),
            "fpsnr": float(np.mean([psnr_from_mse(v) for v in f_fmse])),
        }
        if c.ssim_refs is not None:
            row["ssim"] = float(np.mean([r.ssim(o) for o, r in zip(outs, c.ssim_refs)]))
        if self.proto == "lut_jitter":
            row["flicker"] = flicker(outs, c.refs, c.fg)
            row["tl_ratio"] = c.warp_ref.error(outs) / max(c.e_ref, 1e-9)
        return row


class LutClip:
    """A clip of the lut protocols, loaded and inpainted once, with its matte and plate as media in ``folder``
    (``bench/graph.py``): ``draws(proto)`` gives its three cases. The matte is the 8-bit one the graph reads back."""

    def __init__(self, data_dir: Path, name: str, frames: int, folder: Path, jitter: bool, ssim: bool = True):
        from .graph import LutCase

        self.clip = clip = load_clip(data_dir, name, frames)
        T = len(clip.frames)
        alpha_u8 = np.round(clip.alpha * 255.0).astype(np.uint8)
        self.alphas = list(alpha_u8.astype(np.float32) / 255.0)
        plates = [clean_plate(clip.frames[t], self.alphas[t]) for t in range(T)]
        self.plates_lin = [srgb_to_linear(p.astype(np.float32) / 255.0) for p in plates]
        self.fg = [a > 0.5 for a in self.alphas]
        self.refs = [f.astype(np.float32) for f in clip.frames]
        self.warp_ref = WarpReference(self.refs, self.fg) if jitter else None
        self.e_ref = self.warp_ref.error(self.refs) if jitter else None
        self.ssim_refs = [SsimReference(i) for i in self.refs] if ssim else None
        # the real clip as the talent layer: what a perfect harmonizer would hand over
        self.ideal = [srgb_to_linear(f.astype(np.float32) / 255.0) for f in clip.frames]
        self.case = LutCase(folder, alpha_u8, plates)

    def draws(self, proto: str) -> list[LutDraw]:
        return [LutDraw(self, proto, k) for k in range(3)]


def _lut_clip(data_dir: Path, name: str, frames: int, methods: list[str], which: tuple[str, ...]) -> dict:
    """Rows {protocol: {method: [row per k]}} for one clip; the clip is loaded and inpainted once for both.

    Each draw's talent (the recoloured composite, rounded to 8-bit codes as a clip holds them), the clip's matte and
    its inpainted plate are handed to the render graph as temporary media; engine and deflicker rows are the talent
    layer it renders, composited back over the plate with the matte."""
    from .graph import talent_layers

    rows = methods + [IDEAL]
    per_case = {p: {m: [] for m in rows} for p in which}
    with tempfile.TemporaryDirectory(prefix="harmovid-bench-") as tmp:
        clip = LutClip(data_dir, name, frames, Path(tmp), jitter="lut_jitter" in which)
        for proto in which:
            for draw in clip.draws(proto):
                for m in rows:
                    t0 = time.perf_counter()
                    if m == IDEAL:
                        harmonized = clip.ideal
                    elif m == "composite":
                        harmonized = draw.talents
                    elif m in BASELINES:
                        harmonized = run_baseline(m, draw.talents, clip.alphas, clip.plates_lin, clip.clip.fps)
                    else:
                        harmonized = talent_layers(draw.project(), m)
                    row = draw.measure(harmonized)
                    row["seconds"] = time.perf_counter() - t0
                    per_case[proto][m].append(row)
    return per_case


def _pool(workers: int):
    import concurrent.futures as cf
    import multiprocessing as mp

    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                  initializer=_worker_init)


def _worker_init():
    cv2.setNumThreads(1)


def _run_jobs(fn, jobs: dict, workers: int):
    """Yield (key, fn(*args)) for ``jobs = {key: args}``, over ``workers`` processes when more than one."""
    if workers <= 1:
        for key, args in jobs.items():
            yield key, fn(*args)
        return
    import concurrent.futures as cf

    pool = _pool(workers)
    try:
        futs = {pool.submit(fn, *args): key for key, args in jobs.items()}
        for f in cf.as_completed(futs):
            yield futs[f], f.result()
    except BaseException:  # an error, Ctrl-C, SIGTERM: stop the workers now rather than after their jobs
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def run_lut(data_dir: Path, clips: list[str], frames: int, methods: list[str], which: tuple[str, ...],
            log: Callable[[str], None], workers: int = 1) -> dict:
    """lut_static and/or lut_jitter over all clips (clips in parallel over ``workers`` processes)."""
    rows = methods + [IDEAL]
    per_case = {p: {m: [] for m in rows} for p in which}

    def merge(res, name):
        for p in which:
            for m in rows:
                per_case[p][m].extend(res[p][m])
        log(f"{'/'.join(which)}: {name} done")

    for c, res in _run_jobs(_lut_clip, {c: (data_dir, c, frames, methods, which) for c in clips}, workers):
        merge(res, c)
    for p in which:  # stable order whatever finished first
        for m in rows:
            per_case[p][m].sort(key=lambda r: (r["clip"], r["k"]))
    return {p: summarise(per_case[p], with_worse=True) for p in which}


def summarise(per_case: dict[str, list[dict]], with_worse: bool) -> dict:
    """Means over cases per method, plus ``worse_than_composite`` and ``worst_ratio`` (lut protocols), ``tl_excess``
    (where the ``ideal`` row has a tl_ratio), means per clip and every case's row (``per_case``: clip, k or plate)."""
    out = {}
    key = lambda r: (r["clip"], r.get("k", r.get("plate")))  # noqa: E731
    comp = {key(r): r for r in per_case.get("composite", [])}
    ideal = {key(r): r for r in per_case.get(IDEAL, [])}
    for m, rows in per_case.items():
        if not rows:
            continue
        keys = [k for k in rows[0] if k not in ("clip", "k", "plate", "seconds")]
        res = {k: float(np.mean([r[k] for r in rows if r.get(k) is not None])) for k in keys
               if any(r.get(k) is not None for r in rows)}
        cases = [dict(r) for r in rows]
        if with_worse and comp:
            for r in cases:
                r["fmse_ratio"] = r["fmse"] / max(comp[key(r)]["fmse"], 1e-9)
            res["worse_than_composite"] = float(np.mean([r["fmse_ratio"] > 1.0 for r in cases]))
            res["worst_ratio"] = float(max(r["fmse_ratio"] for r in cases))
        if ideal and "tl_ratio" in res:
            for r in cases:
                r["tl_excess"] = r["tl_ratio"] / max(ideal[key(r)]["tl_ratio"], 1e-9)
            res["tl_excess"] = res["tl_ratio"] / max(float(np.mean([r["tl_ratio"] for r in ideal.values()])), 1e-9)
        res["cases"] = len(rows)
        res["per_clip"] = {}
        for r in rows:
            res["per_clip"].setdefault(r["clip"], []).append({k: r[k] for k in keys if r.get(k) is not None})
        res["per_clip"] = {c: {k: float(np.mean([x[k] for x in v])) for k in v[0]} for c, v in res["per_clip"].items()}
        res["per_case"] = cases
        out[m] = res
    return out


# -- relight protocol ----------------------------------------------------------------------------------------------
def _relight_plate(data_dir: Path, clips: list[str], plate_path: Path, frames: int, methods: list[str],
                   engines: list[str], sheets: Path) -> dict:
    """Every clip over one plate, as ``harmovid new --matte`` + ``render`` would make it (default placement: the
    talent scaled to the plate's height, centred, bottom-aligned), at most ``RELIGHT_MAX_SIDE`` px long. The
    reference is the plain composite from the same graph; baselines get the graph's placed talent."""
    from ..media import probe
    from ..project import create_project
    from .graph import frame_layers

    per_case = {m: [] for m in methods}
    rows_img = []
    info = probe(plate_path)
    scale = min(1.0, RELIGHT_MAX_SIDE / max(info.width, info.height))
    with tempfile.TemporaryDirectory(prefix="harmovid-bench-") as tmp:
        for name in clips:
            clip_path = data_dir / "clips" / f"{name}.mp4"
            project = create_project(Path(tmp) / name, clip_path, plate_path,
                                     matte=str(data_dir / "clips" / f"{name}.alpha.npz"), overwrite=True)
            fps = float(probe(clip_path).fps)
            plain = frame_layers(project, "composite", frames, scale)
            refs = [to_codes(fl.composite) for fl in plain]
            alphas = [fl.alpha for fl in plain]
            fg = [a > 0.5 for a in alphas]
            warp_ref = WarpReference(refs, fg)
            e_ref = warp_ref.error(refs)
            outs_by_method = {}
            for m in methods:
                if m == "composite":
                    outs = refs
                elif m in BASELINES:
                    harmonized = run_baseline(m, [fl.talent for fl in plain], alphas, [fl.plate for fl in plain], fps)
                    outs = [to_codes(_composite_lin(h, fl.alpha, fl.plate)) for h, fl in zip(harmonized, plain)]
                else:
                    outs = [to_codes(fl.composite) for fl in frame_layers(project, m, frames, scale)]
                outs_by_method[m] = outs
                per_case[m].append({"clip": name, "plate": plate_path.stem, "flicker": flicker(outs, refs, fg),
                                    "tl_ratio": warp_ref.error(outs) / max(e_ref, 1e-9)})
            T = len(refs)
            best = f"{engines[0]}+deflicker" if engines else methods[-1]
            row = []
            for t in (0, T // 2, T - 1):
                for img in (outs_by_method["composite"][t], outs_by_method[best][t]):
                    im = cv2.resize(img.astype(np.uint8), (max(1, round(img.shape[1] * 200 / img.shape[0])), 200),
                                    interpolation=cv2.INTER_AREA)
                    row.append(im)
            rows_img.append(np.concatenate(row, 1))
    width = max(r.shape[1] for r in rows_img)
    sheet = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows_img], 0)
    cv2.imwrite(str(sheets / f"{plate_path.stem}.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return per_case


def run_relight(data_dir: Path, clips: list[str], plates: list[Path], frames: int, methods: list[str],
                engines: list[str], out_dir: Path, log: Callable[[str], None], workers: int = 1) -> dict:
    """Every clip over every plate: flicker and tl_ratio against the plain composite, contact sheets, render fps.
    Contact sheet rows: one per clip; columns: first, middle, last frame, each composite then harmonized."""
    per_case: dict[str, list[dict]] = {m: [] for m in methods}
    sheets = out_dir / "contact_sheets"
    sheets.mkdir(parents=True, exist_ok=True)

    def merge(res, plate):
        for m in methods:
            per_case[m].extend(res[m])
        log(f"relight: {plate.stem} done")

    jobs = {p: (data_dir, clips, p, frames, methods, engines, sheets) for p in plates}
    for p, res in _run_jobs(_relight_plate, jobs, workers):
        merge(res, p)
    for m in methods:
        per_case[m].sort(key=lambda r: (r["plate"], r["clip"]))
    res = summarise(per_case, with_worse=False)
    for m, v in measure_render_fps(data_dir, clips, plates, frames, engines, log).items():
        res.setdefault(m, {}).update(v)
    return res


def measure_render_fps(data_dir, clips, plates, frames, engines, log) -> dict:
    """fps of the whole render (decode, matte, harmonize, deflicker, composite, encode) at the plate's size: one
    render per plate (clips in turn), with and without deflicker, through ``harmovid_engine.render``."""
    from ..project import create_project
    from ..render import render

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for e in engines:
            for deflick in (False, True):
                total_frames, total_time = 0, 0.0
                for j, plate in enumerate(plates):
                    name = clips[j % len(clips)]
                    proj = create_project(Path(tmp) / f"p{j}", data_dir / "clips" / f"{name}.mp4", plate,
                                          matte=str(data_dir / "clips" / f"{name}.alpha.npz"), overwrite=True)
                    proj.render.engine, proj.render.deflicker = e, deflick
                    n = min(frames, _clip_len(data_dir, name))
                    t0 = time.perf_counter()
                    for _ in render(proj, Path(tmp) / "o.mp4", fmt="h264", end=n - 1, overwrite=True):
                        pass
                    total_time += time.perf_counter() - t0
                    total_frames += n
                key = e + ("+deflicker" if deflick else "")
                out.setdefault(key, {})["fps"] = total_frames / total_time
                log(f"relight fps {key}: {total_frames / total_time:.1f}")
    return out


def _clip_len(data_dir, name) -> int:
    from ..media import probe

    return probe(data_dir / "clips" / f"{name}.mp4").frame_count


# -- speed ---------------------------------------------------------------------------------------------------------
def plain_transcode(src: Path, dst: Path, render_settings) -> float:
    """Seconds a plain ffmpeg transcode of ``src`` to H.264 takes with the render's encoder settings (crf, preset):
    the speed protocol's reference."""
    from ..media.ffmpeg import ffmpeg_exe

    t0 = time.perf_counter()
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-crf", str(render_settings.crf), "-preset", render_settings.preset,
                    str(dst)], check=True)
    return time.perf_counter() - t0


SPEED_PAIRS = 3  # render + transcode pairs of the speed protocol (the median ratio is reported)


def run_speed(data_dir: Path, clips: list[str], plates: list[Path], engines: list[str], log,
              pairs: int = SPEED_PAIRS) -> dict:
    """export_ratio at 1920x1080 (talent upscaled onto a 1080p plate, 120 frames) and per-stage ms per frame.

    The render and the plain transcode are timed ``pairs`` times, alternated (render, transcode, render, ...), and
    the median of the pairs' ratios is reported with every pair's: a shared two-core machine changes speed by
    +-20 % within minutes (one pair's ratio ranged 1.2-1.9 on unchanged code), and both sides of a pair see about
    the same machine."""
    from ..project import create_project
    from ..render import Compositor, render

    name = max(clips, key=lambda c: _clip_len(data_dir, c))
    still = next((p for p in plates if p.suffix.lower() in (".jpg", ".jpeg", ".png")), plates[0])
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        img = cv2.imread(str(still))
        cv2.imwrite(str(tmp / "plate1080.png"), cv2.resize(img, (1920, 1080), interpolation=cv2.INTER_AREA))
        n = min(120, _clip_len(data_dir, name))
        from ..composite.fast import warm_up

        warm_up()  # compiled once per install (and cached on disk), not once per export: not part of the timing
        for e in engines:
            proj = create_project(tmp / f"proj_{e}", data_dir / "clips" / f"{name}.mp4", tmp / "plate1080.png",
                                  matte=str(data_dir / "clips" / f"{name}.alpha.npz"))
            proj.render.engine = e
            renders, transcodes, timings = [], [], {}
            for _ in range(pairs):
                t0 = time.perf_counter()
                with Compositor(proj) as comp:  # closed even when a render fails
                    comp.streaming()
                    for _ in render(proj, tmp / "render.mp4", fmt="h264", end=n - 1, compositor=comp,
                                      overwrite=True):
                        pass
                    renders.append(time.perf_counter() - t0)
                    for k, v in comp.timings.items():
                        timings[k] = timings.get(k, 0.0) + v
                transcodes.append(plain_transcode(tmp / "render.mp4", tmp / "transcode.mp4", proj.render))
            ratios = [r / f for r, f in zip(renders, transcodes)]
            stages = {k: 1000 * v / (n * pairs) for k, v in sorted(timings.items())}
            # the same stages alone: one thread, no encoder beside (inside the export the stages of two threads
            # overlap and share the cores with x264, so their times add up to more than the wall time)
            with Compositor(proj) as alone:
                alone.streaming()
                m = min(n, 60)
                for i in range(m):
                    alone.composite_codes(i)
                alone_ms = {k: 1000 * v / m for k, v in sorted(alone.timings.items())}
            res[f"{e}+deflicker"] = {"export_ratio": float(np.median(ratios)),
                                     "render_seconds": float(np.median(renders)),
                                     "ffmpeg_seconds": float(np.median(transcodes)), "frames": n,
                                     "pairs": [{"render_seconds": r, "ffmpeg_seconds": f, "export_ratio": q}
                                               for r, f, q in zip(renders, transcodes, ratios)],
                                     "stage_ms": stages, "stage_ms_alone": alone_ms}
            log(f"speed {e}: ratio {np.median(ratios):.2f} (median of "
                + ", ".join(f"{r:.1f}/{f:.1f} s = {q:.2f}" for r, f, q in zip(renders, transcodes, ratios)) + ")")
    return res


# -- report --------------------------------------------------------------------------------------------------------
COLUMNS = {
    "lut_static": ["mse", "fmse", "psnr", "fpsnr", "ssim", "worse_than_composite", "worst_ratio"],
    "lut_jitter": ["mse", "fmse", "psnr", "fpsnr", "ssim", "worse_than_composite", "worst_ratio", "flicker",
                   "tl_ratio", "tl_excess"],
    "relight": ["flicker", "tl_ratio", "fps"],
    "speed": ["export_ratio", "render_seconds", "ffmpeg_seconds"],
}


def write_report(results: dict, out_dir: Path, command: str, frames: int, elapsed: float) -> None:
    lines = ["# HarmoVid benchmark", "", f"- command: `{command}`",
             f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
             f"- frames per clip: {frames}; wall time {elapsed / 60:.1f} min", ""]
    for proto, table in results.items():
        cols = COLUMNS.get(proto, [])
        lines += [f"## {proto}", "", "| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for m, v in table.items():
            cells = [(f"{v[c]:.4g}" if isinstance(v.get(c), (int, float)) else "") for c in cols]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        if proto == "speed":
            for m, v in table.items():
                if v.get("pairs"):
                    lines += ["", f"{m}: export_ratio is the median of {len(v['pairs'])} render + transcode pairs, "
                              "alternated: " + ", ".join(f"{q['render_seconds']:.2f} / {q['ffmpeg_seconds']:.2f} s = "
                                                         f"{q['export_ratio']:.2f}" for q in v["pairs"]) + "."]
                inside, alone = v.get("stage_ms", {}), v.get("stage_ms_alone", {})
                lines += ["", f"Per-stage milliseconds per frame at 1080p ({m}): run alone (no encoder beside, no "
                          "prefetch thread) / inside the export (two threads sharing the cores with x264: they "
                          "overlap, so they add up to more than the wall time):",
                          "", "| stage | alone | inside the export |", "|---|---|---|"]
                lines += [f"| {k} | {alone.get(k, float('nan')):.1f} | {inside.get(k, float('nan')):.1f} |"
                          for k in sorted(set(inside) | set(alone))]
                if alone:
                    lines += [f"| all | {sum(alone.values()):.1f} | {sum(inside.values()):.1f} |"]
        lines.append("")
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")


def plot(results: dict, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for proto in ("lut_static", "lut_jitter"):
        if proto not in results:
            continue
        table = results[proto]
        methods = [m for m in table if m != "reinhard"]
        clips = list(table["composite"]["per_clip"])
        fig, ax = plt.subplots(figsize=(9, 4))
        wbar = 0.8 / len(methods)
        for j, m in enumerate(methods):
            ax.bar(np.arange(len(clips)) + j * wbar, [table[m]["per_clip"][c]["fmse"] for c in clips], wbar, label=m)
        ax.set_xticks(np.arange(len(clips)) + 0.4 - wbar / 2, clips)
        ax.set_ylabel("fMSE (lower is better)")
        ax.set_title(f"{proto}: fMSE per clip (reinhard omitted: off the scale)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / f"{proto}_fmse.png", dpi=100)
        plt.close(fig)


def run_bench(data_dir, out_dir, frames: int = 60, engines: list[str] | None = None,
              protocols: list[str] | None = None, log: Callable[[str], None] = print, command: str = "",
              workers: int | None = None, speed_pairs: int = SPEED_PAIRS, clips: list[str] | None = None,
              plates: list[str] | None = None) -> dict:
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    engines = engines or ["analytic"]
    protocols = protocols or list(PROTOCOLS)
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        raise HarmoVidError(f"unknown protocol(s) {', '.join(sorted(unknown))} (choose {', '.join(PROTOCOLS)})")
    if speed_pairs < 1:
        raise HarmoVidError(f"--speed-pairs must be at least 1, not {speed_pairs}")
    from ..engines import ENGINES

    for e in engines:
        if e not in ENGINES:
            raise HarmoVidError(f"unknown engine '{e}' (available: {', '.join(sorted(ENGINES))})")
    clips, plates = select_data(*find_data(data_dir), clips, plates)
    workers = workers or min(4, os.cpu_count() or 1)
    methods = methods_for(engines)
    t0 = time.perf_counter()
    results = {}
    luts = tuple(p for p in ("lut_static", "lut_jitter") if p in protocols)
    if luts:
        results.update(run_lut(data_dir, clips, frames, methods, luts, log, workers))
    if "relight" in protocols:
        results["relight"] = run_relight(data_dir, clips, plates, frames, methods, engines, out_dir, log, workers)
    if "speed" in protocols:
        results["speed"] = run_speed(data_dir, clips, plates, engines, log, speed_pairs)
    elapsed = time.perf_counter() - t0
    (out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    write_report(results, out_dir, command, frames, elapsed)
    plot(results, out_dir)
    log(f"bench done in {elapsed / 60:.1f} min: {out_dir / 'report.md'}")
    return results


__all__ = ["run_bench", "PROTOCOLS"]
