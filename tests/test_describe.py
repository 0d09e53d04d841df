"""The text the core makes for every front end (`ginga_ccdcal.describe`)."""

import pytest

from ginga_ccdcal.describe import (aliases_text, parse_aliases_text, parse_options,
                                   watch_result_lines)
from ginga_ccdcal.errors import CcdcalError
from ginga_ccdcal.watch import WatchResult


def test_aliases_text_round_trips():
    aliases = {"type": {"calib-z": "bias", "Flat = lamp": "flat"},
               "filter": {"Halpha": "Ha"}}
    assert parse_aliases_text(aliases_text(aliases)) == aliases
    assert parse_aliases_text("") == {"type": {}, "filter": {}}
    assert parse_aliases_text("[Filters]\n# comment\nO[III] = OIII") == \
        {"type": {}, "filter": {"O[III]": "OIII"}}
    assert parse_aliases_text("[types]\nZ = BIAS") == {"type": {"Z": "bias"}, "filter": {}}


@pytest.mark.parametrize("text, message", [
    ("Z = bias", "line 1: put 'Z = bias' under [types] or [filters]"),
    ("[kinds]", "line 1: unknown section [kinds]"),
    ("[types]\n\nZ = galaxy", "line 3: 'galaxy' is not a frame type"),
    ("[filters]\n = R", "line 2: '= R' is not 'header value = ours'"),
])
def test_aliases_text_errors_name_the_line(text, message):
    with pytest.raises(CcdcalError) as info:
        parse_aliases_text(text)
    assert str(info.value).startswith(message)


def test_watch_result_lines():
    result = WatchResult(path="/raw/a.fits", name="a.fits", status="problem",
                         problem="truncated FITS (unchanged for 30 s)")
    assert watch_result_lines(result, "21:04:17") == [
        "21:04:17 a.fits: truncated FITS (unchanged for 30 s)"]
    result = WatchResult(path="/raw/b.fits", name="b.fits", status="exists",
                         output="/out/b.fits", lines=["bias: m.fits (3 frames) - only one"])
    assert watch_result_lines(result) == [
        "b.fits: already calibrated (/out/b.fits), skipped",
        "    bias: m.fits (3 frames) - only one"]


def test_parse_options_reads_what_a_user_types():
    assert parse_options("fit", 1, " header ", "") == dict(
        dark_scale="fit", cosmics=True, gain="header", readnoise=None)
    assert parse_options("exposure", False, "1.5", "9")["readnoise"] == 9.0
    for gain in ("abc", "0", "-1", "inf"):
        with pytest.raises(ValueError, match="Gain"):
            parse_options("exposure", False, gain, "")
    with pytest.raises(ValueError, match="dark scale"):
        parse_options("ratio", False, "", "")
