"""File > New Project: talent, plate, where the matte comes from (with a live preview), and the project folder.

Matte sources: a chroma key (screen colour picked automatically or by a click on the preview, tolerance and
softness), a matte file (``.alpha.npz``, PNG sequence folder or pattern, matte video), the talent's own alpha
channel, or none yet (SAM clicks and the brush later). The preview shows the first frame's matte over a
checkerboard and warns when it is empty or covers the whole frame. The project folder is made for the user
(location + name); the folders last used are remembered; files can be dropped onto every path field.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget)

from harmovid_engine.errors import HarmoVidError
from harmovid_engine.media.probe import IMAGE_EXTS, VIDEO_EXTS

PREVIEW = (400, 260)
MATTE_SOURCES = [("key", "Chroma key (green or blue screen)"), ("file", "Import a matte file"),
                 ("alpha", "The talent's own alpha channel"), ("none", "None yet (SAM clicks, brush)")]
EMPTY, FULL = 0.002, 0.98  # share of the frame under the matte below / above which the preview warns


def coverage_warning(alpha: np.ndarray | None) -> str:
    """A warning for a matte that is empty or covers the whole frame, else ''."""
    if alpha is None:
        return ""
    cover = float((alpha > 0.5).mean())
    if cover < EMPTY:
        return "The matte of the first frame is empty: the talent would be invisible."
    if cover > FULL:
        return "The matte covers the whole frame: the talent's background would cover the plate."
    return ""


class PathField(QLineEdit):
    """A path line edit that takes a file or folder dropped on it."""

    dropped = Signal(str)

    def __init__(self, placeholder: str = ""):
        super().__init__()
        self.setPlaceholderText(placeholder)
        self.setAcceptDrops(True)

    def dragEnterEvent(self, e):
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e):
        urls = [u.toLocalFile() for u in e.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.setText(urls[0])
            self.dropped.emit(urls[0])
            e.acceptProposedAction()


class Preview(QLabel):
    """The first frame with its matte; a click reports the frame pixel under it (key colour picking)."""

    picked = Signal(int, int)

    def __init__(self):
        super().__init__()
        self.setFixedSize(*PREVIEW)
        self.setAlignment(Qt.AlignCenter)
        self.setStyleSheet("background: #202024; color: #999;")
        self._map = None  # (x0, y0, scale) of the shown image in the label

    def show_rgb(self, rgb: np.ndarray | None, text: str = ""):
        if rgb is None:
            self._map = None
            self.setPixmap(QPixmap())
            self.setText(text)
            return
        h, w = rgb.shape[:2]
        s = min(PREVIEW[0] / w, PREVIEW[1] / h)
        img = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        img = np.ascontiguousarray(img)
        q = QImage(img.data, img.shape[1], img.shape[0], 3 * img.shape[1], QImage.Format_RGB888).copy()
        self._map = ((PREVIEW[0] - img.shape[1]) / 2, (PREVIEW[1] - img.shape[0]) / 2, s)
        self.setPixmap(QPixmap.fromImage(q))

    def mousePressEvent(self, e):
        if self._map is None:
            return
        x0, y0, s = self._map
        self.picked.emit(int((e.position().x() - x0) / s), int((e.position().y() - y0) / s))


class NewProjectDialog(QDialog):
    """``values()`` after ``exec()``: folder, talent, plate, matte (file or None), key (ChromaKeySettings or None),
    use_alpha, source."""

    def __init__(self, parent=None, settings: QSettings | None = None, talent: str | None = None):
        """``talent``: the open project's talent: the dialog then only chooses its matte (Matte > Matte Source)."""
        super().__init__(parent)
        self.rematte = talent is not None
        self.setWindowTitle("Matte Source" if self.rematte else "New Project")
        self.settings = settings or QSettings()
        self._frame: np.ndarray | None = None  # the talent's first frame, [0, 1] code values, preview size
        self._alpha_channel: np.ndarray | None = None
        self._key_colour = None  # picked by a click, else automatic
        self._matte_alpha: np.ndarray | None = None
        self._talent_read: str | None = None  # the talent path the first frame was read from
        self.error = ""
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.talent = PathField("the talent clip (drop a file here)")
        self.plate = PathField("the background plate: a still or a clip")
        form.addRow("Talent", self._with_browse(self.talent, "talent", self._pick_talent))
        form.addRow("Plate", self._with_browse(self.plate, "plate", self._pick_plate))
        self.source = QComboBox()
        for key, label in MATTE_SOURCES:
            self.source.addItem(label, key)
        form.addRow("Matte", self.source)
        self.matte_file = PathField(".alpha.npz, PNG sequence folder or matte video")
        self.matte_row = self._with_browse(self.matte_file, "matte", self._pick_matte)
        form.addRow("Matte file", self.matte_row)
        self.key_box = QWidget()
        kl = QHBoxLayout(self.key_box)
        kl.setContentsMargins(0, 0, 0, 0)
        self.screen = QComboBox()
        for s in ("auto", "green", "blue"):
            self.screen.addItem(s, s)
        self.tolerance = QDoubleSpinBox()
        self.tolerance.setRange(0.0, 0.9)
        self.tolerance.setSingleStep(0.05)
        self.tolerance.setValue(0.3)
        self.softness = QDoubleSpinBox()
        self.softness.setRange(0.01, 1.0)
        self.softness.setSingleStep(0.05)
        self.softness.setValue(0.4)
        self.pick = QPushButton("Pick screen colour")
        self.pick.setCheckable(True)
        self.pick.setToolTip("then click the screen in the preview")
        for label, w in (("screen", self.screen), ("tolerance", self.tolerance), ("softness", self.softness)):
            kl.addWidget(QLabel(label))
            kl.addWidget(w)
        kl.addWidget(self.pick)
        form.addRow("Key", self.key_box)
        self.location = PathField("the folder the project folder goes into")
        self.location.setText(str(self.settings.value("new/location", str(Path.home() / "HarmoVid"))))
        form.addRow("Location", self._with_browse(self.location, "location", self._pick_location))
        self.name = QLineEdit()
        self.name.setPlaceholderText("project name (a folder of that name is made)")
        form.addRow("Name", self.name)
        lay.addLayout(form)
        self.form = form
        self.preview = Preview()
        lay.addWidget(self.preview, 0, Qt.AlignCenter)
        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #e0a040;")
        lay.addWidget(self.warning)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Create")
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self.update_preview)
        self.talent.editingFinished.connect(self._talent_changed)
        self.talent.dropped.connect(lambda _: self._talent_changed())
        self.matte_file.editingFinished.connect(self._matte_changed)
        self.matte_file.dropped.connect(lambda _: self._matte_changed())
        self.source.currentIndexChanged.connect(self._source_changed)
        for w in (self.tolerance, self.softness):
            w.valueChanged.connect(lambda _: self._timer.start())
        self.screen.currentIndexChanged.connect(self._screen_changed)
        self.preview.picked.connect(self._picked)
        if self.rematte:
            self.talent.setText(str(talent))
            self.talent.setReadOnly(True)
            for row in (1, 5, 6):  # plate, location, name: the project has them
                form.setRowVisible(row, False)
            self.form.itemAt(0, QFormLayout.FieldRole).widget().findChild(QPushButton).hide()
            self.buttons.button(QDialogButtonBox.Ok).setText("Apply")
            self._talent_changed()
        self._source_changed()

    # -- layout helpers ---------------------------------------------------------------------------------------------
    def _with_browse(self, field: QLineEdit, what: str, slot) -> QWidget:
        w = QWidget()
        row = QHBoxLayout(w)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(field, 1)
        b = QPushButton("Browse...")
        b.setObjectName(f"browse_{what}")
        b.clicked.connect(slot)
        row.addWidget(b)
        return w

    def _last(self, what: str) -> str:
        return str(self.settings.value(f"new/{what}_dir", ""))

    def _remember(self, what: str, path: str) -> None:
        p = Path(path)
        self.settings.setValue(f"new/{what}_dir", str(p if p.is_dir() else p.parent))

    def _pick_talent(self):
        exts = " ".join(f"*{e}" for e in sorted(VIDEO_EXTS))
        path, _ = QFileDialog.getOpenFileName(self, "Talent clip", self._last("talent"), f"Video ({exts})")
        if path:
            self.talent.setText(path)
            self._talent_changed()

    def _pick_plate(self):
        exts = " ".join(f"*{e}" for e in sorted(IMAGE_EXTS | VIDEO_EXTS))
        path, _ = QFileDialog.getOpenFileName(self, "Plate", self._last("plate"), f"Media ({exts})")
        if path:
            self.plate.setText(path)

    def _pick_matte(self):
        path, _ = QFileDialog.getOpenFileName(self, "Matte file", self._last("matte"),
                                              "Mattes (*.npz *.mp4 *.mov *.mkv *.png);;All files (*)")
        if path:
            self.matte_file.setText(path)
            self._matte_changed()

    def _pick_location(self):
        path = QFileDialog.getExistingDirectory(self, "Location of the new project", self.location.text())
        if path:
            self.location.setText(path)

    # -- state ------------------------------------------------------------------------------------------------------
    def mode(self) -> str:
        return self.source.currentData()

    def _source_changed(self):
        m = self.mode()
        self.matte_row.setEnabled(m == "file")
        self.key_box.setEnabled(m == "key")
        self._timer.start()

    def _screen_changed(self):
        self._key_colour = None  # a new screen: pick its colour again
        self._timer.start()

    def _talent_changed(self):
        from harmovid_engine.media import open_source

        path = self.talent.text().strip()
        if path == self._talent_read:
            return  # editingFinished also fires when the field only loses focus: the frame is read once per path
        self._talent_read = path
        self._frame = self._alpha_channel = None
        self.error = ""
        if path:
            try:
                with open_source(path) as src:
                    frame = src.read(0)
            except (HarmoVidError, OSError) as exc:
                self.error = f"Talent: {exc}"
            else:
                unit = frame.astype(np.float32) / (65535.0 if frame.dtype == np.uint16 else 255.0)
                h, w = unit.shape[:2]
                s = min(1.0, 2 * PREVIEW[0] / w)  # keyed at twice the preview's size: quick, and sharp enough
                small = cv2.resize(unit, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
                self._frame = np.ascontiguousarray(small[..., :3])
                self._alpha_channel = small[..., 3] if small.shape[2] == 4 else None
                self._remember("talent", path)
                if not self.name.text().strip():
                    self.name.setText(Path(path).stem)
                if self._alpha_channel is not None and self.mode() == "key":
                    self.source.setCurrentIndex([k for k, _ in MATTE_SOURCES].index("alpha"))
        self._key_colour = None
        self._timer.start()

    def _matte_changed(self):
        if self.matte_file.text().strip():
            self.source.setCurrentIndex([k for k, _ in MATTE_SOURCES].index("file"))
            self._remember("matte", self.matte_file.text().strip())
        self._timer.start()

    def _picked(self, x, y):
        if not self.pick.isChecked() or self._frame is None:
            return
        h, w = self._frame.shape[:2]
        fx, fy = int(np.clip(x, 0, w - 1)), int(np.clip(y, 0, h - 1))  # (x, y): pixels of the working frame
        patch = self._frame[max(0, fy - 2):fy + 3, max(0, fx - 2):fx + 3].reshape(-1, 3)
        colour = np.median(patch, axis=0)
        self._key_colour = [round(float(v), 4) for v in colour]
        self.screen.blockSignals(True)
        self.screen.setCurrentIndex(1 if colour[1] >= colour[2] else 2)
        self.screen.blockSignals(False)
        self.pick.setChecked(False)
        self._timer.start()

    def key_settings(self):
        from harmovid_engine.matte import ChromaKeySettings

        ks = ChromaKeySettings(screen=self.screen.currentData(), tolerance=self.tolerance.value(),
                               softness=self.softness.value())
        if self._key_colour is not None:
            ks.key_colour = list(self._key_colour)
        return ks

    def _matte_now(self) -> tuple[np.ndarray | None, str]:
        """(the first frame's matte at the working size, or None; a message when there is none)."""
        from harmovid_engine.matte import read_matte_frames
        from harmovid_engine.matte.chroma import ChromaKeyer

        f = self._frame
        if f is None:
            return None, self.error or "Choose a talent clip to see its matte."
        m = self.mode()
        h, w = f.shape[:2]
        if m == "key":
            from harmovid_engine.matte import detect_black_bars

            ks = self.key_settings()
            ks.garbage = detect_black_bars([f])  # as the project will: black bars are outside the picture
            try:
                return ChromaKeyer(ks, f).key(f)[0], ""
            except HarmoVidError as exc:
                return None, f"No key: {exc}"
        if m == "file":
            path = self.matte_file.text().strip()
            if not path:
                return None, "Choose a matte file."
            try:
                return next(iter(read_matte_frames(path, w, h, 1))), ""
            except (HarmoVidError, OSError, StopIteration) as exc:
                return None, f"Matte file: {exc}"
        if m == "alpha":
            if self._alpha_channel is None:
                return None, "This talent has no alpha channel."
            return self._alpha_channel, ""
        return None, ""

    def update_preview(self):
        alpha, message = self._matte_now()
        self._matte_alpha = alpha
        f = self._frame
        if f is None:
            self.preview.show_rgb(None, message)
            self.warning.setText("")
            return
        if alpha is None:
            a = np.ones(f.shape[:2], np.float32)
        else:
            a = cv2.resize(alpha, (f.shape[1], f.shape[0])) if alpha.shape != f.shape[:2] else alpha
        yy, xx = np.mgrid[0:f.shape[0], 0:f.shape[1]]
        checker = np.where(((yy // 12 + xx // 12) % 2)[..., None] == 0, 0.35, 0.5).astype(np.float32)
        rgb = f * a[..., None] + checker * (1 - a[..., None])
        self.preview.show_rgb((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
        if self.mode() == "none":
            message = ("No matte yet: the whole talent frame covers the plate until you make one (Matte > Click "
                       "Tool with SAM, or the Brush, then Propagate).")
        self.warning.setText(message or coverage_warning(alpha))

    # -- result -----------------------------------------------------------------------------------------------------
    def folder(self) -> Path | None:
        loc, name = self.location.text().strip(), self.name.text().strip()
        if not loc or not name:
            return None
        return Path(loc).expanduser() / name

    def problem(self) -> str:
        """Why Create cannot go ahead now, or ''."""
        if self.rematte:
            if self.mode() == "file" and not self.matte_file.text().strip():
                return "Choose a matte file, or another matte source."
            if self.mode() in ("key", "alpha") and self._matte_alpha is None:
                return self.warning.text() or "This matte source gives no matte for this talent."
            return ""
        for label, field in (("talent clip", self.talent), ("plate", self.plate)):
            t = field.text().strip()
            if not t:
                return f"Choose a {label}."
            if not Path(t).exists() and "%" not in t:
                return f"The {label} '{t}' does not exist."
        if self.mode() == "file" and not self.matte_file.text().strip():
            return "Choose a matte file, or another matte source."
        folder = self.folder()
        if folder is None:
            return "Give the project a location and a name."
        if (folder / "project.json").exists():
            return f"'{folder}' already holds a project: choose another name."
        if folder.exists() and not folder.is_dir():
            return f"'{folder}' exists and is not a folder."
        return ""

    def _accept(self):
        self._timer.stop()
        self.update_preview()  # the settings as they are now
        why = self.problem()
        if why:
            self.warning.setText(why)
            return
        self.settings.setValue("new/location", self.location.text().strip())
        self._remember("plate", self.plate.text().strip())
        self.accept()

    def values(self) -> dict:
        m = self.mode()
        return {"folder": self.folder(), "talent": self.talent.text().strip(), "plate": self.plate.text().strip(),
                "matte": self.matte_file.text().strip() if m == "file" else None,
                "key": self.key_settings() if m == "key" else None, "use_alpha": m == "alpha", "source": m}
