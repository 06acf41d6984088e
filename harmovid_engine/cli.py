"""The ``harmovid`` command line: new, render, info (and more as the engine grows).

Exit codes: 0 ok; 2 bad input (one clear line on stderr, no traceback); 1 internal error; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from . import __version__
from .errors import Cancelled, HarmoVidError

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
# Signals that end a command like Ctrl+C: a kill, and the terminal closing
HANGUPS = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def parse_set(items: list[str] | None) -> dict:
    """``KEY=VALUE`` pairs -> dict, values parsed as JSON when they can be (numbers, true/false), else strings."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise HarmoVidError(f"--set expects KEY=VALUE, got '{item}'")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


# -- commands -------------------------------------------------------------------------------------------------------
def cmd_new(args) -> int:
    from .project import RenderSettings, create_project

    settings = RenderSettings(engine=args.engine)
    _apply_render_flags(settings, args)
    bar = None

    def progress(done, total):
        nonlocal bar
        if bar is None:
            bar = _progress(total, "importing matte", not args.quiet)
        bar.update(done - bar.n)

    key = args.key
    notes = []
    proj = create_project(args.project, args.fg, args.plate, matte=args.matte, key=key, render=settings,
                          overwrite=args.force, progress=progress, note=notes.append)
    if bar is not None:
        bar.close()
    for line in notes:
        print(f"note: {line}", file=sys.stderr)
    if proj.matte.source == "none" and not args.quiet:
        print("note: no matte given and the talent has no alpha channel; the talent is opaque until you make a matte "
              "(--key or --matte)", file=sys.stderr)
    # Validate the engine settings now rather than at render time.
    from .engines import create_engine

    create_engine(proj.render.engine, proj.render.engine_settings)
    if not args.quiet:
        print(f"created {proj.folder} (matte: {proj.matte.source}, engine: {proj.render.engine})")
    return EXIT_OK


def _apply_render_flags(settings, args) -> None:
    if getattr(args, "no_deflicker", False):
        settings.deflicker = False
    if getattr(args, "deflicker", None):
        settings.deflicker = True
        settings.deflicker_method = args.deflicker
    if getattr(args, "no_shadow", False):
        settings.shadow = False
    if getattr(args, "no_light_wrap", False):
        settings.light_wrap = False
    # --set KEY=VALUE: a render setting when the project has one by that name (shadow_opacity, deflicker_radius...),
    # else an engine setting (checked by the engine).
    fields = type(settings).__dataclass_fields__
    for k, v in parse_set(getattr(args, "set", None)).items():
        if k in fields and k not in ("engine", "engine_settings"):
            current = getattr(settings, k)
            numeric = isinstance(current, float) and isinstance(v, int) and not isinstance(v, bool)
            if not (isinstance(v, type(current)) or numeric):
                raise HarmoVidError(f"--set {k}: expected a {type(current).__name__}, got {v!r}")
            setattr(settings, k, float(v) if numeric else v)
        else:
            settings.engine_settings[k] = v
    bad = settings.problems()
    if bad:
        raise HarmoVidError("; ".join(bad))


def cmd_render(args) -> int:
    from .project import Project
    from .render import CancelToken, render
    from .render.job import damaged_warnings

    proj = Project.open(args.project)
    if args.engine and args.engine != proj.render.engine:
        proj.render.engine = args.engine
        proj.render.engine_settings = {}
    _apply_render_flags(proj.render, args)
    if getattr(args, "checkpoint", None):
        proj.render.engine_settings["checkpoint"] = str(Path(args.checkpoint).resolve())
    from .engines import create_engine

    create_engine(proj.render.engine, proj.render.engine_settings)  # unknown settings: a clear error, now
    if proj.render.engine == "harmovid" and not args.quiet:
        from .diffusion.model import checkpoint_summary

        print(checkpoint_summary(proj.render.engine_settings["checkpoint"]), file=sys.stderr)
    out = Path(args.output)
    fmt = args.format or _format_from_name(out)
    cancel = CancelToken()
    # SIGTERM and SIGHUP (the terminal closed) cancel like Ctrl+C: the writer aborts, its ffmpeg ends, nothing is left
    previous = {s: signal.signal(s, lambda *_: cancel.cancel()) for s in HANGUPS}
    bar = dbar = None
    damaged: dict[str, list[int]] = {}
    try:
        for p in render(proj, args.output, fmt=fmt, layer=args.layer, start=args.start, end=args.end, cancel=cancel,
                        audio=not args.no_audio, overwrite=args.overwrite, alpha=args.alpha,
                        timecode=args.timecode, handles=args.handles):
            if p.phase == "denoising":
                if dbar is None:
                    dbar = _progress(p.total, "denoising", not args.quiet)
                dbar.update(p.done - dbar.n)
                continue
            if dbar is not None:
                dbar.close()
                dbar = None
            if bar is None:
                bar = _progress(p.total, f"render {out.name}", not args.quiet)
            bar.update(1)
            damaged = p.damaged
    finally:
        for b in (bar, dbar):
            if b is not None:
                b.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    for line in damaged_warnings(proj, damaged):
        print(f"warning: {line}", file=sys.stderr)
    if not args.quiet:
        print(f"wrote {out}")
    return EXIT_OK


def _format_from_name(path: Path) -> str | None:
    """h264 for .mp4, prores4444 for .mov, png for a folder (no suffix or an existing folder)."""
    if path.is_dir():
        return "png"
    suffix = path.suffix.lower()
    known = {".mp4": "h264", ".m4v": "h264", ".mov": "prores4444", "": "png"}
    if suffix not in known:
        raise HarmoVidError(f"cannot tell the format from '{path.name}': name it .mp4 or .mov, give a folder for "
                            "PNG frames, or pass --format")
    return known[suffix]


def cmd_info(args) -> int:
    from .media import probe

    p = Path(args.path)
    if (p / "project.json").exists() or p.name == "project.json":
        from .project import Project

        proj = Project.open(p)
        info = proj.to_dict()
        info["folder"] = str(proj.folder)
        info["missing_media"] = proj.missing_media()
        info["recovery_available"] = proj.has_recovery()
        if not info["missing_media"]:
            info["talent_info"] = probe(proj.talent_path).describe()
            info["plate_info"] = probe(proj.plate_path).describe()
    elif p.name.endswith((".npz", ".npy")):
        from .matte.imported import describe_matte

        info = describe_matte(p)
    else:
        info = probe(p).describe()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        _print_tree(info)
    return EXIT_OK


def cmd_bench(args) -> int:
    from .bench.run import run_bench

    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))

    # (SIGTERM and SIGHUP stop it like Ctrl-C, see main(): the worker processes are stopped too, not left running)
    run_bench(args.data_dir, args.out, frames=args.frames, engines=args.engines, protocols=args.protocols,
              log=log, command="harmovid " + " ".join(sys.argv[1:]), speed_pairs=args.speed_pairs,
              clips=args.clips, plates=args.plates)
    if not args.quiet:
        print(Path(args.out) / "report.md")
    return EXIT_OK


def cmd_demo(args) -> int:
    from .resources import copy_demo

    dest = copy_demo(args.dest, overwrite=args.force)
    print(dest)
    return EXIT_OK


def _parse_frames(text: str) -> list[int]:
    """``0,40,90`` or ``0-3,10`` -> sorted frame numbers."""
    out = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                out.update(range(int(a), int(b) + 1))
            else:
                out.add(int(part))
        except ValueError:
            raise HarmoVidError(f"--keyframes expects frame numbers like 0,40,90; got '{part}'") from None
    return sorted(out)


def _open_sam(spec: str | None, project=None):
    """A SamSession from ``--sam`` (a model name or a checkpoint path), or None."""
    if not spec:
        return None
    from .matte.sam import SamSession, load_sam
    from .models import ModelManager

    path = Path(spec)
    if not path.is_file():
        path = ModelManager().find(spec)
        if path is None:
            raise HarmoVidError(f"no SAM checkpoint '{spec}' found; run 'harmovid models download {spec}' or pass "
                                "the path of a sam_vit_*.pth")
    disk = project.cache_dir / "sam" / path.stem if project is not None else None
    return SamSession(load_sam(path), name=path.stem, disk_cache=disk)


def cmd_matte(args) -> int:
    from .matte.ops import export_alpha_npz, propagate_project
    from .matte.propagate import PropagationSettings
    from .project import Project

    proj = Project.open(args.project)
    proj.check_media()
    if args.matte_command == "propagate":
        keys = _parse_frames(args.keyframes) if args.keyframes else None
        sam = _open_sam(args.sam, proj)
        settings = PropagationSettings(stop_on_drift=args.stop_on_drift)
        bar = None
        try:
            for p in propagate_project(proj, keys, sam=sam, settings=settings):
                if bar is None:
                    bar = _progress(p.total, "propagating matte", not args.quiet)
                bar.total = p.total
                bar.update(p.done - bar.n)
        finally:
            if bar is not None:
                bar.close()
            proj.save()  # keyframes, review flags and whatever was written, also after a cancel
        if not args.quiet:
            flags = proj.matte.review
            print(f"propagated from keyframes {', '.join(map(str, proj.matte.keyframes))}; "
                  f"{len(flags)} frame(s) flagged for review" + (":" if flags else ""))
            for f, why in sorted(flags.items(), key=lambda kv: int(kv[0]))[:20]:
                print(f"  frame {f}: {why}")
        return EXIT_OK
    out = Path(args.output)
    bar = _progress(0, "exporting matte", not args.quiet)
    for p in export_alpha_npz(proj, out):
        bar.total = p.total
        bar.update(p.done - bar.n)
    bar.close()
    if not args.quiet:
        print(out)
    return EXIT_OK


def cmd_models(args) -> int:
    from .models import ModelManager

    mm = ModelManager()
    if args.models_command == "list":
        for name, spec in mm.models.items():
            path = mm.find(name)
            print(f"{name:6s} {spec.description:34s} {path if path else 'not present (harmovid models download ' + name + ')'}")
        print(f"cache: {mm.cache}")
        return EXIT_OK
    bar = None

    def progress(done, total):
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, desc=args.name, disable=args.quiet, file=sys.stderr)
        bar.update(done - bar.n)

    try:
        path = mm.download(args.name, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print(path)
    return EXIT_OK


def cmd_train(args) -> int:
    """``harmovid train deflicker|harmonizer``: the two per-frame models share data layout, split and bookkeeping."""
    val_clips = [c for c in (args.val_clips or "").split(",") if c]
    if args.train_command == "harmonizer":
        from .relight.train import Trainer, TrainSettings

        ts = TrainSettings(steps=args.steps, batch=args.batch, frames=args.frames, seed=args.seed,
                           device=args.device, val_clips=val_clips)
    else:
        from .deflicker.train import Trainer, TrainSettings

        ts = TrainSettings(steps=args.steps, batch=args.batch, frames=args.frames, plates=args.plates,
                           seed=args.seed, device=args.device, val_clips=val_clips)
    out = Path(args.out)
    if out.exists() and not args.resume and not args.force:
        raise HarmoVidError(f"'{out}' exists: pass --resume to continue that run or --force to start over")
    tr = Trainer(Path(args.data), out, ts, resume=args.resume)
    if not args.quiet:
        print(f"training on {', '.join(tr.train_names)}; validating on {', '.join(tr.val_names)}; "
              f"starting at step {tr.step}", file=sys.stderr)
    from tqdm import tqdm

    bar = tqdm(total=len(tr.train_names) + len(tr.val_names), desc="preparing clips", unit="clip",
               disable=args.quiet, file=sys.stderr)
    tr.prepare(lambda d, t: bar.update(d - bar.n))
    bar.close()
    bar = tqdm(total=ts.steps, initial=tr.step, desc="training", unit="step", disable=args.quiet, file=sys.stderr,
               dynamic_ncols=True)

    def progress(step, total, loss):
        bar.update(step - bar.n)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss:.4f}", val=f"{tr.history['val'][-1][1]:.4f}" if tr.history["val"] else "-")

    try:
        hist = tr.run(progress)
    finally:
        bar.close()
    if not args.quiet:
        val = hist["val"][-1][1] if hist["val"] else float("nan")
        print(f"{out} (validation loss {val:.4f}; prior only {hist['val_prior']:.4f}); loss curve "
              f"{out.with_suffix('.loss.png')}")
    return EXIT_OK


def cmd_train_diffusion(args) -> int:
    from .diffusion.model import PRESETS, vram_estimate_gb
    from .diffusion.train import DiffusionTrainer, DiffusionTrainSettings

    ts = DiffusionTrainSettings(config=args.config, steps=args.steps, batch=args.batch, device=args.device,
                                seed=args.seed, max_frames=args.frames,
                                lr=args.lr if args.lr else (1e-3 if args.config == "tiny" else 1e-5),
                                clips=[c for c in (args.clips or "").split(",") if c])
    out = Path(args.out)
    if (out / "latest").exists() and not args.resume and not args.force:
        raise HarmoVidError(f"'{out}' holds a run: pass --resume to continue it or --force to start over")
    if args.config != "tiny" and not args.quiet:
        cfg = PRESETS[args.config]
        params = 1.7e9 if args.config == "2b" else 5.6e9
        print(f"VRAM estimate for {args.config} training at {cfg.width}x{cfg.height}, {cfg.frames} frames: "
              f"~{vram_estimate_gb(cfg, int(params), True):.0f} GB", file=sys.stderr)
    tr = DiffusionTrainer(args.data, out, ts, pretrained=args.pretrained, resume=args.resume)
    from tqdm import tqdm

    bar = tqdm(total=ts.steps, initial=tr.step, desc="training", unit="step", disable=args.quiet, file=sys.stderr,
               dynamic_ncols=True)

    def progress(step, total, loss):
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{loss:.4f}")

    try:
        tr.run(progress)
    finally:
        bar.close()
    tr.validation_render(out / "validation.png")
    if not args.quiet:
        print(f"{out / 'latest'} (loss curve {out / 'loss.png'}, validation render {out / 'validation.png'})")
    return EXIT_OK


def _print_tree(d: dict, indent: int = 0) -> None:
    for k, v in d.items():
        if isinstance(v, dict):
            print(" " * indent + f"{k}:")
            _print_tree(v, indent + 2)
        else:
            print(" " * indent + f"{k}: {v}")


# -- parser ---------------------------------------------------------------------------------------------------------
def _add_render_flags(p: argparse.ArgumentParser) -> None:
    d = p.add_mutually_exclusive_group()
    d.add_argument("--no-deflicker", action="store_true", help="switch the temporal deflicker off")
    d.add_argument("--deflicker", choices=["analytic", "learned"],
                   help="deflicker method: analytic (default), or learned (the analytic one refined by the shipped "
                        "network, resources/models/deflicker_learned.pt or $HARMOVID_DEFLICKER_MODEL)")
    p.add_argument("--no-shadow", action="store_true", help="no cast/contact shadow of the talent on the plate")
    p.add_argument("--no-light-wrap", action="store_true", help="no light wrap from the plate onto talent edges")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="an engine setting (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    from .engines import ENGINES

    parser = argparse.ArgumentParser(prog="harmovid", description="HarmoVid: relightful video portrait harmonization.")
    parser.add_argument("--version", action="version", version=f"harmovid {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("new", parents=[common], help="create a project from a talent clip and a plate",
                       description="Create a project folder. The matte comes from --matte (an .alpha.npz, image "
                                   "sequence or matte video, imported into the project) or --key (chroma key); "
                                   "otherwise from the talent's alpha channel if it has one.")
    p.add_argument("project", help="project folder to create")
    p.add_argument("--fg", "--talent", dest="fg", required=True, help="talent clip (video or image sequence)")
    p.add_argument("--plate", required=True, help="background plate (still, video or image sequence)")
    m = p.add_mutually_exclusive_group()
    m.add_argument("--matte", help="matte file or folder to import")
    m.add_argument("--key", choices=["green", "blue", "auto"], help="chroma key the talent")
    p.add_argument("--engine", default="analytic", choices=sorted(ENGINES),
                   help="harmonization engine (analytic: relight on the CPU; none: plain composite)")
    p.add_argument("--force", action="store_true", help="replace an existing project in that folder")
    _add_render_flags(p)
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("render", parents=[common], help="render a project to a video file or PNG sequence",
                       description="Render a project. The format follows the output name (.mp4: h264, .mov: "
                                   "prores4444, a folder: png) unless --format is given.")
    p.add_argument("project", help="project folder")
    p.add_argument("-o", "--output", required=True, help="output file (.mp4/.mov) or folder (png)")
    p.add_argument("--format", choices=["h264", "prores4444", "png"])
    p.add_argument("--layer", choices=["composite", "talent"],
                   help="composite: talent over plate (default); talent: the talent alone with its matte as alpha")
    p.add_argument("--start", type=int, help="first frame (default: in point or 0)")
    p.add_argument("--end", type=int, help="last frame, inclusive (default: out point or last frame)")
    p.add_argument("--handles", type=int, default=0, metavar="N",
                   help="N frames more before the start and after the end, where the clip has them")
    p.add_argument("--timecode", metavar="HH:MM:SS:FF",
                   help="timecode of the clip's first frame (default 00:00:00:00); the file starts at its first "
                        "frame's, e.g. 01:00:00:00 as broadcast masters do")
    p.add_argument("--alpha", choices=["straight", "premultiplied"], default="straight",
                   help="colour in outputs with alpha (ProRes 4444, PNG): straight (default) or premultiplied")
    p.add_argument("--engine", choices=sorted(ENGINES), help="override the project's engine")
    p.add_argument("--no-audio", action="store_true", help="do not carry the talent's audio")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing movie file that is not an earlier render of this tool (earlier renders "
                        "are replaced without it; the project, its footage and folders of other files never are)")
    p.add_argument("--checkpoint", help="diffusion checkpoint folder for --engine harmovid")
    _add_render_flags(p)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("info", parents=[common], help="describe a media file or a project")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("bench", parents=[common], help="measure harmonization quality and speed (EVALUATION.md)",
                       description="Run the evaluation protocols on a folder laid out like ../shared/data "
                                   "(clips/NAME.mp4 + clips/NAME.alpha.npz, plates/*.jpg|*.mp4).")
    p.add_argument("data_dir")
    p.add_argument("--out", required=True, help="output folder (results.json, report.md, plots, contact sheets)")
    p.add_argument("--frames", type=int, default=60, help="frames per clip (default 60)")
    p.add_argument("--engines", nargs="+", default=["analytic"], help="engines to measure")
    p.add_argument("--protocols", nargs="+", default=None,
                   help="subset of lut_static lut_jitter relight speed (default: all)")
    p.add_argument("--speed-pairs", type=int, default=3, metavar="N",
                   help="render + transcode pairs timed by the speed protocol, alternated; the median ratio is "
                        "reported (default 3)")
    p.add_argument("--clips", nargs="+", metavar="NAME", help="only these clips (names without .mp4)")
    p.add_argument("--plates", nargs="+", metavar="NAME", help="only these plates (file names, with or without "
                                                                 "their extension)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("matte", parents=[common], help="matte jobs: propagate keyframes, export mattes")
    msub = p.add_subparsers(dest="matte_command", metavar="MATTE_COMMAND")
    msub.required = True
    q = msub.add_parser("propagate", parents=[common], help="recompute every frame's matte from keyframes",
                        description="Keep the project's mattes on the keyframes and recompute all other frames by "
                                    "optical-flow propagation with colour and edge refinement (and SAM when --sam "
                                    "names a checkpoint). Frames that look wrong are flagged for review.")
    q.add_argument("project")
    q.add_argument("--keyframes", help="frames to keep, e.g. 0,90 (default: the project's keyframes)")
    q.add_argument("--sam", help="re-prompt SAM on each frame: a model name (vit_b, vit_l, vit_h) or a checkpoint")
    q.add_argument("--stop-on-drift", action="store_true", help="stop a pass at the first flagged frame")
    q.set_defaults(func=cmd_matte)
    q = msub.add_parser("export", parents=[common], help="write all mattes as FILE.alpha.npz (alpha: T,H,W uint8)")
    q.add_argument("project")
    q.add_argument("-o", "--output", required=True)
    q.set_defaults(func=cmd_matte)

    p = sub.add_parser("models", parents=[common], help="list or download model checkpoints (SAM)")
    msub = p.add_subparsers(dest="models_command", metavar="MODELS_COMMAND")
    msub.required = True
    q = msub.add_parser("list", parents=[common], help="known models and where they were found")
    q.set_defaults(func=cmd_models)
    q = msub.add_parser("download", parents=[common], help="download a checkpoint into the user cache (resumable)")
    q.add_argument("name", choices=["vit_b", "vit_l", "vit_h"])
    q.set_defaults(func=cmd_models)

    p = sub.add_parser("train", parents=[common], help="train a model (learned harmonizer, learned deflicker)")
    tsub = p.add_subparsers(dest="train_command", metavar="MODEL")
    tsub.required = True
    per_frame = argparse.ArgumentParser(add_help=False)  # what the two per-frame trainers share
    per_frame.add_argument("--val-clips", help="comma-separated clip names held out (default: every fourth clip)")
    per_frame.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    per_frame.add_argument("--seed", type=int, default=0)
    per_frame.add_argument("--resume", action="store_true",
                           help="continue from --out (model, optimiser, step, history)")
    per_frame.add_argument("--force", action="store_true", help="overwrite an existing --out")
    q = tsub.add_parser("deflicker", parents=[common, per_frame], help="train the learned lighting deflicker",
                        description="Train the learned deflicker on a folder laid out like ../shared/data: synthetic "
                                    "flicker on analytic harmonizations of its clips, validation on held-out clips, "
                                    "checkpoints (resumable) and a loss curve beside the output.")
    q.add_argument("--data", required=True, help="folder with clips/NAME.mp4 + NAME.alpha.npz and plates/")
    q.add_argument("--out", required=True, help="checkpoint to write (.pt); also OUT.loss.png and OUT.log.json")
    q.add_argument("--steps", type=int, default=2000)
    q.add_argument("--batch", type=int, default=16)
    q.add_argument("--frames", type=int, default=120, help="frames per clip used (default 120)")
    q.add_argument("--plates", type=int, default=3, help="plates per clip (default 3)")
    q.set_defaults(func=cmd_train)

    q = tsub.add_parser("harmonizer", parents=[common, per_frame],
                        help="train the learned per-frame harmonizer",
                        description="Train the learned harmonizer (engine 'learned') on a folder laid out like "
                                    "../shared/data: each clip's own talent with its light changed, composited back "
                                    "over its inpainted background, the real frame as the target; validation on "
                                    "held-out clips, checkpoints (resumable) and a loss curve beside the output.")
    q.add_argument("--data", required=True, help="folder with clips/NAME.mp4 + NAME.alpha.npz")
    q.add_argument("--out", required=True, help="checkpoint to write (.pt); also OUT.loss.png, OUT.log.json and "
                                                "OUT.views.npz (the prepared views, for --resume)")
    q.add_argument("--steps", type=int, default=600)
    q.add_argument("--batch", type=int, default=32)
    q.add_argument("--frames", type=int, default=16, help="frames per clip, evenly spaced (default 16)")
    q.set_defaults(func=cmd_train)

    q = tsub.add_parser("diffusion", parents=[common], help="train the HarmoVid video diffusion harmonizer",
                        description="Train on the three-stage data recipe (pseudo pairs, deflicker refinement, both "
                                    "paths with asymmetric masks). tiny builds from config alone (CPU); 2b/5b "
                                    "fine-tune a local pretrained CogVideoX folder (GPU).")
    q.add_argument("--data", required=True)
    q.add_argument("--out", required=True, help="run folder (latest/ checkpoint, loss.png, validation.png)")
    q.add_argument("--config", choices=["tiny", "2b", "5b"], default="tiny")
    q.add_argument("--pretrained", help="CogVideoX diffusers folder (for 2b/5b)")
    q.add_argument("--steps", type=int, default=200)
    q.add_argument("--batch", type=int, default=2)
    q.add_argument("--lr", type=float)
    q.add_argument("--frames", type=int, default=60, help="frames read per clip")
    q.add_argument("--clips", help="comma-separated clip names (default: all; the last is held out)")
    q.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--resume", action="store_true")
    q.add_argument("--force", action="store_true")
    q.set_defaults(func=cmd_train_diffusion)

    p = sub.add_parser("demo", parents=[common], help="copy the bundled demo project somewhere editable and print its folder")
    p.add_argument("dest", nargs="?", help="destination folder (default: ~/.local/share/harmovid/demo)")
    p.add_argument("--force", action="store_true", help="replace an existing copy")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    restore = _interrupt_on_hangup()
    try:
        return args.func(args)
    except HarmoVidError as exc:
        if args.debug:
            raise
        print(f"harmovid: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, Cancelled):
        print("harmovid: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:  # the system said no (permissions, space, names, a missing tool): not a bug
        if args.debug:
            raise
        print(f"harmovid: error: {os_error_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # an engine bug: say so plainly, keep the traceback for --debug
        if args.debug:
            raise
        print(f"harmovid: internal error: {type(exc).__name__}: {exc} (run with --debug for details and please "
              "report it)", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        restore()


def os_error_line(exc: OSError) -> str:
    """One line for an editor: what the system refused, and where."""
    what = exc.strerror or str(exc) or type(exc).__name__
    where = " -> ".join(f"'{f}'" for f in (exc.filename, getattr(exc, "filename2", None)) if f)
    return f"{what}{': ' + where if where else ''}"


def _interrupt_on_hangup():
    """SIGTERM and SIGHUP end any command like Ctrl+C (its clean-up runs); returns what puts the old handlers back."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(*_):
        raise KeyboardInterrupt

    old = {s: signal.signal(s, interrupt) for s in HANGUPS}
    return lambda: [signal.signal(s, h) for s, h in old.items()]


if __name__ == "__main__":
    sys.exit(main())
