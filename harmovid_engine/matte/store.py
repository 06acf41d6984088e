"""Per-frame matte storage in a project's ``mattes/`` folder: ``alpha_00012.png`` (8-bit, written atomically).

A stored frame overrides the project's matte source (key, alpha channel) on that frame: imported mattes are stored for
every frame, edits for the frames the user touched.

**Unsaved edits** (the Studio): a store with a ``pending`` folder (the project's ``mattes_unsaved/``) writes there and
reads it first; a frame deleted by an edit is marked ``alpha_00012.deleted`` there. ``commit()`` (on Save) moves the
edits into ``mattes/``; ``discard()`` (Discard, "No" to recovery) throws them away, so ``mattes/`` only ever holds
what was saved, like ``project.json``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from ..colour import alpha_from_float, alpha_to_float
from ..errors import MatteError, named_for

_NAME = re.compile(r"^alpha_(\d{5,})\.png$")


_DELETED = re.compile(r"^alpha_(\d{5,})\.deleted$")


def _scan(folder: Path, pattern=_NAME) -> set[int]:
    if not folder.is_dir():
        return set()
    return {int(m.group(1)) for f in folder.iterdir() if (m := pattern.match(f.name))}


class MatteStore:
    def __init__(self, folder: str | os.PathLike, pending: str | os.PathLike | None = None):
        self.folder = Path(folder)
        self.pending = Path(pending) if pending is not None else None

    def path(self, index: int) -> Path:
        """Where frame ``index``'s matte is read from now (an unsaved edit first), or would be saved."""
        return self._locate(index) or self.folder / f"alpha_{index:05d}.png"

    def _deleted(self, index: int) -> Path | None:
        return None if self.pending is None else self.pending / f"alpha_{index:05d}.deleted"

    def frames(self) -> list[int]:
        out = _scan(self.folder)
        if self.pending is not None:
            out = (out | _scan(self.pending)) - _scan(self.pending, _DELETED)
        return sorted(out)

    def _locate(self, index: int) -> Path | None:
        """The file frame ``index``'s matte is read from now, or None (not stored, or deleted by an unsaved edit)."""
        if self.pending is not None:
            p = self.pending / f"alpha_{index:05d}.png"
            if p.exists():
                return p
            if self._deleted(index).exists():
                return None
        p = self.folder / f"alpha_{index:05d}.png"
        return p if p.exists() else None

    def fingerprint(self) -> tuple:
        """What the stored mattes are now: every file's name, inode, size and modification time in both layers.
        Every write is a new file renamed into place (a new inode), so any edit, save or discard changes it."""
        out = []
        for folder in (self.folder, self.pending):
            if folder is None or not folder.is_dir():
                continue
            with os.scandir(folder) as it:
                for e in it:
                    if _NAME.match(e.name) or _DELETED.match(e.name):
                        st = e.stat()
                        out.append((folder.name, e.name, st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(sorted(out))

    def __contains__(self, index: int) -> bool:
        return self._locate(index) is not None

    @property
    def unsaved(self) -> list[int]:
        """Frames with an edit not yet saved (written or deleted)."""
        if self.pending is None:
            return []
        return sorted(_scan(self.pending) | _scan(self.pending, _DELETED))

    def get(self, index: int) -> np.ndarray | None:
        """(H, W) float32 alpha of frame ``index``, or None when not stored."""
        p = self._locate(index)
        if p is None:
            return None
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise MatteError(f"stored matte '{p.name}' is corrupt; delete it to fall back to the matte source")
        if img.ndim == 3:
            img = img[..., -1] if img.shape[2] == 4 else img[..., 0]
        return alpha_to_float(img)

    def put(self, index: int, alpha: np.ndarray) -> None:
        """Write frame ``index``'s matte atomically (a temporary ``.NAME.PID.tmp``, then a rename): a full disk or a
        kill never leaves a half-written matte; the system's own error (no space, no permission) reaches the caller."""
        ok, png = cv2.imencode(".png", alpha_from_float(alpha, np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 3])
        if not ok:
            raise MatteError(f"cannot encode the matte of frame {index}")
        self.put_png(index, png.tobytes())

    def put_png(self, index: int, png: bytes) -> None:
        """Write frame ``index``'s matte from a stored matte's PNG bytes (as ``put``: atomically, in the layer
        this store writes; a snapshot restores without decoding and encoding every frame)."""
        target = self.pending if self.pending is not None else self.folder
        target.mkdir(parents=True, exist_ok=True)
        p = target / f"alpha_{index:05d}.png"
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        try:
            with named_for(p):  # the system's error names the matte, not its temporary file
                with open(tmp, "wb") as f:
                    f.write(png)
                os.replace(tmp, p)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        d = self._deleted(index)
        if d is not None:
            d.unlink(missing_ok=True)

    def delete(self, index: int) -> None:
        if self.pending is None:
            (self.folder / f"alpha_{index:05d}.png").unlink(missing_ok=True)
            return
        (self.pending / f"alpha_{index:05d}.png").unlink(missing_ok=True)
        if (self.folder / f"alpha_{index:05d}.png").exists():  # saved: mark it gone until the next save
            self.pending.mkdir(parents=True, exist_ok=True)
            with named_for(self.pending / f"alpha_{index:05d}.png"):
                self._deleted(index).touch()

    def clear(self) -> None:
        for i in self.frames():
            self.delete(i)

    # -- unsaved edits -----------------------------------------------------------------------------------------------
    def commit(self) -> int:
        """Move the unsaved edits into the saved mattes (each a rename: a crash half-way leaves each frame either
        saved or still pending, never half-written); the number of frames changed."""
        if self.pending is None or not self.pending.is_dir():
            return 0
        n = 0
        self.folder.mkdir(parents=True, exist_ok=True)
        for i in sorted(_scan(self.pending)):
            name = f"alpha_{i:05d}.png"
            with named_for(self.folder / name):
                os.replace(self.pending / name, self.folder / name)
            n += 1
        for i in sorted(_scan(self.pending, _DELETED)):
            (self.folder / f"alpha_{i:05d}.png").unlink(missing_ok=True)
            (self.pending / f"alpha_{i:05d}.deleted").unlink(missing_ok=True)
            n += 1
        self._remove_pending()
        return n

    def discard(self) -> int:
        """Throw the unsaved edits away (only the files this store writes there); the number of frames."""
        if self.pending is None or not self.pending.is_dir():
            return 0
        frames = self.unsaved
        for f in self.pending.iterdir():
            if _NAME.match(f.name) or _DELETED.match(f.name) or f.name.endswith(".tmp"):
                f.unlink(missing_ok=True)
        self._remove_pending()
        return len(frames)

    def _remove_pending(self) -> None:
        try:
            self.pending.rmdir()
        except OSError:  # something not ours is in it: left alone
            pass

    def copy_to(self, folder: str | os.PathLike) -> None:
        """Write the mattes as they are now (saved and unsaved) into ``folder`` (a plain, saved store)."""
        import shutil

        dest = Path(folder)
        dest.mkdir(parents=True, exist_ok=True)
        for i in self.frames():
            shutil.copyfile(self.path(i), dest / f"alpha_{i:05d}.png")
