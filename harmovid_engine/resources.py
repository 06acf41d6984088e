"""Where the bundled resources (demo project, style sheet, icons, small weights) live, and the demo copy."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import HarmoVidError


def resources_dir() -> Path:
    """The ``resources/`` folder: $HARMOVID_RESOURCES, else beside the package (source checkout or editable install)."""
    env = os.environ.get("HARMOVID_RESOURCES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "resources"


def bundled_demo() -> Path:
    return resources_dir() / "demo"


def user_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "harmovid"


# What a copy of the demo may hold besides the bundled files: what the Studio and the CLI write into a project.
_DEMO_WRITES = {"mattes", "cache", "project.autosave.json"}


def is_demo_copy(folder: Path) -> bool:
    """True when ``folder`` is a copy of the bundled demo holding nothing else (its attribution file, the bundled
    entries and what a project writes); only such a folder may be replaced by ``copy_demo(overwrite=True)``."""
    src = bundled_demo()
    try:
        if (folder / "ATTRIBUTION.md").read_bytes() != (src / "ATTRIBUTION.md").read_bytes():
            return False
        names = {e.name for e in os.scandir(folder)}
    except OSError:
        return False
    allowed = {e.name for e in os.scandir(src)} | _DEMO_WRITES
    return all(n in allowed or (n.startswith(".project.json.") and n.endswith(".tmp")) for n in names)


def copy_demo(dest: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Copy the bundled demo project to ``dest`` (default: the user data folder) so it can be edited and rendered.

    An existing copy is kept (your edits survive) unless ``overwrite``, which replaces a copy of the demo and nothing
    else: a folder holding anything that is not the demo's is refused.
    """
    src = bundled_demo()
    if not (src / "project.json").exists():
        raise HarmoVidError(f"the bundled demo is missing from '{src}'")
    dest = Path(dest) if dest else user_data_dir() / "demo"
    if (dest / "project.json").exists() and not overwrite:
        return dest
    if dest.exists():
        if not dest.is_dir():
            raise HarmoVidError(f"'{dest}' exists and is not a folder")
        if any(os.scandir(dest)) and not is_demo_copy(dest):
            raise HarmoVidError(f"'{dest}' holds files that are not the demo's: copy the demo into an empty or new "
                                "folder (nothing was changed)")
        for e in list(os.scandir(dest)):  # only demo entries are here (checked above)
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path)
            else:
                os.unlink(e.path)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("cache", "project.autosave.json"), dirs_exist_ok=True)
    return dest
