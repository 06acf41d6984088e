"""What a stage of the render graph declares about itself (see ``harmovid_engine.render.graph``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Contract:
    """A stage's contract with the scheduler.

    ``radius``: frames each side of frame i the stage reads to make frame i (a render of [s, e] reads
    [s - r, e + r]); ``prepare``: needs one whole-clip pass before the first frame (with progress and cancel);
    ``reads`` / ``produces``: the layers it takes and gives (talent, alpha, plate, gain, canvas, ...)."""

    name: str
    radius: int = 0
    prepare: bool = False
    reads: tuple[str, ...] = ()
    produces: tuple[str, ...] = ()
