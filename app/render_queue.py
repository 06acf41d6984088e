"""Render queue: exports added from the Export dialog run one after another in the background, each with the
project as it was when it was added. A panel lists them with their progress; a job can be removed while it waits,
the running one cancelled (it leaves nothing), finished ones cleared."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from harmovid_engine.project import Project

from .workers import ExportWorker


@dataclass
class QueuedRender:
    project: Project  # a snapshot: later edits do not change a queued render
    output: str
    fmt: str
    start: int | None
    end: int | None
    scale: float = 1.0
    layer: str = "composite"
    overwrite: bool = False
    options: dict = field(default_factory=dict)
    status: str = "queued"  # queued | rendering | done | failed | cancelled
    message: str = ""
    done: int = 0
    total: int = 0

    def make_worker(self, parent=None) -> ExportWorker:
        return ExportWorker(self.project, self.output, self.fmt, self.start, self.end, scale=self.scale,
                            layer=self.layer, parent=parent, overwrite=self.overwrite, **self.options)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    def frames_text(self) -> str:
        text = "whole clip" if self.start is None and self.end is None else \
            f"{self.start if self.start is not None else 0}-{self.end if self.end is not None else 'end'}"
        if self.options.get("handles"):
            text += f" +{self.options['handles']} handles"
        if self.options.get("timecode"):
            text += f", TC {self.options['timecode']}"
        return text


class RenderQueue(QWidget):
    """The queue and its panel. ``add(job)`` appends (and starts when idle); signals ``finished(job)`` per job."""

    finished = Signal(object)
    COLUMNS = ("Output", "Format", "Frames", "Status")

    def __init__(self, window, parent=None):
        super().__init__(parent)
        self.window = window
        self.jobs: list[QueuedRender] = []
        self.worker: ExportWorker | None = None
        self.current: QueuedRender | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.setColumnWidth(2, 170)
        self.table.setColumnWidth(3, 220)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        lay.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.summary = QLabel("No renders queued: Export > Add to Queue")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected waiting renders")
        self.remove_button.clicked.connect(self.remove_selected)
        self.cancel_button = QPushButton("Cancel Current")
        self.cancel_button.clicked.connect(self.cancel_current)
        self.clear_button = QPushButton("Clear Finished")
        self.clear_button.clicked.connect(self.clear_finished)
        row.addWidget(self.summary, 1)
        for b in (self.remove_button, self.cancel_button, self.clear_button):
            row.addWidget(b)
        lay.addLayout(row)
        self._refresh()

    # -- the queue ------------------------------------------------------------------------------------------------
    def add(self, job: QueuedRender) -> None:
        job.project = copy.deepcopy(job.project)
        self.jobs.append(job)
        self._refresh()
        self._next()

    def waiting(self) -> list[QueuedRender]:
        return [j for j in self.jobs if j.status == "queued"]

    def busy(self) -> bool:
        return self.current is not None or bool(self.waiting())

    def has_destination(self, output: str) -> bool:
        """Whether a waiting or running render writes ``output`` (two renders to one file: the second is refused)."""
        target = Path(output).expanduser().resolve()
        return any(Path(j.output).expanduser().resolve() == target for j in self.jobs if not j.finished)

    def remove_selected(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True)
        for r in rows:
            if r < len(self.jobs) and self.jobs[r].status == "queued":
                del self.jobs[r]
        self._refresh()

    def cancel_current(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def clear_finished(self) -> None:
        self.jobs = [j for j in self.jobs if not j.finished]
        self._refresh()

    def shutdown(self) -> None:
        """Cancel what runs (it leaves nothing) and drop what waits: the window is closing."""
        for j in self.waiting():
            j.status = "cancelled"
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait()
            self.worker = None
            self.current = None
            self.window.worker.hold_idle("render queue", False)

    def _next(self) -> None:
        if self.worker is not None:
            return
        job = next(iter(self.waiting()), None)
        if job is None:
            self.current = None
            self.window.worker.hold_idle("render queue", False)
            self._refresh()
            return
        self.current = job
        job.status = "rendering"
        self.worker = job.make_worker(self)
        self.worker.progress.connect(self._progress)
        self.worker.finished_ok.connect(lambda _: self._end("done", ""))
        self.worker.failed.connect(lambda m: self._end("failed", m))
        self.worker.cancelled.connect(lambda: self._end("cancelled", "nothing was written"))
        # a worker that ends without saying how (an error no handler caught) still frees the queue
        self.worker.finished.connect(lambda w=self.worker: self._end("failed", "the render stopped unexpectedly")
                                     if self.worker is w else None)
        self.window.worker.hold_idle("render queue")
        self.worker.start()
        self._refresh()

    def _progress(self, done: int, total: int, _eta: float) -> None:
        if self.current is not None:
            self.current.done, self.current.total = done, total
            self._refresh()

    def _end(self, status: str, message: str) -> None:
        job, worker = self.current, self.worker
        if worker is not None:
            worker.wait()
        self.worker = None
        if job is not None:
            job.status, job.message = status, message
            if status == "done" and worker is not None and worker.warnings:
                job.message = " ".join(worker.warnings)
        self.current = None
        self._next()  # the next render starts before anyone is told (a message box must not hold the queue)
        self._refresh()
        if job is not None:
            self.finished.emit(job)

    # -- the panel ------------------------------------------------------------------------------------------------
    def _status_text(self, job: QueuedRender) -> str:
        if job.status == "rendering":
            return f"rendering {job.done} / {job.total}" if job.total else "rendering..."
        return job.status + (f": {job.message}" if job.message else "")

    def _refresh(self) -> None:
        self.table.setRowCount(len(self.jobs))
        for r, job in enumerate(self.jobs):
            cells = (Path(job.output).name, job.fmt, job.frames_text(), self._status_text(job))
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 0:
                    item.setToolTip(job.output)
                if c == 3 and job.status == "failed":
                    item.setForeground(Qt.red)
                self.table.setItem(r, c, item)
        waiting = len(self.waiting())
        if self.current is not None:
            self.summary.setText(f"Rendering {Path(self.current.output).name}; {waiting} waiting")
        elif self.jobs:
            self.summary.setText(f"{waiting} waiting" if waiting else "All renders finished")
        else:
            self.summary.setText("No renders queued: Export > Add to Queue")
        self.cancel_button.setEnabled(self.current is not None)
