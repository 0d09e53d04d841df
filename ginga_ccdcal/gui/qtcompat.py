"""Is the Qt binding one the viewer can run on?

PySide6 6.12.0 (its abi3 wheels) returns ``None`` from every C++ method
that returns ``void`` -- ``QColor.setRgbF``, ``QPen.setWidthF``... --
without taking a reference to it.  From Python 3.12 on ``None`` is
immortal and this is harmless; on 3.11 each such call lowers ``None``'s
reference count by one, Ginga's canvas makes thousands of them per
redraw, and after a few minutes Python aborts ("Fatal Python error:
none_dealloc: deallocating None").  6.11.3 does not have the bug.

The package's requirement excludes that release (``setup.cfg``: extra
``gui``); an environment that has it anyway gets one line naming the fix
from `binding_problem`, and the viewer does not start.  Nothing here
changes the interpreter.
"""

import sys

from ..errors import CcdcalError

__all__ = ["BindingError", "void_call_leaks_none", "binding_problem",
           "BINDING_FIX"]

#: What to run to get a binding without the bug.
BINDING_FIX = "pip install 'PySide6-Essentials>=6.5,!=6.12.0'"


class BindingError(CcdcalError):
    """The Qt binding cannot run the viewer (the message names the fix)."""


def void_call_leaks_none(calls=200):
    """True if calling a ``void`` Qt method loses a reference to ``None``."""
    try:
        from qtpy import QtGui
    except Exception:  # no Qt binding at all: nothing leaks
        return False
    color = QtGui.QColor()
    before = sys.getrefcount(None)
    for _ in range(calls):
        color.setRed(1)
    return sys.getrefcount(None) <= before - calls // 2


def _binding_name():
    try:
        import qtpy
    except Exception:
        return "the Qt binding"
    version = getattr(qtpy, "PYSIDE_VERSION", None) or getattr(qtpy, "PYQT_VERSION", None)
    return f"{qtpy.API_NAME} {version}" if version else qtpy.API_NAME


def binding_problem():
    """One line saying why the viewer cannot run on this binding, or None.

    Python >= 3.12 (and other interpreters) are not affected.
    """
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return None
    if not void_call_leaks_none():
        return None
    python = ".".join(str(n) for n in sys.version_info[:2])
    return (f"{_binding_name()} on Python {python} crashes the viewer after a few minutes "
            f"(it loses a reference to None on every Qt call); {BINDING_FIX}")
