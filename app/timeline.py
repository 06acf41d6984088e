"""The timeline: frame ruler, playhead, in/out range, matte keyframe marks and the cache bar (harmonized frames)."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QWidget


class Timeline(QWidget):
    """Scrub by clicking or dragging (frame-accurate). Emits ``frameRequested(frame)``."""

    frameRequested = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(54)
        self.setFocusPolicy(Qt.ClickFocus)
        self.frame_count = 1
        self.frame = 0
        self.in_point: int | None = None
        self.out_point: int | None = None
        self.keyframes: set[int] = set()
        self.review: set[int] = set()  # frames propagation flagged for a person to check
        self.edited: set[int] = set()  # frames whose matte was changed since the last save
        self.cached: set[int] = set()
        self.fps = 25.0
        self._dragging = False

    def set_clip(self, frame_count: int, fps: float) -> None:
        self.frame_count, self.fps = max(1, frame_count), fps
        self.cached.clear()
        self.update()

    def set_frame(self, frame: int) -> None:
        self.frame = frame
        self.update()

    def _x(self, frame: float) -> float:
        return 8 + (self.width() - 16) * (frame + 0.5) / self.frame_count

    def frame_at(self, x: float) -> int:
        f = int((x - 8) / max(self.width() - 16, 1) * self.frame_count)
        return max(0, min(self.frame_count - 1, f))

    def paintEvent(self, _):
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(38, 38, 42))
        w, h = self.width(), self.height()
        bar = QRectF(8, 6, w - 16, 8)
        p.fillRect(bar, QColor(55, 55, 60))
        # in/out range
        if self.in_point is not None or self.out_point is not None:
            a = self.in_point or 0
            b = self.out_point if self.out_point is not None else self.frame_count - 1
            p.fillRect(QRectF(self._x(a - 0.5), 16, self._x(b + 0.5) - self._x(a - 0.5), h - 22),
                       QColor(70, 110, 160, 90))
        # cache bar: frames already harmonized at full quality
        cw = max(1.0, (w - 16) / self.frame_count)
        for f in self.cached:
            p.fillRect(QRectF(self._x(f - 0.5), 6, cw, 8), QColor(80, 180, 90))
        # ruler
        p.setPen(QColor(120, 120, 128))
        step = max(1, int(round(self.fps))) if self.frame_count > 2 * self.fps else 5
        for f in range(0, self.frame_count, step):
            x = self._x(f)
            p.drawLine(int(x), 18, int(x), 26)
            p.drawText(int(x) + 2, 38, str(f))
        # matte keyframes
        p.setPen(Qt.NoPen)
        p.setBrush(QColor(240, 200, 60))
        for f in self.keyframes:
            x = self._x(f)
            p.drawEllipse(QRectF(x - 3.5, h - 11, 7, 7))
        # unsaved matte edits: a white tick above the keyframe row (gone once saved, or thrown away by Discard)
        p.setBrush(QColor(235, 235, 240))
        for f in self.edited:
            x = self._x(f)
            p.drawRect(QRectF(x - 1, h - 15, 2, 3))
        p.setBrush(QColor(230, 70, 60))
        for f in self.review:
            x = self._x(f)
            p.drawRect(QRectF(x - 1.5, h - 20, 3, 7))
        # playhead
        x = self._x(self.frame)
        p.setPen(QPen(QColor(255, 80, 60), 2))
        p.drawLine(int(x), 2, int(x), h - 2)

    @property
    def dragging(self) -> bool:
        """Whether the playhead is being dragged."""
        return self._dragging

    def mousePressEvent(self, e):
        if e.button() == Qt.LeftButton:
            self._dragging = True
            self.frameRequested.emit(self.frame_at(e.position().x()))

    def mouseMoveEvent(self, e):
        if self._dragging:
            f = self.frame_at(e.position().x())
            if f != self.frame:
                self.frameRequested.emit(f)

    def mouseReleaseEvent(self, e):
        self._dragging = False
