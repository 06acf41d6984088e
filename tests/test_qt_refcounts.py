"""Qt bindings must not leak references to Python's singletons.

PySide6 6.12.0 on Python 3.11 drops one reference to ``None`` on every void Qt call and one to ``True`` on every signal
emit; the Studio died with ``Fatal Python error: none_dealloc`` a few minutes in, once ``None``'s count reached zero.
The project pins a release without the leak; this test fails on any binding that has it. (From Python 3.12 on, ``None``,
``True`` and ``False`` are immortal and their counts never move: the test still runs and passes there.)
"""

from __future__ import annotations

import gc
import sys

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QObject, QTimer, Signal  # noqa: E402

CALLS = 300


class _Emitter(QObject):
    changed = Signal(bool)
    moved = Signal(int)
    empty = Signal()


def _counts():
    gc.collect()
    return {name: sys.getrefcount(obj) for name, obj in (("None", None), ("True", True), ("False", False))}


def _drift(work) -> dict:
    work()  # warm up: first calls may create caches that hold references for good
    before = _counts()
    work()
    after = _counts()
    return {k: after[k] - before[k] for k in before}


def test_void_qt_calls_keep_none_alive(qapp):
    obj = QObject()

    def work():
        for i in range(CALLS):
            obj.setObjectName(f"o{i % 7}")  # a void call: returns None
            obj.blockSignals(False)
            obj.setProperty("k", i)

    drift = _drift(work)
    assert all(abs(d) < CALLS // 10 for d in drift.values()), (
        f"reference counts moved over {CALLS} void Qt calls: {drift} (a binding that leaks None; see pyproject's pin)")


def test_signal_emits_keep_singletons_alive(qapp):
    em = _Emitter()
    seen = [0]

    def count(_value):  # must not keep the emitted bools: that would move their counts
        seen[0] += 1

    em.changed.connect(count)
    em.moved.connect(lambda v: None)
    em.empty.connect(lambda: None)

    def work():
        for i in range(CALLS):
            em.changed.emit(i % 2 == 0)
            em.moved.emit(i)
            em.empty.emit()

    drift = _drift(work)
    assert seen[0] == 2 * CALLS
    assert all(abs(d) < CALLS // 10 for d in drift.values()), (
        f"reference counts moved over {CALLS} signal emits: {drift} (a binding that leaks True/None)")


def test_timer_and_widget_calls_keep_none_alive(qapp):
    from PySide6.QtWidgets import QLabel, QSpinBox

    label, spin, timer = QLabel(), QSpinBox(), QTimer()

    def work():
        for i in range(CALLS):
            label.setText(str(i))
            spin.setValue(i % 50)
            timer.setInterval(i + 1)
            qapp.processEvents()

    drift = _drift(work)
    assert all(abs(d) < CALLS // 10 for d in drift.values()), (
        f"reference counts moved over {CALLS} widget calls: {drift}")
