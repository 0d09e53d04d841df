"""Frame types, exposures and filters from real camera-software spellings."""

import numpy as np
import pytest
from astropy.io import fits

from ginga_ccdcal import classify


@pytest.mark.parametrize("value, expected", [
    ("Bias Frame", "bias"), ("zero", "bias"), ("BIAS", "bias"), ("Offset", "bias"),
    ("Dark Frame", "dark"), ("DARK", "dark"), ("Flat Dark", "dark"), ("DARKFLAT", "dark"),
    ("Flat Field", "flat"), ("SKYFLAT", "flat"), ("DOMEFLAT", "flat"), ("flat", "flat"),
    ("Twilight Flat", "flat"),
    ("Light Frame", "light"), ("object", "light"), ("SCIENCE", "light"), ("LIGHT", "light"),
    ("  light  ", "light"), ("focus", "unknown"), ("", "unknown"),
])
def test_type_spellings(value, expected):
    assert classify.normalise_type(value) == expected


def test_user_aliases_win():
    assert classify.normalise_type("calib-z", {"CALIB-Z": "bias"}) == "bias"
    assert classify.normalise_type("focus", {"focus": "light"}) == "light"


def test_type_keyword_order_and_fallback():
    header = fits.Header({"OBSTYPE": "zero"})
    assert classify.type_from_header(header) == ("bias", "OBSTYPE")
    header = fits.Header({"IMAGETYP": "weird", "FRAMETYP": "Dark"})
    assert classify.type_from_header(header) == ("dark", "FRAMETYP")
    assert classify.type_from_header(fits.Header()) == ("unknown", None)


def test_exposure_and_filter_keywords():
    assert classify.exptime_from_header(fits.Header({"EXPOSURE": 30.0})) == 30.0
    # EXPTIME wins over EXPOSURE when both are there (MaxIm writes both).
    assert classify.exptime_from_header(fits.Header({"EXPTIME": 15, "EXPOSURE": 16})) == 15
    assert classify.exptime_from_header(fits.Header({"EXPTIME": "n/a"})) is None
    assert classify.exptime_from_header(fits.Header({"EXPTIME": -1})) is None
    assert classify.filter_from_header(fits.Header({"FILTNAM": "F606W"})) == "F606W"
    assert classify.filter_from_header(fits.Header({"FILTER": "  ", "FILTER1": "V"})) == "V"
    assert classify.filter_from_header(fits.Header({"FILTER": "Halpha"}),
                                       {"halpha": "Ha"}) == "Ha"
    assert classify.filter_from_header(fits.Header()) is None


def test_binning_and_temperature():
    assert classify.binning_from_header(fits.Header({"XBINNING": 2, "YBINNING": 2})) == (2, 2)
    assert classify.binning_from_header(fits.Header({"CCDSUM": "2 1"})) == (2, 1)
    assert classify.binning_from_header(fits.Header()) == (1, 1)
    assert classify.temperature_from_header(fits.Header({"CCD-TEMP": -18.8})) == -18.8


def test_guess_from_pixels():
    rng = np.random.default_rng(3)
    bias = 1000 + rng.normal(0, 8, (100, 120))
    assert classify.guess_type_from_data(bias, None) == "bias"
    assert classify.guess_type_from_data(bias + 3, 300.0) == "dark"
    yy, xx = np.mgrid[:100, :120]
    vignetting = 1 - 0.2 * ((xx - 60) ** 2 + (yy - 50) ** 2) / 60 ** 2
    flat = 20000 * vignetting + rng.normal(0, 140, (100, 120))
    assert classify.guess_type_from_data(flat, 10.0) == "flat"
    light = 1000 + 200 + rng.normal(0, 15, (100, 120))
    light[40:43, 50:53] += 30000
    light[10:12, 90:92] += 20000
    assert classify.guess_type_from_data(light, 300.0) == "light"


@pytest.mark.parametrize("seed", range(4))
def test_guess_on_synthetic_nights(tmp_path, seed):
    from ginga_ccdcal.sample import SyntheticCamera, write_night
    camera = SyntheticCamera((64, 80), seed=seed)
    plan = [("light", 300.0, "R", 2), ("flat", 10.0, "R", 2), ("bias", 0.0, None, 1),
            ("dark", 300.0, None, 2)]
    for path in write_night(tmp_path, camera, plan, seed=seed):
        truth = camera.written[path].frametype
        exptime = fits.getheader(path)["EXPTIME"]
        assert classify.guess_type_from_data(fits.getdata(path), exptime) == truth, path
