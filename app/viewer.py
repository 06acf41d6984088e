"""The viewer: zoom (wheel, fit, 100%), pan, view modes and a before/after wipe, placement handles."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QWidget

VIEW_MODES = {
    "composite": "Composite",
    "talent": "Harmonized talent",
    "original": "Original composite",
    "matte": "Matte",
    "overlay": "Matte overlay",
    "wipe": "Before / after wipe",
}


CHANNELS = {"rgb": "All Channels", "r": "Red", "g": "Green", "b": "Blue", "a": "Alpha (Matte)"}


def channel_of(arr: np.ndarray, channel: str, matte: np.ndarray | None = None) -> np.ndarray:
    """One channel of a view's uint8 image as grey (the matte for "a"); the image itself for "rgb" or a grey one."""
    if channel == "rgb":
        return arr
    if channel == "a":
        return matte if matte is not None else (arr[..., 3] if arr.ndim == 3 and arr.shape[2] == 4 else arr)
    if arr.ndim == 2:
        return arr
    return np.ascontiguousarray(arr[..., "rgb".index(channel)])


def to_qimage(arr: np.ndarray) -> QImage:
    """uint8 (H, W), (H, W, 3) or (H, W, 4) -> QImage (a deep copy: the array may go away)."""
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        img = QImage(arr.data, w, h, w, QImage.Format_Grayscale8)
    elif arr.shape[2] == 3:
        img = QImage(arr.data, w, h, 3 * w, QImage.Format_RGB888)
    else:
        img = QImage(arr.data, w, h, 4 * w, QImage.Format_RGBA8888)
    return img.copy()


def checkerboard(size: int = 12) -> QPixmap:
    pm = QPixmap(2 * size, 2 * size)
    pm.fill(QColor(90, 90, 90))
    p = QPainter(pm)
    p.fillRect(0, 0, size, size, QColor(130, 130, 130))
    p.fillRect(size, size, size, size, QColor(130, 130, 130))
    p.end()
    return pm


class Viewer(QWidget):
    """Shows the images of the current frame. Emits ``zoomChanged(percent)``, ``placementDragged(dx, dy, scale)``
    while the user drags the talent (in plate pixels), and ``placementDropped()`` at the end of a drag."""

    zoomChanged = Signal(float)
    placementDragged = Signal(float, float, float)
    placementDropped = Signal()
    # matte mode, in talent pixels: a click (x, y, positive), a box, a brush stroke (points, erase)
    matteClicked = Signal(float, float, bool)
    matteBox = Signal(float, float, float, float)
    matteStroke = Signal(object, bool)
    colourPicked = Signal(float, float)  # full-frame pixel clicked with the colour picker

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(320, 240)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setMouseTracking(True)
        self.images: dict[str, QImage] = {}
        self._arrays: dict = {}
        self.channel = "rgb"
        self.mode = "composite"
        self.wipe = 0.5  # divider position, fraction of the image width
        self.zoom = 1.0
        self.fit = True
        self.offset = QPointF(0, 0)  # pan, widget pixels
        self.pass_name = ""
        # The full frame's size (canvas pixels). Geometry (zoom, pan, placement box, clicks) is always the full
        # frame's: a proxy image, smaller, is drawn scaled up into the same rectangle.
        self.canvas_size: tuple[int, int] | None = None
        self.talent_rect: QRectF | None = None  # in image pixels, for placement handles
        self.show_handles = True
        self._drag = None
        self._checker = QBrush(checkerboard())
        self.setAcceptDrops(False)
        self.matte_tool: str | None = None  # "click" | "box" | "brush" while editing the matte
        self.matte_image: QImage | None = None
        self.matte_points: list = []
        self.brush_radius = 20.0
        self._cursor: QPointF | None = None
        self.picking = False  # the colour picker: a click reads a pixel instead of panning or moving the talent

    # -- content ------------------------------------------------------------------------------------------------
    def set_images(self, images: dict, pass_name: str) -> None:
        self._arrays = images
        self.images = {k: to_qimage(channel_of(v, self.channel, images.get("matte"))) for k, v in images.items()}
        self.pass_name = pass_name
        self.update()

    def set_channel(self, channel: str) -> None:
        """Show every view's red, green or blue channel, or the matte (alpha), as grey; "rgb": all channels."""
        if channel not in CHANNELS:
            raise ValueError(channel)
        self.channel = channel
        if self._arrays:
            self.set_images(self._arrays, self.pass_name)
        self.update()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.update()

    def set_matte_tool(self, tool: str | None) -> None:
        """Enter matte mode with a tool (the viewer then shows the talent frame and its matte), or leave it."""
        self.matte_tool = tool
        if tool is None:
            self.matte_image = None
        self.setCursor(Qt.CrossCursor if tool else Qt.ArrowCursor)
        self.set_zoom(None)

    def set_picking(self, on: bool) -> None:
        self.picking = bool(on)
        self.setCursor(Qt.CrossCursor if on or self.matte_tool else Qt.ArrowCursor)

    def set_matte_image(self, img: np.ndarray, points: list, brush_radius: float) -> None:
        self.matte_image = to_qimage(img)
        self.matte_points = points
        self.brush_radius = brush_radius
        self.update()

    def _shown(self) -> QImage | None:
        if self.matte_tool and self.matte_image is not None:
            return self.matte_image
        return self.images.get("composite")

    def set_canvas_size(self, size: tuple[int, int] | None) -> None:
        """The full frame's (w, h); every image shown outside matte mode is drawn at this size."""
        self.canvas_size = None if size is None else (int(size[0]), int(size[1]))
        self.update()

    def image_size(self) -> tuple[int, int] | None:
        """(w, h) of the picture in the pixels the geometry is in: the talent frame in matte mode, otherwise the full
        frame (``canvas_size``), whatever the size of the image on screen (proxy or full)."""
        img = self._shown()
        if img is None:
            return None
        if self.matte_tool and self.matte_image is not None:
            return img.width(), img.height()
        return self.canvas_size or (img.width(), img.height())

    # -- geometry -----------------------------------------------------------------------------------------------
    def current_scale(self) -> float:
        size = self.image_size()
        if size is None:
            return 1.0
        if self.fit:
            w, h = size
            return min(self.width() / w, self.height() / h)
        return self.zoom

    def image_rect(self) -> QRectF:
        size = self.image_size() or (1, 1)
        s = self.current_scale()
        w, h = size[0] * s, size[1] * s
        x = (self.width() - w) / 2 + (0 if self.fit else self.offset.x())
        y = (self.height() - h) / 2 + (0 if self.fit else self.offset.y())
        return QRectF(x, y, w, h)

    def set_zoom(self, zoom: float | None) -> None:
        """None: fit to window; else a factor (1.0 = 100%)."""
        if zoom is None:
            self.fit = True
            self.offset = QPointF(0, 0)
        else:
            self.fit = False
            self.zoom = float(np.clip(zoom, 0.05, 16.0))
        self.zoomChanged.emit(self.current_scale() * 100)
        self.update()

    # -- painting -----------------------------------------------------------------------------------------------
    def paintEvent(self, _):
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(30, 30, 32))
        if self.matte_tool and self.matte_image is not None:
            self._paint_matte(p)
            return
        if not self.images:
            p.setPen(QColor(160, 160, 160))
            p.drawText(self.rect(), Qt.AlignCenter, "Open a project or drop a talent clip here")
            return
        r = self.image_rect()
        shown = self.images.get("composite")
        # smooth when the picture is shrunk, or when it is a proxy drawn larger than its pixels
        p.setRenderHint(QPainter.SmoothPixmapTransform,
                        shown is not None and r.width() < shown.width() or self.pass_name == "proxy")
        if self.mode == "talent":
            p.fillRect(r, self._checker)
            p.drawImage(r, self.images["talent"])
        elif self.mode == "wipe":
            p.drawImage(r, self.images["original"])
            x = r.x() + self.wipe * r.width()
            clip = QRectF(x, r.y(), r.right() - x, r.height())
            p.save()
            p.setClipRect(clip)
            p.drawImage(r, self.images["composite"])
            p.restore()
            p.setPen(QPen(QColor(255, 255, 255), 2))
            p.drawLine(QPointF(x, r.top()), QPointF(x, r.bottom()))
            p.setBrush(QColor(255, 255, 255))
            p.drawEllipse(QPointF(x, r.center().y()), 7, 7)
            p.setPen(QColor(255, 255, 255))
            p.drawText(QRectF(r.x() + 8, r.y() + 6, 200, 20), Qt.AlignLeft, "before")
            p.drawText(QRectF(r.right() - 208, r.y() + 6, 200, 20), Qt.AlignRight, "after")
        else:
            p.drawImage(r, self.images.get(self.mode, self.images["composite"]))
        if self.show_handles and self.talent_rect is not None and self.mode in ("composite", "overlay"):
            s = self.current_scale()
            tr = QRectF(r.x() + self.talent_rect.x() * s, r.y() + self.talent_rect.y() * s,
                        self.talent_rect.width() * s, self.talent_rect.height() * s)
            p.setPen(QPen(QColor(255, 200, 0, 160), 1, Qt.DashLine))
            p.setBrush(Qt.NoBrush)
            p.drawRect(tr)
            p.setBrush(QColor(255, 200, 0))
            p.drawRect(QRectF(tr.right() - 5, tr.bottom() - 5, 10, 10))  # scale handle
        if self.pass_name == "proxy":
            p.setPen(QColor(255, 200, 80))
            p.drawText(QRectF(8, self.height() - 24, 300, 20), Qt.AlignLeft, "proxy: refining...")

    def _paint_matte(self, p: QPainter) -> None:
        r = self.image_rect()
        s = self.current_scale()
        p.setRenderHint(QPainter.SmoothPixmapTransform, s < 1.0)
        p.drawImage(r, self.matte_image)
        p.setRenderHint(QPainter.Antialiasing, True)
        for (x, y), label in self.matte_points:
            c = QPointF(r.x() + x * s, r.y() + y * s)
            p.setPen(QPen(QColor(0, 0, 0), 3))
            p.setBrush(QColor(60, 220, 90) if label else QColor(235, 60, 60))
            p.drawEllipse(c, 6, 6)
        d = self._drag
        if d and d[0] == "box":
            a, b = d[1], d[2]
            p.setPen(QPen(QColor(255, 220, 40), 1.5, Qt.DashLine))
            p.setBrush(Qt.NoBrush)
            p.drawRect(QRectF(r.x() + a.x() * s, r.y() + a.y() * s, (b.x() - a.x()) * s, (b.y() - a.y()) * s))
        if d and d[0] == "brush" and len(d[1]) > 0:
            colour = QColor(235, 60, 60, 120) if d[2] else QColor(60, 220, 90, 120)
            p.setPen(QPen(colour, 2 * self.brush_radius * s, Qt.SolidLine, Qt.RoundCap, Qt.RoundJoin))
            pts = [QPointF(r.x() + x * s, r.y() + y * s) for x, y in d[1]]
            if len(pts) == 1:
                p.drawPoint(pts[0])
            else:
                p.drawPolyline(pts)
        if self.matte_tool == "brush" and self._cursor is not None:
            p.setPen(QPen(QColor(255, 255, 255, 200), 1))
            p.setBrush(Qt.NoBrush)
            p.drawEllipse(self._cursor, self.brush_radius * s, self.brush_radius * s)
        p.setPen(QColor(255, 220, 120))
        p.drawText(QRectF(8, self.height() - 24, 600, 20), Qt.AlignLeft,
                   f"matte: {self.matte_tool}  (right-click or Alt: exclude / erase; middle-drag: pan)")

    def _matte_press(self, e) -> bool:
        if not self.matte_tool or self.matte_image is None or e.button() == Qt.MiddleButton:
            return False
        ip = self._image_pos(e.position())
        negative = e.button() == Qt.RightButton or bool(e.modifiers() & Qt.AltModifier)
        if self.matte_tool == "click":
            self.matteClicked.emit(ip.x(), ip.y(), not negative)
            self._drag = None
        elif self.matte_tool == "box":
            self._drag = ("box", ip, ip)
        else:
            self._drag = ("brush", [(ip.x(), ip.y())], negative)
        self.update()
        return True

    # -- interaction --------------------------------------------------------------------------------------------
    def wheelEvent(self, e):
        if not self.images and self.matte_image is None:
            return
        factor = 1.15 if e.angleDelta().y() > 0 else 1 / 1.15
        before = self.current_scale()
        pos = e.position()
        r = self.image_rect()
        self.fit = False
        self.zoom = float(np.clip(before * factor, 0.05, 16.0))
        # keep the point under the cursor still
        rel = (pos - r.topLeft()) / before
        new_w, new_h = r.width() / before * self.zoom, r.height() / before * self.zoom
        cx = pos.x() - rel.x() * self.zoom
        cy = pos.y() - rel.y() * self.zoom
        self.offset = QPointF(cx - (self.width() - new_w) / 2, cy - (self.height() - new_h) / 2)
        self.zoomChanged.emit(self.zoom * 100)
        self.update()

    def _image_pos(self, pos: QPointF) -> QPointF:
        r = self.image_rect()
        s = self.current_scale()
        return QPointF((pos.x() - r.x()) / s, (pos.y() - r.y()) / s)

    def mousePressEvent(self, e):
        if self._matte_press(e):
            return
        if not self.images and self.matte_image is None:
            return
        pos = e.position()
        r = self.image_rect()
        if self.picking and e.button() == Qt.LeftButton and not self.matte_tool:
            ip = self._image_pos(pos)
            self.colourPicked.emit(ip.x(), ip.y())
            return
        if self.mode == "wipe" and e.button() == Qt.LeftButton:
            self._drag = ("wipe", pos)
            self._set_wipe(pos)
            return
        if e.button() == Qt.LeftButton and self.talent_rect is not None and self.mode in ("composite", "overlay") \
                and not self.matte_tool:
            ip = self._image_pos(pos)
            tr = self.talent_rect
            corner = QPointF(tr.right(), tr.bottom())
            if (ip - corner).manhattanLength() * self.current_scale() < 14:
                self._drag = ("scale", ip, tr)
                return
            if tr.contains(ip):
                self._drag = ("move", ip)
                return
        if e.button() in (Qt.LeftButton, Qt.MiddleButton):
            # a pan starts from what is on screen: the scale is read while still in fit mode (a click never zooms)
            self.zoom = self.current_scale()
            self.fit = False
            self.offset = QPointF(r.x() - (self.width() - r.width()) / 2, r.y() - (self.height() - r.height()) / 2)
            self._drag = ("pan", pos, QPointF(self.offset))

    def _set_wipe(self, pos):
        r = self.image_rect()
        self.wipe = float(np.clip((pos.x() - r.x()) / max(r.width(), 1), 0, 1))
        self.update()

    def mouseMoveEvent(self, e):
        if self.matte_tool == "brush":
            self._cursor = e.position()
            self.update()
        if not self._drag:
            return
        kind = self._drag[0]
        pos = e.position()
        if kind == "box":
            self._drag = ("box", self._drag[1], self._image_pos(pos))
            self.update()
            return
        if kind == "brush":
            ip = self._image_pos(pos)
            self._drag[1].append((ip.x(), ip.y()))
            self.update()
            return
        if kind == "wipe":
            self._set_wipe(pos)
        elif kind == "pan":
            self.offset = self._drag[2] + (pos - self._drag[1])
            self.update()
        elif kind == "move":
            ip = self._image_pos(pos)
            d = ip - self._drag[1]
            self.placementDragged.emit(d.x(), d.y(), 1.0)
        elif kind == "scale":
            ip = self._image_pos(pos)
            tr = self._drag[2]
            factor = max(0.05, (ip.y() - tr.top()) / max(tr.height(), 1))
            self.placementDragged.emit(0.0, 0.0, factor)

    def mouseReleaseEvent(self, e):
        d, self._drag = self._drag, None
        if d and d[0] in ("move", "scale"):
            self.placementDropped.emit()
        elif d and d[0] == "box":
            a, b = d[1], d[2]
            if abs(b.x() - a.x()) > 3 and abs(b.y() - a.y()) > 3:
                self.matteBox.emit(a.x(), a.y(), b.x(), b.y())
        elif d and d[0] == "brush":
            self.matteStroke.emit(list(d[1]), d[2])
        self.update()
