"""The Studio's state about the open project that is not the project: what is saved in ``project.json`` is the
project; the playhead and the matte revision (bumped by every matte edit so that cached previews are not reused) are
the session's, and die with the window."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Session:
    frame: int = 0  # the playhead
    matte_revision: int = 0  # mattes live in files: a counter of edits tells a preview cache they changed
