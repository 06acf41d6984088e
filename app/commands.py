"""Undoable edits of the project (QUndoStack). Consecutive edits of the same setting merge into one step."""

from __future__ import annotations

from PySide6.QtGui import QUndoCommand

_IDS: dict[str, int] = {}


def _id_for(key: str) -> int:
    return _IDS.setdefault(key, 1000 + len(_IDS))


def placement_frame(project, frame: int) -> int:
    """The placement key an edit at the playhead ``frame`` changes: the only key of a still placement, else the key
    at the playhead (made there if there is none)."""
    keys = project.placement.keys
    return keys[0].frame if len(keys) == 1 else int(frame)


def get_setting(project, key: str, frame: int = 0):
    """Read a dotted setting: ``render.shadow_opacity``, ``engine.colour``, ``matte.choke``, ``placement.x``...
    (placement values at ``frame``)."""
    group, _, name = key.partition(".")
    if group == "render":
        return getattr(project.render, name)
    if group == "engine":
        from harmovid_engine.engines import ENGINES

        cls = ENGINES.get(project.render.engine)
        default = cls.defaults.get(name) if cls is not None else None
        return project.render.engine_settings.get(name, default)
    if group == "matte":
        return getattr(project.matte, name)
    if group == "placement":
        x, y, s = project.placement.at(placement_frame(project, frame))
        return {"x": x, "y": y, "scale": s}[name]
    raise KeyError(key)


def set_setting(project, key: str, value, frame: int = 0) -> None:
    """Write a dotted setting; placement values into the key :func:`placement_frame` gives for ``frame``."""
    group, _, name = key.partition(".")
    if group == "render":
        setattr(project.render, name, value)
        if name == "engine":
            project.render.engine_settings = {}
    elif group == "engine":
        project.render.engine_settings[name] = value
    elif group == "matte":
        setattr(project.matte, name, value)
    elif group == "placement":
        frame = placement_frame(project, frame)
        x, y, s = project.placement.at(frame)
        vals = {"x": x, "y": y, "scale": s}
        vals[name] = value
        project.placement.set_key(frame, vals["x"], vals["y"], vals["scale"])
    else:
        raise KeyError(key)


class SetSetting(QUndoCommand):
    """One setting changed from ``old`` to ``new``. A placement value records the key frame it changed (the
    playhead when it was made), so undo after a seek restores that key, and edits at other frames never merge."""

    def __init__(self, window, key: str, old, new, label: str | None = None, frame: int = 0):
        super().__init__(label or f"Change {key.split('.')[-1].replace('_', ' ')}")
        self.window, self.key, self.old, self.new = window, key, old, new
        self.frame = placement_frame(window.project, frame) if key.startswith("placement.") else 0
        # a placement edit at a frame without a key makes one there: undo removes it again
        self._made_key = key.startswith("placement.") and not any(
            k.frame == self.frame for k in window.project.placement.keys)

    def id(self) -> int:
        return _id_for(self.key)

    def mergeWith(self, other) -> bool:
        if other.key != self.key or other.frame != self.frame:
            return False
        self.new = other.new
        return True

    def redo(self) -> None:
        set_setting(self.window.project, self.key, self.new, self.frame)
        self.window.project_changed(self.key)

    def undo(self) -> None:
        placement = self.window.project.placement
        if self._made_key and len(placement.keys) > 1:
            placement.keys = [k for k in placement.keys if k.frame != self.frame]
        else:
            set_setting(self.window.project, self.key, self.old, self.frame)
        self.window.project_changed(self.key)


class SetPlacement(QUndoCommand):
    """Move/scale the talent (from the viewer's handles): one step per drag."""

    def __init__(self, window, frame: int, old: tuple, new: tuple):
        super().__init__("Move talent")
        self.window, self.frame, self.old, self.new = window, frame, old, new

    def _apply(self, v):
        self.window.project.placement.set_key(self.frame, *v)
        self.window.project_changed("placement")

    def redo(self) -> None:
        self._apply(self.new)

    def undo(self) -> None:
        self._apply(self.old)
