"""Nothing left behind: the temporary files of processes of this tool that died.

Every temporary name this tool makes beside a destination carries the writing process's id:

- ``.NAME.PID.XXXX.part`` (a movie or a PNG folder being rendered), ``.NAME.PID.tmp`` (a project file being saved),
  ``.mattes.new-PID`` (mattes being imported by ``new --force``): removed when PID is no longer running;
- ``.NAME.old-PID`` / ``.mattes.old-PID`` (the previous render or mattes, moved aside for the instant of a swap):
  removed when NAME is back in place, else moved back to NAME (the process died between the two renames, and this
  is the only copy).

``clean_stale(folder)`` runs when a writer opens in a folder, when a project is opened, and when ``new`` replaces one.
A process killed with SIGKILL cannot clean up; the next run in that folder does. (SIGINT, SIGTERM and SIGHUP end the
CLI's job cleanly: its writers abort, which ends their ffmpeg.)
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

_DEAD_IF = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.part$|^\..+\.(\d+)\.tmp$|^\.mattes\.new-(\d+)$")
_MOVED_ASIDE = re.compile(r"^\.(.+)\.old-(\d+)$")


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return False
    return True


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        try:
            p.unlink()
        except OSError:
            pass


def clean_stale(folder) -> list[str]:
    """Remove (or put back) what dead processes of this tool left in ``folder``; returns what was done."""
    done = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return done
    for e in entries:
        m = _DEAD_IF.match(e.name)
        if m:
            pid = int(next(g for g in m.groups() if g))
            if not pid_alive(pid):
                _remove(Path(e.path))
                done.append(f"removed {e.name}")
            continue
        m = _MOVED_ASIDE.match(e.name)
        if m and not pid_alive(int(m.group(2))):
            original = Path(folder) / m.group(1)
            if os.path.lexists(original):
                _remove(Path(e.path))
                done.append(f"removed {e.name}")
            else:
                try:
                    os.replace(e.path, original)
                    done.append(f"restored {m.group(1)}")
                except OSError:
                    pass
    return done
