"""The inspector: engine, relight strengths, shadow, light wrap, deflicker, matte edge, placement.

Every change is emitted as ``edited(key, value)``; the main window turns it into an undoable command.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QSpinBox, QVBoxLayout,
                               QWidget)

from harmovid_engine.engines import ENGINES
from harmovid_engine.project.model import DEFLICKER_METHODS

from .commands import get_setting

# key, label, kind, (min, max, step)
FIELDS = [
    ("Harmonize", [
        ("render.engine", "Engine", "engine", None),
        ("engine.colour", "Colour", "float", (0.0, 2.0, 0.1)),
        ("engine.intensity", "Intensity", "float", (0.0, 2.0, 0.1)),
        ("engine.direction", "Direction", "float", (0.0, 2.0, 0.1)),
        ("engine.plate_adaptation", "Plate colour", "float", (0.0, 1.0, 0.05)),
    ]),
    ("Shadow", [
        ("render.shadow", "Cast shadow", "bool", None),
        ("render.shadow_opacity", "Opacity", "float", (0.0, 1.0, 0.05)),
        ("render.shadow_softness", "Softness", "float", (0.0, 0.3, 0.01)),
    ]),
    ("Light wrap", [
        ("render.light_wrap", "Light wrap", "bool", None),
        ("render.light_wrap_strength", "Strength", "float", (0.0, 1.0, 0.05)),
    ]),
    ("Deflicker", [
        ("render.deflicker", "Deflicker", "bool", None),
        ("render.deflicker_method", "Method", list(DEFLICKER_METHODS), None),
        ("render.deflicker_radius", "Window (frames each side)", "int", (1, 48, 1)),
    ]),
    ("Matte edge", [
        ("matte.choke", "Choke (px)", "float", (-20.0, 20.0, 0.5)),
        ("matte.feather", "Feather (px)", "float", (0.0, 20.0, 0.5)),
    ]),
    ("Placement", [
        ("placement.x", "X", "float", (-10000.0, 10000.0, 1.0)),
        ("placement.y", "Y", "float", (-10000.0, 10000.0, 1.0)),
        ("placement.scale", "Scale", "float", (0.01, 20.0, 0.01)),
    ]),
]


class Inspector(QWidget):
    edited = Signal(str, object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.widgets: dict[str, QWidget] = {}
        self._forms: dict[str, QFormLayout] = {}
        lay = QVBoxLayout(self)
        for title, fields in FIELDS:
            box = QGroupBox(title)
            form = QFormLayout(box)
            for key, label, kind, rng in fields:
                w = self._make(key, kind, rng)
                w.setObjectName(key)
                self.widgets[key] = w
                self._forms[key] = form
                form.addRow(label, w)
            lay.addWidget(box)
        lay.addStretch(1)
        self.setEnabled(False)

    def _make(self, key, kind, rng):
        if kind == "engine":
            w = QComboBox()
            w.addItems(sorted(ENGINES))
            w.currentTextChanged.connect(lambda v, k=key: self.edited.emit(k, v))
        elif isinstance(kind, list):
            w = QComboBox()
            w.addItems(kind)
            w.currentTextChanged.connect(lambda v, k=key: self.edited.emit(k, v))
        elif kind == "bool":
            w = QCheckBox()
            w.toggled.connect(lambda v, k=key: self.edited.emit(k, bool(v)))
        elif kind == "int":
            w = QSpinBox()
            w.setRange(rng[0], rng[1])
            w.setKeyboardTracking(False)
            w.valueChanged.connect(lambda v, k=key: self.edited.emit(k, int(v)))
        else:
            w = QDoubleSpinBox()
            w.setRange(rng[0], rng[1])
            w.setSingleStep(rng[2])
            w.setDecimals(2 if rng[2] < 1 else 1)
            w.setKeyboardTracking(False)
            w.valueChanged.connect(lambda v, k=key: self.edited.emit(k, float(v)))
        return w

    def refresh(self, project, frame: int = 0) -> None:
        """Show the project's values (placement at ``frame``, the playhead) without emitting edits."""
        self.setEnabled(project is not None)
        if project is None:
            return
        for key, w in self.widgets.items():
            try:
                v = get_setting(project, key, frame)
            except KeyError:
                continue
            enabled = True
            if key.startswith("engine."):  # only the settings the chosen engine has
                cls = ENGINES.get(project.render.engine)
                enabled = cls is not None and key.split(".", 1)[1] in cls.defaults
            w.blockSignals(True)
            if isinstance(w, QComboBox):
                w.setCurrentText(str(v))
            elif isinstance(w, QCheckBox):
                w.setChecked(bool(v))
            elif v is not None:
                w.setValue(v)
            w.setEnabled(enabled)
            if key.startswith("engine."):  # a setting the engine does not have is not shown at all
                self._forms[key].setRowVisible(w, enabled)
            w.blockSignals(False)
