"""Checks on a frame's pixels that an observer wants to hear about.

None of these stop a reduction; each gives one sentence that the CLI,
the plugins and the output header pass on.
"""

import numpy as np

from .classify import header_number

__all__ = ["saturation_level", "saturated_fraction", "pixel_warnings"]

#: A light with more than this fraction of saturated pixels is flagged.
SATURATED_LIGHT_FRACTION = 0.01
#: A flat with more than this fraction of saturated pixels is not used.
SATURATED_FLAT_FRACTION = 0.01


def saturation_level(header, dtype):
    """The level at which a pixel is saturated, or None if unknown.

    From SATURATE or DATAMAX in the header, else the largest value the
    file's integer type holds (65535 for the usual unsigned 16-bit data).
    """
    level = header_number(header, ("SATURATE", "DATAMAX"))
    if level is not None:
        return level
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        return float(np.iinfo(dtype).max)
    return None


def saturated_fraction(data, header, raw_type=None):
    """Fraction of pixels at or above `saturation_level` (0 if unknown).

    ``raw_type`` is the pixels' type in the file when ``data`` was
    converted since (by default ``data``'s own type).
    """
    level = saturation_level(header, data.dtype if raw_type is None else raw_type)
    if level is None or data.size == 0:
        return 0.0, None
    return float(np.count_nonzero(data >= level)) / data.size, level


def pixel_warnings(data, header, raw_type=None):
    """Sentences about a raw light's pixels: undefined or saturated ones.

    Parameters
    ----------
    data : numpy.ndarray
        The raw pixels, in the file's own type or converted to float.
    header : astropy.io.fits.Header
    raw_type : numpy.dtype, optional
        The pixels' type in the file, if ``data`` was converted since.

    Returns
    -------
    list of str
    """
    raw_type = data.dtype if raw_type is None else np.dtype(raw_type)
    notes = []
    if raw_type.kind == "f":
        bad = data.size - int(np.count_nonzero(np.isfinite(data)))
        if bad:
            notes.append(f"{bad} pixel(s) are NaN or inf in the raw frame; they stay "
                         "undefined (NaN) after calibration")
    fraction, level = saturated_fraction(data, header, raw_type)
    if fraction > SATURATED_LIGHT_FRACTION:
        notes.append(f"{100 * fraction:.1f}% of pixels are saturated "
                     f"(at or above {level:g} ADU)")
    return notes
