"""Undoable edits of the project (QUndoStack). Consecutive edits of the same setting merge into one step."""

from __future__ import annotations

from PySide6.QtGui import QUndoCommand

_IDS: dict[str, int] = {}


def _id_for(key: str) -> int:
    return _IDS.setdefault(key, 1000 + len(_IDS))


def get_setting(project, key: str):
    """Read a dotted setting: ``render.shadow_opacity``, ``engine.colour``, ``matte.choke``, ``placement.x``..."""
    group, _, name = key.partition(".")
    if group == "render":
        return getattr(project.render, name)
    if group == "engine":
        from harmovid_engine.engines import ENGINES, load_builtin_engines

        load_builtin_engines()
        cls = ENGINES.get(project.render.engine)
        default = cls.defaults.get(name) if cls is not None else None
        return project.render.engine_settings.get(name, default)
    if group == "matte":
        return getattr(project.matte, name)
    if group == "placement":
        keys = project.placement.keys
        x, y, s = project.placement.at(keys[0].frame if len(keys) == 1 else getattr(project, "_current_frame", 0))
        return {"x": x, "y": y, "scale": s}[name]
    raise KeyError(key)


def set_setting(project, key: str, value) -> None:
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
        keys = project.placement.keys
        frame = keys[0].frame if len(keys) == 1 else getattr(project, "_current_frame", 0)
        x, y, s = project.placement.at(frame)
        vals = {"x": x, "y": y, "scale": s}
        vals[name] = value
        project.placement.set_key(frame, vals["x"], vals["y"], vals["scale"])
    else:
        raise KeyError(key)


class SetSetting(QUndoCommand):
    def __init__(self, window, key: str, old, new, label: str | None = None):
        super().__init__(label or f"Change {key.split('.')[-1].replace('_', ' ')}")
        self.window, self.key, self.old, self.new = window, key, old, new

    def id(self) -> int:
        return _id_for(self.key)

    def mergeWith(self, other) -> bool:
        if other.key != self.key:
            return False
        self.new = other.new
        return True

    def redo(self) -> None:
        set_setting(self.window.project, self.key, self.new)
        self.window.project_changed(self.key)

    def undo(self) -> None:
        set_setting(self.window.project, self.key, self.old)
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
