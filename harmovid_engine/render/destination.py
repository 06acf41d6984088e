"""Where a render may write: never over the project, its footage, or anything this tool did not write.

A render's output is checked before the first frame is rendered (``check_destination``), by the CLI's ``harmovid
render``, the Studio's export and every other caller of :func:`~harmovid_engine.render.render`:

- not the project folder, nothing inside it and no folder that holds it (a PNG render replaces its folder);
- not a source of the project (talent, plate; its mattes live in the project folder) and no folder that holds one;
- an existing movie file only when it is a previous render of this tool (the writers tag their files, see
  ``RENDER_TAG``) or the caller says ``overwrite`` (``--overwrite``; the Studio asks first);
- an existing folder only when it is empty or a previous PNG render of this tool holding nothing else (the PNG
  writer leaves a ``writer.MARKER`` file listing the frames it wrote). No flag overrides this: a folder of other
  files is never replaced.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import HarmoVidError
from ..media.writer import RENDER_TAG, is_png_render


class DestinationError(HarmoVidError):
    """The output would destroy something the render did not create."""


class DestinationExists(DestinationError):
    """The output is an existing file this tool did not write; ``overwrite=True`` replaces it."""


def _abs(p: Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.path.expanduser(str(p)))))


def _within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def project_sources(project) -> list[Path]:
    """The media a project reads (a sequence as its folder), resolved."""
    out = []
    for ref in (project.talent, project.plate):
        p = project.resolve(ref)
        out.append(_abs(p.parent if "%" in p.name else p))
    return out


def is_movie_render(path: Path) -> bool:
    """True when the movie at ``path`` carries this tool's render tag."""
    from ..media.ffmpeg import run_ffmpeg

    try:
        res = run_ffmpeg(["-i", str(path)], timeout=30)
    except Exception:  # noqa: BLE001 - a file ffmpeg cannot read is not ours to replace
        return False
    text = res.stderr.decode("utf-8", "replace")
    return re.search(r"^\s*comment\s*:\s*" + re.escape(RENDER_TAG) + r"\s*$", text, re.M) is not None


def check_destination(project, output, fmt: str, overwrite: bool = False) -> Path:
    """Raise :class:`DestinationError` when rendering ``project`` to ``output`` as ``fmt`` would destroy something
    it did not create; returns the resolved output path."""
    out = _abs(Path(output))
    name = str(output)
    if not out.name or out == out.parent:
        raise DestinationError(f"'{name}' is not a place to render to: give a file name or a folder")
    if fmt != "png" and name.endswith(("/", os.sep)):
        raise DestinationError(f"'{name}' ends with '/', which names a folder, but a {fmt} render writes a file: "
                               "drop the '/' or render PNG frames into the folder (--format png)")
    folder = _abs(project.folder)
    if _within(out, folder):
        raise DestinationError(f"'{name}' is inside the project folder '{project.folder}': render next to it, e.g. "
                               f"'{project.folder.parent / (project.folder.name + '_render.mp4')}'")
    if _within(folder, out):
        raise DestinationError(f"rendering to '{name}' would replace the folder that holds the project "
                               f"'{project.folder}': choose another output")
    for src in project_sources(project):
        if out == src:
            raise DestinationError(f"'{name}' is a source of this project: rendering there would overwrite the "
                                   "footage; choose another output")
        if fmt == "png" and _within(src, out):
            raise DestinationError(f"'{name}' holds the project's source '{src.name}': a PNG render replaces its "
                                   "folder; choose another one")
    if not os.path.lexists(out):
        if not out.parent.is_dir():
            raise DestinationError(f"the folder '{out.parent}' does not exist: create it first")
        return out
    if fmt == "png":
        if not out.is_dir():
            raise DestinationError(f"'{name}' exists and is not a folder: PNG frames go into a folder")
        if any(os.scandir(out)) and not is_png_render(out):
            raise DestinationError(f"the folder '{name}' holds files this tool did not write: a PNG render replaces "
                                   "its folder, so give an empty or new one")
        return out
    if out.is_dir():
        raise DestinationError(f"'{name}' is a folder: a {fmt} render writes a file (name it .mp4 or .mov)")
    if not overwrite and not is_movie_render(out):
        raise DestinationExists(f"'{name}' exists and was not written by HarmoVid: pass --overwrite to replace it")
    return out
