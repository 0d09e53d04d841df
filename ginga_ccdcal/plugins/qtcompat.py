"""A guard against a Qt-binding bug that crashes the viewer on Python 3.11.

PySide6 6.12.0 (the abi3 wheels) returns ``None`` from every C++ method
that returns ``void`` -- ``QColor.setRgbF``, ``QPen.setWidthF``,
``QLabel.setText``... -- without taking a reference to it.  From Python
3.12 on, ``None`` is immortal and this is harmless; on 3.11 each such call
lowers ``None``'s reference count by one, and Ginga's canvas makes
thousands of them per redraw, so after a few minutes of use the count
reaches zero and Python aborts with "Fatal Python error: none_dealloc:
deallocating None".

`protect_none` checks whether the binding in use has the bug and, only
then, raises ``None``'s reference count far out of reach (what 3.12 does
by making it immortal).  The real fix is a binding without the bug
(another PySide6 release, PyQt6, or Python >= 3.12).
"""

import ctypes
import sys

__all__ = ["void_call_leaks_none", "protect_none"]

_PROTECTION = 1 << 48
_applied = False


def void_call_leaks_none(calls=200):
    """True if calling a ``void`` Qt method loses a reference to ``None``."""
    try:
        from qtpy import QtGui
    except Exception:  # no Qt binding at all: nothing to protect
        return False
    color = QtGui.QColor()
    before = sys.getrefcount(None)
    for _ in range(calls):
        color.setRed(1)
    return sys.getrefcount(None) <= before - calls // 2


def protect_none():
    """Make ``None`` effectively immortal if the Qt binding needs it.

    Returns
    -------
    bool
        True if the protection is in place (now or from an earlier call).
    """
    global _applied
    if _applied:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    if not void_call_leaks_none():
        return False
    # CPython < 3.12: ob_refcnt (a Py_ssize_t) is the first field of every
    # object.  2**48 lost references would take years of redraws.
    refcnt = ctypes.c_ssize_t.from_address(id(None))
    refcnt.value += _PROTECTION
    _applied = True
    return True
