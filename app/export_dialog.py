"""Export dialog: format, range, size, destination; runs the CLI's render in the background with progress, ETA and
Cancel. Non-modal: the Studio stays usable while it runs."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QMessageBox, QProgressBar, QPushButton, QSpinBox, QVBoxLayout)

from harmovid_engine.errors import HarmoVidError
from harmovid_engine.media.timecode import parse_timecode
from harmovid_engine.render.destination import DestinationError, DestinationExists, check_destination

from .workers import ExportWorker

FORMATS = [("H.264 (.mp4)", "h264", ".mp4"), ("ProRes 4444 with alpha (.mov)", "prores4444", ".mov"),
           ("PNG sequence (folder)", "png", "")]


class ExportDialog(QDialog):
    done_ok = Signal(str)

    def __init__(self, window, parent=None):
        super().__init__(parent or window)
        self.window = window
        self.worker: ExportWorker | None = None
        self.setWindowTitle("Export")
        self.setModal(False)
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.format = QComboBox()
        for label, fmt, _ in FORMATS:
            self.format.addItem(label, fmt)
        self.format.currentIndexChanged.connect(self._format_changed)
        self.layer = QComboBox()
        self.layer.addItem("Composite (talent over plate)", "composite")
        self.layer.addItem("Talent only, matte as alpha", "talent")
        self.range = QComboBox()
        self.range.addItem("Whole clip", "all")
        self.range.addItem("In to out", "inout")
        self.size = QComboBox()
        for pct in (100, 50, 25):
            self.size.addItem(f"{pct}% of the plate", pct / 100)
        self.alpha = QComboBox()
        self.alpha.addItem("Straight (colour as shot, matte beside it)", "straight")
        self.alpha.addItem("Premultiplied (colour times matte)", "premultiplied")
        self.alpha.setToolTip("How colour is stored beside the alpha channel: straight for most editing systems, "
                              "premultiplied for compositors that expect it (PNG's own rule is straight)")
        self.handles = QSpinBox()
        self.handles.setRange(0, 10_000)
        self.handles.setSuffix(" frames each side")
        self.handles.setToolTip("Frames more before the start and after the end, where the clip has them")
        self.timecode = QLineEdit()
        self.timecode.setPlaceholderText("00:00:00:00")
        self.timecode.setToolTip("Timecode of the clip's first frame (the file starts at its first frame's), "
                                 "e.g. 01:00:00:00")
        qs = window.qsettings
        self.alpha.setCurrentIndex(max(0, self.alpha.findData(qs.value("export/alpha", "straight"))))
        self.handles.setValue(int(qs.value("export/handles", 0)))
        self.timecode.setText(str(qs.value("export/timecode", "")))
        self.format.currentIndexChanged.connect(self._alpha_enabled)
        self.layer.currentIndexChanged.connect(self._alpha_enabled)
        self.dest = QLineEdit()
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.dest, 1)
        row.addWidget(browse)
        form.addRow("Format", self.format)
        form.addRow("Layer", self.layer)
        form.addRow("Range", self.range)
        form.addRow("Size", self.size)
        form.addRow("Alpha", self.alpha)
        form.addRow("Handles", self.handles)
        form.addRow("Start timecode", self.timecode)
        form.addRow("Destination", row)
        lay.addLayout(form)
        self.progress = QProgressBar()
        self.status = QLabel("")
        self.forming = QLabel()  # the diffusion engine's predicted clip, step by step
        self.forming.setVisible(False)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.forming)
        buttons = QHBoxLayout()
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start)
        self.queue_button = QPushButton("Add to Queue")
        self.queue_button.setToolTip("Render this later, after the renders before it (Window: Render queue panel)")
        self.queue_button.clicked.connect(self.add_to_queue)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons.addStretch(1)
        for b in (self.queue_button, self.export_button, self.cancel_button, close):
            buttons.addWidget(b)
        lay.addLayout(buttons)
        proj = window.project
        self.range.setCurrentIndex(1 if proj.in_point is not None or proj.out_point is not None else 0)
        self.dest.setText(str(proj.folder.parent / f"{proj.name}_render.mp4"))
        self._alpha_enabled()

    def _alpha_enabled(self):
        """Straight or premultiplied means something only where the file has an alpha that is not all opaque."""
        self.alpha.setEnabled(self.format.currentData() != "h264" and self.layer.currentData() == "talent")

    def _format_changed(self):
        ext = FORMATS[self.format.currentIndex()][2]
        p = Path(self.dest.text() or "render")
        stem = p.with_suffix("") if p.suffix else p
        self.dest.setText(str(stem) + ext)

    def _browse(self):
        fmt = self.format.currentData()
        if fmt == "png":
            path = QFileDialog.getExistingDirectory(self, "Folder for the PNG frames")
        else:
            path, _ = QFileDialog.getSaveFileName(self, "Export to", self.dest.text())
        if path:
            self.dest.setText(path)

    def options(self) -> dict | None:
        """The render's alpha, timecode and handles, or None (with the reason shown) when the timecode is wrong."""
        tc = self.timecode.text().strip()
        if tc:
            try:
                parse_timecode(tc, self.window.fps)
            except HarmoVidError as exc:
                self.status.setText("Not exported: the start timecode is not one")
                self.window.show_error("Start timecode", str(exc))
                return None
        qs = self.window.qsettings
        qs.setValue("export/alpha", self.alpha.currentData())
        qs.setValue("export/handles", self.handles.value())
        qs.setValue("export/timecode", tc)
        return {"alpha": self.alpha.currentData() if self.alpha.isEnabled() else "straight",
                "timecode": tc or None, "handles": self.handles.value()}

    def _range(self) -> tuple[int | None, int | None]:
        proj = self.window.project
        if self.range.currentData() == "inout":
            return proj.in_point, proj.out_point
        return None, None

    def _destination(self) -> bool | None:
        """Check the destination before anything runs (never the project, its footage or a stranger's file unless
        the editor says so): whether to overwrite, or None (the reason shown) when it must not be written."""
        try:
            check_destination(self.window.project, self.dest.text(), self.format.currentData())
        except DestinationExists as exc:
            answer = self.window.ask("Replace file?", f"{exc}\n\nReplace it with this export?",
                                     QMessageBox.Yes | QMessageBox.Cancel, QMessageBox.Cancel)
            if answer != QMessageBox.Yes:
                self.status.setText("Not exported: choose another destination")
                return None
            return True
        except DestinationError as exc:
            self.status.setText("Not exported: choose another destination")
            self.window.show_error("Cannot export there", str(exc))
            return None
        if self.window.render_queue.has_destination(self.dest.text()):
            self.status.setText("Not exported: a queued render writes there")
            self.window.show_error("Cannot export there", f"'{self.dest.text()}' is the destination of a render in "
                                                          "the render queue: choose another, or remove that one")
            return None
        return False

    def _job(self):
        """This export as the dialog describes it (the project as it is now), or None (the reason shown) when its
        timecode is wrong or its destination must not be written."""
        from .render_queue import QueuedRender

        options = self.options()
        if options is None:
            return None
        overwrite = self._destination()
        if overwrite is None:
            return None
        start, end = self._range()
        return QueuedRender(self.window.project, self.dest.text(), self.format.currentData(), start, end,
                            scale=self.size.currentData(), layer=self.layer.currentData(), overwrite=overwrite,
                            options=options)

    def add_to_queue(self):
        """Queue this export; the queue renders one export after another."""
        job = self._job()
        if job is None:
            return
        queue = self.window.render_queue
        queue.add(job)
        self.window.render_queue_dock.show()
        self.window.render_queue_dock.raise_()
        self.status.setText(f"Added to the render queue ({len(queue.waiting())} waiting)")

    def start(self):
        if self.worker is not None:
            return
        job = self._job()
        if job is None:
            return
        self.worker = job.make_worker(self)
        self.worker.progress.connect(self._progress)
        self.worker.denoising.connect(self._denoising)
        self.worker.finished_ok.connect(self._finished)
        self.worker.failed.connect(self._failed)
        self.worker.cancelled.connect(self._cancelled)
        self.export_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Rendering...")
        self.window.worker.hold_idle("export")
        self.worker.start()

    def cancel(self):
        if self.worker is not None:
            self.status.setText("Cancelling...")
            self.worker.cancel()

    def _denoising(self, step, steps, img):
        self.progress.setMaximum(steps)
        self.progress.setValue(step)
        self.status.setText(f"Diffusion: denoising step {step} of {steps} (the middle frame as it forms)")
        if img is not None:
            from PySide6.QtGui import QPixmap

            from .viewer import to_qimage

            pm = QPixmap.fromImage(to_qimage(img))
            self.forming.setPixmap(pm.scaled(256, 256, Qt.KeepAspectRatio, Qt.SmoothTransformation))
            self.forming.setVisible(True)
        self.last_denoising = (step, steps)

    def _progress(self, done, total, eta):
        self.forming.setVisible(False)
        self.progress.setMaximum(total)
        self.progress.setValue(done)
        eta_text = "" if eta != eta else f", about {int(eta) // 60}:{int(eta) % 60:02d} left"
        self.status.setText(f"Frame {done} of {total}{eta_text}")

    def _end(self, text):
        self.worker.wait()
        self.worker = None
        self.window.worker.hold_idle("export", False)
        self.export_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.status.setText(text)

    def _finished(self, path):
        warnings = self.worker.warnings
        self._end(f"Exported {path}")
        self.window.statusBar().showMessage(f"Exported {path}", 8000)
        if warnings:  # the export finished, but frames of a source file were damaged: say which
            self.window.show_error("Exported, with damaged source frames", "\n\n".join(warnings))
        self.done_ok.emit(path)

    def _failed(self, message):
        self._end("Export failed")
        self.window.show_error("Export failed", message)

    def _cancelled(self):
        self._end("Cancelled: nothing was written")

    def closeEvent(self, e):
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(10000)
        super().closeEvent(e)
