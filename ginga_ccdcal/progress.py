"""Progress reporting and cancellation shared by the CLI, the plugins and notebooks.

Long-running core functions take two optional keyword arguments:

``progress(done, total, message)``
    called from the worker thread as work advances; the CLI draws a bar,
    the plugins post the fraction to Ginga's GUI thread.
``cancel``
    a :class:`CancelToken`; the work calls ``cancel.check()`` between
    units and stops with :class:`~ginga_ccdcal.errors.Cancelled`.
"""

import threading

from .errors import Cancelled

__all__ = ["CancelToken", "report", "check"]


class CancelToken:
    """A thread-safe flag that one thread sets and another checks."""

    def __init__(self):
        self._event = threading.Event()

    def cancel(self):
        self._event.set()

    @property
    def cancelled(self):
        return self._event.is_set()

    def check(self):
        """Raise `Cancelled` if cancellation was requested."""
        if self._event.is_set():
            raise Cancelled()


def report(progress, done, total, message=""):
    """Call ``progress`` if one was given (saves an ``if`` at every call site)."""
    if progress is not None:
        progress(done, total, message)


def check(cancel):
    """Raise `Cancelled` if ``cancel`` is set; a ``None`` token never cancels."""
    if cancel is not None:
        cancel.check()
