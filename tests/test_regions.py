"""Overscan and trim regions from headers."""

import numpy as np
from astropy.io import fits

from ginga_ccdcal.regions import apply_regions, find_regions


def test_keywords_of_both_conventions():
    shape = (20, 30)
    iraf = find_regions(fits.Header({"BIASSEC": "[26:30,1:20]", "TRIMSEC": "[1:25,1:20]"}),
                        shape)
    maxim = find_regions(fits.Header({"OSCAN": True, "OSCANAX": 1, "OSCANST": 26}), shape)
    assert iraf.overscan == maxim.overscan == (slice(0, 20), slice(25, 30))
    assert iraf.trim == maxim.trim == (slice(0, 20), slice(0, 25))
    rows = find_regions(fits.Header({"OSCANAX": 2, "OSCANST": 18}), shape)
    assert rows.axis == 0 and rows.trim == (slice(0, 17), slice(0, 30))


def test_nonsense_regions_are_ignored():
    shape = (20, 30)
    assert find_regions(fits.Header(), shape) is None
    assert find_regions(fits.Header({"OSCANST": 40}), shape) is None
    assert find_regions(fits.Header({"BIASSEC": "garbage"}), shape) is None
    assert find_regions(fits.Header({"OSCAN": False, "OSCANST": 26}), shape) is None


def test_narrow_overscan_does_not_print_stripes():
    # One overscan column: its per-row median is just read noise.
    rng = np.random.default_rng(1)
    frame = 1000 + rng.normal(0, 10, (400, 101))
    regions = find_regions(fits.Header({"OSCANAX": 1, "OSCANST": 101}), frame.shape)
    fitted = apply_regions(frame, regions)
    raw_rows = apply_regions(frame, regions, degree=None)
    assert np.std(fitted.mean(axis=1)) < 2.0      # ~ 10 / sqrt(100)
    assert np.std(raw_rows.mean(axis=1)) > 8.0    # the overscan's noise, row by row
    assert abs(np.mean(fitted)) < 1.0
