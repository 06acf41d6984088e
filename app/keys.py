"""Application-wide shortcuts: they work wherever the focus is in the window, except while typing in a text field.

A number field (the Inspector's spin boxes) is a text field only for the keys that type or edit a number: digits,
sign and decimal separators, Backspace/Delete, the cursor keys, Up/Down/PageUp/PageDown (step the value) and Enter.
Every other key (J/K/L, B, Space, Ctrl+Z, Ctrl+S, ...) reaches the window's shortcuts instead of being swallowed.
Enter in a number field, and Esc anywhere, hand the focus back to the viewer.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QLineEdit

NUMBER_KEYS = {
    Qt.Key_0, Qt.Key_1, Qt.Key_2, Qt.Key_3, Qt.Key_4, Qt.Key_5, Qt.Key_6, Qt.Key_7, Qt.Key_8, Qt.Key_9,
    Qt.Key_Period, Qt.Key_Comma, Qt.Key_Minus, Qt.Key_Plus, Qt.Key_Backspace, Qt.Key_Delete, Qt.Key_Left,
    Qt.Key_Right, Qt.Key_Home, Qt.Key_End, Qt.Key_Up, Qt.Key_Down, Qt.Key_PageUp, Qt.Key_PageDown, Qt.Key_Return,
    Qt.Key_Enter,
}
EDIT_MODIFIERS = Qt.ShiftModifier | Qt.KeypadModifier


def number_field(w) -> QAbstractSpinBox | None:
    """The spin box ``w`` is (or whose line edit ``w`` is), else None."""
    while w is not None:
        if isinstance(w, QAbstractSpinBox):
            return w
        if not isinstance(w, QLineEdit):
            return None
        w = w.parentWidget()
    return None


class ShortcutRouter(QObject):
    """Installed on the application for one window; ``viewer`` gets the focus back on Enter (number fields)/Esc."""

    def __init__(self, window, viewer):
        super().__init__(window)
        self.window, self.viewer = window, viewer

    def _ours(self, obj) -> bool:
        return hasattr(obj, "window") and callable(obj.window) and obj.window() is self.window

    def eventFilter(self, obj, ev):
        t = ev.type()
        if t not in (QEvent.ShortcutOverride, QEvent.KeyPress) or not self._ours(obj):
            return False
        field = number_field(obj)
        if field is None:
            return False
        key, mods = ev.key(), ev.modifiers()
        typing = key in NUMBER_KEYS and not (mods & ~EDIT_MODIFIERS)
        if t == QEvent.ShortcutOverride:
            if typing:
                return False  # the number field takes it
            ev.ignore()  # not claimed by the field: the window's shortcut runs
            return True
        if key in (Qt.Key_Return, Qt.Key_Enter) or key == Qt.Key_Escape:
            QTimer.singleShot(0, self.focus_viewer)  # after the field has taken its value
        return False

    def focus_viewer(self):
        if self.viewer.isVisible():
            self.viewer.setFocus(Qt.ShortcutFocusReason)

    def install(self):
        QApplication.instance().installEventFilter(self)

    def remove(self):
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
