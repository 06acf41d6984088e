"""The project: a folder holding ``project.json``, ``mattes/`` and a disposable ``cache/``.

``project.json`` has a schema version, the talent and plate paths relative to the project folder (with the absolute
path remembered for relinking), the matte source and its settings, the talent's placement on the plate as keyframes,
in/out points and the render settings. Saves are atomic (write a temporary file, fsync, rename). ``autosave()`` writes
``project.autosave.json`` beside it; when that file is newer than the last save (a crash), ``has_recovery()`` is true
and ``recover()`` loads it. Opening a corrupt file or a newer schema raises :class:`ProjectError` and changes
nothing on disk.
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ProjectError
from ..media.writer import FORMATS

# 2: ``render.deflicker_radius`` is the deflicker's global window (its local terms use half); schema 1 used it for
# both, so a schema-1 radius r reads as 2r (the same local window, the longer global one of today's default).
SCHEMA_VERSION = 2
PROJECT_FILE = "project.json"
AUTOSAVE_FILE = "project.autosave.json"


@dataclass
class PlacementKey:
    frame: int
    x: float  # plate pixels of the talent's top-left corner
    y: float
    scale: float  # uniform scale of the talent


@dataclass
class Placement:
    """Keyframed position and uniform scale of the talent on the plate (linear between keys, held outside)."""

    keys: list[PlacementKey] = field(default_factory=list)

    def at(self, frame: float) -> tuple[float, float, float]:
        if not self.keys:
            return 0.0, 0.0, 1.0
        keys = sorted(self.keys, key=lambda k: k.frame)
        if frame <= keys[0].frame:
            k = keys[0]
            return k.x, k.y, k.scale
        for a, b in zip(keys, keys[1:]):
            if a.frame <= frame <= b.frame:
                t = (frame - a.frame) / max(b.frame - a.frame, 1e-9)
                return (a.x + t * (b.x - a.x), a.y + t * (b.y - a.y), a.scale + t * (b.scale - a.scale))
        k = keys[-1]
        return k.x, k.y, k.scale

    def set_key(self, frame: int, x: float, y: float, scale: float) -> None:
        if scale <= 0:
            raise ProjectError("placement scale must be positive")
        self.keys = [k for k in self.keys if k.frame != frame] + [PlacementKey(int(frame), x, y, scale)]
        self.keys.sort(key=lambda k: k.frame)

    @staticmethod
    def default(talent_size: tuple[int, int], plate_size: tuple[int, int],
                picture: tuple[int, int, int, int] | None = None) -> "Placement":
        """Identity for equal sizes; else scaled to the plate's height, centred, bottom-aligned. ``picture``
        (x0, y0, x1, y1): the talent's picture area when it has black bars; that area is fitted and aligned
        instead, so a bar never leaves a strip of plate under the talent's cut-off body."""
        tw, th = talent_size
        pw, ph = plate_size
        x0, y0, x1, y1 = picture or (0, 0, tw, th)
        if (tw, th) == (pw, ph) and (x0, y0, x1, y1) == (0, 0, tw, th):
            return Placement([PlacementKey(0, 0.0, 0.0, 1.0)])
        s = ph / max(1, y1 - y0)
        return Placement([PlacementKey(0, pw / 2.0 - (x0 + x1) / 2.0 * s, ph - y1 * s, s)])


@dataclass
class MatteSettings:
    source: str = "none"  # "key" | "alpha" | "stored" | "none"
    key: dict = field(default_factory=dict)  # ChromaKeySettings as a dict when source == "key"
    choke: float = 0.0  # px, applied to every source
    feather: float = 0.0
    temporal_radius: int = 1  # frames; 0 switches temporal smoothing off
    imported_from: str = ""  # where stored mattes came from, for the record
    keyframes: list = field(default_factory=list)  # frames whose matte the user made (propagation keeps them)
    review: dict = field(default_factory=dict)  # {"frame": reason} flagged by propagation for a person to check


@dataclass
class RenderSettings:
    engine: str = "analytic"
    layer: str = "composite"  # "composite" | "talent"
    format: str = "h264"
    crf: int = 18
    preset: str = "medium"
    png_bit_depth: int = 8
    deflicker: bool = True
    deflicker_radius: int = 16  # frames each side of the global window (the local terms use half)
    deflicker_method: str = "analytic"  # "analytic" | "learned" (the analytic stage refined by the learned model)
    shadow: bool = True
    shadow_opacity: float = 0.35
    shadow_softness: float = 0.04  # fraction of the talent's height
    light_wrap: bool = True
    light_wrap_strength: float = 0.3
    engine_settings: dict = field(default_factory=dict)

    def problems(self) -> list[str]:
        """What is wrong (empty when all is well): every field's type and range, the engine's name and its settings
        (checked by the engine). The one check behind ``--set``, ``harmovid new``, opening, saving and the Studio."""
        from ..engines import ENGINES, setting_problems

        out = []
        defaults = RenderSettings()
        for k in self.__dataclass_fields__:
            if k in ("engine", "engine_settings"):
                continue
            v = getattr(self, k)
            out += setting_problems(k, v, getattr(defaults, k), RENDER_LIMITS.get(k), RENDER_CHOICES.get(k))
        if not isinstance(self.engine, str) or self.engine not in ENGINES:
            out.append(f"engine must be one of {', '.join(sorted(ENGINES))}, not {self.engine!r}")
        else:
            out += ENGINES[self.engine].problems(self.engine_settings)
        return out


# Ranges of the numeric render settings (the Inspector offers the same) and the allowed values of the others.
RENDER_LIMITS = {
    "crf": (0, 51),
    "deflicker_radius": (1, 48),  # frames each side; a render keeps ~radius frames of talent in memory
    "shadow_opacity": (0.0, 1.0),
    "shadow_softness": (0.0, 0.3),
    "light_wrap_strength": (0.0, 1.0),
}
# Ranges of the matte's edge settings (the Inspector offers the same) and its sources.
MATTE_LIMITS = {"choke": (-20.0, 20.0), "feather": (0.0, 20.0), "temporal_radius": (0, 8)}
MATTE_SOURCES = ("key", "alpha", "stored", "none")
LAYERS = ("composite", "talent")  # what a render writes: the composite, or the harmonized talent with its matte
DEFLICKER_METHODS = ("analytic", "learned")  # learned: the analytic stage refined by the learned model
RENDER_CHOICES = {
    "layer": LAYERS,
    "format": tuple(FORMATS),
    "preset": ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"),
    "png_bit_depth": (8, 16),
    "deflicker_method": DEFLICKER_METHODS,
}


@dataclass
class MediaRef:
    path: str  # relative to the project folder
    absolute: str = ""  # where it was when linked, used if the relative path breaks (project moved alone)


class Project:
    """An open project. Mutate its fields, then ``save()``."""

    def __init__(self, folder: str | os.PathLike, talent: MediaRef, plate: MediaRef,
                 matte: MatteSettings | None = None, placement: Placement | None = None,
                 render: RenderSettings | None = None, in_point: int | None = None, out_point: int | None = None,
                 name: str = ""):
        self.folder = Path(folder).absolute()
        # True in the Studio: matte edits go to ``mattes_unsaved/`` until saved (``matte_store``); not saved itself
        self.editing = False
        self.talent = talent
        self.plate = plate
        self.matte = matte or MatteSettings()
        self.placement = placement or Placement()
        self.render = render or RenderSettings()
        self.in_point = in_point
        self.out_point = out_point
        self.name = name or self.folder.name
        self.created = time.strftime("%Y-%m-%dT%H:%M:%S")

    # -- paths --------------------------------------------------------------------------------------------------
    @property
    def file(self) -> Path:
        return self.folder / PROJECT_FILE

    @property
    def autosave_file(self) -> Path:
        return self.folder / AUTOSAVE_FILE

    @property
    def mattes_dir(self) -> Path:
        return self.folder / "mattes"

    @property
    def unsaved_mattes_dir(self) -> Path:
        """Matte edits made in the Studio since the last save (``MatteStore`` with ``pending``)."""
        return self.folder / "mattes_unsaved"

    def matte_store(self):
        """The project's mattes as the user sees them: in the Studio (``editing``) with the unsaved edits on top;
        elsewhere (CLI renders) only what was saved."""
        from ..matte.store import MatteStore

        return MatteStore(self.mattes_dir, self.unsaved_mattes_dir if getattr(self, "editing", False) else None)

    @property
    def cache_dir(self) -> Path:
        return self.folder / "cache"

    def resolve(self, ref: MediaRef) -> Path:
        """Absolute path of a media reference: relative to the project, else the remembered absolute path."""
        rel = (self.folder / ref.path).resolve() if ref.path else None
        if rel is not None and (rel.exists() or "%" in rel.name):
            return rel
        if ref.absolute and Path(ref.absolute).exists():
            return Path(ref.absolute)
        return rel if rel is not None else Path(ref.absolute)

    @property
    def talent_path(self) -> Path:
        return self.resolve(self.talent)

    @property
    def plate_path(self) -> Path:
        return self.resolve(self.plate)

    def make_ref(self, media_path: str | os.PathLike) -> MediaRef:
        p = Path(media_path).absolute()
        return MediaRef(path=os.path.relpath(p, self.folder), absolute=str(p))

    def missing_media(self) -> list[str]:
        """Human-readable lines for media that cannot be found (empty when all is well)."""
        out = []
        for role, ref in (("talent", self.talent), ("plate", self.plate)):
            p = self.resolve(ref)
            if "%" in p.name:
                if not p.parent.is_dir():
                    out.append(f"{role} '{ref.path}' is missing (looked in {p.parent})")
            elif not p.exists():
                out.append(f"{role} '{ref.path}' is missing (looked for {p})")
        return out

    def check_media(self) -> None:
        missing = self.missing_media()
        if missing:
            raise ProjectError("; ".join(missing) + ": relink it or move it back")

    # -- (de)serialisation --------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA_VERSION,
            "app": "HarmoVid Studio",
            "name": self.name,
            "created": self.created,
            "talent": asdict(self.talent),
            "plate": asdict(self.plate),
            "matte": asdict(self.matte),
            "placement": [asdict(k) for k in self.placement.keys],
            "in_point": self.in_point,
            "out_point": self.out_point,
            "render": asdict(self.render),
        }

    @classmethod
    def from_dict(cls, folder: Path, d: dict, source: str = PROJECT_FILE) -> "Project":
        if not isinstance(d, dict) or "schema" not in d:
            raise ProjectError(f"'{source}' is not a HarmoVid project file")
        version = d["schema"]
        if type(version) is not int or version < 1:  # (a bool is an int to Python: "schema": true is not 1)
            raise ProjectError(f"'{source}' has an invalid schema version {version!r}")
        if version > SCHEMA_VERSION:
            raise ProjectError(f"this project was saved by a newer HarmoVid (project schema {version}, this version "
                               f"reads up to {SCHEMA_VERSION}); update HarmoVid to open it. Nothing was changed.")
        render = d.get("render", {})
        if version < 2 and isinstance(render, dict) and isinstance(render.get("deflicker_radius"), int):
            render = dict(render)
            # (the old Inspector went up to 30: 60 would be refused below, so it is held at the new maximum)
            render["deflicker_radius"] = min(2 * render["deflicker_radius"], RENDER_LIMITS["deflicker_radius"][1])
        try:
            proj = cls(
                folder,
                talent=MediaRef(**d["talent"]),
                plate=MediaRef(**d["plate"]),
                matte=_known(MatteSettings, d.get("matte", {})),
                placement=Placement([PlacementKey(**k) for k in d.get("placement", [])]),
                render=_known(RenderSettings, render),
                in_point=d.get("in_point"),
                out_point=d.get("out_point"),
                name=d.get("name", ""),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ProjectError(f"'{source}' is damaged or incomplete ({type(exc).__name__}: {exc})") from None
        bad = proj.problems()
        if bad:
            raise ProjectError(f"'{source}' has settings that are wrong or out of range ({'; '.join(bad)}); correct "
                               "them in the file. Nothing was changed.")
        proj.created = d.get("created", proj.created)
        return proj

    # -- files --------------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: str | os.PathLike) -> "Project":
        """Open a project folder (or its ``project.json``). Never writes anything."""
        folder = Path(folder)
        if folder.name == PROJECT_FILE:
            folder = folder.parent
        f = folder / PROJECT_FILE
        if not folder.exists():
            raise ProjectError(f"project '{folder}' does not exist")
        if not f.exists():
            raise ProjectError(f"'{folder}' is not a HarmoVid project (no {PROJECT_FILE})")
        from ..cleanup import clean_stale

        clean_stale(folder)  # what a killed save or import left (temporary files of dead processes)
        if (folder / "mattes").is_dir():
            clean_stale(folder / "mattes")  # and a killed matte write
        return cls.from_dict(folder, _read_json(f), PROJECT_FILE)

    def save(self) -> None:
        """Atomically write ``project.json`` and drop the autosave (it is now older than the save). A project with
        wrong settings is refused (:class:`ProjectError`): it would not open again."""
        self.check("save")
        self.folder.mkdir(parents=True, exist_ok=True)
        if getattr(self, "editing", False):
            self.matte_store().commit()  # the matte edits first: project.json's keyframes refer to them
        atomic_write_json(self.file, self.to_dict())
        self.autosave_file.unlink(missing_ok=True)

    def autosave(self) -> None:
        self.check("autosave")
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.autosave_file, self.to_dict())

    def has_recovery(self) -> bool:
        """True when an autosave exists that is newer than the saved project (the app crashed or was killed)."""
        from ..matte.store import MatteStore

        if MatteStore(self.mattes_dir, self.unsaved_mattes_dir).unsaved:
            return True  # matte edits of a session that never saved nor discarded them
        a = self.autosave_file
        if not a.exists():
            return False
        return not self.file.exists() or a.stat().st_mtime_ns >= self.file.stat().st_mtime_ns

    def recover(self) -> "Project":
        """The project as last autosaved, with its unsaved matte edits (not yet saved: call ``save()`` to keep it)."""
        if not self.autosave_file.exists():
            out = copy.deepcopy(self)
        else:
            out = Project.from_dict(self.folder, _read_json(self.autosave_file), AUTOSAVE_FILE)
        out.editing = True
        return out

    def discard_recovery(self) -> None:
        """Drop the autosave and the unsaved matte edits (the project is as last saved)."""
        from ..matte.store import MatteStore

        self.autosave_file.unlink(missing_ok=True)
        MatteStore(self.mattes_dir, self.unsaved_mattes_dir).discard()

    def copy(self) -> "Project":
        return copy.deepcopy(self)

    def problems(self) -> list[str]:
        """Everything wrong with this project's settings (empty when all is well): what opening refuses and what
        ``save()`` will not write (a project that would not open is never written)."""
        from ..engines import setting_problems

        out = []
        for role, ref in (("talent", self.talent), ("plate", self.plate)):
            if not isinstance(ref, MediaRef) or not isinstance(ref.path, str) or not ref.path \
                    or not isinstance(ref.absolute, str) or "\0" in ref.path + ref.absolute:
                out.append(f"{role} must name a media file")
        m, md = self.matte, MatteSettings()
        if m.source not in MATTE_SOURCES:
            out.append(f"matte source must be one of {', '.join(MATTE_SOURCES)}, not {m.source!r}")
        for k, lim in MATTE_LIMITS.items():
            out += setting_problems(f"matte {k}", getattr(m, k), getattr(md, k), lim)
        for k, kind in (("key", dict), ("imported_from", str), ("keyframes", list), ("review", dict)):
            if not isinstance(getattr(m, k), kind):
                out.append(f"matte {k} must be a {kind.__name__}, not {getattr(m, k)!r}")
        if isinstance(m.keyframes, list) and not all(type(f) is int and f >= 0 for f in m.keyframes):
            out.append("matte keyframes must be frame numbers")
        for key in self.placement.keys:
            if type(key.frame) is not int or key.frame < 0:
                out.append(f"placement key frame must be a frame number, not {key.frame!r}")
            for k, lim in (("x", None), ("y", None), ("scale", (1e-3, 1e3))):
                out += setting_problems(f"placement {k}", getattr(key, k), 0.0, lim)
        for k in ("in_point", "out_point"):
            v = getattr(self, k)
            if v is not None and (type(v) is not int or v < 0):
                out.append(f"{k} must be a frame number or empty, not {v!r}")
        if not isinstance(self.name, str):
            out.append(f"name must be text, not {self.name!r}")
        return out + self.render.problems()

    def check(self, action: str = "save") -> None:
        bad = self.problems()
        if bad:
            raise ProjectError(f"cannot {action} the project: {'; '.join(bad)}")


def _known(cls, d: dict):
    fields = cls.__dataclass_fields__
    return cls(**{k: v for k, v in d.items() if k in fields})


def _read_json(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProjectError(f"cannot read '{path}': {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ProjectError(f"'{path.name}' is not a text (UTF-8) project file: byte {exc.start} cannot be read; "
                           "nothing was changed") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProjectError(f"'{path.name}' is corrupt (invalid JSON at line {exc.lineno}); nothing was changed. "
                           f"If the app crashed, an autosave may be recoverable.") from None


def atomic_write_json(path: Path, data: dict) -> None:
    """Write JSON to ``path`` so that a crash at any moment leaves either the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = json.dumps(data, indent=2, sort_keys=False) + "\n"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
