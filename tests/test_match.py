"""Matching rules, alone: which master for which light, and the reason given."""

import pytest

from ginga_ccdcal.masters import MasterFrame
from ginga_ccdcal.match import (choose_dark, choose_flat, compatible, match_light,
                                setup_key)
from ginga_ccdcal.scan import Frame

SHAPE = (100, 120)


def light(exptime=300.0, filt="R", temp=-20.0, shape=SHAPE, binning=(1, 1)):
    return Frame(path="/raw/light.fit", header={}, hdu=0, shape=shape,
                 frametype="light", type_source="IMAGETYP", exptime=exptime,
                 filter=filt, ccd_temp=temp, binning=binning)


def master(kind, exptime=None, filt=None, temp=-20.0, bias_subtracted=True,
           shape=SHAPE, binning=(1, 1), name=None):
    name = name or f"/m/{kind}_{exptime}_{filt}_{temp}.fits"
    return MasterFrame(path=name, kind=kind, exptime=exptime, filter=filt,
                       ccd_temp=temp, shape=shape, binning=binning,
                       bias_subtracted=bias_subtracted, n_frames=5)


BIAS = master("bias", 0.0)


def test_same_exposure_dark_preferred():
    masters = [BIAS, master("dark", 60.0), master("dark", 300.0), master("dark", 600.0)]
    choice = choose_dark(light(), masters)
    assert choice.master.exptime == 300.0
    assert choice.scale == 1.0
    assert "same exposure" in choice.reason


def test_exposure_tolerance():
    choice = choose_dark(light(exptime=300.2), [BIAS, master("dark", 300.0)])
    assert choice.scale == 1.0


def test_nearest_dark_scaled_by_exposure_ratio():
    masters = [BIAS, master("dark", 60.0), master("dark", 120.0)]
    choice = choose_dark(light(exptime=300.0), masters)
    assert choice.master.exptime == 120.0
    assert choice.scale == pytest.approx(2.5)
    assert "scaled 120 s -> 300 s" in choice.reason


def test_refuses_to_scale_dark_with_bias_in_it():
    masters = [BIAS, master("dark", 120.0, bias_subtracted=False)]
    result = match_light(light(exptime=300.0), masters)
    assert not result.dark
    assert "not bias-subtracted" in result.dark.reason
    assert "dark" in result.missing


def test_unsubtracted_dark_of_same_exposure_replaces_bias():
    masters = [master("dark", 300.0, bias_subtracted=False)]
    result = match_light(light(), masters)
    assert result.dark.master.exptime == 300.0
    assert result.bias_in_dark
    assert "bias" not in result.missing
    assert any("included in the dark" in line for line in result.describe())


def test_bias_subtracted_dark_needs_a_bias():
    result = match_light(light(), [master("dark", 300.0)])
    assert not result.dark and not result.bias
    assert result.missing == ["bias", "dark", "flat"]


def test_temperature_difference_warns():
    masters = [BIAS, master("dark", 300.0, temp=-10.0)]
    result = match_light(light(temp=-20.0), masters)
    assert result.dark
    assert any("-10.0 C" in w for w in result.warnings)


def test_closest_temperature_among_same_exposure():
    masters = [BIAS, master("dark", 300.0, temp=-10.0), master("dark", 300.0, temp=-19.5)]
    assert choose_dark(light(), masters).master.ccd_temp == -19.5


def test_flat_by_filter_ignoring_spaces_and_warning_on_case():
    masters = [master("flat", 10.0, "R"), master("flat", 10.0, "V")]
    assert not choose_flat(light(filt=" V "), masters).warnings
    case_only = choose_flat(light(filt=" v "), masters)
    assert case_only.master.filter == "V" and case_only.warnings
    missing = choose_flat(light(filt="B"), masters)
    assert not missing
    assert "no master flat for filter B" in missing.reason and "R, V" in missing.reason


def test_setup_must_match():
    binned = [master("bias", 0.0, binning=(2, 2), shape=(50, 60)),
              master("dark", 300.0, binning=(2, 2), shape=(50, 60)),
              master("flat", 10.0, "R", binning=(2, 2), shape=(50, 60))]
    result = match_light(light(), binned)
    assert result.missing == ["bias", "dark", "flat"]
    result = match_light(light(shape=(50, 60), binning=(2, 2)), binned)
    assert result.missing == []


def test_no_exposure_no_dark():
    result = match_light(light(exptime=None), [BIAS, master("dark", 300.0)])
    assert not result.dark and "no exposure time" in result.dark.reason


def test_describe_names_every_step():
    masters = [BIAS, master("dark", 120.0, name="/m/master_dark_120s.fits"),
               master("flat", 10.0, "R", name="/m/master_flat_R.fits")]
    lines = match_light(light(), masters).describe()
    # Each master is named with its version (frames combined, build time).
    assert lines[1].startswith("dark: master_dark_120s.fits (5 frames) - scaled")
    assert lines[2] == "flat: master_flat_R.fits (5 frames) - filter R"


# -- one rule for "which master fits this frame" (issue 10, item 8) ---------

def test_usable_bias_including_dark_beats_closer_bias_subtracted_one():
    # No master bias: the bias-subtracted dark, 0.5 C closer, cannot be
    # used; the dark that includes the bias can, and must be chosen.
    masters = [master("dark", 300.0, temp=-20.0, name="/m/sub.fits"),
               master("dark", 300.0, temp=-19.5, bias_subtracted=False,
                      name="/m/with_bias.fits")]
    frame = light(temp=-20.0)
    choice = choose_dark(frame, masters, bias_available=False)
    assert choice.master is not None
    assert choice.master.name == "with_bias.fits"
    result = match_light(frame, masters)
    assert result.bias_in_dark and result.missing == ["flat"]


def test_with_a_bias_the_closer_temperature_wins():
    masters = [BIAS, master("dark", 300.0, temp=-15.0, name="/m/warm.fits"),
               master("dark", 300.0, temp=-19.5, bias_subtracted=False,
                      name="/m/cold.fits")]
    assert choose_dark(light(temp=-20.0), masters).master.name == "cold.fits"


def test_compatible_checks_shape_binning_exposure_filter_and_temperature():
    frame = light()
    assert compatible(frame, master("bias", 0.0))
    assert not compatible(frame, master("bias", 0.0, binning=(2, 2), shape=(50, 60)))
    assert not compatible(frame, master("bias", 0.0, shape=(100, 100)))
    assert compatible(frame, master("dark", 300.3))
    assert not compatible(frame, master("dark", 120.0))
    assert compatible(frame, master("dark", 120.0), exptime=120.0)
    assert not compatible(frame, master("dark", 300.0, temp=-10.0), temp_tolerance=2.0)
    assert compatible(frame, master("dark", 300.0, temp=-10.0))
    assert compatible(frame, master("flat", 10.0, "R"))
    assert not compatible(frame, master("flat", 10.0, "V"))
    assert not compatible(frame, master("flat", 10.0, "r"))


def test_setup_key_uses_the_raw_shape_of_trimmed_masters():
    trimmed = MasterFrame(path="/m/b.fits", kind="bias", shape=(100, 110),
                          raw_shape=SHAPE, overscan=True)
    assert setup_key(trimmed) == setup_key(light())


# -- filters (issue 10, item 7, match side) ---------------------------------

def test_exact_filter_first_then_case_only_with_a_warning():
    masters = [master("flat", 10.0, "R", name="/m/R.fits"),
               master("flat", 10.0, "r", name="/m/r_sdss.fits")]
    exact = choose_flat(light(filt="r"), masters)
    assert exact.master.name == "r_sdss.fits" and not exact.warnings
    exact = choose_flat(light(filt="R"), masters)
    assert exact.master.name == "R.fits" and not exact.warnings
    only_upper = choose_flat(light(filt="r"), masters[:1])
    assert only_upper.master.name == "R.fits"
    assert only_upper.warnings and "case" in only_upper.warnings[0]
    assert "'r'" in only_upper.warnings[0] and "'R'" in only_upper.warnings[0]
