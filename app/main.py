"""Entry point of HarmoVid Studio: ``python main.py [PROJECT] [--demo]`` or ``harmovid-studio``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _stylesheet() -> str:
    from harmovid_engine.resources import resources_dir

    p = resources_dir() / "style.qss"
    return p.read_text() if p.exists() else ""


def display_problem(env=None, platform: str | None = None) -> str | None:
    """Why the Studio cannot open a window here (None when it can). Qt itself would abort the process with a message
    about xcb plugins; an editor on a server wants to hear what to do instead."""
    import os

    env = os.environ if env is None else env
    platform = platform or sys.platform
    if not platform.startswith("linux") or env.get("QT_QPA_PLATFORM") or env.get("DISPLAY") \
            or env.get("WAYLAND_DISPLAY"):
        return None
    return ("no display to open the Studio on (neither DISPLAY nor WAYLAND_DISPLAY is set). On a desktop, start it "
            "from the desktop session; on a server, use the headless commands (harmovid new / render / bench, see "
            "README), or run it under a virtual display: apt-get install -y xvfb libxcb-cursor0 && "
            "xvfb-run python main.py --demo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harmovid-studio", description="HarmoVid Studio")
    parser.add_argument("project", nargs="?", help="project folder to open")
    parser.add_argument("--demo", action="store_true", help="open (a copy of) the bundled demo project")
    parser.add_argument("--screenshot", help=argparse.SUPPRESS)  # PATH[:MODE[:DELAY_MS]], for docs/screenshots
    args = parser.parse_args(argv)
    problem = display_problem()
    if problem:
        print(f"harmovid-studio: error: {problem}", file=sys.stderr)
        return 2

    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication, QMessageBox

    from harmovid_engine.resources import resources_dir

    from .main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("HarmoVid Studio")
    app.setOrganizationName("HarmoVid")
    app.setWindowIcon(QIcon(str(resources_dir() / "icons" / "harmovid-studio.png")))
    app.setStyle("Fusion")
    app.setStyleSheet(_stylesheet())
    win = MainWindow()
    win.show()
    if args.project:
        win.open_project(Path(args.project))
    elif args.demo:
        win.open_demo()
    else:
        answer = QMessageBox.question(win, "Welcome to HarmoVid Studio",
                                      "Open the bundled demo project (a green-screen talent over a neon street)?",
                                      QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
        if answer == QMessageBox.Yes:
            win.open_demo()
    if args.screenshot:
        _schedule_screenshot(win, args.screenshot)
    return app.exec()


def _schedule_screenshot(win, spec: str) -> None:
    """Grab the window after the preview settled: PATH[:MODE[:DELAY_MS]] (used to make docs/screenshots)."""
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication

    parts = spec.split(":")
    path, mode = parts[0], (parts[1] if len(parts) > 1 else "composite")
    delay = int(parts[2]) if len(parts) > 2 else 6000
    if mode == "scopes":  # the colour scopes in front, a pixel of the talent's face picked
        win.set_view_mode("composite")
        win.colour_dock.show()
        win.colour_dock.raise_()
        win.resizeDocks([win.colour_dock], [330], Qt.Vertical)

        def pick_face():
            r = win.viewer.talent_rect
            if r is not None:
                win._set_picking(True)
                win._pick_colour(r.center().x(), r.top() + 0.3 * r.height())

        QTimer.singleShot(max(0, delay - 1500), pick_face)
    else:
        win.set_view_mode(mode)
    if mode == "wipe":
        win.viewer.wipe = 0.5

    def grab():
        screen = QApplication.primaryScreen()
        img = screen.grabWindow(0) if screen is not None else win.grab()
        if img.isNull():
            img = win.grab()
        img.save(path)
        win.undo.setClean()
        win.close()

    QTimer.singleShot(delay, grab)


if __name__ == "__main__":
    sys.exit(main())
