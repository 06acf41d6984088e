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


def copy_demo(dest: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Copy the bundled demo project to ``dest`` (default: the user data folder) so it can be edited and rendered.

    An existing copy is kept (your edits survive) unless ``overwrite``.
    """
    src = bundled_demo()
    if not (src / "project.json").exists():
        raise HarmoVidError(f"the bundled demo is missing from '{src}'")
    dest = Path(dest) if dest else user_data_dir() / "demo"
    if (dest / "project.json").exists() and not overwrite:
        return dest
    if dest.exists() and overwrite:
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("cache", "project.autosave.json"), dirs_exist_ok=True)
    return dest
