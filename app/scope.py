"""Flicker scope (pyqtgraph): the talent's mean brightness per frame for the original, per-frame harmonized and
deflickered result, with the playhead. Click to seek."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

CURVES = (("original", (170, 170, 170)), ("per_frame", (240, 120, 60)), ("deflickered", (80, 200, 120)))


class FlickerScope(QWidget):
    frameRequested = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.plot = pg.PlotWidget(background=(30, 30, 32))
        self.plot.setLabel("left", "talent brightness (code values)")
        self.plot.setLabel("bottom", "frame")
        self.plot.addLegend(offset=(10, 5))
        self.plot.setMouseEnabled(x=False, y=False)
        self.curves = {name: self.plot.plot([], [], pen=pg.mkPen(color, width=2), name=name.replace("_", "-"))
                       for name, color in CURVES}
        self.playhead = pg.InfiniteLine(0, angle=90, pen=pg.mkPen((255, 80, 60), width=1.5))
        self.plot.addItem(self.playhead)
        self.plot.scene().sigMouseClicked.connect(self._clicked)
        lay.addWidget(self.plot)
        self.values: dict[str, np.ndarray] = {}

    def reset(self, frame_count: int) -> None:
        self.values = {name: np.full(frame_count, np.nan) for name, _ in CURVES}
        for c in self.curves.values():
            c.setData([], [])

    def add_point(self, frame: int, values: dict) -> None:
        if not self.values or frame >= len(self.values["original"]):
            return
        for name, _ in CURVES:
            self.values[name][frame] = values.get(name, np.nan)
        if frame % 4 == 3 or frame == len(self.values["original"]) - 1:
            self._redraw()

    def _redraw(self) -> None:
        for name, curve in self.curves.items():
            v = self.values[name]
            ok = ~np.isnan(v)
            curve.setData(np.nonzero(ok)[0], v[ok])

    def set_frame(self, frame: int) -> None:
        self.playhead.setValue(frame)

    def _clicked(self, ev) -> None:
        pos = self.plot.getPlotItem().vb.mapSceneToView(ev.scenePos())
        if self.values:
            n = len(self.values["original"])
            self.frameRequested.emit(int(np.clip(round(pos.x()), 0, n - 1)))
