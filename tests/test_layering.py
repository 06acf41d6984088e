"""harmovid_engine never imports Qt: the CLI, benchmarks and render workers must run without a display."""

import ast
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "harmovid_engine"
QT = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "shiboken6", "qtpy", "app")


def test_no_qt_import_statements_in_engine():
    offenders = []
    for f in ENGINE.rglob("*.py"):
        tree = ast.parse(f.read_text(), filename=str(f))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                if n.split(".")[0] in QT:
                    offenders.append(f"{f.relative_to(ENGINE)}: {n}")
    assert not offenders, offenders


def test_importing_every_engine_module_loads_no_qt():
    code = (
        "import importlib, pkgutil, sys, harmovid_engine\n"
        "for m in pkgutil.walk_packages(harmovid_engine.__path__, 'harmovid_engine.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6','PyQt5','PyQt6','pyqtgraph','shiboken6')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
