"""Master frames that are right and say what went into them (issue 10,
items 3, 5, 8 and 10)."""

import datetime
import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clip
from astropy.time import Time

from ginga_ccdcal.cli import main
from ginga_ccdcal.combine import combine
from ginga_ccdcal.masters import (MasterOptions, build_masters, load_masters,
                                  master_data, stale_masters)
from ginga_ccdcal.sample import SyntheticCamera, write_night
from ginga_ccdcal.scan import scan_folder


def _set(path, **keywords):
    with fits.open(path, mode="update") as hdul:
        for key, value in keywords.items():
            hdul[0].header[key.replace("_", "-")] = value


def _raw(path):
    return fits.getdata(path).astype(np.float64)


# -- item 3: each flat gets its own dark ------------------------------------

def _mixed_flat_night(tmp_path):
    """Flats of 3 s and 12 s, a dark of each exposure, no bias."""
    camera = SyntheticCamera((40, 48), seed=21, dark_current=40.0)
    plan = [("dark", 3.0, None, 3), ("dark", 12.0, None, 3),
            {"frametype": "flat", "exptime": 3.0, "filter": "R", "count": 3,
             "level": 8000.0},
            {"frametype": "flat", "exptime": 12.0, "filter": "R", "count": 3,
             "level": 20000.0}]
    paths = write_night(tmp_path / "raw", camera, plan, noise=False)
    return camera, paths


def test_each_flat_gets_the_dark_of_its_own_exposure(tmp_path):
    camera, paths = _mixed_flat_night(tmp_path)
    scan = scan_folder(tmp_path / "raw")
    report = build_masters(scan.frames, tmp_path / "m")
    flat = next(m for m in report.masters if m.kind == "flat")
    assert flat.header["DARKSUB"] is True
    assert flat.header["NDARKSUB"] == 6
    history = "".join(str(h) for h in flat.header["HISTORY"])
    darks = {m.exptime: m for m in report.masters if m.kind == "dark"}
    assert "master_dark_3s.fits" in history and "master_dark_12s.fits" in history
    # The reference: each flat minus the dark of its exposure, scaled by
    # 1/median, median-combined, divided by the mean.
    scaled = []
    for path in paths[6:]:
        exptime = fits.getheader(path)["EXPTIME"]
        image = _raw(path) - master_data(darks[exptime])
        scaled.append(image / np.median(image))
    reference = np.median(scaled, axis=0)
    reference /= reference.mean()
    np.testing.assert_allclose(master_data(flat), reference, rtol=1e-5)
    # And it is the camera's true flat (noiseless night), not the flat plus
    # an exposure-dependent dark pattern.
    truth = camera.flats["R"] / camera.flats["R"].mean()
    np.testing.assert_allclose(master_data(flat), truth, rtol=2e-3)


def test_flat_without_a_dark_of_its_exposure_is_named(tmp_path):
    camera = SyntheticCamera((30, 30), seed=22)
    write_night(tmp_path / "raw", camera,
                [("dark", 3.0, None, 2), ("flat", 3.0, "R", 2), ("flat", 7.0, "R", 2)],
                noise=False)
    scan = scan_folder(tmp_path / "raw")
    report = build_masters(scan.frames, tmp_path / "m")
    flat = next(m for m in report.masters if m.kind == "flat")
    assert flat.header["DARKSUB"] is False and flat.header["NDARKSUB"] == 2
    problems = "\n".join(report.problems)
    assert "dark not subtracted from 2 of 4 flats" in problems
    sevens = [f.name for f in scan.frames if f.exptime == 7.0]
    assert all(name in problems for name in sevens)
    lines = "\n".join(report.summary(flat))
    assert "dark master_dark_3s.fits: same exposure" in lines and "no dark" in lines


# -- item 5: mean normalisation, and sigma clipping that clips ---------------

def test_master_flat_normalised_by_its_mean_by_default(night, tmp_path):
    scan = scan_folder(night.path)
    report = build_masters(scan.frames, tmp_path / "m")
    flats = [m for m in report.masters if m.kind == "flat"]
    assert flats
    for flat in flats:
        assert flat.header["FLATNORM"] == "mean"
        assert np.nanmean(master_data(flat)) == pytest.approx(1.0, abs=1e-5)
        assert np.isfinite(master_data(flat)).all()
    report = build_masters(scan.frames, tmp_path / "m2",
                           MasterOptions(flat_norm="median"))
    for flat in (m for m in report.masters if m.kind == "flat"):
        assert flat.header["FLATNORM"] == "median"
        assert np.nanmedian(master_data(flat)) == pytest.approx(1.0, abs=1e-5)


def test_flat_norm_option_on_the_command_line(night, tmp_path, capsys):
    assert main(["-q", "masters", str(night.path), "--out", str(tmp_path / "m"),
                 "--flat-norm", "median"]) == 0
    flat = next(m for m in load_masters(tmp_path / "m") if m.kind == "flat")
    assert flat.header["FLATNORM"] == "median"
    assert "normalised by its median" in capsys.readouterr().out


def test_unknown_flat_norm_is_refused(night, tmp_path):
    from ginga_ccdcal.errors import CcdcalError
    with pytest.raises(CcdcalError, match="flat_norm"):
        build_masters(scan_folder(night.path).frames, tmp_path / "m",
                      MasterOptions(flat_norm="mode"))


def test_default_clipping_is_robust_and_matches_astropy(camera):
    # Ten bias frames and one cosmic ray: a mean/std clip cannot reject it
    # (the largest possible deviation of 10 values is 2.85 sigma), a
    # median/MAD clip does.
    frames = [camera.frame("bias", seed=k).astype(np.float32) for k in range(10)]
    frames[3][5, 7] += 3000.0
    options = MasterOptions()
    assert (options.clip_func, options.clip_dev_func) == ("median", "mad_std")
    kwargs = options.combine_kwargs("bias")
    kwargs["sigma_clip"] = True
    ours = combine(frames, **kwargs)
    reference = sigma_clip(np.array(frames, dtype=np.float64), sigma=3.0, maxiters=1,
                           cenfunc="median", stdfunc="mad_std", axis=0)
    assert ours.n_rejected == int(reference.mask.sum()) > 0
    np.testing.assert_allclose(ours.data, reference.mean(axis=0), rtol=1e-6)
    old = combine(frames, method="average", sigma_clip=True,
                  sigma_clip_func="mean", sigma_clip_dev_func="std")
    assert old.n_rejected == 0


def test_sigma_clip_bias_on_the_sample_night_rejects(sample_night, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["-q", "masters", str(sample_night.path), "--out", str(out),
                 "--sigma-clip", "bias"]) == 0
    bias = next(m for m in load_masters(out) if m.kind == "bias")
    assert bias.header["CLIPPED"] is True
    assert bias.header["CLIPFUNC"] == "median" and bias.header["CLIPDEV"] == "mad_std"
    assert bias.header["NREJECT"] > 0
    text = capsys.readouterr().out
    assert f"sigma clipping rejected {bias.header['NREJECT']} pixels" in text


def test_dead_flat_pixels_are_finite_and_counted(tmp_path):
    camera = SyntheticCamera((30, 30), seed=23)
    paths = write_night(tmp_path / "raw", camera, [("bias", 0.0, None, 2),
                                                   ("flat", 5.0, "R", 3)], noise=False)
    bias_level = fits.getdata(paths[0])[4, 4]
    for path in paths[2:]:
        with fits.open(path, mode="update") as hdul:
            hdul[0].data[4, 4] = bias_level  # no light: zero after the bias
    report = build_masters(scan_folder(tmp_path / "raw").frames, tmp_path / "m")
    flat = next(m for m in report.masters if m.kind == "flat")
    data = master_data(flat)
    assert not np.isinf(data).any()
    assert flat.header["NLOWFLAT"] >= 1
    assert any("at or below zero" in line for line in report.summary(flat))


# -- item 8: the stale check asks the one rule -------------------------------

def test_new_binned_bias_does_not_make_the_unbinned_master_stale(tmp_path):
    camera = SyntheticCamera((40, 60), seed=24)
    write_night(tmp_path / "raw" / "1x1", camera, [("bias", 0.0, None, 2)])
    report = build_masters(scan_folder(tmp_path / "raw").frames, tmp_path / "m")
    [bias] = report.masters
    binned = SyntheticCamera((20, 30), seed=24)
    paths = write_night(tmp_path / "raw" / "2x2", binned, [("bias", 0.0, None, 1)],
                        start=datetime.datetime(2030, 1, 1))
    _set(paths[0], XBINNING=2, YBINNING=2)
    os.utime(paths[0], (bias.mtime + 60, bias.mtime + 60))
    frames = scan_folder(tmp_path / "raw").frames
    assert stale_masters([bias], frames) == []
    # A new 1x1 bias does make it stale.
    more = write_night(tmp_path / "raw" / "1x1b", camera, [("bias", 0.0, None, 1)])
    os.utime(more[0], (bias.mtime + 60, bias.mtime + 60))
    frames = scan_folder(tmp_path / "raw").frames
    assert stale_masters([bias], frames) == [(bias, 1)]


def test_new_flat_of_another_case_filter_is_not_stale(tmp_path):
    camera = SyntheticCamera((20, 20), seed=25)
    write_night(tmp_path / "raw" / "a", camera, [("flat", 5.0, "R", 2)], noise=False)
    report = build_masters(scan_folder(tmp_path / "raw").frames, tmp_path / "m")
    [flat] = report.masters
    paths = write_night(tmp_path / "raw" / "b", camera, [("flat", 5.0, "R", 1)],
                        noise=False)
    _set(paths[0], FILTER="r")
    os.utime(paths[0], (flat.mtime + 60, flat.mtime + 60))
    assert stale_masters([flat], scan_folder(tmp_path / "raw").frames) == []


# -- item 10: masters summarise their inputs ---------------------------------

def test_master_header_summarises_times_and_temperatures(tmp_path):
    camera = SyntheticCamera((20, 20), seed=26)
    start = datetime.datetime(2024, 3, 10, 2, 0, 0)
    paths = write_night(tmp_path / "raw", camera, [("bias", 0.0, None, 3),
                                                   ("dark", 10.0, None, 2)],
                        start=start, readout=10.0)
    # One set-point (biases of two set-points make two masters).
    temps = [-10.2, -8.6, -9.5]
    for path, temp in zip(paths[:3], temps):
        _set(path, CCD_TEMP=temp)
    report = build_masters(scan_folder(tmp_path / "raw").frames, tmp_path / "m")
    bias = next(m for m in report.masters if m.kind == "bias")
    h = bias.header
    assert h["CCD-TEMP"] == pytest.approx(np.mean(temps), abs=1e-3)
    assert h["CCDTMIN"] == -10.2 and h["CCDTMAX"] == -8.6
    assert bias.ccd_temp == pytest.approx(np.mean(temps), abs=1e-3)
    assert h["DATE-BEG"] == "2024-03-10T02:00:00.000"
    assert h["DATE-END"] == "2024-03-10T02:00:20.000"
    assert Time(h["DATE-OBS"]) == Time(h["DATE-BEG"])  # the first frame's
    assert h["DATE-AVG"] == "2024-03-10T02:00:10.000"
    assert h["MJD-AVG"] == pytest.approx(60379.0 + 2 / 24 + 10 / 86400, abs=1e-8)
    # Darks: the mid-time of each exposure is averaged.
    dark = next(m for m in report.masters if m.kind == "dark")
    assert dark.header["DATE-BEG"] == "2024-03-10T02:00:30.000"
    assert dark.header["DATE-END"] == "2024-03-10T02:00:50.000"
    assert dark.header["DATE-AVG"] == "2024-03-10T02:00:45.000"
    assert "lowest" in h.comments["CCDTMIN"] and "highest" in h.comments["CCDTMAX"]


def test_master_of_frames_without_dates_says_nothing_false(tmp_path):
    camera = SyntheticCamera((20, 20), seed=27)
    paths = write_night(tmp_path / "raw", camera, [("bias", 0.0, None, 2)])
    for path in paths:
        with fits.open(path, mode="update") as hdul:
            del hdul[0].header["DATE-OBS"]
            del hdul[0].header["CCD-TEMP"]
    report = build_masters(scan_folder(tmp_path / "raw").frames, tmp_path / "m")
    h = report.masters[0].header
    for key in ("DATE-BEG", "DATE-END", "DATE-AVG", "MJD-AVG", "CCD-TEMP", "CCDTMIN"):
        assert key not in h


# -- the CCDSoft trap night (issue 10, "done when") ---------------------------

def test_ccdsoft_night_masters(tmp_path):
    from ginga_ccdcal.sample import make_ccdsoft_night
    night = make_ccdsoft_night(tmp_path / "raw")
    frames = scan_folder(tmp_path / "raw").frames
    # (Flats saved as Light Frame are found by the classification.)
    assert all(f.frametype == night.truth[f.path] for f in frames)
    report = build_masters(frames, tmp_path / "m")
    by_name = {m.name: m for m in report.masters}
    # Flats of 2 s and 5 s, each with the dark of its own exposure.
    [flat] = [m for m in report.masters if m.kind == "flat"]
    assert flat.header["NDARKSUB"] == 6 and flat.header["DARKSUB"] is True
    history = "".join(str(h) for h in flat.header["HISTORY"])
    assert "master_dark_2s" in history and "master_dark_5s" in history
    truth = night.camera.flats["R"] / night.camera.flats["R"].mean()
    assert np.abs(master_data(flat) / truth - 1).max() < 0.02
    # The 60 s darks of the two set-points are never combined together.
    sixty = sorted(name for name in by_name if name.startswith("master_dark_60s"))
    assert sixty == ["master_dark_60s_-10C.fits", "master_dark_60s_-5C.fits"]
    # So are the biases: a master bias per set-point, each saying its own.
    biases = sorted((m for m in report.masters if m.kind == "bias"), key=lambda m: m.name)
    assert [m.name for m in biases] == ["master_bias_-10C.fits", "master_bias_-5C.fits"]
    for bias in biases:
        set_temp = float(bias.name[len("master_bias_"):-len("C.fits")])
        temps = [f.ccd_temp for f in night.of_type("bias") if f.set_temp == set_temp]
        assert bias.header["CCD-TEMP"] == pytest.approx(np.mean(temps), abs=1e-3)
        assert bias.header["CCDTMIN"] == pytest.approx(min(temps))
        assert bias.header["CCDTMAX"] == pytest.approx(max(temps))
