"""Exceptions whose message is meant for the user, not a traceback."""


class CcdcalError(Exception):
    """Base class: ``str(err)`` is a complete sentence for the user."""


class FrameError(CcdcalError):
    """A file that cannot be used, with the reason.

    Parameters
    ----------
    path : str
        The offending file.
    problem : str
        What is wrong with it, e.g. ``"truncated FITS (data ends early)"``.
    """

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        # Rebuilt from both parts when it travels back from a cluster worker.
        return (type(self), (self.path, self.problem))


class CalibrationError(CcdcalError):
    """A calibration that cannot be done as asked (no master, bad scaling...)."""


class NotCalibrated(CalibrationError):
    """A light none of whose calibration steps could be applied.

    Such a light is never written under a calibrated name nor counted as
    calibrated; the message says why (e.g. "no master bias, dark or flat").
    """


class Cancelled(CcdcalError):
    """Long work stopped because the user asked for it."""

    def __init__(self, message="cancelled by the user"):
        super().__init__(message)
