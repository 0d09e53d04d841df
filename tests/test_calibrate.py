"""Calibrated numbers: against known truth, and against a plain ccdproc reduction."""

import numpy as np
import pytest
from astropy import units as u
from astropy.modeling import models
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.stats import mad_std
import ccdproc

from ginga_ccdcal.calibrate import CalibrationOptions, calibrate_and_write, calibrate_frame
from ginga_ccdcal.errors import CalibrationError
from ginga_ccdcal.masters import build_masters, master_data
from ginga_ccdcal.match import match_light
from ginga_ccdcal.safe_write import OutputExists
from ginga_ccdcal.sample import SyntheticCamera, write_night
from ginga_ccdcal.scan import scan_folder

# Darks of 60 and 120 s only, lights of 300 s in two filters: the lab case
# where the dark must be scaled.
PLAN = [("bias", 0.0, None, 7), ("dark", 60.0, None, 5), ("dark", 120.0, None, 5),
        ("flat", 10.0, "R", 5), ("flat", 8.0, "V", 5),
        ("light", 300.0, "R", 2), ("light", 300.0, "V", 2)]


def _reduce(tmp_path, camera, noise):
    raw = tmp_path / "raw"
    write_night(raw, camera, PLAN, style="maxim", seed=4, noise=noise)
    scan = scan_folder(raw)
    report = build_masters(scan.frames, tmp_path / "masters")
    assert not report.problems
    return scan, report


def test_noiseless_night_recovers_truth_exactly(tmp_path):
    camera = SyntheticCamera(shape=(48, 64), seed=2)
    scan, report = _reduce(tmp_path, camera, noise=False)
    bias = master_data(next(m for m in report.masters if m.kind == "bias"))
    np.testing.assert_allclose(bias, camera.bias, atol=0.5)
    for light in scan.of_type("light"):
        match = match_light(light, report.masters)
        assert match.dark.scale == pytest.approx(2.5)
        assert match.flat.master.filter == light.filter
        ccd = calibrate_frame(light, match)
        # Noiseless raw = bias + dark*t + flat*signal, rounded to integers:
        # calibration must undo it to within the rounding of the inputs.
        flat = camera.flats[light.filter]  # the master flat is mean-normalised
        expected = ((fits.getdata(light.path).astype(float) - camera.bias
                     - camera.dark_rate * 300.0) / (flat / flat.mean()))
        np.testing.assert_allclose(ccd.data, expected, atol=3.0)
        assert ccd.header["CALSTAT"] == "BDF"
        assert ccd.header["DARKSCL"] == pytest.approx(2.5)


def test_noisy_night_residual_is_noise(tmp_path):
    camera = SyntheticCamera(shape=(96, 128), seed=5)
    scan, report = _reduce(tmp_path, camera, noise=True)
    light = scan.of_type("light")[0]
    ccd = calibrate_frame(light, match_light(light, report.masters))
    # What a perfect calibration leaves: the light minus the true bias and
    # dark, through the true flat.
    flat = camera.flats[light.filter]  # the master flat is mean-normalised
    perfect = ((fits.getdata(light.path).astype(float) - camera.bias
                - camera.dark_rate * 300.0) / (flat / flat.mean()))
    residual = ccd.data - perfect
    # Errors the masters bring in are unbiased and well below the light's own
    # photon and read noise (5 darks scaled by 2.5 dominate them).
    read_noise_adu = camera.read_noise / camera.gain
    light_noise_adu = np.sqrt(np.median(perfect) * camera.gain
                              + camera.read_noise ** 2) / camera.gain
    assert abs(np.median(residual)) < 0.2 * read_noise_adu
    assert mad_std(residual) < 0.5 * light_noise_adu


def _ccdproc_reduction(scan):
    """The lab recipe, written plainly with ccdproc."""
    def load(frame):
        return CCDData(fits.getdata(frame.path).astype(float), unit="adu")

    bias = ccdproc.combine([load(f) for f in scan.of_type("bias")], method="average")
    darks = {}
    for t in (60.0, 120.0):
        frames = [ccdproc.subtract_bias(load(f), bias) for f in scan.of_type("dark")
                  if f.exptime == t]
        darks[t] = ccdproc.combine(frames, method="median")
    flats = {}
    for filt in ("R", "V"):
        frames = []
        for f in scan.of_type("flat"):
            if f.filter != filt:
                continue
            ccd = ccdproc.subtract_bias(load(f), bias)
            ccd = ccdproc.subtract_dark(ccd, darks[60.0], data_exposure=f.exptime * u.s,
                                        dark_exposure=60.0 * u.s, scale=True)
            frames.append(ccd)
        combined = ccdproc.combine(frames, method="median",
                                   scale=lambda a: 1 / np.ma.median(a))
        # ccdproc's flat_correct (and IRAF) normalise by the mean.
        flats[filt] = combined.divide(np.mean(combined.data))
    return bias, darks, flats


def test_agrees_with_plain_ccdproc(tmp_path):
    camera = SyntheticCamera(shape=(40, 56), seed=9)
    scan, report = _reduce(tmp_path, camera, noise=True)
    bias, darks, flats = _ccdproc_reduction(scan)
    ours = {(m.kind, m.exptime if m.kind == "dark" else m.filter): m for m in report.masters}
    np.testing.assert_allclose(master_data(ours["bias", None]), bias.data, rtol=1e-5, atol=1e-3)
    for t in (60.0, 120.0):
        np.testing.assert_allclose(master_data(ours["dark", t]), darks[t].data,
                                   rtol=1e-5, atol=1e-3)
    for filt in ("R", "V"):
        np.testing.assert_allclose(master_data(ours["flat", filt]), flats[filt].data,
                                   rtol=1e-5, atol=1e-5)
    for light in scan.of_type("light"):
        ccd = CCDData(fits.getdata(light.path).astype(float), unit="adu")
        ccd = ccdproc.subtract_bias(ccd, bias)
        ccd = ccdproc.subtract_dark(ccd, darks[120.0], data_exposure=300 * u.s,
                                    dark_exposure=120 * u.s, scale=True)
        ccd = ccdproc.flat_correct(ccd, flats[light.filter], norm_value=1)
        mine = calibrate_frame(light, match_light(light, report.masters))
        np.testing.assert_allclose(mine.data, ccd.data, rtol=1e-4, atol=0.05)


def test_provenance_and_no_overwrite(tmp_path):
    camera = SyntheticCamera(shape=(32, 40), seed=1)
    scan, report = _reduce(tmp_path, camera, noise=True)
    light = scan.of_type("light")[0]
    raw_bytes = open(light.path, "rb").read()
    match = match_light(light, report.masters)
    path, ccd = calibrate_and_write(light, match, tmp_path / "out")
    header = fits.getheader(path)
    assert path.endswith(light.name)
    assert header["BIASFILE"] == "master_bias.fits" and len(header["BIASSUM"]) == 16
    assert header["DARKFILE"] == "master_dark_120s.fits"
    assert header["FLATFILE"] == f"master_flat_{light.filter}.fits"
    assert header["CCDCALV"]
    history = "".join(header["HISTORY"])  # long lines wrap over cards
    assert "scaled 120 s -> 300 s" in history and f"raw frame {light.name}" in history
    assert str(tmp_path) not in history  # no absolute paths in products
    with pytest.raises(OutputExists):
        calibrate_and_write(light, match, tmp_path / "out")
    calibrate_and_write(light, match, tmp_path / "out", overwrite=True)
    assert open(light.path, "rb").read() == raw_bytes
    # Products are never taken for raw frames on a rescan.
    rescan = scan_folder(tmp_path)
    assert len(rescan.products) == len(report.masters) + 1
    assert all("out" not in f.path and "masters" not in f.path for f in rescan.frames)


def test_missing_flat_is_recorded_or_refused(tmp_path):
    camera = SyntheticCamera(shape=(32, 40), seed=1)
    scan, report = _reduce(tmp_path, camera, noise=True)
    light = scan.of_type("light")[0]
    masters = [m for m in report.masters if m.kind != "flat"]
    match = match_light(light, masters)
    assert match.missing == ["flat"]
    ccd = calibrate_frame(light, match)
    assert ccd.header["CALSTAT"] == "BD"
    assert any("flat NOT applied" in h for h in ccd.header["HISTORY"])
    with pytest.raises(CalibrationError, match="no master flat for filter"):
        calibrate_frame(light, match, CalibrationOptions(strict=True))


@pytest.mark.parametrize("style", ["iraf", "maxim"])
def test_overscan_subtracted_and_trimmed_like_ccdproc(tmp_path, style):
    camera = SyntheticCamera(shape=(30, 40), overscan_columns=6, seed=4)
    raw = tmp_path / "raw"
    write_night(raw, camera, [("bias", 0.0, None, 4), ("light", 30.0, "R", 1)],
                style=style)
    scan = scan_folder(raw)
    report = build_masters(scan.frames, tmp_path / "masters")
    bias_master = report.masters[0]
    assert bias_master.overscan and bias_master.shape == (30, 40)
    assert bias_master.raw_shape == (30, 46)

    def plain(frame):
        ccd = CCDData(fits.getdata(frame.path).astype(float), unit="adu")
        ccd = ccdproc.subtract_overscan(ccd, fits_section="[41:46,1:30]", median=True,
                                        overscan_axis=1, model=models.Polynomial1D(1))
        return ccdproc.trim_image(ccd, fits_section="[1:40,1:30]")

    bias = ccdproc.combine([plain(f) for f in scan.of_type("bias")], method="average")
    np.testing.assert_allclose(master_data(bias_master), bias.data, atol=1e-3)
    light = scan.of_type("light")[0]
    match = match_light(light, report.masters)
    ours = calibrate_frame(light, match)
    assert ours.header["CALSTAT"].startswith("OTB")
    np.testing.assert_allclose(ours.data, ccdproc.subtract_bias(plain(light), bias).data,
                               atol=1e-3)


def test_gain_and_readnoise_uncertainty_like_ccdproc(tmp_path):
    camera = SyntheticCamera(shape=(32, 40), seed=3)
    scan, report = _reduce(tmp_path, camera, noise=True)
    light = scan.of_type("light")[0]
    match = match_light(light, report.masters)
    path, ccd = calibrate_and_write(light, match, tmp_path / "out",
                                   CalibrationOptions(gain=1.5, readnoise=9.0))
    assert ccd.unit == u.electron
    adu = calibrate_frame(light, match)
    np.testing.assert_allclose(ccd.data, adu.data * 1.5, rtol=1e-6)
    expected = ccdproc.create_deviation(CCDData(ccd.data.copy(), unit="electron"),
                                        readnoise=9.0 * u.electron, disregard_nan=True)
    np.testing.assert_allclose(ccd.uncertainty.array, expected.uncertainty.array, rtol=1e-5)
    back = CCDData.read(path)
    np.testing.assert_allclose(back.uncertainty.array, ccd.uncertainty.array, rtol=1e-6)
    with pytest.raises(CalibrationError, match="needs the gain"):
        calibrate_frame(light, match, CalibrationOptions(readnoise=9.0))


def test_cosmic_rays_cleaned_on_request(tmp_path):
    camera = SyntheticCamera(shape=(64, 80), seed=7)
    raw = tmp_path / "raw"
    write_night(raw, camera, PLAN[:5] + [{"frametype": "light", "exptime": 300.0,
                                          "filter": "R", "count": 1, "cosmic_rays": 6,
                                          "stars": 0}])
    scan = scan_folder(raw)
    report = build_masters(scan.frames, tmp_path / "masters")
    light = scan.of_type("light")[0]
    match = match_light(light, report.masters)
    plain = calibrate_frame(light, match)
    clean = calibrate_frame(light, match, CalibrationOptions(
        cosmics=True, gain=camera.gain, readnoise=camera.read_noise))
    hits = camera.written[light.path].cosmic_ray_mask(plain.shape)
    assert hits.any()
    plain_e = plain.data * camera.gain      # the cleaned frame is in electrons
    sky = np.nanmedian(plain_e)
    # The hits are gone (back near the sky), the rest is untouched.
    assert np.all(np.abs(clean.data[hits] - sky) < 0.5 * np.abs(plain_e[hits] - sky))
    assert clean.header["CRCLEAN"] >= hits.sum() // 2
    assert clean.header["CALSTAT"].endswith("C")
    assert np.mean(clean.data[~hits] == plain_e[~hits]) > 0.99


def test_gain_from_header_prefers_egain(tmp_path):
    # N.I.N.A. writes its gain *setting* as GAIN and e-/ADU as EGAIN.
    camera = SyntheticCamera(shape=(24, 30), seed=2)
    write_night(tmp_path / "raw", camera, [("bias", 0.0, None, 2),
                                           ("light", 30.0, "R", 1)], style="nina")
    scan = scan_folder(tmp_path / "raw")
    report = build_masters(scan.frames, tmp_path / "m")
    light = scan.of_type("light")[0]
    assert light.header["GAIN"] != light.header["EGAIN"]
    ccd = calibrate_frame(light, match_light(light, report.masters),
                          CalibrationOptions(gain="header"))
    assert ccd.header["GAINCOR"] == pytest.approx(light.header["EGAIN"])


def test_in_memory_api_agrees_with_file_path_and_by_hand(tmp_path):
    """calibrate_ccd on a CCDData, calibrate_frame on the file and the
    arithmetic a student writes with load_master give the same numbers."""
    from ginga_ccdcal.calibrate import calibrate_ccd
    from ginga_ccdcal.masters import load_master
    camera = SyntheticCamera(shape=(40, 56), seed=3)
    scan, report = _reduce(tmp_path, camera, noise=True)
    light = scan.of_type("light")[0]
    match = match_light(light, report.masters)
    raw = CCDData.read(light.path, unit="adu")
    before = raw.data.copy()
    in_memory = calibrate_ccd(raw, match, name=light.name)
    from_file = calibrate_frame(light, match)
    np.testing.assert_array_equal(in_memory.data, from_file.data)
    np.testing.assert_array_equal(raw.data, before)  # the input is left alone
    assert in_memory.header["CALSTAT"] == "BDF"
    bias, dark, flat = (load_master(c.master.path) for c in (match.bias, match.dark, match.flat))
    by_hand = (raw.data.astype(np.float32) - bias.data
               - np.float32(match.dark.scale) * dark.data) / flat.data
    np.testing.assert_allclose(in_memory.data, by_hand, rtol=2e-6, atol=1e-3)
    assert bias.unit == u.adu and bias.header["MSTRTYPE"].lower() == "bias"


def test_options_checked_before_any_file_is_read():
    with pytest.raises(CalibrationError, match="needs the gain"):
        CalibrationOptions(readnoise=9.0)
    with pytest.raises(CalibrationError, match="'exposure' or 'fit'"):
        CalibrationOptions(dark_scale="ratio")
