"""Long work in a background thread, with a progress bar and a Cancel button.

The kernel stays free while masters are combined: other cells run, and
the Cancel button (a `~ginga_ccdcal.progress.CancelToken`) is heard by
the core between units of work.
"""

import threading
from html import escape

import ipywidgets as widgets

from ..errors import Cancelled, CcdcalError
from ..progress import CancelToken

__all__ = ["BackgroundTask"]

#: Steps of the progress bar (IntProgress holds integers).
_STEPS = 1000


class BackgroundTask:
    """Runs ``work(progress, cancel)`` in a thread and shows how far it is.

    ``progress(done, total, message)`` and ``cancel`` are what the core's
    long functions take (see `ginga_ccdcal.progress`).  The result goes to
    ``on_done(result)`` in the worker thread; a `CcdcalError` or a
    cancellation is shown as one line, never a traceback.

    Attributes
    ----------
    widget : ipywidgets.HBox
        The bar, its label and the Cancel button.
    error : str or None
        The last run's one-line failure, if any.
    """

    def __init__(self):
        self.bar = widgets.IntProgress(value=0, min=0, max=_STEPS,
                                       layout=widgets.Layout(width="260px"))
        self.label = widgets.HTML(value="")
        self.cancel_button = widgets.Button(description="Cancel", disabled=True,
                                            button_style="warning",
                                            layout=widgets.Layout(width="80px"))
        self.cancel_button.on_click(lambda _: self.cancel())
        self.widget = widgets.HBox([self.bar, self.cancel_button, self.label])
        self._thread = None
        self._token = None
        self.error = None

    @property
    def busy(self):
        return self._thread is not None and self._thread.is_alive()

    def run(self, work, on_done, label="Working"):
        """Start ``work`` unless a run is still going; returns at once.

        Returns
        -------
        bool
            False when the previous run has not finished.
        """
        if self.busy:
            self.label.value = "still busy: wait or press Cancel"
            return False
        self._token = CancelToken()
        self.error = None
        self.bar.value, self.bar.bar_style = 0, ""
        self.label.value = escape(label) + "..."
        self.cancel_button.disabled = False
        self._thread = threading.Thread(target=self._work, name=f"ccdcal {label}",
                                        args=(work, on_done, label, self._token),
                                        daemon=True)
        self._thread.start()
        return True

    def _work(self, work, on_done, label, token):
        def progress(done, total, message=""):
            # Never backwards: a stage that combines several masters
            # (darks of two exposures) restarts its count for each.
            if total:
                self.bar.value = max(self.bar.value,
                                     int(round(_STEPS * min(done / total, 1.0))))
            self.label.value = escape(f"{label}: {message}" if message else label)

        try:
            result = work(progress, token)
            on_done(result)
        except Cancelled:
            self._finish("danger", f"{label}: cancelled", error="cancelled")
        except CcdcalError as exc:
            self._finish("danger", f"{label} failed: {exc}", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - shown in one line, kept for wait()
            self._finish("danger", f"{label} failed: {type(exc).__name__}: {exc}",
                         error=f"{type(exc).__name__}: {exc}")
        else:
            self.bar.value = _STEPS
            self._finish("success", f"{label}: done")

    def _finish(self, style, text, error=None):
        self.error = error
        self.bar.bar_style = style
        self.label.value = escape(text)
        self.cancel_button.disabled = True

    def cancel(self):
        """Ask the running work to stop at its next check."""
        if self._token is not None:
            self._token.cancel()

    def wait(self, timeout=None):
        """Block until the current run ends (for scripts and tests).

        Returns
        -------
        bool
            True if the run has ended (or there was none).
        """
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.busy
