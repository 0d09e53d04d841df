"""Frame types, exposures and filters from real camera-software spellings."""

import json

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


# -- filters (issue 10, item 7) ----------------------------------------------------

@pytest.mark.parametrize("a, b, expected", [
    ("R", "R", "exact"), ("R", " R ", "exact"), (None, None, "exact"),
    ("Halpha", "H alpha", "exact"), (None, "", "exact"), ("None", None, "exact"),
    ("R", "r", "case"), ("Halpha", "h alpha", "case"), ("OIII", "oiii", "case"),
    ("R", "V", None), ("R", None, None), (None, "r", None), ("Ha", "Hb", None),
])
def test_filter_match_tells_exact_from_case_only(a, b, expected):
    assert classify.filter_match(a, b) == expected
    assert classify.filter_match(b, a) == expected


def test_filter_aliases_do_not_fold_single_letter_bands():
    sdss = {"r": "sdss-r", "Halpha": "Ha"}
    # Johnson R is not SDSS r: an alias for 'r' does not catch 'R' ...
    assert classify.filter_from_header(fits.Header({"FILTER": "R"}), sdss) == "R"
    assert classify.filter_from_header(fits.Header({"FILTER": "r"}), sdss) == "sdss-r"
    # ... but a longer name in another case is the same spelling.
    assert classify.filter_from_header(fits.Header({"FILTER": "HALPHA"}), sdss) == "Ha"
    # An exact spelling wins over one that differs only in case.
    both = {"ha": "H-alpha narrow", "Ha": "H-alpha"}
    assert classify.filter_from_header(fits.Header({"FILTER": "Ha"}), both) == "H-alpha"
    assert classify.filter_from_header(fits.Header({"FILTER": "R"})) == "R"
    assert classify.filter_from_header(fits.Header({"FILTER": "r"})) == "r"


@pytest.mark.parametrize("value", ["", "  ", "None", "none", "(none)", "N/A"])
def test_missing_filter_is_one_thing(value):
    assert classify.filter_from_header(fits.Header({"FILTER": value})) is None


# -- the user's vocabulary file (issue 14, item 5) --------------------------------

@pytest.mark.parametrize("content, entry", [
    ({"type": None}, "'type'"),
    ({"type": ["bias"]}, "'type'"),
    ({"type": "bias"}, "'type'"),
    ({"filter": {"Ha": {"x": "y"}}}, "'filter' entry 'Ha'"),
    ({"filter": {"Ha": ["Ha"]}}, "'filter' entry 'Ha'"),
    ({"filter": {"Ha": None}}, "'filter' entry 'Ha'"),
    ({"type": {"calib-z": {"bias": 1}}}, "'type' entry 'calib-z'"),
    ({"type": {"calib-z": "zero"}}, "'type' entry 'calib-z'"),
    ({"files": {"flat-*": "sky"}}, "'files' entry 'flat-*'"),
    ({"files": {"": "flat"}}, "'files'"),
    ({"files": []}, "'files'"),
    ({"spellings": {}}, "'spellings'"),
    ([1, 2], "JSON object"),
    ("bias", "JSON object"),
])
def test_vocabulary_file_of_the_wrong_shape_names_the_entry(tmp_path, content, entry):
    path = tmp_path / "aliases.json"
    path.write_text(json.dumps(content))
    with pytest.raises(classify.VocabularyError) as exc:
        classify.load_aliases(path)
    message = str(exc.value)
    assert "\n" not in message and str(path) in message
    assert entry in message


def test_vocabulary_file_too_big_or_endless_is_refused(tmp_path):
    big = tmp_path / "big.json"
    big.write_text('{"type": {' + ", ".join(f'"x{i}": "bias"' for i in range(70000)) + "}}")
    assert big.stat().st_size > classify.MAX_VOCABULARY_BYTES
    with pytest.raises(classify.VocabularyError, match="too big"):
        classify.load_aliases(big)
    with pytest.raises(classify.VocabularyError, match="too big"):
        classify.load_aliases("/dev/zero")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(classify.VocabularyError):
        classify.load_aliases(deep)


def test_vocabulary_round_trip_keeps_file_types(tmp_path):
    path = tmp_path / "aliases.json"
    classify.save_aliases({"type": {"calib-z": "bias"}, "files": {"flat-*": "flat"}}, path)
    # The browser saves only the spellings it edits: the file types stay.
    classify.save_aliases({"type": {"calib-z": "bias"}, "filter": {"Halpha": "Ha"}}, path)
    assert classify.load_aliases(path) == {"type": {"calib-z": "bias"},
                                           "filter": {"Halpha": "Ha"},
                                           "files": {"flat-*": "flat"}}
    merged = classify.add_file_types({"dark-*": "dark"}, path)
    assert merged["files"] == {"flat-*": "flat", "dark-*": "dark"}
    assert classify.load_aliases(path)["files"] == merged["files"]


def test_pixel_guess_leaves_what_it_cannot_tell_unknown():
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:80, :120]
    arc = 1000 + rng.normal(0, 8, (80, 120))
    for centre, height in ((20, 5000.0), (47, 30000.0), (90, 2000.0)):
        arc += height * np.exp(-0.5 * ((xx - centre) / 1.1) ** 2)
    assert classify.guess_type_from_data(arc, 5.0) == "unknown"
    assert classify.guess_type_from_data(arc, None) == "unknown"
    # A zero-second frame is a bias whatever fixed pattern it has.
    patterned = 1000 + 30 * np.sin(xx / 3.0) + rng.normal(0, 8, (80, 120))
    assert classify.guess_type_from_data(patterned, 0.0) == "bias"
    stats = classify.measure_pixels(arc)
    assert stats.structures == 3 and stats.point_sources == 0
