"""Export dialog: format, range, size, destination; runs the CLI's render in the background with progress, ETA and
Cancel. Non-modal: the Studio stays usable while it runs."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QMessageBox, QProgressBar, QPushButton, QVBoxLayout)

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
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons.addStretch(1)
        for b in (self.export_button, self.cancel_button, close):
            buttons.addWidget(b)
        lay.addLayout(buttons)
        proj = window.project
        self.range.setCurrentIndex(1 if proj.in_point is not None or proj.out_point is not None else 0)
        self.dest.setText(str(proj.folder.parent / f"{proj.name}_render.mp4"))

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

    def start(self):
        if self.worker is not None:
            return
        proj = self.window.project
        start = end = None
        if self.range.currentData() == "inout":
            start, end = proj.in_point, proj.out_point
        # the destination is checked before anything runs: never the project, its footage or a stranger's file
        # unless the editor says so
        overwrite = False
        try:
            check_destination(proj, self.dest.text(), self.format.currentData())
        except DestinationExists as exc:
            answer = self.window.ask("Replace file?", f"{exc}\n\nReplace it with this export?",
                                     QMessageBox.Yes | QMessageBox.Cancel, QMessageBox.Cancel)
            if answer != QMessageBox.Yes:
                self.status.setText("Not exported: choose another destination")
                return
            overwrite = True
        except DestinationError as exc:
            self.status.setText("Not exported: choose another destination")
            self.window.show_error("Cannot export there", str(exc))
            return
        self.worker = ExportWorker(proj, self.dest.text(), self.format.currentData(), start, end,
                                   scale=self.size.currentData(), layer=self.layer.currentData(), parent=self,
                                   overwrite=overwrite)
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
