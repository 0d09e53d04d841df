"""CCD characterisation against synthetic cameras whose truth is known."""

import os

import numpy as np
import pytest
from astropy.io import fits

from ginga_ccdcal.characterise import (REPORT_FILES, CCDReport, characterise,
                                       characterise_folder, measure_vignetting,
                                       radial_profile, write_report)
from ginga_ccdcal.errors import Cancelled, CcdcalError
from ginga_ccdcal.masters import build_masters
from ginga_ccdcal.progress import CancelToken
from ginga_ccdcal.sample import SyntheticCamera, write_frame, write_night
from ginga_ccdcal.scan import scan_folder

SHAPE = (200, 200)
#: Pixels the tests make dead (no response to light) in every flat.
DEAD = [(20, 30), (150, 77), (99, 180), (0, 5)]

#: Two cameras: flats at three levels (photon-transfer fit) and at one
#: level (two-flat/two-bias formula).
CAMERAS = {
    "ptc": dict(read_noise=7.0, gain=1.2, dark_current=0.2, seed=11,
                flat_levels=(5000, 15000, 30000),
                method="photon transfer fit"),
    "janesick": dict(read_noise=12.0, gain=2.5, dark_current=0.5, seed=12,
                     flat_levels=(20000,),
                     method="two-flat/two-bias (Janesick)"),
}


def _camera(config, **extra):
    cam = SyntheticCamera(SHAPE, read_noise=config["read_noise"], gain=config["gain"],
                          dark_current=config["dark_current"], seed=config["seed"],
                          **extra)
    for flat in cam.flats.values():
        for y, x in DEAD:
            flat[y, x] = 0.0
    return cam


def _plan(levels):
    plan = [("bias", 0.0, None, 6), ("dark", 60.0, None, 5), ("dark", 180.0, None, 5)]
    for level in levels:
        plan.append(dict(frametype="flat", exptime=10.0, filter="R", count=2,
                         level=level))
    plan.append(dict(frametype="flat", exptime=10.0, filter="V", count=3, level=20000))
    plan.append(("light", 120.0, "R", 2))
    return plan


@pytest.fixture(scope="module", params=sorted(CAMERAS))
def measured(request, tmp_path_factory):
    """(config, camera, folder, report) for each camera of `CAMERAS`."""
    config = CAMERAS[request.param]
    cam = _camera(config)
    folder = tmp_path_factory.mktemp(f"char-{request.param}")
    write_night(folder, cam, _plan(config["flat_levels"]), seed=config["seed"])
    return config, cam, folder, characterise(scan_folder(folder))


def _close(value, truth, rel=0.05):
    assert value is not None
    assert abs(value - truth) <= rel * abs(truth), (value, truth)


def test_read_noise_within_5_percent(measured):
    config, cam, _, report = measured
    _close(report.read_noise_e, config["read_noise"])
    # uint16 rounding adds 1/12 ADU^2 to each frame's variance.
    truth_adu = np.sqrt((config["read_noise"] / config["gain"]) ** 2 + 1 / 12)
    _close(report.read_noise_adu, truth_adu, 0.02)
    assert len(report.read_noise_pairs) == 3


def test_gain_within_5_percent_by_the_right_method(measured):
    config, _, _, report = measured
    _close(report.gain, config["gain"])
    assert report.gain_method == config["method"]
    assert report.gain_error is not None and report.gain_error < 0.02 * report.gain
    flat_points = [p for p in report.ptc if p.filter is not None]
    # Three R levels + one V pair, or one R pair + one V pair.
    assert len(flat_points) == len(config["flat_levels"]) + 1
    assert report.ptc[0].filter is None and report.ptc[0].signal == 0.0


def test_dark_current_within_5_percent_per_exposure_and_fitted(measured):
    config, cam, _, report = measured
    _close(report.dark_current_e, config["dark_current"])
    # Tighter against the camera's actual map (amplifier glow raises the mean).
    rate = cam.trim(cam.dark_rate)[~cam.trim(cam.hot_pixels)]
    _close(report.dark_current_adu, float(rate.mean()), 0.03)
    assert [d.exptime for d in report.darks] == [60.0, 180.0]
    for dark in report.darks:
        _close(dark.rate_e, config["dark_current"])
        assert dark.ccd_temp == pytest.approx(cam.ccd_temp)
        assert dark.n_frames == 5 and dark.source == "raw darks"
    assert report.dark_method == "slope over 2 exposures"
    assert report.dark_temp == pytest.approx(cam.ccd_temp)


def test_hot_pixels_match_the_camera(measured):
    _, cam, _, report = measured
    truth = cam.trim(cam.hot_pixels)
    assert truth.sum() == 40
    assert abs(report.n_hot - truth.sum()) <= 2
    assert (report.hot_map & truth).sum() >= 0.95 * truth.sum()
    assert report.hot_map.shape == SHAPE


def test_hot_threshold_in_electrons(measured):
    _, cam, folder, _ = measured
    scan = scan_folder(folder)
    # The camera's hot pixels run at tens of e-/s; normal ones below 1.
    assert characterise(scan, hot_threshold=5.0).n_hot == cam.hot_pixels.sum()
    assert characterise(scan, hot_threshold=1e4).n_hot == 0


def test_vignetting_matches_the_true_flat(measured):
    _, cam, _, report = measured
    assert set(report.vignetting) == {"R", "V"}
    for filt, value in report.vignetting.items():
        truth, _ = measure_vignetting(cam.trim(cam.flats[filt]))
        assert value == pytest.approx(truth, abs=0.005)
        assert value == pytest.approx(cam.vignetting, abs=0.02)
        radius, level = report.flat_profiles[filt]
        assert level[0] == 1.0 and level[-1] < 1 - 0.5 * cam.vignetting
        assert np.all(np.diff(radius) > 0)


def test_bias_structure_matches_the_true_bias(measured):
    _, cam, _, report = measured
    bias = cam.trim(cam.bias)
    assert report.bias_level == pytest.approx(np.median(bias), abs=0.5)
    assert report.bias_row_profile.shape == (SHAPE[0],)
    assert report.bias_col_profile.shape == (SHAPE[1],)
    # Profiles are averages of 6 noisy frames: within a few tenths of an ADU.
    assert np.abs(report.bias_row_profile - bias.mean(axis=1)).max() < 1.0
    assert report.bias_row_ptp == pytest.approx(np.ptp(bias.mean(axis=1)), abs=1.0)
    assert report.bias_col_ptp == pytest.approx(np.ptp(bias.mean(axis=0)), abs=1.0)


def test_bad_pixel_mask_flags_dead_and_hot_pixels(measured):
    config, cam, _, report = measured
    mask = report.bad_pixel_mask
    assert mask.shape == SHAPE
    assert all(mask[y, x] for y, x in DEAD)
    assert np.all(mask[cam.trim(cam.hot_pixels)])
    # Not a mask of everything: a small fraction of the pixels.
    assert report.n_bad == mask.sum() < 0.005 * mask.size
    if len(config["flat_levels"]) > 1:
        assert "ratio of filter R flats" in report.bad_pixel_source
    else:
        assert "normalised" in report.bad_pixel_source


def test_lines_and_header_carry_the_numbers(measured):
    _, _, _, report = measured
    text = "\n".join(report.lines())
    assert f"{report.read_noise_e:.3f} e-" in text
    assert f"{report.gain:.4f} e-/ADU" in text
    assert f"hot pixels      {report.n_hot} " in text
    assert "filter R:" in text and "filter V:" in text
    header = report.to_header(fits.Header())
    assert header["RDNOISE"] == pytest.approx(report.read_noise_e, abs=1e-4)
    assert header["GAIN"] == pytest.approx(report.gain, abs=1e-5)
    assert header["DARKCUR"] == pytest.approx(report.dark_current_e, abs=1e-6)
    assert header["NHOTPIX"] == report.n_hot
    assert header["NBADPIX"] == report.n_bad
    assert header["VIGNET"] == pytest.approx(max(report.vignetting.values()), abs=1e-4)
    assert {header["VIGFILT1"], header["VIGFILT2"]} == {"R", "V"}
    assert header["DARKTEMP"] == pytest.approx(report.dark_temp, abs=0.01)


def test_write_report(measured, tmp_path):
    _, _, _, report = measured
    written = write_report(report, tmp_path / "report")
    assert set(written) == set(REPORT_FILES)
    for path in written.values():
        assert os.path.getsize(path) > 0
    for kind in ("ptc", "bias", "hot", "flat"):
        with open(written[kind], "rb") as stream:
            assert stream.read(8) == b"\x89PNG\r\n\x1a\n"
    page = open(written["html"], encoding="utf-8").read()
    for kind in ("ptc", "bias", "hot", "flat", "mask"):
        assert REPORT_FILES[kind] in page
    assert open(written["text"], encoding="utf-8").read().splitlines() == report.lines()
    with fits.open(written["mask"]) as hdul:
        assert np.array_equal(hdul[0].data.astype(bool), report.bad_pixel_mask)
        assert hdul[0].header["NBADPIX"] == report.n_bad
        assert "CCDCALV" in hdul[0].header  # a product: scans never take it as raw


def test_overscan_night_is_trimmed_and_measured(tmp_path):
    """IRAF headers with BIASSEC/TRIMSEC: the overscan is cut off first."""
    config = dict(read_noise=9.0, gain=1.5, dark_current=0.3, seed=21)
    cam = _camera(config, overscan_columns=12)
    write_night(tmp_path, cam, _plan((20000,)), style="iraf", seed=21)
    report = characterise(scan_folder(tmp_path))
    assert report.shape == SHAPE
    _close(report.read_noise_e, config["read_noise"])
    _close(report.gain, config["gain"])
    _close(report.dark_current_e, config["dark_current"])
    assert abs(report.n_hot - cam.hot_pixels.sum()) <= 2
    assert all(report.bad_pixel_mask[y, x] for y, x in DEAD)


def test_masters_are_used_when_given(tmp_path):
    config = CAMERAS["janesick"]
    cam = _camera(config)
    raw = tmp_path / "raw"
    write_night(raw, cam, _plan(config["flat_levels"]), seed=config["seed"])
    scan = scan_folder(raw)
    masters = build_masters(scan.frames, str(tmp_path / "masters")).masters
    report = characterise(scan, masters)
    assert [d.source for d in report.darks] == ["master_dark_60s.fits",
                                                "master_dark_180s.fits"]
    _close(report.dark_current_e, config["dark_current"])
    for filt, value in report.vignetting.items():
        assert value == pytest.approx(measure_vignetting(cam.trim(cam.flats[filt]))[0],
                                      abs=0.005)


def test_saturated_flats_are_left_out_of_the_gain(tmp_path):
    cam = SyntheticCamera(SHAPE, read_noise=8.0, gain=2.0, seed=6)
    plan = [("bias", 0.0, None, 4),
            dict(frametype="flat", exptime=5.0, filter="R", count=2, level=20000),
            # The centre of these flats is above 65535 ADU: clipped.
            dict(frametype="flat", exptime=5.0, filter="R", count=2, level=64000)]
    write_night(tmp_path, cam, plan, seed=6)
    report = characterise(scan_folder(tmp_path))
    assert [p.filter for p in report.ptc] == [None, "R"]
    assert report.gain_method == "two-flat/two-bias (Janesick)"
    _close(report.gain, 2.0)
    assert any("2 saturated flat(s)" in note for note in report.notes)


def test_header_gain_when_there_are_no_flats(tmp_path):
    cam = SyntheticCamera(SHAPE, read_noise=8.0, gain=1.8, seed=5)
    write_night(tmp_path, cam, [("bias", 0.0, None, 4), ("dark", 100.0, None, 3)],
                style="maxim", seed=5)
    report = characterise(scan_folder(tmp_path))
    assert report.gain_method == "header EGAIN" and report.gain == 1.8
    _close(report.read_noise_e, 8.0)
    assert report.vignetting == {} and report.bad_pixel_mask is None
    assert report.darks[0].n_frames == 3
    assert report.dark_method == "level / exposure"
    text = "\n".join(report.lines())
    assert "vignetting      not measured" in text and "no flats" in text
    written = write_report(report, tmp_path / "out")
    assert set(written) == {"html", "text", "bias", "hot"}


def test_other_setups_are_left_out(tmp_path):
    cam = SyntheticCamera((64, 64), seed=2)
    write_night(tmp_path, cam, [("bias", 0.0, None, 4)], seed=2)
    odd = SyntheticCamera((32, 48), seed=3)
    header = fits.Header({"IMAGETYP": "Bias Frame", "EXPTIME": 0.0})
    write_frame(tmp_path / "odd.fit", odd.frame("bias"), header)
    report = characterise(scan_folder(tmp_path))
    assert report.shape == (64, 64) and report.n_bias == 4
    assert any("another shape" in note for note in report.notes)


def test_no_calibration_frames_is_an_error(tmp_path):
    cam = SyntheticCamera((32, 32), seed=4)
    write_night(tmp_path, cam, [("light", 10.0, "R", 2)], seed=4)
    with pytest.raises(CcdcalError, match="no bias, dark or flat"):
        characterise(scan_folder(tmp_path))


def test_characterise_folder_progress_cancel_and_report(measured, tmp_path):
    _, _, folder, report = measured
    calls = []
    again = characterise_folder(folder, tmp_path / "out",
                                progress=lambda *args: calls.append(args))
    assert again.gain == pytest.approx(report.gain)
    assert os.path.exists(tmp_path / "out" / REPORT_FILES["html"])
    fractions = [done / total for done, total, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("gain" in message for _, _, message in calls)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        characterise_folder(folder, progress=None, cancel=token)
    assert isinstance(characterise_folder(folder), CCDReport)


def test_measure_vignetting_ignores_dust_and_dead_pixels():
    y, x = np.mgrid[0:120, 0:160]
    r2 = ((y - 70.0) / 120) ** 2 + ((x - 60.0) / 160) ** 2
    worst = max(((yc - 70.0) / 120) ** 2 + ((xc - 60.0) / 160) ** 2
                for yc in (0, 119) for xc in (0, 159))
    flat = 1 - 0.3 * r2 / worst
    value, peak = measure_vignetting(flat)
    assert value == pytest.approx(0.3, abs=1e-6)
    assert peak == pytest.approx((70.0, 60.0), abs=1.5)
    spoiled = flat.copy()
    spoiled[30:40, 100:110] *= 0.9     # a dust shadow
    spoiled[5, 5] = 0.0                # a dead pixel near a corner
    spoiled[60, :] = np.nan            # a masked row
    assert measure_vignetting(spoiled)[0] == pytest.approx(0.3, abs=0.003)
    radius, level = radial_profile(flat, peak)
    assert level[0] == 1.0 and np.all(np.diff(level) < 0)


def test_sample_night_real_headers(sample_night):
    """The Feder sample night: MaxIm overscan (OSCANST), one flat level."""
    cam = sample_night.camera
    report = characterise(scan_folder(sample_night.path))
    assert report.shape == cam.shape
    _close(report.read_noise_e, cam.read_noise)
    _close(report.gain, cam.gain)
    assert report.gain_method == "two-flat/two-bias (Janesick)"
    assert abs(report.n_hot - cam.hot_pixels.sum()) <= 2
    assert report.dark_temp == pytest.approx(cam.ccd_temp, abs=0.5)
    assert report.vignetting["R"] == pytest.approx(
        measure_vignetting(cam.trim(cam.flats["R"]))[0], abs=0.01)


# -- issue 10, item 11: dark current per set-point, no pixel-wise minimum ----

SET_POINTS = {-10.0: 0.2, -5.0: 0.6}   # CCD temperature -> dark current, e-/s


def _two_set_point_night(tmp_path):
    """Bias and darks (30 s and 90 s) at -10 C and at -5 C, in two folders."""
    cameras = {}
    for temp, current in SET_POINTS.items():
        cam = SyntheticCamera((60, 60), seed=31, read_noise=5.0, gain=1.5,
                              dark_current=current, ccd_temp=temp)
        write_night(tmp_path / "raw" / f"{temp:+.0f}C", cam,
                    [("bias", 0.0, None, 4), ("dark", 30.0, None, 3),
                     ("dark", 90.0, None, 3)], seed=int(-temp))
        cameras[temp] = cam
    return cameras


def _true_rate_adu(cam):
    return float(cam.dark_rate[~cam.hot_pixels].mean())


def test_dark_current_per_set_point_never_mixed(tmp_path):
    cameras = _two_set_point_night(tmp_path)
    report = characterise(scan_folder(tmp_path / "raw"))
    levels = sorted((d.ccd_temp, d.exptime) for d in report.darks)
    assert levels == [(-10.0, 30.0), (-10.0, 90.0), (-5.0, 30.0), (-5.0, 90.0)]
    assert [c.set_point for c in report.dark_currents] == [-10.0, -5.0]
    for current in report.dark_currents:
        _close(current.rate_adu, _true_rate_adu(cameras[current.set_point]), 0.05)
        assert current.method == "slope over 2 exposures"
    text = "\n".join(report.lines())
    assert "set-point -10.0 C" in text and "set-point -5.0 C" in text
    # The headline number names its set-point.
    assert report.dark_temp in SET_POINTS
    _close(report.dark_current_adu, _true_rate_adu(cameras[report.dark_temp]), 0.05)


def test_masters_of_the_same_set_point_are_used(tmp_path):
    _two_set_point_night(tmp_path)
    scan = scan_folder(tmp_path / "raw")
    masters = build_masters(scan.frames, str(tmp_path / "masters")).masters
    report = characterise(scan, masters)
    assert sorted(d.source for d in report.darks) == sorted(
        f"master_dark_{t:g}s_{c:+.0f}C.fits" for t in (30, 90) for c in SET_POINTS)
    for dark in report.darks:
        assert dark.source == f"master_dark_{dark.exptime:g}s_{dark.ccd_temp:+.0f}C.fits"


def test_two_darks_give_an_unbiased_level(tmp_path):
    # The pixel-wise minimum of two darks sits about 0.56 sigma low: with
    # 6.7 ADU of read noise that is below zero for a 3.3 ADU dark level.
    cam = SyntheticCamera((80, 80), seed=32, read_noise=10.0, gain=1.5,
                          dark_current=0.5)
    write_night(tmp_path / "raw", cam, [("bias", 0.0, None, 6), ("dark", 10.0, None, 2),
                                        ("dark", 60.0, None, 2)], seed=3)
    report = characterise(scan_folder(tmp_path / "raw"))
    rate = _true_rate_adu(cam)
    for dark in report.darks:
        assert dark.n_frames == 2
        assert abs(dark.level_adu - rate * dark.exptime) < 0.5, dark


def test_flats_of_two_exposures_each_get_their_own_dark(tmp_path):
    # A strong dark current: 1 s flats at 3000 ADU and 20 s flats at 20000
    # ADU less one 10.5 s dark would be 9.5 s of dark off each way (13 % of
    # the faint flats), and the vignetting with them.
    cam = SyntheticCamera((80, 80), seed=33, dark_current=60.0, hot_pixel_fraction=0)
    write_night(tmp_path / "raw", cam,
                [("bias", 0.0, None, 6), ("dark", 1.0, None, 3), ("dark", 20.0, None, 3),
                 dict(frametype="flat", exptime=1.0, filter="R", count=2, level=3000),
                 dict(frametype="flat", exptime=20.0, filter="R", count=2, level=20000)],
                seed=4)
    report = characterise(scan_folder(tmp_path / "raw"))
    truth = measure_vignetting(cam.flats["R"])[0]
    assert report.vignetting["R"] == pytest.approx(truth, abs=0.003)


def test_noiseless_flats_do_not_stop_the_gain_fit(tmp_path):
    # Flat pairs with zero variance (made in code without noise) cannot
    # weight a photon-transfer fit by 1/variance: a note, not a traceback.
    cam = SyntheticCamera((40, 40), seed=34)
    write_night(tmp_path / "raw", cam,
                [("bias", 0.0, None, 2),
                 dict(frametype="flat", exptime=1.0, filter="R", count=2, level=3000),
                 dict(frametype="flat", exptime=2.0, filter="R", count=2, level=20000)],
                noise=False)
    report = characterise(scan_folder(tmp_path / "raw"))
    assert report.gain is None or report.gain_method == "header EGAIN"
    assert any("variance" in note for note in report.notes)
