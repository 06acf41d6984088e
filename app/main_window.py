"""The Studio's main window: menus, viewer, timeline, inspector, flicker scope, export, undo, autosave, recovery."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRectF, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QUndoStack
from PySide6.QtWidgets import (QApplication, QDialog, QDialogButtonBox, QDockWidget, QFileDialog, QFormLayout, QFrame,
                               QLabel, QMainWindow, QMessageBox, QProgressBar, QPushButton, QScrollArea, QSpinBox,
                               QUndoView, QVBoxLayout, QWidget)

from harmovid_engine import __version__
from harmovid_engine.errors import HarmoVidError
from harmovid_engine.media import probe
from harmovid_engine.media.probe import IMAGE_EXTS, VIDEO_EXTS
from harmovid_engine.project import Project, create_project

from .colour_scopes import ColourScopes
from .commands import SetPlacement, SetSetting, get_setting
from .export_dialog import ExportDialog
from .inspector import Inspector
from .keys import ShortcutRouter
from .matte_tools import DownloadWorker, MattePanel, MatteTools, pick_checkpoint
from .render_queue import RenderQueue
from .scope import FlickerScope
from .session import Session
from .timeline import Timeline
from .viewer import CHANNELS, VIEW_MODES, Viewer
from .workers import PreviewWorker, ScopeWorker

AUTOSAVE_MS = 30_000
LAYOUT_VERSION = 4  # bump when the docks change: saved window layouts of other versions are not restored
SHORTCUTS = [
    ("Space", "play / pause"), ("J / K / L", "play backward / stop / play forward (repeat to go faster)"),
    ("Left / Right", "previous / next frame"), ("Home / End", "first / last frame"), ("I / O", "set in / out point"),
    ("1-6", "view modes"), ("F", "fit to window"), ("Ctrl+0", "100%"), ("Ctrl+Z / Ctrl+Shift+Z", "undo / redo"),
    ("Ctrl+S", "save"), ("Ctrl+E", "export"),
    ("C / X / B / Esc", "matte tools: SAM click / SAM box / brush / off"),
    ("right-click, Alt", "exclude point / erase with the brush"), ("Tab", "next SAM candidate"),
    ("R", "refine the matte edge of this frame"), ("Ctrl+P", "propagate the matte from keyframes"),
    ("", "shortcuts work with the focus anywhere; a number field takes only digits, signs and Enter"),
    ("Esc", "give the keyboard back to the viewer"), ("Ctrl+L", "loop playback over in-out (or the clip)"),
    ("Shift+R / G / B / A / C", "show the red, green, blue channel, the alpha, or all channels"),
    ("P", "colour picker: click the picture to read a pixel (Colour scopes panel)"),
    ("Ctrl+Space", "RAM preview: render in-out (or the clip) at full quality, then play it looped"),
]


def _warm_up_export_kernel():
    """Load the export's compiled kernels (numba, cached on disk) in the background now: loading them takes ~0.8 s
    and holds Python's lock for up to ~0.1-0.2 s at a time, a stall nobody sees at start-up but would feel in the
    middle of an export. Returns the thread (``MainWindow.kernel_warm_up``)."""
    import threading

    from harmovid_engine.composite.fast import warm_up

    thread = threading.Thread(target=warm_up, name="export-kernel-warm-up", daemon=True)
    thread.start()
    return thread


class MainWindow(QMainWindow):
    @property
    def frame(self) -> int:
        """The playhead (the session's, not the project's)."""
        return self.session.frame

    @frame.setter
    def frame(self, value: int) -> None:
        self.session.frame = int(value)

    def __init__(self, settings: QSettings | None = None):
        super().__init__()
        self.kernel_warm_up = _warm_up_export_kernel()
        self.setWindowTitle("HarmoVid Studio")
        self.resize(1400, 880)
        self.setAcceptDrops(True)
        self.qsettings = settings or QSettings("HarmoVid", "HarmoVid Studio")
        self.project: Project | None = None
        self.session = Session()
        self.frame_count = 1
        self.fps = 25.0
        self.talent_size = (1, 1)
        self.undo = QUndoStack(self)
        self._closed = False
        self.undo.cleanChanged.connect(lambda _: None if self._closed else self._update_title())
        self._rid = 0
        self._shown_rid = 0  # the newest request whose picture is on screen
        self._play_dir = 0
        self._play_speed = 1
        self._drag_origin = None
        self.scope_worker: ScopeWorker | None = None
        self._retired_scopes: set = set()  # cancelled scope workers still finishing their frame
        self.export_dialog: ExportDialog | None = None

        self.viewer = Viewer()
        self.timeline = Timeline()
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.viewer, 1)
        lay.addWidget(self.timeline)
        self.setCentralWidget(central)
        self.inspector = Inspector()
        self.scope = FlickerScope()
        self._dock("Inspector", self.inspector, Qt.RightDockWidgetArea)
        scope_dock = self._dock("Flicker scope", self.scope, Qt.BottomDockWidgetArea)
        scope_dock.setMinimumHeight(120)
        # waveform and vectorscope of the talent and the plate, and the colour picker's readout
        self.colour_scopes = ColourScopes()
        self.colour_dock = self._dock("Colour scopes", self.colour_scopes, Qt.BottomDockWidgetArea)
        self.tabifyDockWidget(scope_dock, self.colour_dock)
        self.render_queue = RenderQueue(self)
        self.render_queue_dock = self._dock("Render queue", self.render_queue, Qt.BottomDockWidgetArea)
        self.tabifyDockWidget(scope_dock, self.render_queue_dock)
        self.render_queue.finished.connect(self._queued_render_finished)
        scope_dock.raise_()
        self.colour_dock.visibilityChanged.connect(lambda on: on and self._feed_colour_scopes())
        self.colour_scopes.pickToggled.connect(self._set_picking)
        self._pick_at: tuple[float, float] | None = None
        self.matte_tools = MatteTools(self)
        self.matte_panel = MattePanel(self.matte_tools, self)
        self.tabifyDockWidget(self.findChild(QDockWidget, "Inspector"),
                              self._dock("Matte", self.matte_panel, Qt.RightDockWidgetArea))
        # the undo history: every edit by name; a click goes back (or forward) to that point
        self.history = QUndoView(self.undo)
        self.history.setEmptyLabel("<opened>")
        self.tabifyDockWidget(self.findChild(QDockWidget, "Inspector"),
                              self._dock("History", self.history, Qt.RightDockWidgetArea))
        self.findChild(QDockWidget, "Inspector").raise_()
        self.resizeDocks([scope_dock], [190], Qt.Vertical)  # the picture gets the room (a saved layout overrides)
        self.viewer.matteClicked.connect(self.matte_tools.click)
        self.viewer.matteBox.connect(self.matte_tools.box)
        self.viewer.matteStroke.connect(self.matte_tools.stroke)
        self.viewer.colourPicked.connect(self._pick_colour)
        self.matte_tools.changed.connect(self._sync_timeline)
        self.download_worker = None

        self.worker = PreviewWorker(self)
        self.worker.ready.connect(self._on_preview)
        self.worker.failed.connect(self._on_preview_failed)
        self.worker.cached.connect(self._on_cached)
        self.worker.uncached.connect(lambda f: (self.timeline.cached.discard(f), self.timeline.update()))
        self.worker.busy.connect(self._on_busy)
        self.worker.ram_progress.connect(self._on_ram_progress)
        self.worker.ram_done.connect(self._on_ram_done)
        self._ram_state = None  # None | "rendering" | "playing": a RAM preview
        self._ram_rid = 0
        # an edit makes a RAM preview's frames stale: it ends (the edited frames render as usual)
        self.undo.indexChanged.connect(lambda _: self.stop() if self._ram_state is not None else None)
        self.worker.start()

        self.timeline.frameRequested.connect(self.seek)
        self.scope.frameRequested.connect(self.seek)
        self.inspector.edited.connect(self.edit_setting)
        self.viewer.zoomChanged.connect(lambda z: self.zoom_label.setText(f"{z:.0f}%"))
        self.keys = ShortcutRouter(self, self.viewer)  # shortcuts work with the focus in a number field too
        self.keys.install()
        self.viewer.placementDragged.connect(self._placement_drag)
        self.viewer.placementDropped.connect(self._placement_drop)

        self.frame_label, self.tc_label, self.zoom_label, self.engine_label = (QLabel() for _ in range(4))
        for w in (self.frame_label, self.tc_label, self.zoom_label, self.engine_label):
            self.statusBar().addPermanentWidget(w)
        self._build_menus()
        # propagation's progress and Cancel, in the status bar while it runs (visible whatever the docks show)
        self.prop_bar = QProgressBar()
        self.prop_bar.setMaximumWidth(240)
        self.prop_bar.setFormat("propagating matte %v/%m")
        self.prop_cancel = QPushButton("Cancel propagation")
        self.prop_cancel.clicked.connect(self.matte_tools.cancel_propagation)
        for w in (self.prop_bar, self.prop_cancel):
            self.statusBar().addPermanentWidget(w)
            w.hide()
        self.matte_tools.changed.connect(self._sync_propagation)

        self.play_timer = QTimer(self)
        self.play_timer.timeout.connect(self._play_step)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start(int(self.qsettings.value("autosave_ms", AUTOSAVE_MS)))
        self.scope_timer = QTimer(self)
        self.scope_timer.setSingleShot(True)
        self.scope_timer.timeout.connect(self._restart_scope)
        QApplication.instance().applicationStateChanged.connect(self._app_state)
        geo = self.qsettings.value("geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        state = self.qsettings.value("windowState")
        if state is not None:
            # a layout saved by a version with other docks is ignored (Qt refuses another version number)
            self.restoreState(state, LAYOUT_VERSION)
        self._fit_to_screen()
        self._update_status()

    def _fit_to_screen(self) -> None:
        """A window restored from a larger screen (or grown by a saved layout) is brought back onto this one."""
        screen = self.screen() or QApplication.primaryScreen()
        if screen is None:
            return
        avail = screen.availableGeometry()
        w, h = min(self.width(), avail.width()), min(self.height(), avail.height())
        if (w, h) != (self.width(), self.height()):
            self.resize(w, h)
        x = min(max(self.x(), avail.x()), avail.right() - w + 1)
        y = min(max(self.y(), avail.y()), avail.bottom() - h + 1)
        if (x, y) != (self.x(), self.y()):
            self.move(x, y)

    # -- construction -------------------------------------------------------------------------------------------
    def _dock(self, title, widget, area):
        d = QDockWidget(title, self)
        d.setObjectName(title)
        if area == Qt.RightDockWidgetArea:  # long panels scroll, so the window fits small screens
            scroll = QScrollArea()
            scroll.setWidget(widget)
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QFrame.NoFrame)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
            widget = scroll
        d.setWidget(widget)
        self.addDockWidget(area, d)
        return d

    def _action(self, menu, text, slot, shortcut=None, name=None):
        a = QAction(text, self)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        a.triggered.connect(slot)
        if name:
            a.setObjectName(name)
        menu.addAction(a)
        return a

    def _build_menus(self):
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "&New Project...", self.new_project, QKeySequence.New)
        self._action(f, "&Open Project...", self.open_dialog, QKeySequence.Open)
        self.recent_menu = f.addMenu("Open &Recent")
        self._refresh_recent()
        self._action(f, "Open &Demo Project", self.open_demo)
        f.addSeparator()
        self._action(f, "&Save", self.save, QKeySequence.Save, "save")
        self._action(f, "Save &As...", self.save_as, QKeySequence.SaveAs)
        f.addSeparator()
        self._action(f, "Import &Talent...", lambda: self.import_media("talent"))
        self._action(f, "Import &Plate...", lambda: self.import_media("plate"))
        self._action(f, "&Export...", self.export, "Ctrl+E", "export")
        f.addSeparator()
        self._action(f, "&Quit", self.close, QKeySequence.Quit)

        e = mb.addMenu("&Edit")
        undo = self.undo.createUndoAction(self, "&Undo")
        undo.setShortcut(QKeySequence.Undo)
        redo = self.undo.createRedoAction(self, "&Redo")
        redo.setShortcut(QKeySequence("Ctrl+Shift+Z"))
        e.addAction(undo)
        e.addAction(redo)
        e.addSeparator()
        self._action(e, "Set &In Point", self.set_in, "I")
        self._action(e, "Set &Out Point", self.set_out, "O")
        self._action(e, "&Clear In/Out", self.clear_in_out)
        e.addSeparator()
        self._action(e, "&Preferences...", self.preferences)

        v = mb.addMenu("&View")
        group = QActionGroup(self)
        self.mode_actions = {}
        for n, (mode, label) in enumerate(VIEW_MODES.items(), start=1):
            a = self._action(v, label, lambda checked=False, m=mode: self.set_view_mode(m), str(n))
            a.setCheckable(True)
            a.setChecked(mode == "composite")
            group.addAction(a)
            self.mode_actions[mode] = a
        v.addSeparator()
        ch = v.addMenu("&Channels")
        cgroup = QActionGroup(self)
        self.channel_actions = {}
        for key, label in CHANNELS.items():
            a = self._action(ch, label, lambda checked=False, c=key: self.set_channel(c),
                             "Shift+C" if key == "rgb" else f"Shift+{key.upper()}")
            a.setCheckable(True)
            a.setChecked(key == "rgb")
            cgroup.addAction(a)
            self.channel_actions[key] = a
        self.pick_action = self._action(v, "&Pick Colour", lambda: None, "P", "pick")
        self.pick_action.setCheckable(True)
        self.pick_action.toggled.connect(self._set_picking)
        self._action(v, "&Fit to Window", lambda: self.viewer.set_zoom(None), "F")
        self._action(v, "&100%", lambda: self.viewer.set_zoom(1.0), "Ctrl+0")
        self._action(v, "Zoom &In", lambda: self.viewer.set_zoom(self.viewer.current_scale() * 1.25), "Ctrl+=")
        self._action(v, "Zoom &Out", lambda: self.viewer.set_zoom(self.viewer.current_scale() / 1.25), "Ctrl+-")
        v.addSeparator()
        for d in self.findChildren(QDockWidget):
            v.addAction(d.toggleViewAction())

        m = mb.addMenu("&Matte")
        mt = self.matte_tools
        self._action(m, "&View (no matte tool)", self._escape, "Esc")
        self._action(m, "&Click Tool (SAM)", lambda: self._matte_tool("click"), "C")
        self._action(m, "Bo&x Tool (SAM)", lambda: self._matte_tool("box"), "X")
        self._action(m, "&Brush Tool", lambda: self._matte_tool("brush"), "B")
        self._action(m, "Next SAM &Candidate", mt.cycle_candidate, "Tab")
        m.addSeparator()
        self._action(m, "&Refine Edge of This Frame", mt.refine_current, "R")
        self._action(m, "&Keep This Frame as Keyframe", mt.make_keyframe)
        self._action(m, "&Propagate from Keyframes", mt.propagate, "Ctrl+P", "propagate")
        self._action(m, "Cancel Propa&gation", mt.cancel_propagation)
        m.addSeparator()
        self._action(m, "Matte &Source (Key, Import, Alpha)...", self.matte_source_dialog, None, "matte_source")
        self._action(m, "&Load SAM Model...", self.load_sam_dialog)
        self._action(m, "E&xport Mattes (.alpha.npz)...", self.export_mattes)

        t = mb.addMenu("&Transport")
        self._action(t, "Play / Pause", self.toggle_play, "Space")
        self._action(t, "Play Backward", lambda: self.shuttle(-1), "J")
        self._action(t, "Stop", self.stop, "K")
        self._action(t, "Play Forward", lambda: self.shuttle(1), "L")
        self.loop_action = self._action(t, "&Loop Playback", lambda: None, "Ctrl+L", "loop")
        self.loop_action.setCheckable(True)
        self.loop_action.setChecked(self.qsettings.value("loop", False, type=bool))
        self.loop_action.toggled.connect(lambda on: self.qsettings.setValue("loop", on))
        self._action(t, "&RAM Preview (In to Out)", self.ram_preview, "Ctrl+Space", "ram_preview")
        self._action(t, "Previous Frame", lambda: self.step(-1), "Left")
        self._action(t, "Next Frame", lambda: self.step(1), "Right")
        self._action(t, "First Frame", lambda: self.seek(0), "Home")
        self._action(t, "Last Frame", lambda: self.seek(self.frame_count - 1), "End")

        h = mb.addMenu("&Help")
        self._action(h, "&Keyboard Shortcuts", self.show_shortcuts, "F1")
        self._action(h, "&About HarmoVid Studio", self.about)

    def _sync_propagation(self):
        running = self.matte_tools.prop_worker is not None
        for w in (self.prop_bar, self.prop_cancel):
            w.setVisible(running)
        if running:
            done, total = self.matte_tools.progress
            self.prop_bar.setRange(0, max(1, total))
            self.prop_bar.setValue(done)

    def _escape(self):
        """Esc: leave the matte tool and give the keyboard back to the viewer."""
        if self.matte_tools.tool != "off":
            self.matte_tools.set_tool("off")
        self.keys.focus_viewer()

    # -- messages (one place, so tests can answer them) -----------------------------------------------------------
    def ask(self, title: str, text: str, buttons, default):
        return QMessageBox.question(self, title, text, buttons, default)

    def show_error(self, title: str, message: str) -> None:
        self.statusBar().showMessage(f"{title}: {message}", 10000)
        QMessageBox.warning(self, title, message)

    # -- project lifecycle --------------------------------------------------------------------------------------
    def open_project(self, folder) -> bool:
        if not self.maybe_save():
            return False
        try:
            proj = Project.open(folder)
            if proj.has_recovery():
                answer = self.ask("Recover unsaved changes?",
                                  f"HarmoVid did not close normally while editing '{proj.name}'. Recover the "
                                  "changes it autosaved?", QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
                if answer == QMessageBox.Yes:
                    proj = proj.recover()
                else:
                    proj.discard_recovery()
            proj.editing = True  # matte edits stay unsaved (mattes_unsaved/) until Save
            proj.check_media()
            info = probe(proj.talent_path)
            plate_info = probe(proj.plate_path)
        except HarmoVidError as exc:
            self.show_error("Cannot open project", str(exc))
            return False
        recovered = proj.autosave_file.exists()
        self.project = proj
        self.undo.clear()
        if recovered:
            self.undo.resetClean()
            self.undo.push(_Marker(self))  # recovered changes count as unsaved
        self.talent_size = (info.width, info.height)
        self.viewer.set_canvas_size((plate_info.width, plate_info.height))
        self.frame_count, self.fps = info.frame_count, float(info.fps)
        self.frame = min(self.frame, self.frame_count - 1)
        self.timeline.set_clip(self.frame_count, self.fps)
        self.matte_tools.reset()
        self.matte_tools.set_tool("off")
        self._autoload_sam()
        self.scope.reset(self.frame_count)
        self._sync_timeline()
        self.inspector.refresh(proj, self.frame)
        self.viewer.set_zoom(None)
        self._add_recent(str(proj.folder))
        self._update_title()
        self._update_status()
        self.request_preview()
        self.scope_timer.start(300)
        return True

    def open_dialog(self):
        folder = QFileDialog.getExistingDirectory(self, "Open project folder")
        if folder:
            self.open_project(folder)

    def open_demo(self):
        from harmovid_engine.resources import copy_demo

        try:
            self.open_project(copy_demo())
        except HarmoVidError as exc:
            self.show_error("Cannot open the demo", str(exc))

    def new_project(self):
        if not self.maybe_save():
            return
        from .new_project import NewProjectDialog

        dlg = NewProjectDialog(self, self.qsettings)
        if self.run_dialog(dlg) != QDialog.Accepted:
            return
        v = dlg.values()
        self.create_and_open(v["folder"], v["talent"], v["plate"], matte=v["matte"], key=v["key"],
                             use_alpha=v["use_alpha"])

    def matte_source_dialog(self):
        """Matte > Matte Source: the New Project dialog's matte choices (key with live preview, import, alpha,
        none) for the open project's talent."""
        if self.project is None:
            return
        from .new_project import NewProjectDialog

        dlg = NewProjectDialog(self, self.qsettings, talent=str(self.project.talent_path))
        if self.run_dialog(dlg) == QDialog.Accepted:
            self.matte_tools.set_matte_source(dlg.values())

    def run_dialog(self, dlg) -> int:
        """``dlg.exec()`` (one place, so tests can drive the dialog instead)."""
        return dlg.exec()

    def modal_progress(self, text: str):
        """A window-modal progress dialog with Cancel for work on the GUI thread (a matte import): ``tick(done,
        total)`` updates it, keeps the window painting and raises ``Cancelled`` when the user cancels; the editor
        cannot start other edits meanwhile. Returns (dialog, tick)."""
        from PySide6.QtWidgets import QProgressDialog

        from harmovid_engine.errors import Cancelled

        wait = QProgressDialog(text, "Cancel", 0, 1, self)
        wait.setWindowModality(Qt.WindowModal)
        wait.setMinimumDuration(300)

        def tick(done, total):
            wait.setMaximum(total)
            wait.setValue(done)
            QApplication.processEvents()
            if wait.wasCanceled():
                raise Cancelled("cancelled")

        return wait, tick

    def create_and_open(self, folder, talent, plate, matte=None, key=None, use_alpha=True) -> bool:
        from harmovid_engine.errors import Cancelled

        wait, tick = self.modal_progress("Importing the matte...") if matte else (None, None)
        try:
            proj = create_project(folder, talent, plate, matte=matte, key=key, use_alpha=use_alpha, progress=tick)
        except Cancelled:
            self.statusBar().showMessage("New project cancelled; nothing was created", 8000)
            return False
        except (HarmoVidError, OSError) as exc:
            self.show_error("Cannot create the project", str(exc))
            return False
        finally:
            if wait is not None:
                wait.close()
        if not self.open_project(proj.folder):
            return False
        if proj.matte.source == "none":
            self.statusBar().showMessage("No matte yet: the whole talent frame covers the plate. Make one with the "
                                         "Click tool (C, SAM) or the Brush (B), then Propagate.", 15000)
        return True

    def save(self) -> bool:
        if self.project is None:
            return False
        try:
            self.project.save()
        except (OSError, HarmoVidError) as exc:
            self.show_error("Cannot save", str(exc))
            return False
        self.undo.setClean()
        self._sync_timeline()  # the unsaved-edit marks go
        self.statusBar().showMessage(f"Saved {self.project.folder}", 4000)
        return True

    def save_as(self):
        if self.project is None:
            return
        folder = QFileDialog.getExistingDirectory(self, "Save project into folder")
        if folder:
            self.save_to(folder)

    def save_to(self, folder) -> bool:
        """Save a copy of the project (with its mattes) in another folder and continue there."""
        dest = Path(folder).absolute()
        if (dest / "project.json").exists() and dest != self.project.folder:
            self.show_error("Cannot save", f"'{dest}' already holds a project")
            return False
        talent, plate = self.project.talent_path, self.project.plate_path
        dest.mkdir(parents=True, exist_ok=True)
        old_store = self.project.matte_store()
        if dest != self.project.folder:
            try:  # the mattes as they are now go with the copy; the original keeps what it saved
                old_store.copy_to(dest / "mattes")
            except OSError as exc:
                self.show_error("Cannot save", str(exc))
                return False
            old_store.discard()
        self.project.folder = dest
        self.project.name = dest.name
        self.project.talent, self.project.plate = self.project.make_ref(talent), self.project.make_ref(plate)
        ok = self.save()
        self._add_recent(str(dest))
        self._update_title()
        return ok

    def maybe_save(self) -> bool:
        """True when it is fine to drop the current project (saved, discarded, or none)."""
        if self.project is None or self.undo.isClean():
            return True
        answer = self.ask("Unsaved changes", f"Save the changes to '{self.project.name}'?",
                          QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, QMessageBox.Save)
        if answer == QMessageBox.Save:
            return self.save()
        if answer == QMessageBox.Discard:
            self.project.discard_recovery()
            return True
        return False

    def autosave(self):
        if self.project is not None and not self.undo.isClean():
            try:
                self.project.autosave()
            except (OSError, HarmoVidError) as exc:
                self.statusBar().showMessage(f"Autosave failed: {exc}", 8000)

    def _app_state(self, state):
        if state != Qt.ApplicationActive:
            self.autosave()

    def import_media(self, role: str):
        if self.project is None:
            return
        path, _ = QFileDialog.getOpenFileName(self, f"Import {role}")
        if path:
            self.replace_media(role, path)

    def replace_media(self, role: str, path) -> bool:
        try:
            info = probe(path)
            if role == "talent" and info.kind == "still":
                raise HarmoVidError("the talent must be a clip or image sequence, not a still")
            stored = self.project.matte.source == "stored"
            if role == "talent" and stored and (info.width, info.height) != self.talent_size:
                raise HarmoVidError(f"the new talent is {info.width}x{info.height} but the project's mattes are "
                                    f"{self.talent_size[0]}x{self.talent_size[1]}")
            if role == "talent" and stored and info.frame_count != self.frame_count:
                # the stored mattes belong to the old clip frame by frame: a clip of another length is another shot
                raise HarmoVidError(f"the new talent has {info.frame_count} frames but the project's mattes were "
                                    f"made for {self.frame_count}: start a new project for it, or import its own "
                                    "mattes with File > New")
        except HarmoVidError as exc:
            self.show_error(f"Cannot import the {role}", str(exc))
            return False
        self.undo.push(_ReplaceMedia(self, role, getattr(self.project, role), self.project.make_ref(path)))
        return True

    # -- edits --------------------------------------------------------------------------------------------------
    def edit_setting(self, key: str, value) -> None:
        if self.project is None:
            return
        old = get_setting(self.project, key, self.frame)  # placement edits apply to the key at the playhead
        if old == value:
            return
        self.undo.push(SetSetting(self, key, old, value, frame=self.frame))

    def project_changed(self, what: str = "") -> None:
        """Called by commands after they changed the project."""
        self.inspector.refresh(self.project, self.frame)
        self.timeline.cached.clear()
        self._sync_timeline()
        self._update_status()
        self.request_preview()
        if not what.startswith("placement"):
            self.scope_timer.start(400)

    def _placement_drag(self, dx, dy, factor):
        if self.project is None:
            return
        if self._drag_origin is None:
            self._drag_origin = self.project.placement.at(self.frame)
        x, y, s = self._drag_origin
        if factor != 1.0:  # scale about the top-left corner
            new = (x, y, max(0.01, s * factor))
        else:
            new = (x + dx, y + dy, s)
        self.project.placement.set_key(self._placement_frame(), *new)
        self._update_talent_rect()
        self.request_preview()

    def _placement_frame(self) -> int:
        keys = self.project.placement.keys
        return keys[0].frame if len(keys) == 1 else self.frame

    def _placement_drop(self):
        if self._drag_origin is None:
            return
        new = self.project.placement.at(self.frame)
        old = self._drag_origin
        self._drag_origin = None
        frame = self._placement_frame()
        self.project.placement.set_key(frame, *old)
        self.undo.push(SetPlacement(self, frame, old, new))

    def set_in(self):
        self._set_point("in_point", self.frame)

    def set_out(self):
        self._set_point("out_point", self.frame)

    def clear_in_out(self):
        if self.project is not None:
            self.undo.push(_InOut(self, (self.project.in_point, self.project.out_point), (None, None)))

    def _set_point(self, name, frame):
        if self.project is None:
            return
        old = (self.project.in_point, self.project.out_point)
        new = (frame, old[1]) if name == "in_point" else (old[0], frame)
        if new[0] is not None and new[1] is not None and new[0] > new[1]:
            new = (frame, frame)
        self.undo.push(_InOut(self, old, new))

    # -- transport ----------------------------------------------------------------------------------------------
    def seek(self, frame: int) -> None:
        if self.project is None:
            return
        self.frame = max(0, min(self.frame_count - 1, int(frame)))
        if len(self.project.placement.keys) > 1:  # animated placement: show the values at the playhead
            self.inspector.refresh(self.project, self.frame)
        self.timeline.set_frame(self.frame)
        self.scope.set_frame(self.frame)
        self._update_status()
        self.request_preview()
        self.matte_tools.frame_changed()

    def step(self, d: int):
        self.stop()
        self.seek(self.frame + d)

    def toggle_play(self):
        if self._play_dir or self._ram_state is not None:
            self.stop()
        else:
            self.shuttle(1)

    def shuttle(self, direction: int):
        if self.project is None:
            return
        if self._play_dir == direction:
            self._play_speed = min(self._play_speed * 2, 8)
        else:
            self._play_dir, self._play_speed = direction, 1
        self.play_timer.start(max(5, int(1000 / (self.fps * self._play_speed))))

    def stop(self):
        self._play_dir = 0
        self._play_speed = 1
        self.play_timer.stop()
        if self._ram_state is not None:  # any transport key ends a RAM preview (what it rendered stays cached)
            self._ram_state = None
            self.worker.cancel_ram()
            self.statusBar().showMessage("RAM preview stopped", 3000)

    # -- RAM preview ----------------------------------------------------------------------------------------------
    def ram_preview(self):
        """Render in-out (or the clip) at full quality into the preview memory, then play it looped from there."""
        if self.project is None:
            return
        self.stop()
        a, b = self.play_range()
        self._ram_state = "rendering"
        self._rid += 1  # the RAM preview's own id: signals of an earlier one are not this one's
        self._ram_rid = self._rid
        self.worker.ram_preview(self._ram_rid, a, b, self.project, self.session.matte_revision)
        self.statusBar().showMessage(f"RAM preview: rendering frames {a}-{b} (K or Space stops)")

    def _on_ram_progress(self, rid, done, total):
        if self._ram_state == "rendering" and rid == self._ram_rid:
            self.statusBar().showMessage(f"RAM preview: rendered {done} / {total} (K or Space stops)")

    def _on_ram_done(self, rid, done, total, message):
        if self._ram_state != "rendering" or rid != self._ram_rid:
            return
        if done == 0:
            self._ram_state = None
            self.statusBar().showMessage(f"RAM preview: {message or 'nothing rendered'}", 8000)
            return
        self._ram_state = "playing"
        self.statusBar().showMessage(f"RAM preview: playing {done} frames at full quality" +
                                     (f" ({message})" if message else "") + "; K or Space stops")
        a, _ = self.play_range()
        self.seek(a)
        self._play_dir, self._play_speed = 1, 1
        self.play_timer.start(max(5, int(1000 / max(self.fps, 1e-6))))

    def play_range(self) -> tuple[int, int]:
        """The frames playback runs over: in to out when set, else the whole clip."""
        p = self.project
        a = p.in_point if p is not None and p.in_point is not None else 0
        b = p.out_point if p is not None and p.out_point is not None else self.frame_count - 1
        return max(0, min(a, self.frame_count - 1)), max(0, min(b, self.frame_count - 1))

    def _play_step(self):
        nxt = self.frame + self._play_dir
        if self.loop_action.isChecked() or self._ram_state == "playing":
            a, b = self.play_range()
            if nxt > b or nxt < a:  # loop: back to the other end of the in-out range
                nxt = a if self._play_dir > 0 else b
        if not 0 <= nxt < self.frame_count:
            self.stop()
            return
        self.seek(nxt)

    # -- preview ------------------------------------------------------------------------------------------------
    def request_preview(self) -> None:
        if self.project is None:
            return
        self._rid += 1
        self._update_talent_rect()
        self.worker.request(self._rid, self.frame, self.project, self.session.matte_revision)

    def _on_preview(self, rid, frame, pass_name, images):
        if frame == self.frame:
            if rid != self._rid and pass_name != "full":
                return
        elif not (self._play_dir or self.timeline.dragging) or rid <= self._shown_rid:
            return
        # While the playhead moves (a drag on the timeline, playback), the newest picture is shown even though the
        # playhead has moved on since it was asked for: the preview follows the mouse at the rate pictures come,
        # and the frame under the playhead replaces it once the playhead rests.
        self._shown_rid = max(self._shown_rid, rid)
        self.viewer.set_images(images, pass_name)
        self._feed_colour_scopes()
        self.zoom_label.setText(f"{self.viewer.current_scale() * 100:.0f}%")
        self.last_pass = (rid, frame, pass_name)

    def _on_preview_failed(self, rid, message):
        if rid == self._rid:
            self.show_error("Preview failed", message)

    def _on_cached(self, frame):
        self.timeline.cached.add(frame)
        self.timeline.update()

    def _on_busy(self, busy):
        self.engine_label.setText(("rendering " if busy else "idle ") + f"[{self._engine_name()}]")

    def _engine_name(self):
        if self.project is None:
            return "-"
        r = self.project.render
        return r.engine + ("+deflicker" if r.deflicker else "")

    def _restart_scope(self):
        if self.project is None:
            return
        old = self.scope_worker
        if old is not None:
            # Cancelled, not waited for: it may be in the middle of a deflicker window (over a second on a busy
            # machine), and the GUI thread must not hold still for it. Its points no longer reach the scope.
            old.cancel()
            old.point.disconnect(self.scope.add_point)
            if old.isRunning():
                self._retired_scopes.add(old)
                old.finished.connect(lambda o=old: self._retired_scopes.discard(o))
        self.scope.reset(self.frame_count)
        self.scope_worker = ScopeWorker(self.project, self, yield_to=self.worker.wants_cpu)
        self.scope_worker.point.connect(self.scope.add_point)
        self.scope_worker.start(QThread.LowPriority)

    # -- colour scopes and picker ---------------------------------------------------------------------------------
    def _set_picking(self, on: bool) -> None:
        """The colour picker on or off (the View menu's action, P, and the scopes' button stay in step)."""
        for w in (self.pick_action, self.colour_scopes.pick_button):
            if w.isChecked() != on:
                w.blockSignals(True)
                w.setChecked(on)
                w.blockSignals(False)
        self.viewer.set_picking(on)
        if on:
            self.colour_dock.show()
            self.colour_dock.raise_()
        self.statusBar().showMessage("Colour picker: click the picture to read a pixel" if on else "", 4000)

    def _pick_colour(self, x: float, y: float) -> None:
        self._pick_at = (x, y)
        self._show_pick()

    def _show_pick(self) -> None:
        from harmovid_engine.render.scopes import pick

        arrays = self.viewer._arrays
        if self._pick_at is None or not arrays or self.viewer.canvas_size is None:
            return
        canvas = self.viewer.canvas_size
        self.colour_scopes.show_pick(pick(arrays, *self._pick_at, canvas), canvas[0])

    def _feed_colour_scopes(self) -> None:
        """Send the picture on screen to the colour scopes, when they can be seen."""
        shown = not self.colour_dock.visibleRegion().isEmpty()
        if self.viewer._arrays and self.viewer.canvas_size is not None and shown:
            self.colour_scopes.set_images(self.viewer._arrays, self.viewer.canvas_size)
            self._show_pick()

    def set_channel(self, channel: str):
        self.viewer.set_channel(channel)
        self.channel_actions[channel].setChecked(True)

    def set_view_mode(self, mode: str):
        self.viewer.set_mode(mode)
        self.mode_actions[mode].setChecked(True)

    def _update_talent_rect(self):
        if self.project is None:
            return
        x, y, s = self.project.placement.at(self.frame)
        self.viewer.talent_rect = QRectF(x, y, self.talent_size[0] * s, self.talent_size[1] * s)
        self.viewer.update()

    # -- misc UI ------------------------------------------------------------------------------------------------
    def _sync_timeline(self):
        if self.project is None:
            return
        self.timeline.in_point, self.timeline.out_point = self.project.in_point, self.project.out_point
        store = self.project.matte_store()
        stored = store.frames() if self.project.matte.source != "stored" else []
        self.timeline.keyframes = set(stored) | set(self.project.matte.keyframes)
        self.timeline.edited = set(store.unsaved)
        self.timeline.review = {int(f) for f in self.project.matte.review}
        self.timeline.update()

    def _update_status(self):
        f = self.frame
        fps = max(self.fps, 1e-6)
        secs = f / fps
        ff = int(round(f - int(secs) * fps))
        self.frame_label.setText(f"frame {f} / {max(self.frame_count - 1, 0)}")
        self.tc_label.setText(f"{int(secs // 3600):02d}:{int(secs // 60) % 60:02d}:{int(secs) % 60:02d}:{ff:02d}")
        self.zoom_label.setText(f"{self.viewer.current_scale() * 100:.0f}%")
        self.engine_label.setText(f"idle [{self._engine_name()}]")

    def _update_title(self):
        name = self.project.name if self.project else "no project"
        dirty = "" if self.undo.isClean() else " *"
        self.setWindowTitle(f"{name}{dirty} - HarmoVid Studio")

    def _add_recent(self, folder):
        recent = [r for r in (self.qsettings.value("recent", []) or []) if r != folder]
        self.qsettings.setValue("recent", ([folder] + recent)[:10])
        self._refresh_recent()

    def _refresh_recent(self):
        self.recent_menu.clear()
        for r in self.qsettings.value("recent", []) or []:
            a = QAction(r, self)
            a.triggered.connect(lambda checked=False, p=r: self.open_project(p))
            self.recent_menu.addAction(a)
        self.recent_menu.setEnabled(not self.recent_menu.isEmpty())

    def _queued_render_finished(self, job) -> None:
        name = Path(job.output).name
        if job.status == "done":
            self.statusBar().showMessage(f"Rendered {name} (render queue)", 8000)
            if job.message:
                self.show_error("Rendered, with damaged source frames", job.message)
        elif job.status == "failed":
            self.show_error(f"Render of {name} failed", job.message)

    def export(self):
        if self.project is None:
            return
        if self.export_dialog is None:
            self.export_dialog = ExportDialog(self)
        self.export_dialog.show()
        self.export_dialog.raise_()

    # -- matte tools ----------------------------------------------------------------------------------------------
    def _matte_tool(self, tool):
        if self.project is None:
            return
        if tool in ("click", "box") and self.matte_tools.sam is None:
            self.statusBar().showMessage("Clicks and boxes need a SAM model: Matte > Load SAM Model...", 8000)
        self.matte_tools.set_tool(tool)

    def _autoload_sam(self):
        """Load a SAM checkpoint in the background if one is configured or cached (never downloads by itself)."""
        from harmovid_engine.models import ModelManager

        if self.matte_tools.sam is not None:
            return
        try:
            path = ModelManager().find()
        except HarmoVidError as exc:
            self.statusBar().showMessage(str(exc), 8000)
            return
        if path is not None:
            self.matte_tools.load_sam(path)

    def load_sam_dialog(self):
        from harmovid_engine.models import MODELS, ModelManager

        try:
            found = ModelManager().find()
        except HarmoVidError:
            found = None
        if found is not None:
            self.matte_tools.load_sam(found)
            return
        spec = MODELS["vit_b"]
        answer = self.ask("SAM model", "No SAM checkpoint was found on this machine.\n\nDownload "
                          f"{spec.description} into {ModelManager().cache} now?\n(No: choose a checkpoint file)",
                          QMessageBox.Yes | QMessageBox.No | QMessageBox.Cancel, QMessageBox.Yes)
        if answer == QMessageBox.No:
            path = pick_checkpoint(self)
            if path:
                self.matte_tools.load_sam(path)
        elif answer == QMessageBox.Yes:
            self.download_model("vit_b")

    def download_model(self, name: str):
        from PySide6.QtWidgets import QProgressDialog

        if self.download_worker is not None:
            return
        dlg = QProgressDialog(f"Downloading SAM {name}...", "Cancel", 0, 1000, self)
        dlg.setWindowTitle("Download")
        dlg.setMinimumDuration(0)
        w = DownloadWorker(name, self)
        self.download_worker = w
        w.progress.connect(lambda d, t: (dlg.setValue(int(1000 * d / max(t, 1))),
                                         dlg.setLabelText(f"Downloading SAM {name}: {d / 2**20:.0f} / "
                                                          f"{t / 2**20:.0f} MB")))
        dlg.canceled.connect(w.token.cancel)

        def done(path):
            dlg.close()
            self.download_worker = None
            self.matte_tools.load_sam(Path(path))

        def failed(msg):
            dlg.close()
            self.download_worker = None
            self.show_error("Download failed", msg)

        w.finished_ok.connect(done)
        w.failed.connect(failed)
        w.start()

    def export_mattes(self):
        if self.project is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export mattes", str(self.project.folder / "mattes.alpha.npz"),
                                              "Alpha mattes (*.alpha.npz)")
        if not path:
            return
        from harmovid_engine.matte.ops import export_alpha_npz

        try:
            QApplication.setOverrideCursor(Qt.WaitCursor)
            for _ in export_alpha_npz(self.project, path):
                pass
            self.statusBar().showMessage(f"Mattes written to {path}", 8000)
        except HarmoVidError as exc:
            self.show_error("Cannot export mattes", str(exc))
        finally:
            QApplication.restoreOverrideCursor()

    def preferences(self):
        d = QDialog(self)
        d.setWindowTitle("Preferences")
        form = QFormLayout()
        spin = QSpinBox()
        spin.setRange(5, 600)
        spin.setSuffix(" s")
        spin.setValue(int(self.qsettings.value("autosave_ms", AUTOSAVE_MS)) // 1000)
        form.addRow("Autosave every", spin)
        box = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        box.accepted.connect(d.accept)
        box.rejected.connect(d.reject)
        lay = QVBoxLayout(d)
        lay.addLayout(form)
        lay.addWidget(box)
        if d.exec() == QDialog.Accepted:
            self.qsettings.setValue("autosave_ms", spin.value() * 1000)
            self.autosave_timer.start(spin.value() * 1000)

    def show_shortcuts(self):
        text = "\n".join(f"{k:<24} {v}" for k, v in SHORTCUTS)
        box = QMessageBox(self)
        box.setWindowTitle("Keyboard shortcuts")
        box.setText("<pre>" + text + "</pre>")
        box.exec()

    def about(self):
        QMessageBox.about(self, "About HarmoVid Studio",
                          f"<b>HarmoVid Studio {__version__}</b><p>Relightful video portrait harmonization: relight "
                          "talent to match a plate, without flicker.</p>")

    # -- drag and drop ------------------------------------------------------------------------------------------
    def dragEnterEvent(self, e):
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e):
        paths = [Path(u.toLocalFile()) for u in e.mimeData().urls() if u.isLocalFile()]
        self.handle_dropped(paths)

    def handle_dropped(self, paths: list[Path]) -> None:
        for p in paths:
            if (p / "project.json").exists() or p.name == "project.json":
                self.open_project(p.parent if p.name == "project.json" else p)
                return
        if self.project is None:
            self.statusBar().showMessage("Open or create a project first, then drop talent or plate media", 6000)
            return
        for p in paths:
            ext = p.suffix.lower()
            if ext in IMAGE_EXTS:
                self.replace_media("plate", p)
            elif ext in VIDEO_EXTS:
                answer = self.ask("Use dropped clip as", f"Use '{p.name}' as the talent? (No: use it as the plate)",
                                  QMessageBox.Yes | QMessageBox.No | QMessageBox.Cancel, QMessageBox.Yes)
                if answer == QMessageBox.Yes:
                    self.replace_media("talent", p)
                elif answer == QMessageBox.No:
                    self.replace_media("plate", p)
            else:
                self.show_error("Cannot use the dropped file", f"'{p.name}' is not a video or image HarmoVid reads")

    # -- closing ------------------------------------------------------------------------------------------------
    def closeEvent(self, e):
        if self.render_queue.busy():
            n = len(self.render_queue.waiting()) + (self.render_queue.current is not None)
            answer = self.ask("Renders in the queue", f"{n} render(s) in the render queue have not finished. Quit "
                              "and cancel them? (A cancelled render leaves nothing.)",
                              QMessageBox.Yes | QMessageBox.Cancel, QMessageBox.Cancel)
            if answer != QMessageBox.Yes:
                e.ignore()
                return
        if not self.maybe_save():
            e.ignore()
            return
        self.render_queue.shutdown()
        self.stop()
        self.scope_timer.stop()
        self.autosave_timer.stop()
        if self.export_dialog is not None:
            self.export_dialog.close()
        for w in [self.scope_worker, *self._retired_scopes]:
            if w is not None:
                w.cancel()
                w.wait()
        self.scope_worker = None
        self._retired_scopes.clear()
        self.worker.stop()
        self.matte_tools.close()
        if self.download_worker is not None:
            self.download_worker.token.cancel()
            self.download_worker.wait()
        if self.project is not None:
            self.project.discard_recovery()
        self.qsettings.setValue("geometry", self.saveGeometry())
        self.qsettings.setValue("windowState", self.saveState(LAYOUT_VERSION))
        self.keys.remove()
        # The undo stack is destroyed with the window and emits cleanChanged while it goes (its commands are
        # cleared): the title must not be updated from a half-deleted window.
        self._closed = True
        e.accept()


from PySide6.QtCore import QThread  # noqa: E402
from PySide6.QtGui import QUndoCommand  # noqa: E402


class _Marker(QUndoCommand):
    """Marks recovered-but-unsaved changes as dirty; undoing it changes nothing."""

    def __init__(self, window):
        super().__init__("Recovered changes")

    def redo(self):
        pass

    def undo(self):
        pass


class _InOut(QUndoCommand):
    def __init__(self, window, old, new):
        super().__init__("Set in/out")
        self.window, self.old, self.new = window, old, new

    def _apply(self, v):
        self.window.project.in_point, self.window.project.out_point = v
        self.window.project_changed("in_out")

    def redo(self):
        self._apply(self.new)

    def undo(self):
        self._apply(self.old)


class _ReplaceMedia(QUndoCommand):
    def __init__(self, window, role, old, new):
        super().__init__(f"Import {role}")
        self.window, self.role, self.old, self.new = window, role, old, new

    def _apply(self, ref):
        setattr(self.window.project, self.role, ref)
        if self.role == "talent":
            info = probe(self.window.project.talent_path)
            self.window.talent_size = (info.width, info.height)
            self.window.frame_count, self.window.fps = info.frame_count, float(info.fps)
            self.window.timeline.set_clip(info.frame_count, float(info.fps))
            self.window.scope.reset(info.frame_count)
            self.window.matte_tools.reset()  # the matte tools read the talent: drop the old clip
            self.window.seek(min(self.window.frame, info.frame_count - 1))
        else:  # a new plate is a new canvas
            info = probe(self.window.project.plate_path)
            self.window.viewer.set_canvas_size((info.width, info.height))
        self.window.project_changed(self.role)

    def redo(self):
        self._apply(self.new)

    def undo(self):
        self._apply(self.old)
