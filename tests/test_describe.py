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


def _match(bias=True, dark=True, flat=True, bias_in_dark=False):
    from types import SimpleNamespace
    from ginga_ccdcal.match import Choice, MatchResult

    def choice(role, present, **extra):
        master = SimpleNamespace(name=f"master_{role}.fits", **extra) if present else None
        return Choice(role, master, "why " + role)

    return MatchResult(frame=None, bias=choice("bias", bias),
                       dark=choice("dark", dark, bias_subtracted=not bias_in_dark),
                       flat=choice("flat", flat))


def test_checklist_and_states_say_what_is_missing():
    from ginga_ccdcal.describe import (checklist_items, checklist_text, match_banner,
                                       match_state, watch_state)
    full = _match()
    assert checklist_text(full) == "bias \u2713  dark \u2713  flat \u2713"
    assert match_state(full) == ("calibrated", "")
    assert match_banner(full) is None
    no_flat = _match(flat=False)
    assert checklist_text(no_flat) == "bias \u2713  dark \u2713  flat \u2717"
    assert checklist_items(no_flat)[2] == ("flat", False, "why flat")
    assert match_state(no_flat) == ("partly calibrated", "no master flat")
    assert match_banner(no_flat) == "partly calibrated: flat NOT applied (why flat)"
    # a dark that holds the bias applies the bias step
    in_dark = _match(bias=False, bias_in_dark=True)
    assert checklist_items(in_dark)[0][:2] == ("bias", True)
    none = _match(False, False, False)
    assert match_state(none) == ("not calibrated", "no master bias, dark, flat")
    assert match_banner(none).startswith("NOT calibrated: bias NOT applied (why bias)")
    assert checklist_text(None) == "no masters"
    result = WatchResult(path="/raw/a.fits", name="a.fits", status="problem",
                         problem="truncated FITS")
    assert watch_state(result) == ("failed", "truncated FITS")
    result = WatchResult(path="/raw/b.fits", name="b.fits", status="calibrated",
                         match=no_flat)
    assert watch_state(result) == ("partly calibrated", "no master flat")
    assert watch_state(WatchResult(path="/raw/c.fits", name="c.fits",
                                   status="calibration")) is None
