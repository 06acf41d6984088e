"""Per-frame matte storage in a project's ``mattes/`` folder: ``alpha_00012.png`` (8-bit, written atomically).

A stored frame overrides the project's matte source (key, alpha channel) on that frame: imported mattes are stored for
every frame, edits for the frames the user touched.
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


class MatteStore:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def path(self, index: int) -> Path:
        return self.folder / f"alpha_{index:05d}.png"

    def frames(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        return sorted(int(m.group(1)) for f in self.folder.iterdir() if (m := _NAME.match(f.name)))

    def __contains__(self, index: int) -> bool:
        return self.path(index).exists()

    def get(self, index: int) -> np.ndarray | None:
        """(H, W) float32 alpha of frame ``index``, or None when not stored."""
        p = self.path(index)
        if not p.exists():
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
        self.folder.mkdir(parents=True, exist_ok=True)
        p = self.path(index)
        ok, png = cv2.imencode(".png", alpha_from_float(alpha, np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 3])
        if not ok:
            raise MatteError(f"cannot encode the matte of frame {index}")
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        try:
            with named_for(p):  # the system's error names the matte, not its temporary file
                with open(tmp, "wb") as f:
                    f.write(png.tobytes())
                os.replace(tmp, p)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def delete(self, index: int) -> None:
        self.path(index).unlink(missing_ok=True)

    def clear(self) -> None:
        for i in self.frames():
            self.delete(i)
