"""The model manager: where checkpoints (SAM, later others) are found, and their download on request.

Search order for a model: an explicit path given by the user (``$HARMOVID_SAM_CHECKPOINT`` or the Studio's
preference), then each configured folder (``$HARMOVID_MODEL_PATH``, ``os.pathsep``-separated), then the user cache
(``$XDG_CACHE_HOME/harmovid/models``). Nothing is downloaded unless asked: ``harmovid models download vit_b`` or the
Studio's Matte > Models dialog. Downloads go to ``NAME.part`` with HTTP range requests, so an interrupted download
resumes; the finished file is checked against its SHA-256 (the full digest where known, otherwise the digest prefix
the publisher put in the file name) before it is renamed into place. Nothing here touches the network on import.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import Cancelled, ModelError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    filename: str
    url: str
    size: int  # bytes, for the progress bar before the server answers and for the UI
    sha256: str = ""  # full digest when known
    sha256_prefix: str = ""  # digest prefix from the publisher's file name
    description: str = ""


_SAM_BASE = "https://dl.fbaipublicfiles.com/segment_anything/"
MODELS: dict[str, ModelSpec] = {
    "vit_b": ModelSpec("vit_b", "sam_vit_b_01ec64.pth", _SAM_BASE + "sam_vit_b_01ec64.pth", 375_042_383,
                       sha256_prefix="01ec64", description="SAM ViT-B (fastest, 358 MB)"),
    "vit_l": ModelSpec("vit_l", "sam_vit_l_0b3195.pth", _SAM_BASE + "sam_vit_l_0b3195.pth", 1_249_524_607,
                       sha256_prefix="0b3195", description="SAM ViT-L (1.2 GB)"),
    "vit_h": ModelSpec("vit_h", "sam_vit_h_4b8939.pth", _SAM_BASE + "sam_vit_h_4b8939.pth", 2_564_550_879,
                       sha256_prefix="4b8939", description="SAM ViT-H (best masks, 2.4 GB)"),
}


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "harmovid" / "models"


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class ModelManager:
    def __init__(self, folders: list[str | os.PathLike] | None = None, cache: str | os.PathLike | None = None,
                 explicit: str | os.PathLike | None = None, models: dict[str, ModelSpec] | None = None):
        env_dirs = [p for p in os.environ.get("HARMOVID_MODEL_PATH", "").split(os.pathsep) if p]
        self.folders = [Path(p) for p in (folders if folders is not None else env_dirs)]
        self.cache = Path(cache) if cache else user_cache_dir()
        explicit = explicit or os.environ.get("HARMOVID_SAM_CHECKPOINT") or None
        self.explicit = Path(explicit) if explicit else None
        self.models = dict(models or MODELS)

    def spec(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise ModelError(f"unknown model '{name}'; known: {', '.join(self.models)}")
        return self.models[name]

    def find(self, name: str | None = None) -> Path | None:
        """The checkpoint for ``name`` (or the first available model when None), or None."""
        if self.explicit is not None and name is None:
            if not self.explicit.is_file():
                raise ModelError(f"the configured SAM checkpoint '{self.explicit}' does not exist")
            return self.explicit
        for n in ([name] if name else list(self.models)):
            spec = self.spec(n)
            for folder in [*self.folders, self.cache]:
                p = folder / spec.filename
                if p.is_file():
                    return p
        return None

    def available(self) -> dict[str, Path]:
        out = {}
        for n in self.models:
            p = self.find(n)
            if p:
                out[n] = p
        return out

    def download(self, name: str, progress: Callable[[int, int], None] | None = None,
                 cancel=None, timeout: float = 30.0, chunk: int = 1 << 16) -> Path:
        """Download ``name`` into the cache (resuming a ``.part``), verify it, and return its path."""
        spec = self.spec(name)
        self.cache.mkdir(parents=True, exist_ok=True)
        dest = self.cache / spec.filename
        if dest.is_file():
            return dest
        part = dest.with_name(dest.name + ".part")
        have = part.stat().st_size if part.exists() else 0
        req = urllib.request.Request(spec.url, headers={"User-Agent": "HarmoVid-Studio"})
        if have:
            req.add_header("Range", f"bytes={have}-")
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # the .part already holds the whole file
                return self._finish(spec, part, dest)
            raise ModelError(f"cannot download {spec.name}: the server answered {e.code} {e.reason}") from e
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ModelError(f"cannot download {spec.name} ({reason}); check the network, or place "
                             f"{spec.filename} in {self.cache} by hand") from e
        with resp:
            if resp.status == 206:
                mode = "ab"
                total = _range_total(resp.headers.get("Content-Range")) or spec.size
            else:  # the server ignored the range: start again
                mode, have = "wb", 0
                total = int(resp.headers.get("Content-Length") or spec.size)
            done = have
            try:
                with open(part, mode) as f:
                    while True:
                        if cancel is not None and cancel.cancelled:
                            raise Cancelled()
                        block = resp.read(chunk)
                        if not block:
                            break
                        f.write(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
            except OSError as e:
                raise ModelError(f"the download of {spec.name} was interrupted ({e}); run it again to resume") from e
        if done < total:
            raise ModelError(f"the download of {spec.name} stopped at {done} of {total} bytes; run it again to resume")
        return self._finish(spec, part, dest)

    def _finish(self, spec: ModelSpec, part: Path, dest: Path) -> Path:
        digest = sha256_of(part)
        ok = digest == spec.sha256 if spec.sha256 else digest.startswith(spec.sha256_prefix)
        if not ok:
            part.unlink(missing_ok=True)
            raise ModelError(f"the downloaded {spec.name} is corrupt (SHA-256 {digest[:12]}... does not match); "
                             "it was deleted, please download again")
        os.replace(part, dest)
        return dest


def _range_total(content_range: str | None) -> int | None:
    # "bytes 100-199/200"
    if not content_range or "/" not in content_range:
        return None
    tail = content_range.rsplit("/", 1)[1]
    return int(tail) if tail.isdigit() else None
