"""Errors a user can act on.

Everything raised as a :class:`HarmoVidError` carries one clear sentence meant for an editor. The CLI prints it on
one line and exits with status 2; the Studio shows it in a dialog. Anything else escaping the engine is a bug
(exit status 1).
"""

import contextlib


@contextlib.contextmanager
def named_for(path):
    """An OS error about a temporary file beside ``path`` is reported as about ``path`` itself (what the editor asked
    for, not ``.NAME.PID.XXXX.part``); the CLI prints it as exit 2."""
    try:
        yield
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e


class HarmoVidError(Exception):
    """Base class of user-facing errors: bad input, missing files, unsupported versions."""


class MediaError(HarmoVidError):
    """A media file cannot be read or written (missing, empty, corrupt, truncated, not a video or image)."""


class ProjectError(HarmoVidError):
    """A project folder cannot be opened or saved (missing, corrupt JSON, newer schema, missing media)."""


class MatteError(HarmoVidError):
    """A matte cannot be built or imported (size or length mismatch, unreadable file, empty matte)."""


class Cancelled(Exception):
    """Raised inside long jobs when their cancel token is set; never shown to a user as an error."""


class ModelError(HarmoVidError):
    """Model weights cannot be found, downloaded, verified or loaded."""
