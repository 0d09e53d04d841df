"""Fitting the dark scale factor to a light, instead of the exposure ratio.

Dark current depends on temperature as well as time, so a master dark
scaled by the exposure ratio can leave hot pixels over- or
under-subtracted.  The factor that leaves the least dark signal in the
light is found by least squares on pixel-to-pixel differences: smooth
sky, vignetting and the bias cancel in the differences, while the dark's
hot pixels, which are sharp, carry the fit.  Stars and cosmic rays are
rejected iteratively as outliers.  (PixInsight and Siril offer the same
idea as "dark optimisation".)
"""

import numpy as np
from astropy.stats import mad_std

from .errors import CalibrationError

__all__ = ["DarkScaleError", "fit_dark_scale"]


class DarkScaleError(CalibrationError, ValueError):
    """No scale can be fitted (a dark without structure).

    A `CalibrationError`, so one such dark skips the lights that need it
    with a one-line message and the batch goes on; still a `ValueError`
    for code that caught that before.
    """


def fit_dark_scale(light, dark, *, clip=5.0, iterations=4):
    """The factor ``k`` minimising the dark signal left in ``light - k * dark``.

    Parameters
    ----------
    light : 2-D array
        The light with the bias removed (the bias cancels anyway).
    dark : 2-D array
        A bias-subtracted master dark, same shape.
    clip : float
        Residuals beyond this many robust sigmas (stars, cosmic rays) are
        left out of the next iteration.
    iterations : int

    Returns
    -------
    float

    Raises
    ------
    DarkScaleError
        The dark has no pixel-to-pixel structure to fit (all flat).
    """
    light = np.asarray(light, dtype=np.float64)
    dark = np.asarray(dark, dtype=np.float64)
    dl = np.diff(light, axis=1).ravel()
    dd = np.diff(dark, axis=1).ravel()
    good = np.isfinite(dl) & np.isfinite(dd)
    # The master dark's own noise inflates sum(dd**2) and would bias the
    # factor low (regression dilution); its variance comes off, estimated
    # robustly from the bulk of the pixels.
    noise_var = mad_std(dd[good]) ** 2
    scale = None
    for _ in range(iterations):
        weight = np.dot(dd[good], dd[good]) - good.sum() * noise_var
        if weight <= 0:
            raise DarkScaleError("the dark has no structure (hot pixels) to fit "
                                 "a scale to")
        scale = np.dot(dl[good], dd[good]) / weight
        residual = dl - scale * dd
        spread = mad_std(residual[good])
        if spread == 0:
            break
        keep = good & (np.abs(residual) < clip * spread)
        # Never reject the pixels that carry the fit: the dark's own
        # outliers (hot pixels) stay in.
        keep |= good & (np.abs(dd) > clip * mad_std(dd[good]))
        if np.array_equal(keep, good):
            break
        good = keep
    return float(scale)
