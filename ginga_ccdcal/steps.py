"""The calibration of one light, step by step, for teaching.

`calibration_steps` runs the same `~ginga_ccdcal.calibrate.calibrate_frame`
as everything else and keeps the frame after each step, with one sentence
saying what that step removed: the bias level, the dark current, the
flat's vignetting.  The Calibrate plugin's "Show steps" puts them side by
side, each with its own cut levels (`step_cuts`) or all with the same
contrast (`common_cuts`), and each with its row profile (`row_profile`).
"""

from dataclasses import dataclass

import numpy as np

from .calibrate import calibrate_frame
from .classify import header_number
from .masters import master_data

__all__ = ["Step", "calibration_steps", "as_read_step", "common_cuts", "step_cuts",
           "row_profile", "blink_pair"]


@dataclass
class Step:
    """The frame after one step and what the step did."""

    role: str        # 'raw', 'bias', 'dark' or 'flat'
    title: str       # 'raw', '- bias', '- dark', '/ flat'
    data: object     # 2-D float32 array
    note: str        # one line for people


_TITLES = {"raw": "raw", "bias": "- bias", "dark": "- dark", "flat": "/ flat"}


def _note(role, data, choice, frame, gain):
    if role == "raw":
        return f"raw frame: median {np.nanmedian(data):.0f} ADU"
    master = master_data(choice.master)
    if choice.cutout:
        master = master[choice.cutout]
    if role == "bias":
        return f"bias removed: level {np.nanmedian(master):.1f} ADU"
    if role == "dark":
        rate = float(np.nanmedian(master)) / choice.master.exptime if choice.master.exptime else 0.0
        removed = rate * choice.scale * choice.master.exptime
        text = f"dark removed: {removed:.1f} ADU"
        if gain:
            text += f", dark current {rate * gain:.3g} e-/s/px"
        else:
            text += f", dark current {rate:.3g} ADU/s/px"
        if choice.scale != 1.0:
            text += f" (master scaled x{choice.scale:.3g})"
        return text
    from .characterise import measure_vignetting
    lost, _ = measure_vignetting(master)
    return f"flat divided: vignetting {100 * lost:.0f}% in the darkest corner"


def calibration_steps(frame, match, options=None, *, gain=None):
    """The frame after each calibration step, with what each step removed.

    Parameters
    ----------
    frame : `~ginga_ccdcal.scan.Frame`
    match : `~ginga_ccdcal.match.MatchResult`
    options : `~ginga_ccdcal.calibrate.CalibrationOptions`, optional
        Passed to `~ginga_ccdcal.calibrate.calibrate_frame`.
    gain : float, optional
        e-/ADU, to give the dark current in electrons; taken from the
        header's GAIN/EGAIN when not given.

    Returns
    -------
    list of Step
        Raw first; then one step per master applied.  The last step's data
        equals what `calibrate_frame` returns.
    """
    if gain is None:
        # N.I.N.A.'s GAIN is a camera setting, not e-/ADU: EGAIN first.
        gain = header_number(frame.header, ("EGAIN", "GAIN"))
    steps = []

    def keep(role, data, choice):
        steps.append(Step(role, _TITLES[role], data, _note(role, data, choice, frame, gain)))

    calibrate_frame(frame, match, options, on_step=keep)
    return steps


def as_read_step(frame):
    """The frame as the camera wrote it: the true start of the calibration.

    `calibration_steps` starts after the overscan was subtracted and the
    frame trimmed (what every master is made from); this step comes before
    that, with the bias level (and the overscan strip) still in, so a
    student sees the ~1300 ADU that the first step removes.

    Returns
    -------
    Step
        Role ``'as read'``.
    """
    from .fitsfile import read_image
    data, _, _ = read_image(frame.path, dtype=np.float32)
    note = (f"as read: median {np.nanmedian(data):.0f} ADU, bias level included "
            f"({data.shape[1]}x{data.shape[0]} px, any overscan strip still there)")
    return Step("as read", "as read", data, note)


def common_cuts(steps, low=1.0, high=99.5):
    """Cut levels that show the sky in every step alike.

    The levels come from the last (calibrated) step; the earlier ones are
    offset by their own median difference, so the same contrast shows what
    each step changed rather than the bias level that dominates the raw
    frame.

    Returns
    -------
    list of (float, float)
    """
    final = steps[-1].data
    lo, hi = np.nanpercentile(final, [low, high])
    centre = np.nanmedian(final)
    return [(lo + np.nanmedian(s.data) - centre, hi + np.nanmedian(s.data) - centre)
            for s in steps]


def step_cuts(step, contrast=0.25):
    """Cut levels from this step's own pixels, so its structure shows.

    IRAF's zscale (astropy's `~astropy.visualization.ZScaleInterval`, what
    Ginga's "zscale" auto cuts compute) of the step's finite pixels: the
    frame as read gets levels about its ~1300 ADU bias, the bias-subtracted
    one about its few ADU of dark current and sky.

    Parameters
    ----------
    step : Step
    contrast : float
        zscale's contrast (IRAF's default 0.25).

    Returns
    -------
    (float, float)
        Low and high cut level, low < high.
    """
    from astropy.visualization import ZScaleInterval
    finite = step.data[np.isfinite(step.data)]
    lo, hi = ZScaleInterval(contrast=contrast).get_limits(finite)
    if not hi > lo:  # a flat step (e.g. all one value): open the range a little
        lo, hi = lo - 0.5, hi + 0.5
    return float(lo), float(hi)


def row_profile(step):
    """The step's mean row: the median of every column, left to right.

    The median over all rows keeps what is the same along the columns (the
    overscan strip, the bias structure, the vignetting's slope) and drops
    stars and noise, so each step's change shows as a change of the curve.

    Returns
    -------
    x : ndarray
        Column numbers (0-based).
    profile : ndarray
        Median of each column, in the step's units (ADU).
    """
    profile = np.nanmedian(step.data, axis=0)
    return np.arange(profile.size, dtype=float), profile.astype(float)


def blink_pair(steps):
    """The two steps to blink: the rawest frame with the calibrated frame's
    pixel grid, and the calibrated frame.

    The frame as read when it has the calibrated shape (no overscan strip
    was trimmed), otherwise the raw step after the trim: blinking frames of
    different shapes would move the stars instead of showing what the
    calibration changed.

    Returns
    -------
    (Step, Step)
    """
    calibrated = steps[-1]
    before = next(s for s in steps if s.data.shape == calibrated.data.shape)
    return before, calibrated
