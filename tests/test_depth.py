"""Matching real nights need: tolerances, temperatures, binning, flat-darks,
users' own spellings, and a dark scale fitted to the light."""

import json

import numpy as np
import pytest
from astropy.io import fits

from ginga_ccdcal.calibrate import CalibrationOptions, calibrate_frame
from ginga_ccdcal.dark_scale import fit_dark_scale
from ginga_ccdcal.errors import CalibrationError
from ginga_ccdcal.masters import build_masters, load_masters, master_data
from ginga_ccdcal.match import match_light
from ginga_ccdcal.sample import SyntheticCamera, write_night
from ginga_ccdcal.scan import scan_folder
from ginga_ccdcal.cli import main


@pytest.mark.parametrize("true_scale", [0.8, 1.0, 1.25])
def test_fitted_dark_scale_recovers_truth(tmp_path, true_scale):
    camera = SyntheticCamera((160, 160), seed=11)
    plan = [("bias", 0.0, None, 5), ("dark", 120.0, None, 5),
            {"frametype": "light", "exptime": 300.0, "filter": "R", "count": 1,
             "dark_scale": true_scale, "stars": 15}]
    write_night(tmp_path / "raw", camera, plan)
    scan = scan_folder(tmp_path / "raw")
    report = build_masters(scan.frames, tmp_path / "m")
    light = scan.of_type("light")[0]
    match = match_light(light, report.masters)
    expected = 2.5 * true_scale  # exposure ratio times the "temperature" factor
    ccd = calibrate_frame(light, match, CalibrationOptions(dark_scale="fit"))
    assert ccd.header["DARKSCL"] == pytest.approx(expected, rel=0.02)
    assert ccd.header["DARKFIT"] is True
    # With the exposure ratio alone the hot pixels stay wrong when the
    # truth differs; the fit leaves less of them.
    plain = calibrate_frame(light, match)
    hot = camera.hot_pixels
    truth = camera.written[light.path]
    ideal = camera.ideal_light_of(truth)
    fit_err = np.abs(ccd.data[hot] - ideal[hot]).mean()
    plain_err = np.abs(plain.data[hot] - ideal[hot]).mean()
    if true_scale != 1.0:
        assert fit_err < plain_err


def test_fit_refuses_dark_with_bias_inside(tmp_path):
    camera = SyntheticCamera((40, 40), seed=1)
    write_night(tmp_path / "raw", camera, [("dark", 300.0, None, 3),
                                           ("light", 300.0, "R", 1)])
    scan = scan_folder(tmp_path / "raw")
    report = build_masters(scan.frames, tmp_path / "m")
    light = scan.of_type("light")[0]
    with pytest.raises(CalibrationError, match="still contains the bias"):
        calibrate_frame(light, match_light(light, report.masters),
                        CalibrationOptions(dark_scale="fit"))


def test_fit_dark_scale_needs_structure():
    with pytest.raises(ValueError):
        fit_dark_scale(np.ones((10, 10)), np.ones((10, 10)))


def test_flat_darks_used_for_flats_instead_of_scaling(tmp_path):
    camera = SyntheticCamera((40, 50), seed=2)
    plan = [("bias", 0.0, None, 3), ("dark", 300.0, None, 3), ("flat", 7.0, "R", 3),
            ("light", 300.0, "R", 1)]
    paths = write_night(tmp_path / "raw", camera, plan + [("dark", 7.0, None, 3)])
    flat_darks = paths[-3:]
    for path in flat_darks:
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["IMAGETYP"] = "Flat Dark"
    scan = scan_folder(tmp_path / "raw")
    assert {f.frametype for f in scan.frames if f.path in flat_darks} == {"dark"}
    report = build_masters(scan.frames, tmp_path / "m")
    flat = next(m for m in report.masters if m.kind == "flat")
    assert flat.header["DARKFILE"] == "master_dark_7s.fits"
    assert flat.header["DARKSCL"] == 1.0


def test_exposure_tolerance_and_temperature_split(tmp_path):
    camera = SyntheticCamera((30, 30), seed=3)
    darks = ((300.0, -20.0), (300.1, -20.2), (300.2, -19.9), (300.0, -10.0),
             (300.1, -10.1))
    paths = write_night(tmp_path / "raw", camera, [("bias", 0.0, None, 2)] +
                        [("dark", t, None, 1) for t, _ in darks])
    for path, (_, temp) in zip(paths[2:], darks):
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["CCD-TEMP"] = temp
    scan = scan_folder(tmp_path / "raw")
    report = build_masters(scan.frames, tmp_path / "m")
    darks = sorted((m.name, m.n_frames) for m in report.masters if m.kind == "dark")
    assert darks == [("master_dark_300s_-10C.fits", 2), ("master_dark_300s_-20C.fits", 3)]
    # A -20 C light gets the -20 C dark, with no warning; a -15 C one warns.
    light = scan.frames[0].__class__(**{**scan.of_type("dark")[0].__dict__,
                                       "frametype": "light", "ccd_temp": -20.0})
    match = match_light(light, report.masters)
    assert "-20C" in match.dark.master.name and not match.warnings
    light.ccd_temp = -15.0
    assert match_light(light, report.masters).warnings


def test_binned_frames_get_masters_of_their_own(tmp_path):
    full = SyntheticCamera((40, 60), seed=4)
    binned = SyntheticCamera((20, 30), seed=4)
    write_night(tmp_path / "raw" / "1x1", full, [("bias", 0.0, None, 2),
                                                 ("light", 30.0, "R", 1)])
    paths = write_night(tmp_path / "raw" / "2x2", binned, [("bias", 0.0, None, 2),
                                                           ("light", 30.0, "R", 1)])
    for path in paths:
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["XBINNING"] = 2
            hdul[0].header["YBINNING"] = 2
    scan = scan_folder(tmp_path / "raw")
    report = build_masters(scan.frames, tmp_path / "m")
    names = sorted(m.name for m in report.masters)
    assert names == ["master_bias_bin1x1.fits", "master_bias_bin2x2.fits"]
    for light in scan.of_type("light"):
        bias = match_light(light, report.masters).bias.master
        assert bias.binning == light.binning
        assert master_data(bias).shape == light.shape


def test_user_aliases_from_the_command_line(tmp_path, capsys):
    camera = SyntheticCamera((20, 20), seed=5)
    paths = write_night(tmp_path / "raw", camera, [("bias", 0.0, None, 2),
                                                   ("flat", 5.0, "R", 2)])
    for path, (kind, filt) in zip(paths, [("calib-z", None), ("calib-z", None),
                                          ("sky", "Halpha"), ("sky", "H-alpha")]):
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["IMAGETYP"] = kind
            if filt:
                hdul[0].header["FILTER"] = filt
    aliases = tmp_path / "aliases.json"
    aliases.write_text(json.dumps({"type": {"calib-z": "bias", "sky": "flat"},
                                   "filter": {"Halpha": "Ha", "H-alpha": "Ha"}}))
    assert main(["-q", "--aliases", str(aliases), "scan", str(tmp_path / "raw"),
                 "--group-by", "frametype", "filter"]) == 0
    out = capsys.readouterr().out
    assert "frametype = bias  (2 frames)" in out
    assert "filter = Ha  (2 frames)" in out
    aliases.write_text(json.dumps({"type": {"calib-z": "zero"}}))
    assert main(["-q", "--aliases", str(aliases), "scan", str(tmp_path / "raw")]) == 2
    assert "unknown frame type(s) zero" in capsys.readouterr().err


def test_subframe_uses_cutout_of_full_frame_masters(tmp_path):
    camera = SyntheticCamera((40, 60), seed=6)
    write_night(tmp_path / "raw", camera, [("bias", 0.0, None, 3), ("dark", 60.0, None, 3),
                                           ("flat", 5.0, "R", 3)], noise=False)
    scan = scan_folder(tmp_path / "raw")
    report = build_masters(scan.frames, tmp_path / "m")
    full = camera.frame("light", 60.0, "R", noise=False)
    sub = full[10:30, 15:45]
    header = fits.Header({"IMAGETYP": "Light Frame", "EXPTIME": 60.0, "FILTER": "R",
                          "XORGSUBF": 15, "YORGSUBF": 10})
    fits.PrimaryHDU(sub, header).writeto(tmp_path / "sub.fits")
    light = scan_folder(tmp_path, recursive=False).frames[0]
    match = match_light(light, report.masters)
    assert match.missing == [] and "subframe at x=15, y=10" in match.flat.reason
    ccd = calibrate_frame(light, match)
    flat = camera.flats["R"] / camera.flats["R"].mean()  # as the master flat
    expected = ((sub - camera.bias[10:30, 15:45] - 60 * camera.dark_rate[10:30, 15:45])
                / flat[10:30, 15:45])
    np.testing.assert_allclose(ccd.data, expected, atol=3)
    # Off the edge of the masters: no cut-out, so no master.
    header["XORGSUBF"] = 40
    fits.PrimaryHDU(sub, header).writeto(tmp_path / "sub.fits", overwrite=True)
    light = scan_folder(tmp_path, recursive=False).frames[0]
    assert match_light(light, report.masters).missing == ["bias", "dark", "flat"]


def test_aliases_file_beside_ginga_settings_is_the_default(tmp_path, monkeypatch, capsys):
    from ginga_ccdcal.classify import default_aliases_path, save_aliases
    monkeypatch.setenv("GINGA_HOME", str(tmp_path / "ginga-home"))
    camera = SyntheticCamera((20, 20), seed=5)
    paths = write_night(tmp_path / "raw", camera, [("bias", 0.0, None, 2)])
    for path in paths:
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["IMAGETYP"] = "calib-z"
    assert main(["-q", "scan", str(tmp_path / "raw")]) == 0
    assert "2 frame type(s) guessed" in capsys.readouterr().out
    written = save_aliases({"type": {"calib-z": "bias"}})
    assert written == default_aliases_path()
    assert main(["-q", "scan", str(tmp_path / "raw")]) == 0
    out = capsys.readouterr().out
    assert "frametype = bias  (2 frames)" in out and "guessed" not in out
