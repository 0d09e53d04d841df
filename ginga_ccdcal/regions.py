"""Overscan and trim regions from the header, and applying them.

Two conventions are read:

* IRAF/NOAO: ``BIASSEC`` (overscan) and ``TRIMSEC`` or ``DATASEC`` (the
  imaging area), as 1-based inclusive ``[x1:x2,y1:y2]`` strings;
* MaxIm DL with Apogee cameras: ``OSCANAX`` (1: overscan columns, 2:
  overscan rows) and ``OSCANST`` (its first 1-based column or row); the
  overscan runs to the edge and the rest is the imaging area.

The overscan's median along its axis, smoothed by a straight-line fit, is
subtracted (as ``ccdproc.subtract_overscan`` with a ``Polynomial1D(1)``
model does), then the frame is trimmed to the imaging area.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["Regions", "find_regions", "apply_regions"]


@dataclass
class Regions:
    """Numpy slices of the overscan and imaging area of a raw frame."""

    overscan: tuple
    trim: tuple
    axis: int            # numpy axis along which the overscan is averaged
    source: str          # which keywords they came from

    def describe(self):
        return f"overscan {_fits_text(self.overscan)}, trim {_fits_text(self.trim)} ({self.source})"


def _fits_text(region):
    rows, cols = region
    return f"[{cols.start + 1}:{cols.stop},{rows.start + 1}:{rows.stop}]"


def _clip(region, shape):
    return tuple(slice(*s.indices(n)[:2]) for s, n in zip(region, shape))


def _slice(text):
    """A 1-based inclusive FITS section as numpy slices (ccdproc's reading)."""
    # Imported here: ccdproc pulls in astropy.nddata and scipy (over a
    # second), which every command importing this module would pay for.
    from ccdproc.utils.slices import slice_from_string
    return slice_from_string(text, fits_convention=True)


def find_regions(header, shape):
    """The overscan and imaging regions ``header`` declares, or None.

    Parameters
    ----------
    header : astropy.io.fits.Header
    shape : tuple
        (rows, columns) of the raw data.

    Returns
    -------
    Regions or None
        None when the header gives no overscan or it makes no sense for
        ``shape`` (then nothing is done, rather than something wrong).
    """
    rows, cols = shape
    try:
        if "BIASSEC" in header:
            overscan = _clip(_slice(str(header["BIASSEC"])), shape)
            trim_text = header.get("TRIMSEC") or header.get("DATASEC")
            if trim_text:
                trim = _clip(_slice(str(trim_text)), shape)
            else:
                trim = (slice(0, rows), slice(0, overscan[1].start)) \
                    if overscan[1].start > 0 else (slice(0, rows), slice(0, cols))
            # Overscan columns are averaged across columns (numpy axis 1).
            width = overscan[1].stop - overscan[1].start
            height = overscan[0].stop - overscan[0].start
            axis = 1 if height >= width else 0
            source = "BIASSEC/TRIMSEC"
        elif "OSCANST" in header and header.get("OSCAN", True):
            start = int(header["OSCANST"]) - 1
            if int(header.get("OSCANAX", 1)) == 1:
                if not 0 < start < cols:
                    return None
                overscan = (slice(0, rows), slice(start, cols))
                trim = (slice(0, rows), slice(0, start))
                axis = 1
            else:
                if not 0 < start < rows:
                    return None
                overscan = (slice(start, rows), slice(0, cols))
                trim = (slice(0, start), slice(0, cols))
                axis = 0
            source = "OSCANAX/OSCANST"
        else:
            return None
    except (ValueError, TypeError):
        return None
    if any(s.stop <= s.start for s in overscan + trim):
        return None
    return Regions(overscan, trim, axis, source)


def apply_regions(data, regions, degree=1):
    """Subtract the overscan level and trim to the imaging area.

    The overscan is reduced to one median per row (or column), and a
    polynomial of ``degree`` is fitted along them, as
    ``ccdproc.subtract_overscan(median=True, model=Polynomial1D(degree))``
    does: a narrow overscan has few pixels per row, and subtracting each
    row's own median would print its read noise into the frame as stripes.
    ``degree=None`` subtracts the row medians as they are.

    Returns a new float32 array of the imaging area.
    """
    data = np.asarray(data, dtype=np.float32)
    level = np.median(data[regions.overscan], axis=regions.axis)
    if degree is not None and level.size > degree + 1:
        position = np.arange(level.size, dtype=np.float64)
        level = np.polyval(np.polyfit(position, level.astype(np.float64), degree),
                           position).astype(np.float32)
    if regions.axis == 1:
        # One level per row of the overscan strip, which spans the rows
        # of the imaging area.
        start = regions.trim[0].start - regions.overscan[0].start
        level = level[start:start + data[regions.trim].shape[0], None]
    else:
        start = regions.trim[1].start - regions.overscan[1].start
        level = level[None, start:start + data[regions.trim].shape[1]]
    return data[regions.trim] - level
