"""Creating a project from a talent clip and a plate (what ``harmovid new`` and File > New do)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import MediaError, ProjectError
from ..media import open_source
from ..media.probe import probe
from .model import MatteSettings, Placement, Project, RenderSettings


def create_project(folder, talent, plate, matte: str | None = None, key=None,
                   render: RenderSettings | None = None, overwrite: bool = False, progress=None,
                   note=None, use_alpha: bool = True) -> Project:
    """Create and save a project folder.

    matte: a matte file or folder to import into ``mattes/`` (``.alpha.npz``, image sequence, matte video);
    key: ``green`` | ``blue`` | ``auto`` for a chroma key, or a :class:`ChromaKeySettings` (the Studio's New Project
    dialog: its colour and tolerances as the user set them). Without either, the talent's own alpha channel is used if
    it has one (and ``use_alpha``), else the talent is opaque (a matte can be made later). Nothing is left behind on
    failure.
    ``note(message)`` hears what was adapted on the way (a matte of another size, resized).

    Replacing a project (``overwrite``) builds the new mattes in a staging folder beside the old ones and swaps them
    in only after everything succeeded: a bad matte, an error or Ctrl+C leaves the old project and its mattes as they
    were. Other files in the folder (footage kept there, renders) are never touched.
    """
    from ..matte import MatteStore, read_matte_frames
    from ..matte.chroma import garbage_box

    folder = Path(folder).absolute()
    if matte and key:
        raise ProjectError("give either a matte file or a key, not both")
    if (folder / "project.json").exists() and not overwrite:
        raise ProjectError(f"'{folder}' already holds a project (use --force to replace it)")
    if folder.exists() and not folder.is_dir():
        raise ProjectError(f"'{folder}' exists and is not a folder")
    talent_info = probe(talent)
    if talent_info.kind == "still":
        raise MediaError(f"the talent '{Path(talent).name}' is a still image; talent must be a clip or sequence")
    plate_info = probe(plate)
    created_folder = not folder.exists()
    replacing = (folder / "project.json").exists()
    if replacing:
        from ..cleanup import clean_stale

        clean_stale(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".mattes.new-{os.getpid()}" if replacing else None
    try:
        proj = Project(folder, talent=None, plate=None, render=render or RenderSettings())
        proj.talent = proj.make_ref(talent)
        proj.plate = proj.make_ref(plate)
        proj.placement = Placement.default((talent_info.width, talent_info.height),
                                           (plate_info.width, plate_info.height))
        proj.matte = MatteSettings()
        store = MatteStore(staging or proj.mattes_dir)
        if matte:
            n = talent_info.frame_count
            for i, a in enumerate(read_matte_frames(matte, talent_info.width, talent_info.height, n, note)):
                store.put(i, a)
                if progress:
                    progress(i + 1, n)
            proj.matte.source = "stored"
            proj.matte.imported_from = str(Path(matte).absolute())
        elif key:
            ks = make_key(talent, key)
            if ks.garbage:  # fit the picture, not its black bars
                size = (talent_info.width, talent_info.height)
                proj.placement = Placement.default(size, (plate_info.width, plate_info.height),
                                                   garbage_box(ks.garbage, size))
            proj.matte.source = "key"
            proj.matte.key = ks.to_dict()
        elif talent_info.has_alpha and use_alpha:
            proj.matte.source = "alpha"
        else:
            proj.matte.source = "none"
        if staging is not None:
            _swap_in_mattes(proj, staging)
        else:
            proj.save()
        return proj
    except BaseException:  # nothing is left behind, whatever went wrong
        if created_folder:
            shutil.rmtree(folder, ignore_errors=True)
        elif staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise


def make_key(talent, key):
    """The :class:`ChromaKeySettings` of a key for ``talent``: ``key`` a screen name (``green`` | ``blue`` | ``auto``)
    or settings; black bars found on three frames become its garbage matte, the screen colour is picked from the first
    frame unless given. A talent without a green or blue screen is a :class:`MatteError`."""
    from ..matte import ChromaKeySettings, detect_black_bars
    from ..matte.chroma import ChromaKeyer
    from ..matte.provider import codes_to_unit

    with open_source(talent) as src:
        n = len(src)
        samples = [codes_to_unit(src.read(i)) for i in sorted({0, n // 2, n - 1})]
    ks = ChromaKeySettings.from_dict(key.to_dict()) if isinstance(key, ChromaKeySettings) else \
        ChromaKeySettings(screen=key)
    if ks.garbage is None:
        ks.garbage = detect_black_bars(samples)
    ChromaKeyer(ks, samples[0])  # picks and stores the key colour; raises if there is no screen
    return ks


def _swap_in_mattes(proj: Project, staging: Path) -> None:
    """Replace an existing project's mattes by ``staging`` and save the project over the old one (atomically each)."""
    old = proj.folder / f".mattes.old-{os.getpid()}"
    mattes = proj.mattes_dir
    staging.mkdir(exist_ok=True)  # a project without mattes still gets an empty folder in place of the old ones
    if mattes.exists():
        os.replace(mattes, old)
    try:
        os.replace(staging, mattes)
        proj.save()
    except BaseException:  # put the old mattes back: the old project.json still describes them
        if old.exists():
            if mattes.exists():
                os.replace(mattes, staging)
            os.replace(old, mattes)
        raise
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(proj.folder / "cache", ignore_errors=True)  # disposable, and made for the old footage
