"""Colour scopes (pyqtgraph): a luma waveform and a vectorscope of the talent and of the plate side by side, for the
frame in the viewer, and a colour picker's readout (Pick, then click the picture). The numbers come from
``harmovid_engine.render.scopes``; this widget only draws them."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from harmovid_engine.render import scopes as sc

PARTS = (("talent", "Talent"), ("plate", "Plate"))
# a phosphor green, brighter where more pixels fall (square root: a few pixels still show)
_LUT = np.stack([np.linspace(0, 150, 256), np.linspace(0, 255, 256), np.linspace(0, 170, 256)], 1).astype(np.uint8)
# 75 % colour bars on the vectorscope (Cb, Cr of R, Mg, B, Cy, G, Yl at 75 % amplitude)
_TARGETS = {"R": (0.75, 0, 0), "Mg": (0.75, 0, 0.75), "B": (0, 0, 0.75), "Cy": (0, 0.75, 0.75), "G": (0, 0.75, 0),
            "Yl": (0.75, 0.75, 0)}
VECTOR_SIZE, WAVE_COLUMNS, WAVE_LEVELS = 128, 160, 100


class ColourScopes(QWidget):
    """Shows ``set_images(images, canvas)`` (coalesced: at most one computation per 60 ms). ``pickToggled(on)``
    asks the viewer to pick; ``show_pick(info)`` shows a picked colour (from ``scopes.pick``)."""

    pickToggled = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        row = QHBoxLayout()
        self.pick_button = QPushButton("Pick colour")
        self.pick_button.setCheckable(True)
        self.pick_button.setToolTip("Click the picture to read a pixel's colour; it is marked on the scopes")
        self.pick_button.toggled.connect(self.pickToggled)
        self.readout = QLabel("Pick colour, then click the picture to read a pixel")
        self.readout.setObjectName("pickReadout")
        self.swatch = QLabel()
        self.swatch.setFixedSize(18, 18)
        row.addWidget(self.pick_button)
        row.addWidget(self.swatch)
        row.addWidget(self.readout, 1)
        lay.addLayout(row)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground((30, 30, 32))
        self.graphics.setMinimumHeight(130)
        lay.addWidget(self.graphics, 1)
        self.images: dict[str, pg.ImageItem] = {}
        self.titles: dict[str, pg.LabelItem] = {}
        self.markers: dict[str, pg.ScatterPlotItem] = {}
        for col, (part, title) in enumerate(PARTS):
            self.titles[part] = self.graphics.addLabel(title, row=0, col=2 * col, colspan=2, color=(200, 200, 200))
            wave = self._view(1, 2 * col, (0, WAVE_COLUMNS), (0, WAVE_LEVELS), f"{part}_waveform")
            for level in (0, 25, 50, 75, 100):
                wave.addItem(pg.InfiniteLine(level, angle=0, pen=pg.mkPen((90, 90, 90), width=1)))
                t = pg.TextItem(f"{level}", color=(130, 130, 130), anchor=(0, 0.5))
                t.setPos(1, level)
                wave.addItem(t)
            vec = self._view(1, 2 * col + 1, (0, VECTOR_SIZE), (0, VECTOR_SIZE), f"{part}_vectorscope")
            self._graticule(vec)
            for name, view in ((f"{part}_waveform", wave), (f"{part}_vectorscope", vec)):
                m = pg.ScatterPlotItem(size=11, symbol="+", pen=pg.mkPen((255, 80, 60), width=2), brush=None)
                view.addItem(m)
                self.markers[name] = m
        self._pending = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._compute)
        self.last: dict | None = None  # the last scopes computed (for tests and the readout)

    def _view(self, row, col, xr, yr, name):
        view = self.graphics.addViewBox(row=row, col=col, lockAspect=name.endswith("vectorscope"),
                                        enableMouse=False)
        view.setRange(xRange=xr, yRange=yr, padding=0.02)
        img = pg.ImageItem(axisOrder="row-major")
        img.setLookupTable(_LUT)
        view.addItem(img)
        self.images[name] = img
        return view

    def _graticule(self, view):
        c = VECTOR_SIZE / 2
        pen = pg.mkPen((90, 90, 90), width=1)
        t = np.linspace(0, 2 * np.pi, 120)
        for r in (0.5, 1.0):
            view.addItem(pg.PlotCurveItem(c + r * c * np.cos(t), c + r * c * np.sin(t), pen=pen))
        view.addItem(pg.PlotCurveItem([0, VECTOR_SIZE], [c, c], pen=pen))
        view.addItem(pg.PlotCurveItem([c, c], [0, VECTOR_SIZE], pen=pen))
        a = np.radians(sc.SKIN_TONE_DEGREES)  # the skin tone line
        view.addItem(pg.PlotCurveItem([c, c + c * np.cos(a)], [c, c + c * np.sin(a)],
                                      pen=pg.mkPen((200, 150, 110), width=1)))
        for name, rgb in _TARGETS.items():
            _, cb, cr = sc.ycbcr(np.array([[int(v * 255) for v in rgb]], np.uint8))
            x, y = (cb[0] + 0.5) * VECTOR_SIZE, (cr[0] + 0.5) * VECTOR_SIZE
            label = pg.TextItem(name, color=(150, 150, 150), anchor=(0.5, 0.5))
            label.setPos(x, y)
            view.addItem(label)

    # -- content ------------------------------------------------------------------------------------------------
    def set_images(self, images: dict, canvas: tuple[int, int]) -> None:
        self._pending = (images, canvas)
        if not self._timer.isActive():
            self._timer.start(60)

    def _compute(self) -> None:
        if self._pending is None:
            return
        images, _ = self._pending
        self._pending = None
        self.last = sc.scopes(images)
        for part, title in PARTS:
            res = self.last[part]
            for kind in ("waveform", "vectorscope"):
                self.images[f"{part}_{kind}"].setImage(np.sqrt(res[kind]), levels=(0, 1), autoLevels=False)
            self.titles[part].setText(title if res["pixels"] else f"{title}: none in this frame")

    def show_pick(self, info: dict | None, canvas_width: int = 1) -> None:
        for m in self.markers.values():
            m.setData([], [])
        if info is None:
            self.readout.setText("outside the picture")
            self.swatch.setStyleSheet("")
            return
        r, g, b = info["rgb"]
        self.swatch.setStyleSheet(f"background: rgb({r},{g},{b}); border: 1px solid #888;")
        self.readout.setText(f"x {info['x']}, y {info['y']} ({info['part']}, matte {info['alpha']:.2f}) · "
                             f"R {r}  G {g}  B {b} · Y' {info['luma']:.0f} % · hue {info['hue']:.0f}° · "
                             f"sat {info['saturation']:.0f} %")
        part = "talent" if info["part"] in ("talent", "edge") else "plate"
        cb, cr = info["cbcr"]
        self.markers[f"{part}_vectorscope"].setData([(cb + 0.5) * VECTOR_SIZE], [(cr + 0.5) * VECTOR_SIZE])
        self.markers[f"{part}_waveform"].setData([info["x"] * WAVE_COLUMNS / max(1, canvas_width)], [info["luma"]])
