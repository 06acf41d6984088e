"""Locating and running the ffmpeg binary shipped by imageio-ffmpeg (there is no ffprobe)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

from ..errors import MediaError


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: $HARMOVID_FFMPEG, else imageio-ffmpeg's, else one on PATH."""
    env = os.environ.get("HARMOVID_FFMPEG")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise MediaError(f"HARMOVID_FFMPEG is '{env}', which is not an executable file: point it at an ffmpeg "
                             "binary, or unset it to use the one imageio-ffmpeg ships")
        return env
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # pragma: no cover - only without imageio-ffmpeg
        exe = shutil.which("ffmpeg")
        if exe:
            return exe
    raise MediaError("ffmpeg was not found: install imageio-ffmpeg (pip install imageio-ffmpeg)")


def run_ffmpeg(args: list[str], timeout: float | None = 600) -> subprocess.CompletedProcess:
    """Run ffmpeg with ``args`` (without the executable), capturing stdout/stderr as bytes."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", *args]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def last_error_line(stderr: bytes) -> str:
    """The most telling line of ffmpeg's stderr, for an error message."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    for ln in reversed(lines):
        low = ln.lower()
        if any(w in low for w in ("invalid", "error", "not found", "no such", "moov", "truncat", "unknown")):
            return ln
    return lines[-1] if lines else "unknown ffmpeg error"


PIPE_BYTES = 1 << 20


def widen_pipe(stream) -> None:
    """Let a pipe to or from ffmpeg hold 1 MB instead of 64 KB (Linux; the system's pipe-max-size permitting): a
    1080p frame then crosses in a few writes instead of ~50, each waking the other side. Harmless where not
    supported."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError, ValueError):
        pass
