"""Matte mode: SAM clicks and boxes, brush, keyframes, propagation, onion skin; every edit undoable.

``MatteTools`` owns the matte state of the frame under the playhead (the talent frame and its matte, read through the
same matte stage as renders), turns viewer gestures into edits (``MatteEdit`` atoms of the touched box only),
writes them to the project's ``mattes/`` store, marks the frame a keyframe, and asks for a new preview. SAM work
(model loading, image embeddings) and propagation run on QThreads; the GUI thread only runs the prompt decoder
(tens of milliseconds) once an embedding is cached.
"""

from __future__ import annotations

import copy
import shutil
import threading
import traceback
import uuid

import cv2
import numpy as np
from PySide6.QtCore import QObject, QThread, Signal
from PySide6.QtGui import QUndoCommand
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QDoubleSpinBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel,
                               QListWidget, QListWidgetItem, QProgressBar, QPushButton, QSpinBox, QVBoxLayout,
                               QWidget)

from harmovid_engine.errors import Cancelled, HarmoVidError
from harmovid_engine.matte import MatteStage
from harmovid_engine.matte.brush import MatteEdit, Stroke, apply_stroke
from harmovid_engine.matte.ops import propagate_project, rgb8
from harmovid_engine.matte.refine import refine_edges
from harmovid_engine.media import open_source
from harmovid_engine.render import CancelToken

from .commands import SetSetting

TOOLS = ("off", "click", "box", "brush")


def diff_edit(frame: int, before: np.ndarray, after: np.ndarray) -> MatteEdit | None:
    """The undo atom turning ``before`` into ``after`` (8-bit patches of the changed box), or None if equal."""
    b8 = np.clip(before * 255 + 0.5, 0, 255).astype(np.uint8)
    a8 = np.clip(after * 255 + 0.5, 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(b8 != a8)
    if not len(ys):
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return MatteEdit(frame, (int(x0), int(y0), int(x1), int(y1)), b8[y0:y1, x0:x1].copy(), a8[y0:y1, x0:x1].copy())


# -- undo commands ----------------------------------------------------------------------------------------------------
class MatteEditCommand(QUndoCommand):
    """One matte edit of one frame (a stroke, a click answer, a refinement), which also makes the frame a keyframe."""

    def __init__(self, tools: "MatteTools", edit: MatteEdit, label: str, was_stored: bool, was_key: bool):
        super().__init__(label)
        self.tools, self.edit, self.was_stored, self.was_key = tools, edit, was_stored, was_key
        self._first = True

    def redo(self):
        if self._first:  # the edit is already applied by the tool
            self._first = False
            return
        self.tools.apply_edit(self.edit, undo=False, make_key=True)

    def undo(self):
        self.tools.apply_edit(self.edit, undo=True, make_key=self.was_key, drop_store=not self.was_stored)


class PropagateCommand(QUndoCommand):
    """A finished propagation: the mattes folder and matte settings before and after, swapped on undo/redo."""

    def __init__(self, tools: "MatteTools", before_dir, after_dir, before_settings, after_settings,
                 label: str = "Propagate matte"):
        super().__init__(label)
        self.tools = tools
        self.dirs = (before_dir, after_dir)
        self.settings = (before_settings, after_settings)
        self._first = True

    def redo(self):
        if self._first:
            self._first = False
            return
        self.tools.restore_mattes(self.dirs[1], self.settings[1])

    def undo(self):
        self.tools.restore_mattes(self.dirs[0], self.settings[0])


class SetKeyframes(SetSetting):
    """Add or remove propagation keyframes: one undo step each (never merged)."""

    def __init__(self, window, old, new, label):
        super().__init__(window, "matte.keyframes", old, new, label)

    def id(self) -> int:
        return -1


class DownloadWorker(QThread):
    progress = Signal(object, object)  # done, total (bytes; may exceed 2**31)
    finished_ok = Signal(str)
    failed = Signal(str)

    def __init__(self, name: str, parent=None):
        super().__init__(parent)
        self.name = name
        self.token = CancelToken()

    def run(self):
        from harmovid_engine.models import ModelManager

        try:
            path = ModelManager().download(self.name, progress=lambda d, t: self.progress.emit(d, t),
                                           cancel=self.token)
            self.finished_ok.emit(str(path))
        except Cancelled:
            self.failed.emit("download cancelled; it resumes where it stopped next time")
        except Exception as exc:
            self.failed.emit(str(exc))


# -- workers ----------------------------------------------------------------------------------------------------------
class SamWorker(QThread):
    """Loads a SAM checkpoint, then computes image embeddings on request (latest wins)."""

    loaded = Signal(object, str)  # session, message
    embedded = Signal(str)  # key
    failed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._cv = threading.Condition()
        self._load_path = None
        self._job = None  # (key, image)
        self._stop = False
        self.session = None
        self.disk_cache = None

    def load(self, path, disk_cache=None):
        with self._cv:
            self._load_path, self.disk_cache = path, disk_cache
            self._cv.notify()

    def embed(self, key: str, image: np.ndarray):
        with self._cv:
            self._job = (key, image)
            self._cv.notify()

    def stop(self):
        with self._cv:
            self._stop = True
            self._cv.notify()
        self.wait()

    def run(self):
        from harmovid_engine.matte.sam import SamSession, load_sam

        while True:
            with self._cv:
                while self._load_path is None and self._job is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                path, self._load_path = self._load_path, None
                job, self._job = self._job, None
            try:
                if path is not None:
                    self.session = SamSession(load_sam(path), name=path.stem, disk_cache=self.disk_cache)
                    self.loaded.emit(self.session, f"SAM {path.stem} on {self.session.device}")
                if job is not None and self.session is not None:
                    self.session.embed(*job)
                    self.embedded.emit(job[0])
            except Exception as exc:
                if not isinstance(exc, HarmoVidError):
                    traceback.print_exc()
                self.failed.emit(str(exc))


class PropagateWorker(QThread):
    progress = Signal(int, int, int)  # done, total, frame just written (-1 none)
    finished_ok = Signal(object)  # the matte settings after the run
    failed = Signal(str)
    cancelled = Signal(object)

    def __init__(self, project, keyframes, sam=None, parent=None):
        super().__init__(parent)
        self.project = copy.deepcopy(project)
        self.keyframes = keyframes
        self.sam = sam
        self.token = CancelToken()

    def cancel(self):
        self.token.cancel()

    def run(self):
        try:
            for p in propagate_project(self.project, self.keyframes, sam=self.sam, cancel=self.token):
                self.progress.emit(p.done, p.total, p.frame.index if p.frame is not None else -1)
            self.finished_ok.emit(self.project.matte)
        except Cancelled:
            self.cancelled.emit(self.project.matte)
        except Exception as exc:
            if not isinstance(exc, HarmoVidError):
                traceback.print_exc()
            self.failed.emit(str(exc))


# -- the controller ---------------------------------------------------------------------------------------------------
class MatteTools(QObject):
    changed = Signal()  # the current frame's matte or the keyframes changed

    def __init__(self, window):
        super().__init__(window)
        self.w = window
        self.tool = "off"
        self.brush = Stroke([], radius=20.0, hardness=0.7)
        self.onion = True
        self.sam = None
        self.sam_worker = SamWorker(self)
        self.sam_worker.loaded.connect(self._sam_loaded)
        self.sam_worker.embedded.connect(self._embedded)
        self.sam_worker.failed.connect(lambda m: self.w.show_error("SAM", m))
        self.sam_worker.start()
        self.status = "no SAM model loaded: brush and keying work; Matte > Load SAM Model for clicks"
        self.prop_worker: PropagateWorker | None = None
        self.progress = (0, 1)  # done, total of the running propagation
        self.last_answer = None  # SAM's last answer, for cycling its candidates
        self._src = None
        self._stage = None
        self._frame = None  # (index, rgb8, alpha)
        self._prev_alpha = None
        self.prompts = None
        self._logits = None
        self._pending_click = None

    # -- state of the current frame --------------------------------------------------------------------------------
    def reset(self):
        """A project was opened or its talent/matte source changed."""
        if self._src is not None:
            self._src.close()
        self._src = self._stage = None
        self._frame = None
        self._prompt_frame = None
        self.prompts = None
        self._logits = None

    def _ensure(self):
        p = self.w.project
        if self._stage is None or self._stage.settings is not p.matte:
            if self._src is None:
                self._src = open_source(p.talent_path)
            self._stage = MatteStage(self._src, p.matte, p.matte_store())
        return self._stage

    def current(self):
        """(frame index, talent rgb8, alpha float32) at the playhead."""
        i = self.w.frame
        if self._frame is None or self._frame[0] != i:
            stage = self._ensure()
            stage.refresh_store()
            rgb = rgb8(self._src.read(i))
            alpha = self._raw_matte(stage, i)
            self._prev_alpha = self._raw_matte(stage, i - 1) if i > 0 else None
            self._frame = (i, rgb, alpha)
            if getattr(self, "_prompt_frame", None) != i:  # prompts belong to one frame
                self.prompts, self._logits, self._prompt_frame = None, None, i
        return self._frame

    @staticmethod
    def _raw_matte(stage, i):
        stored = stage.store.get(i)
        return stored if stored is not None else stage.talent(i)[1].copy()

    def frame_changed(self):
        if self.tool != "off":
            self._frame = None
            self.refresh_view()
            self._request_embedding()

    # -- view ------------------------------------------------------------------------------------------------------
    def edit_image(self) -> np.ndarray:
        """Talent frame with the matte shown: outside dimmed and tinted red, edge in yellow, onion skin in cyan."""
        _, rgb, alpha = self.current()
        a = alpha[..., None]
        tint = np.array([200, 40, 40], np.float32)
        img = rgb.astype(np.float32) * (0.35 + 0.65 * a) + tint * 0.35 * (1 - a)
        img = np.clip(img, 0, 255).astype(np.uint8)
        if self.onion and self._prev_alpha is not None:
            cs, _ = cv2.findContours((self._prev_alpha > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL,
                                     cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(img, cs, -1, (60, 220, 255), 1, cv2.LINE_AA)
        cs, _ = cv2.findContours((alpha > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(img, cs, -1, (255, 220, 40), 1, cv2.LINE_AA)
        return img

    def refresh_view(self):
        if self.w.project is None or self.tool == "off":
            return
        try:
            img = self.edit_image()
        except HarmoVidError as exc:
            self.w.show_error("Matte", str(exc))
            return
        pts = []
        if self.prompts is not None:
            pts = list(zip(self.prompts.points, self.prompts.labels))
        self.w.viewer.set_matte_image(img, pts, self.brush.radius)

    def set_tool(self, tool: str):
        if tool not in TOOLS:
            raise ValueError(tool)
        if self.w.project is None:
            tool = "off"
        self.tool = tool
        self.w.viewer.set_matte_tool(None if tool == "off" else tool)
        if tool == "off":
            self.w.request_preview()
        else:
            self._frame = None
            self.refresh_view()
            self._request_embedding()
        self.changed.emit()

    # -- SAM -------------------------------------------------------------------------------------------------------
    def load_sam(self, path):
        from pathlib import Path

        path = Path(path)
        disk = self.w.project.cache_dir / "sam" / path.stem if self.w.project is not None else None
        self.status = f"loading SAM from {path.name}..."
        self.changed.emit()
        self.sam_worker.load(path, disk)

    def set_sam(self, session):
        """Use an already loaded SamSession (tests, or a session shared with another window)."""
        self._sam_loaded(session, f"SAM {session.name} on {session.device}")

    def _sam_loaded(self, session, message):
        self.sam = session
        self.sam_worker.session = session
        self.status = message
        self.changed.emit()
        self._request_embedding()

    def _key(self, i):
        return f"{i:06d}"

    def _request_embedding(self):
        if self.sam is None or self.tool not in ("click", "box") or self.w.project is None:
            return
        i, rgb, _ = self.current()
        if self.sam.has_embedding(self._key(i)):
            return
        self.status = f"SAM: analysing frame {i}..."
        self.changed.emit()
        self.sam_worker.embed(self._key(i), rgb)

    def _embedded(self, key):
        self.status = f"SAM ready ({self.sam.name}): click to add (right-click or Alt to exclude), drag for a box"
        self.changed.emit()
        if self._pending_click is not None and self._pending_click[0] == key:
            _, prompts = self._pending_click
            self._pending_click = None
            self._run_sam(prompts)

    def click(self, x: float, y: float, positive: bool):
        from harmovid_engine.matte.sam import Prompts

        if self.prompts is None:
            self.prompts = Prompts()
        self.prompts.add(x, y, positive)
        self._prompt()

    def box(self, x0, y0, x1, y1):
        from harmovid_engine.matte.sam import Prompts

        self.prompts = Prompts(box=(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
        self._logits = None
        self._prompt()

    def _prompt(self):
        if self.sam is None:
            self.w.show_error("No SAM model", "Clicks and boxes need a SAM model: use Matte > Load SAM Model... "
                                              "(or draw with the brush, which needs none).")
            self.prompts = None
            return
        i, rgb, _ = self.current()
        key = self._key(i)
        if not self.sam.has_embedding(key):  # answer when the worker has the embedding
            self._pending_click = (key, copy.deepcopy(self.prompts))
            self._request_embedding()
            self.refresh_view()
            return
        self._run_sam(self.prompts)

    def _run_sam(self, prompts):
        i, rgb, before = self.current()
        try:
            self.sam.embed(self._key(i), rgb)  # a cache hit: makes this frame current in the session
            answer = self.sam.predict(prompts, mask_input=self._logits)
        except HarmoVidError as exc:
            self.w.show_error("SAM", str(exc))
            return
        self._logits = answer.logits[answer.best]
        self.last_answer = answer
        after = refine_edges(rgb, answer.mask.astype(np.float32))
        self.status = f"SAM answer {answer.best + 1}/{len(answer.scores)} (score {answer.scores[answer.best]:.2f}) " \
                      f"in {answer.ms:.0f} ms"
        self._commit(i, before, after, "SAM matte")

    def cycle_candidate(self):
        """Show SAM's next candidate mask for the last click (the ambiguity of a single point)."""
        ans = self.last_answer
        if ans is None or len(ans.scores) < 2:
            return
        ans.best = (ans.best + 1) % len(ans.scores)
        i, rgb, before = self.current()
        self._logits = ans.logits[ans.best]
        self._commit(i, before, refine_edges(rgb, ans.mask.astype(np.float32)), "SAM candidate")

    # -- brush and edge --------------------------------------------------------------------------------------------
    def stroke(self, points, erase: bool):
        i, _, before = self.current()
        s = Stroke(points, self.brush.radius, self.brush.hardness, erase)
        after, edit = apply_stroke(before, s, i)
        if edit is not None:
            self._commit(i, before, after, "Erase matte" if erase else "Paint matte", edit)

    def refine_current(self):
        i, rgb, before = self.current()
        self._commit(i, before, refine_edges(rgb, before), "Refine matte edge")

    # -- edits -----------------------------------------------------------------------------------------------------
    def _commit(self, i, before, after, label, edit=None):
        edit = edit or diff_edit(i, before, after)
        if edit is None:
            self.refresh_view()
            return
        p = self.w.project
        store = p.matte_store()
        was_stored, was_key = i in store, i in p.matte.keyframes
        self.apply_edit(edit, undo=False, make_key=True)
        self.w.undo.push(MatteEditCommand(self, edit, label, was_stored, was_key))

    def apply_edit(self, edit: MatteEdit, undo: bool, make_key: bool, drop_store: bool = False):
        p = self.w.project
        store = p.matte_store()
        stage = self._ensure()
        base = store.get(edit.frame)
        if base is None:
            base = stage.talent(edit.frame)[1]
        new = edit.apply(base, undo=undo)
        if drop_store:
            store.delete(edit.frame)
        else:
            store.put(edit.frame, new)
        keys = set(p.matte.keyframes)
        keys.add(edit.frame) if make_key else keys.discard(edit.frame)
        p.matte.keyframes = sorted(keys)
        p.matte.review.pop(str(edit.frame), None)
        self._matte_touched(edit.frame)

    def _matte_touched(self, frame=None):
        self.w.session.matte_revision += 1
        if self._stage is not None:
            self._stage.refresh_store()
            self._stage._raw.clear()
        if frame is None or (self._frame is not None and self._frame[0] == frame):
            self._frame = None
        self.w.project_changed("matte")
        self.refresh_view()
        self.changed.emit()

    def remove_keyframe(self, frame: int):
        p = self.w.project
        if frame in p.matte.keyframes:
            self.w.undo.push(SetKeyframes(self.w, list(p.matte.keyframes),
                                          [k for k in p.matte.keyframes if k != frame], "Remove matte keyframe"))

    def make_keyframe(self):
        """Keep the current frame's matte as it is (e.g. a good keyed frame) as a propagation keyframe."""
        i, _, alpha = self.current()
        if not np.any(alpha > 0.5):
            self.w.show_error("Empty matte", f"The matte of frame {i} is empty: paint or click the talent first.")
            return
        p = self.w.project
        if i not in p.matte.keyframes:
            p.matte_store().put(i, alpha)
            self.w.undo.push(SetKeyframes(self.w, list(p.matte.keyframes), sorted([*p.matte.keyframes, i]),
                                          "Add matte keyframe"))

    # -- propagation -----------------------------------------------------------------------------------------------
    def propagate(self):
        p = self.w.project
        if p is None or self.prop_worker is not None:
            return
        keys = list(p.matte.keyframes) or [self.w.frame]
        if not p.matte.keyframes:
            self.make_keyframe()
            keys = list(p.matte.keyframes)
            if not keys:
                return
        if not self._confirm_replace(p, keys):
            return
        backup = p.cache_dir / "matte_undo" / uuid.uuid4().hex
        _snapshot_mattes(p.matte_store(), backup / "before")
        self._prop_backup = (backup, copy.deepcopy(p.matte))
        self.progress = (0, 1)
        self.prop_worker = PropagateWorker(p, keys, self.sam, self)
        self.prop_worker.progress.connect(self._prop_progress)
        self.prop_worker.finished_ok.connect(lambda m: self._prop_done(m, "done"))
        self.prop_worker.cancelled.connect(lambda m: self._prop_done(m, "cancelled"))
        self.prop_worker.failed.connect(self._prop_failed)
        self.w.worker.hold_idle("propagation")
        self.prop_worker.start()
        self.changed.emit()

    def _confirm_replace(self, p, keys) -> bool:
        """Propagation recomputes every frame but the keyframes: say which stored mattes that replaces, and ask."""
        from PySide6.QtWidgets import QMessageBox

        store = p.matte_store()
        replaced = [i for i in store.frames() if i not in set(keys)]
        if not replaced:
            return True
        unsaved = set(store.unsaved)
        edited = [i for i in replaced if i in unsaved]
        kinds = []
        if len(replaced) > len(edited):
            kinds.append(f"{len(replaced) - len(edited)} saved ("
                         + ("imported: " + p.matte.imported_from if p.matte.imported_from else "imported or propagated")
                         + ")")
        if edited:
            kinds.append(f"{len(edited)} changed since the last save")
        text = (f"Propagating from keyframe(s) {_frames_text(keys)} recomputes the matte of every other frame. It "
                f"replaces {len(replaced)} stored matte(s): {'; '.join(kinds)} (frames {_frames_text(replaced)}).\n\n"
                "The keyframes stay as they are, and Undo puts every replaced matte back. Replace them?")
        return self.w.ask("Replace stored mattes?", text, QMessageBox.Yes | QMessageBox.No,
                          QMessageBox.No) == QMessageBox.Yes

    def cancel_propagation(self):
        if self.prop_worker is not None:
            self.prop_worker.cancel()

    def _prop_progress(self, done, total, frame):
        self.status = f"propagating matte: {done}/{total}"
        self.progress = (done, total)
        if frame == self.w.frame:  # stream the matte under the playhead into the viewer
            self._matte_touched(frame)
        self.changed.emit()

    def _prop_done(self, matte, how):
        p = self.w.project
        backup, before = self._prop_backup
        _snapshot_mattes(p.matte_store(), backup / "after")
        p.matte = matte
        self.prop_worker.wait()
        self.prop_worker = None
        self.w.worker.hold_idle("propagation", False)
        self._stage = None
        self.w.undo.push(PropagateCommand(self, backup / "before", backup / "after", before, copy.deepcopy(matte)))
        flagged = len(matte.review)
        changed = _changed_frames(backup / "before", backup / "after")
        if how == "done":
            self.status = (f"propagation done: {len(changed)} frame(s) changed, {flagged} flagged for review"
                           + (" (see the list; double-click to go there)" if flagged else ""))
        else:
            self.status = (f"propagation cancelled: {len(changed)} frame(s) changed so far are kept (Undo restores "
                           "the previous mattes)")
        self.w.statusBar().showMessage(self.status[0].upper() + self.status[1:], 15000)
        self._matte_touched()

    def _prop_failed(self, message):
        self.prop_worker.wait()
        self.prop_worker = None
        self.w.worker.hold_idle("propagation", False)
        backup, before = self._prop_backup
        self.restore_mattes(backup / "before", before)
        self.status = "propagation failed"
        self.w.show_error("Propagation failed", message)
        self.changed.emit()

    def set_matte_source(self, values: dict) -> bool:
        """Replace the talent's matte by a new source (Matte > Matte Source...: the New Project dialog's choices):
        ``values["source"]`` key | file | alpha | none. The stored mattes, keyframes and review flags give way to it;
        one undo step puts everything back. A bad matte file changes nothing."""
        from harmovid_engine.errors import Cancelled
        from harmovid_engine.matte import read_matte_frames
        from harmovid_engine.media import probe
        from harmovid_engine.project import MatteSettings
        from harmovid_engine.project.create import make_key

        p = self.w.project
        if p is None or self.prop_worker is not None:
            return False
        store = p.matte_store()
        backup = p.cache_dir / "matte_undo" / uuid.uuid4().hex
        before = copy.deepcopy(p.matte)
        _snapshot_mattes(store, backup / "before")
        new = MatteSettings()
        source = values["source"]
        wait = None
        try:
            if source == "file":
                info = probe(p.talent_path)
                frames = read_matte_frames(values["matte"], info.width, info.height, info.frame_count)
                wait, tick = self.w.modal_progress("Importing the matte...")
                store.clear()
                for i, a in enumerate(frames):
                    store.put(i, a)
                    tick(i + 1, info.frame_count)
                new.source, new.imported_from = "stored", str(values["matte"])
            else:
                if source == "key":
                    new.source, new.key = "key", make_key(p.talent_path, values["key"]).to_dict()
                else:
                    new.source = "alpha" if source == "alpha" else "none"
                store.clear()
        except Cancelled:
            _restore_mattes(backup / "before", store)
            self.w.statusBar().showMessage("Matte import cancelled; the mattes are as they were", 8000)
            return False
        except (HarmoVidError, OSError) as exc:
            _restore_mattes(backup / "before", store)
            self.w.show_error("Cannot use that matte", str(exc))
            return False
        finally:
            if wait is not None:
                wait.close()
        p.matte = new
        self._stage = None
        _snapshot_mattes(store, backup / "after")
        self.w.undo.push(PropagateCommand(self, backup / "before", backup / "after", before, copy.deepcopy(new),
                                          "Change matte source"))
        labels = {"stored": "imported matte", "key": "chroma key", "alpha": "the talent's alpha channel",
                  "none": "no matte"}
        self.status = f"matte source: {labels[new.source]}"
        self.w.statusBar().showMessage(f"Matte source: {labels[new.source]} (Undo restores the previous mattes)", 10000)
        self._matte_touched()
        return True

    def restore_mattes(self, folder, matte_settings):
        p = self.w.project
        _restore_mattes(folder, p.matte_store())
        p.matte = copy.deepcopy(matte_settings)
        self._stage = None
        self._matte_touched()

    def close(self):
        if self.prop_worker is not None:
            self.prop_worker.cancel()
            self.prop_worker.wait()
        self.sam_worker.stop()
        self.reset()


def _snapshot_mattes(store, dst):
    """Make folder ``dst`` (ours, in the cache) hold exactly the mattes ``store`` shows now, saved or not."""
    if dst.exists():
        shutil.rmtree(dst)
    store.copy_to(dst)


def _frames_text(frames) -> str:
    """'3, 10-14, 20' for a list of frame numbers."""
    out, run = [], []
    for f in sorted(set(frames)):
        if run and f == run[-1] + 1:
            run.append(f)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [f]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ", ".join(out)


def _changed_frames(before, after) -> list[int]:
    """Frames whose matte differs between two snapshots (added, removed or other bytes)."""
    from harmovid_engine.matte import MatteStore

    a, b = MatteStore(before), MatteStore(after)
    frames = set(a.frames()) | set(b.frames())
    return sorted(i for i in frames if i not in a or i not in b or a.path(i).read_bytes() != b.path(i).read_bytes())


def _restore_mattes(folder, store):
    """Make ``store`` show exactly the mattes of snapshot ``folder`` (as unsaved edits in the Studio)."""
    from harmovid_engine.matte import MatteStore

    snap = MatteStore(folder)
    keep = set(snap.frames())
    for i in store.frames():
        if i not in keep:
            store.delete(i)
    for i in sorted(keep):
        store.put_png(i, snap.path(i).read_bytes())


# -- the panel --------------------------------------------------------------------------------------------------------
class MattePanel(QWidget):
    """Dock content: tools, brush settings, SAM status, keyframes, review flags, propagation."""

    def __init__(self, tools: MatteTools, window):
        super().__init__()
        self.tools, self.w = tools, window
        lay = QVBoxLayout(self)
        box = QGroupBox("Tool")
        row = QHBoxLayout(box)
        self.group = QButtonGroup(self)
        self.buttons = {}
        for t, label, tip in [("off", "View", "No matte tool (placement and wipe)"),
                              ("click", "Click", "SAM: click to add, right-click/Alt-click to exclude (C)"),
                              ("box", "Box", "SAM: drag a box around the talent (X)"),
                              ("brush", "Brush", "Paint the matte; right-drag or Alt to erase (B)")]:
            b = QPushButton(label)
            b.setCheckable(True)
            b.setToolTip(tip)
            b.setObjectName(f"matte_tool_{t}")
            self.group.addButton(b)
            row.addWidget(b)
            self.buttons[t] = b
            b.clicked.connect(lambda _=False, t=t: tools.set_tool(t))
        lay.addWidget(box)
        brush = QGroupBox("Brush")
        bl = QHBoxLayout(brush)
        self.size = QSpinBox()
        self.size.setRange(1, 400)
        self.size.setValue(int(tools.brush.radius))
        self.size.setSuffix(" px")
        self.size.valueChanged.connect(self._brush)
        self.hard = QDoubleSpinBox()
        self.hard.setRange(0.0, 1.0)
        self.hard.setSingleStep(0.1)
        self.hard.setValue(tools.brush.hardness)
        self.hard.valueChanged.connect(self._brush)
        bl.addWidget(QLabel("Size"))
        bl.addWidget(self.size)
        bl.addWidget(QLabel("Hardness"))
        bl.addWidget(self.hard)
        lay.addWidget(brush)
        self.onion = QCheckBox("Onion skin (previous frame's edge)")
        self.onion.setChecked(tools.onion)
        self.onion.toggled.connect(self._onion)
        lay.addWidget(self.onion)
        row = QHBoxLayout()
        for text, slot in [("Refine edge", tools.refine_current), ("Next candidate", tools.cycle_candidate),
                           ("Keep as keyframe", tools.make_keyframe)]:
            b = QPushButton(text)
            b.clicked.connect(slot)
            row.addWidget(b)
        lay.addLayout(row)
        lay.addWidget(QLabel("Keyframes (double-click to go there)"))
        self.keys = QListWidget()
        self.keys.setObjectName("matte_keyframes")
        self.keys.itemDoubleClicked.connect(lambda it: window.seek(it.data(256)))
        lay.addWidget(self.keys, 1)
        rm = QPushButton("Remove keyframe")
        rm.clicked.connect(self._remove_key)
        lay.addWidget(rm)
        lay.addWidget(QLabel("Flagged for review"))
        self.review = QListWidget()
        self.review.itemDoubleClicked.connect(lambda it: window.seek(it.data(256)))
        lay.addWidget(self.review, 1)
        row = QHBoxLayout()
        self.prop = QPushButton("Propagate")
        self.prop.setObjectName("matte_propagate")
        self.prop.setToolTip("Recompute every frame's matte from the keyframes (flow, colour, edges, SAM if loaded)")
        self.prop.clicked.connect(tools.propagate)
        self.cancel = QPushButton("Cancel")
        self.cancel.clicked.connect(tools.cancel_propagation)
        row.addWidget(self.prop)
        row.addWidget(self.cancel)
        lay.addLayout(row)
        self.bar = QProgressBar()
        lay.addWidget(self.bar)
        self.status = QLabel()
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        load = QPushButton("Load SAM model...")
        load.clicked.connect(window.load_sam_dialog)
        lay.addWidget(load)
        tools.changed.connect(self.refresh)
        self.refresh()

    def _brush(self):
        self.tools.brush.radius = float(self.size.value())
        self.tools.brush.hardness = float(self.hard.value())
        self.tools.refresh_view()

    def _onion(self, on):
        self.tools.onion = on
        self.tools.refresh_view()

    def _remove_key(self):
        it = self.keys.currentItem()
        if it is not None:
            self.tools.remove_keyframe(it.data(256))

    def refresh(self):
        t = self.tools
        self.buttons[t.tool].setChecked(True)
        p = self.w.project
        self.keys.clear()
        self.review.clear()
        if p is not None:
            for k in p.matte.keyframes:
                it = QListWidgetItem(f"frame {k}")
                it.setData(256, k)
                self.keys.addItem(it)
            for f, why in sorted(p.matte.review.items(), key=lambda kv: int(kv[0])):
                it = QListWidgetItem(f"frame {f}: {why}")
                it.setData(256, int(f))
                self.review.addItem(it)
        running = t.prop_worker is not None
        self.prop.setEnabled(p is not None and not running)
        self.cancel.setEnabled(running)
        done, total = t.progress if running else (0, 1)
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)
        self.status.setText(t.status)


def pick_checkpoint(parent) -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, "SAM checkpoint", "", "PyTorch checkpoint (*.pth *.pt)")
    return path or None
