"""The synthetic camera tells the truth, headers look like real software's,
and the sample night carries the real Feder headers."""

import csv
import datetime
import importlib.resources
import io
import os
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from ginga_ccdcal.errors import Cancelled, CcdcalError
from ginga_ccdcal.fitsfile import read_header, read_image
from ginga_ccdcal.progress import CancelToken
from ginga_ccdcal.sample import (SyntheticCamera, feder_header, make_header,
                                 make_sample_night, sample_camera,
                                 sample_frame_infos, write_frame, write_night)

from conftest import NIGHT_PLAN


def _csv_rows():
    """The shipped CSV, read independently of the module under test."""
    text = (importlib.resources.files("ginga_ccdcal") / "data"
            / "feder_2013_07_04_headers.csv").read_text()
    return list(csv.DictReader(io.StringIO(text)))


def _truth(camera, kind, exptime, filter=None, dark_scale=1.0, level=None, **light):
    """bias + dark_rate * t * scale + flat * signal, from the truth attributes."""
    raw = camera.bias + camera.dark_rate * exptime * dark_scale
    if kind == "flat":
        raw = raw + camera.flats[filter] * level
    if kind == "light":
        raw = raw + camera.flats[filter] * camera.ideal_light(exptime, filter, **light)
    return raw


# -- truth -----------------------------------------------------------------------

@pytest.mark.parametrize("kind, exptime, kwargs", [
    ("bias", 0.0, {}),
    ("dark", 60.0, {}),
    ("dark", 60.0, {"dark_scale": 1.37}),
    ("flat", 10.0, {"filter": "V", "level": 15000.0}),
    ("light", 300.0, {"filter": "R", "sky": 30.0, "stars": 6, "seed": 11}),
])
def test_noiseless_frame_is_exactly_the_truth(camera, kind, exptime, kwargs):
    got = camera.frame(kind, exptime, kwargs.get("filter"), noise=False,
                       dtype=np.float64, **{k: v for k, v in kwargs.items() if k != "filter"})
    expected = _truth(camera, kind, exptime, **kwargs)
    np.testing.assert_array_equal(got, expected)
    # And as a camera stores it: the same, rounded.
    stored = camera.frame(kind, exptime, kwargs.get("filter"), noise=False,
                          **{k: v for k, v in kwargs.items() if k != "filter"})
    assert stored.dtype == np.uint16
    np.testing.assert_array_equal(stored, np.rint(expected))


def test_truth_arrays_are_physical():
    cam = SyntheticCamera((120, 160), bias_level=1500.0, dark_current=0.3, gain=2.0,
                          hot_pixel_fraction=0.002, hot_pixel_rate=40.0,
                          vignetting=0.3, seed=4)
    assert cam.bias.shape == cam.dark_rate.shape == cam.raw_shape == (120, 160)
    assert abs(np.median(cam.bias) - 1500.0) < 5
    assert cam.hot_pixels.sum() == round(0.002 * 120 * 160)
    cool = np.median(cam.dark_rate[~cam.hot_pixels])
    assert cool == pytest.approx(0.3 / 2.0, rel=0.25)  # plus a little amplifier glow
    assert np.all(cam.dark_rate[cam.hot_pixels] > 5 * cool)
    for name, flat in cam.flats.items():
        assert np.median(flat) == pytest.approx(1.0, abs=1e-12)
        corners = np.mean([flat[0, 0], flat[0, -1], flat[-1, 0], flat[-1, -1]])
        assert 0.6 < corners < 0.85  # vignetting of 30 % at the far corner
        assert flat[55:65, 70:90].mean() > 0.97
    # Different dust and optical axis per filter, same silicon.
    ratio = cam.flats["R"] / cam.flats["V"]
    assert np.ptp(ratio) > 0.03
    assert np.corrcoef(cam.flats["R"].ravel(), cam.flats["V"].ravel())[0, 1] > 0.8
    flat_bias = SyntheticCamera((20, 30), bias_structure=False, bias_level=900.0)
    assert np.all(flat_bias.bias == 900.0)


def test_noise_matches_read_noise_and_gain():
    cam = SyntheticCamera((200, 200), read_noise=9.0, gain=1.5, dark_current=0.0,
                          hot_pixel_fraction=0.0, seed=3)
    b1 = cam.frame("bias").astype(float)
    b2 = cam.frame("bias").astype(float)
    read_noise_adu = np.std(b1 - b2) / np.sqrt(2)
    assert read_noise_adu == pytest.approx(9.0 / 1.5, rel=0.03)
    # Photon transfer: var(f1 - f2) / 2 = signal / gain + read_noise^2.
    level = 20000.0
    f1 = cam.frame("flat", 5.0, "R", level=level).astype(float)
    f2 = cam.frame("flat", 5.0, "R", level=level).astype(float)
    signal = np.mean(cam.flats["R"] * level)
    shot_var = np.var(f1 - f2) / 2 - read_noise_adu ** 2
    assert signal / shot_var == pytest.approx(1.5, rel=0.03)


def test_dark_scale_and_hot_pixels_follow_time(camera):
    d1 = camera.frame("dark", 100.0, noise=False, dtype=np.float64) - camera.bias
    d2 = camera.frame("dark", 100.0, noise=False, dtype=np.float64, dark_scale=2.0) - camera.bias
    np.testing.assert_allclose(d2, 2 * d1, rtol=1e-12)
    np.testing.assert_allclose(d1, camera.dark_rate * 100.0, rtol=1e-12)
    noisy = camera.frame("dark", 100.0).astype(float) - camera.bias
    hot = camera.hot_pixels
    assert hot.any()
    np.testing.assert_allclose(noisy[hot], d1[hot], rtol=0.25)


def test_saturation_and_clipping():
    cam = SyntheticCamera((16, 16), saturation=40000, seed=2)
    flat = cam.frame("flat", 1.0, "R", level=60000.0)
    assert flat.max() == 40000
    assert (flat == 40000).mean() > 0.5
    flat = SyntheticCamera((16, 16)).frame("flat", 1.0, "R", level=90000.0, noise=False)
    assert flat.max() == 65535


def test_frames_are_deterministic(camera):
    a = camera.frame("light", 60.0, "R", stars=4, cosmic_rays=3, seed=5)
    b = camera.frame("light", 60.0, "R", stars=4, cosmic_rays=3, seed=5)
    np.testing.assert_array_equal(a, b)
    c = camera.frame("light", 60.0, "R", stars=4, cosmic_rays=3)
    d = camera.frame("light", 60.0, "R", stars=4, cosmic_rays=3)
    assert not np.array_equal(c, d)  # the generator advances
    # The recipe of the last frame reproduces it and its truth.
    again = camera.frame("light", 60.0, "R", stars=4, cosmic_rays=3,
                         seed=camera.last_frame.seed)
    np.testing.assert_array_equal(again, d)
    same_camera = SyntheticCamera((64, 80), seed=1)
    np.testing.assert_array_equal(same_camera.bias, camera.bias)
    np.testing.assert_array_equal(same_camera.flats["V"], camera.flats["V"])
    other = SyntheticCamera((64, 80), seed=2)
    assert not np.array_equal(other.flats["V"], camera.flats["V"])


def test_stars_and_cosmic_rays(camera):
    t = 100.0
    ideal = camera.ideal_light(t, "R", sky=10.0, stars=5, seed=8, psf_sigma=1.2)
    stars = camera.plan_frame("light", t, "R", sky=10.0, stars=5, seed=8).stars
    assert stars.shape == (5, 3)
    inside = sum(f for y, x, f in stars if 6 < y < 58 and 6 < x < 74)
    starlight = ideal.sum() - 10.0 * t / camera.gain * ideal.size
    # Stars near the edge lose part of their light: at least the ones inside.
    assert starlight >= inside * t / camera.gain * 0.999
    assert starlight <= stars[:, 2].sum() * t / camera.gain * 1.001
    y, x = stars[0, :2].round().astype(int)
    if 0 <= y < 64 and 0 <= x < 80:
        assert ideal[y, x] > 10.0 * t / camera.gain
    clean = camera.frame("light", t, "R", sky=10.0, stars=5, noise=False,
                         dtype=np.float64, seed=8)
    hit = camera.frame("light", t, "R", sky=10.0, stars=5, noise=False, dtype=np.float64,
                       seed=8, cosmic_rays=4)
    mask = camera.last_frame.cosmic_ray_mask(camera.raw_shape)
    assert 4 <= mask.sum() <= 12
    assert np.all(hit[mask] > clean[mask] + 500)
    np.testing.assert_array_equal(hit[~mask], clean[~mask])


def test_shared_star_field_moves_with_shift(camera):
    a = camera.plan_frame("light", 10.0, "V", stars=6, star_seed=42, seed=1).stars
    b = camera.plan_frame("light", 10.0, "V", stars=6, star_seed=42, seed=2,
                          shift=(1.5, -2.0)).stars
    np.testing.assert_allclose(b[:, 0] - a[:, 0], 1.5)
    np.testing.assert_allclose(b[:, 1] - a[:, 1], -2.0)
    np.testing.assert_array_equal(a[:, 2], b[:, 2])


def test_overscan_is_bias_and_read_noise_only():
    cam = SyntheticCamera((40, 60), overscan_columns=8, read_noise=12.0, gain=2.0, seed=6)
    assert cam.raw_shape == (40, 68) and cam.shape == (40, 60)
    assert cam.datasec == "[1:60,1:40]" and cam.biassec == "[61:68,1:40]"
    assert np.all(cam.flats["R"][:, 60:] == 0) and np.all(cam.dark_rate[:, 60:] == 0)
    assert np.median(cam.trim(cam.flats["R"])) == pytest.approx(1.0)
    light = cam.frame("light", 600.0, "R", sky=50.0, stars=3).astype(float)
    over = light[cam.overscan_section] - cam.bias[cam.overscan_section]
    assert abs(over.mean()) < 1.0
    assert over.std() == pytest.approx(12.0 / 2.0, rel=0.15)
    assert light[cam.data_section].mean() > cam.bias.mean() + 50.0 * 600 / 2.0 * 0.8
    assert cam.trim(light).shape == (40, 60)


def test_bad_arguments_are_refused(camera):
    with pytest.raises(ValueError, match="unknown frame type"):
        camera.frame("bogus")
    with pytest.raises(ValueError, match="needs a filter"):
        camera.frame("flat", 1.0)
    with pytest.raises(ValueError, match="not in this camera"):
        camera.frame("light", 1.0, "B")
    with pytest.raises(ValueError):
        SyntheticCamera((4, 4))


# -- headers -----------------------------------------------------------------------

STYLE_TYPES = {
    "maxim": ("IMAGETYP", {"bias": "Bias Frame", "dark": "Dark Frame",
                           "flat": "Flat Field", "light": "Light Frame"}),
    "feder": ("IMAGETYP", {"bias": "BIAS", "dark": "DARK", "flat": "FLAT", "light": "LIGHT"}),
    "iraf": ("IMAGETYP", {"bias": "zero", "dark": "dark", "flat": "flat", "light": "object"}),
    "nina": ("IMAGETYP", {"bias": "BIAS", "dark": "DARK", "flat": "FLAT", "light": "LIGHT"}),
    "sbig": ("FRAMETYP", {"bias": "BIAS", "dark": "DARK", "flat": "SKYFLAT",
                          "light": "SCIENCE"}),
}


@pytest.mark.parametrize("style", sorted(STYLE_TYPES))
@pytest.mark.parametrize("kind", ["bias", "dark", "flat", "light"])
def test_header_styles(style, kind):
    when = datetime.datetime(2024, 5, 1, 3, 4, 5)
    h = make_header(style, kind, 30.0, "V", date_obs=when)
    key, values = STYLE_TYPES[style]
    assert h[key] == values[kind]
    assert h["DATE-OBS"].startswith("2024-05-01T03:04:05")
    assert h["EXPTIME"] == 30.0
    if style in ("maxim", "feder", "nina"):
        assert h["EXPOSURE"] == 30.0
    if style == "sbig":
        assert "IMAGETYP" not in h and h["FILTNAM"] == "V" and "FILTER" not in h
    else:
        assert h["FILTER"] == "V"
    if style == "iraf":
        assert h["OBSTYPE"] == values[kind].upper()
        assert h["CCDSUM"] == "1 1" and h["DARKTIME"] == 30.0
        assert "BIASSEC" not in h
    if style == "nina":
        assert isinstance(h["GAIN"], int) and isinstance(h["OFFSET"], int)
        assert h["XBINNING"] == 1 and "CCD-TEMP" in h
    if style == "maxim":
        for k in ("CCD-TEMP", "SET-TEMP", "XBINNING", "YBINNING", "SWCREATE"):
            assert k in h
        assert h["SWCREATE"].startswith("MaxIm DL")


def test_feder_style_is_a_real_header():
    rows = _csv_rows()
    for kind in ("BIAS", "DARK", "FLAT", "LIGHT"):
        row = next(r for r in rows if r["imagetyp"] == kind)
        h = make_header("feder", kind.lower(), float(row["exptime"]))
        expected = {c.upper() for c, v in row.items() if v != ""} - {
            "FILE", "SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2"}
        assert set(h.keys()) == expected
        assert h["DATE-OBS"] == row["date-obs"]
        assert h["SWCREATE"] == "MaxIm DL Version 5.21 130912 01A17"
    assert "BSCALE" not in make_header("feder", "light", 30.0)
    moved = make_header("feder", "dark", 15.0, date_obs="2013-07-04T08:10:39")
    assert moved["JD-OBS"] == pytest.approx(2456477.84073, abs=2e-5)


def test_header_camera_geometry_and_extras():
    cam = SyntheticCamera((40, 60), overscan_columns=5, ccd_temp=-12.5, gain=2.2)
    h = make_header("iraf", "zero", 0.0, camera=cam)
    assert h["BIASSEC"] == "[61:65,1:40]"
    assert h["TRIMSEC"] == h["DATASEC"] == "[1:60,1:40]"
    assert h["GAIN"] == 2.2 and h["CCDTEMP"] == -12.5
    h = make_header("maxim", "bias", 0.0, camera=cam, ccd_temp=-11.0, object="X",
                    swcreate=None)
    assert h["OSCANST"] == 61 and h["CCD-TEMP"] == -11.0 and h["OBJECT"] == "X"
    assert "SWCREATE" not in h
    h = make_header("feder", "bias", 0.0, camera=SyntheticCamera((40, 60)))
    assert h["OSCAN"] is False and "OSCANST" not in h
    with pytest.raises(ValueError, match="unknown header style"):
        make_header("fitswriter9000", "bias", 0.0)


# -- files ---------------------------------------------------------------------------

def test_write_frame_stores_uint16_like_a_camera(tmp_path, camera):
    data = camera.frame("flat", 10.0, "R")
    path = write_frame(tmp_path / "f.fit", data, make_header("maxim", "flat", 10.0, "R"))
    raw = fits.getheader(path, do_not_scale_image_data=True)
    assert raw["BITPIX"] == 16 and raw["BZERO"] == 32768 and raw["BSCALE"] == 1
    assert raw["NAXIS1"] == 80 and raw["NAXIS2"] == 64
    back, header, hdu = read_image(path)
    assert back.dtype == np.uint16 and hdu == 0
    np.testing.assert_array_equal(back, data)
    assert header["IMAGETYP"] == "Flat Field"
    # Without BSCALE in the header, none in the file (like the Feder lights).
    plain = write_frame(tmp_path / "g.fit", data, fits.Header([("EXPTIME", 1.0)]))
    assert "BSCALE" not in fits.getheader(plain)
    np.testing.assert_array_equal(fits.getdata(plain), data)
    floats = write_frame(tmp_path / "h.fits", data.astype(np.float32),
                         make_header("maxim", "flat", 10.0, "R"))
    h = fits.getheader(floats)
    assert h["BITPIX"] == -32 and "BZERO" not in h and "BSCALE" not in h
    with pytest.raises(OSError):
        write_frame(tmp_path / "f.fit", data)
    with pytest.raises(ValueError):
        write_frame(tmp_path / "x.fit", data[0])


def test_night_fixture(night):
    counts = {kind: len(paths) for kind, paths in night.files.items()}
    assert counts == {"bias": 5, "dark": 10, "flat": 10, "light": 5}
    names = sorted(os.listdir(night.path))
    assert len(names) == 30
    assert "Bias-001.fit" in names and "M13-003R.fit" in names and "M13-002V.fit" in names
    assert "Dark-005D120.fit" in names and "Flat-001V.fit" in names
    dates = []
    for path in night.files["bias"] + night.files["dark"] + night.files["flat"] \
            + night.files["light"]:
        info = read_header(path)
        assert info.shape == (64, 80)
        dates.append(info.header["DATE-OBS"])
    assert dates == sorted(dates) and len(set(dates)) == 30
    darks = [fits.getheader(p)["EXPTIME"] for p in night.files["dark"]]
    assert sorted(set(darks)) == [60.0, 120.0]
    filters = {fits.getheader(p)["FILTER"] for p in night.files["light"]}
    assert filters == {"R", "V"}


def test_night_files_carry_the_truth(night):
    cam = night.camera
    path = night.files["light"][0]
    info = cam.written[path]
    data = fits.getdata(path).astype(float)
    np.testing.assert_array_equal(fits.getdata(path), cam.render(info))
    # A perfect reduction of a noisy frame leaves only noise around the truth.
    reduced = (data - cam.bias - cam.dark_rate * info.exptime) / cam.flats[info.filter]
    residual = (reduced - cam.ideal_light_of(info))[~info.cosmic_ray_mask(cam.raw_shape)]
    assert abs(residual.mean()) < 1.0
    expected_sigma = np.sqrt(np.median(cam.ideal_light_of(info)) / cam.gain
                             + (cam.read_noise / cam.gain) ** 2)
    assert np.median(np.abs(residual)) * 1.4826 == pytest.approx(expected_sigma, rel=0.1)


@pytest.mark.parametrize("style, example", [
    ("nina", "_LIGHT_R_300.00s_0001.fits"), ("iraf", "ccd0030.fits"),
    ("sbig", "M13_R_001.FIT"), ("feder", "Bias-001.fit")])
def test_night_styles_name_files_like_their_software(tmp_path, style, example):
    cam = SyntheticCamera((16, 20), seed=3)
    paths = write_night(tmp_path, cam, NIGHT_PLAN, style=style, seed=2)
    assert len(paths) == len(set(paths)) == 30
    assert any(os.path.basename(p).endswith(example) for p in paths)
    kinds = [cam.written[p].frametype for p in paths]
    assert kinds == sorted(kinds, key=["bias", "dark", "flat", "light"].index)


def test_write_night_plan_options_and_protection(tmp_path):
    cam = SyntheticCamera((16, 20), filters=("Ha",), seed=3)
    plan = [{"type": "light", "exptime": 60, "count": 2, "object": "NGC 7000",
             "sky": 0.0, "stars": 0, "cosmic_rays": 0, "noise": False}]
    paths = write_night(tmp_path, cam, plan, style="maxim", start="2024-08-01T03:00:00")
    assert [os.path.basename(p) for p in paths] == ["NGC 7000-001.fit", "NGC 7000-002.fit"]
    h = fits.getheader(paths[1])
    assert h["OBJECT"] == "NGC 7000" and h["DATE-OBS"] == "2024-08-01T03:01:05"
    np.testing.assert_array_equal(fits.getdata(paths[0]),
                                  np.rint(cam.bias + cam.dark_rate * 60))
    with pytest.raises(CcdcalError, match="already exists"):
        write_night(tmp_path, cam, plan)
    write_night(tmp_path, cam, plan, overwrite=True)
    with pytest.raises(ValueError, match="unknown plan keys"):
        write_night(tmp_path / "x", cam, [{"frametype": "bias", "cuont": 3}])


# -- the Feder sample night ------------------------------------------------------------

def test_sample_night_has_every_real_frame_and_keyword(sample_night):
    rows = _csv_rows()
    assert len(sample_night.files) == 78 == len(os.listdir(sample_night.path))
    assert sorted(os.listdir(sample_night.path)) == sorted(r["file"] for r in rows)
    geometry = {"NAXIS1", "NAXIS2", "OSCANST", "IMAGEW", "IMAGEH", "CRPIX1", "CRPIX2"}
    for row in rows:
        h = fits.getheader(sample_night.path / row["file"])
        for column, text in row.items():
            key = column.upper()
            if text == "" or column in ("file", "history") or key in geometry:
                continue
            if key.startswith(("CD", "A_", "B_", "AP_", "BP_")) and not key.endswith("ORDER"):
                continue  # pixel scale follows the smaller frame
            value = h[key]
            if text in ("True", "False"):
                assert value is (text == "True"), key
            elif isinstance(value, str):
                assert value == text, key
            else:
                assert value == float(text), key
                assert isinstance(value, int) == text.lstrip("+-").isdigit(), key
        assert row["history"] in h["HISTORY"]
        assert ("BSCALE" in h) == (row["bscale"] != "")
    kinds = [fits.getheader(p)["IMAGETYP"] for p in sample_night.files]
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "BIAS": 10, "DARK": 20, "FLAT": 10, "LIGHT": 38}


def test_sample_night_geometry(sample_night):
    path = sample_night.path / "SA112-SF1-001R1.fit"
    raw = fits.getheader(path, do_not_scale_image_data=True)
    data = fits.getdata(path)
    assert data.dtype == np.uint16 and raw["BZERO"] == 32768 and raw["BITPIX"] == 16
    assert data.shape == (164, 247) == (raw["NAXIS2"], raw["NAXIS1"])
    assert raw["OSCANST"] == 247 and raw["OSCANAX"] == 1
    assert sample_night.camera.raw_shape == data.shape
    assert sample_night.camera.shape == (164, raw["OSCANST"] - 1)
    assert raw["IMAGEW"] == 247 and raw["IMAGEH"] == 164


def test_sample_wcs_points_at_the_same_sky(sample_night):
    index = next(i for i, r in enumerate(_csv_rows()) if r["imagetyp"] == "LIGHT")
    full = feder_header(index, scale=1.0)
    small = feder_header(index, scale=sample_night.scale)
    for h, shape in ((full, (2048, 3085)), (small, (164, 247))):
        h["NAXIS"], h["NAXIS1"], h["NAXIS2"] = 2, shape[1], shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w_full, w_small = WCS(full), WCS(small)
    sx, sy = 247 / 3085, 164 / 2048
    # Resampling changes pixel numbers, not the sky: the scaled CRPIX, CD
    # and SIP terms must map every point to the same place (the SIP terms
    # alone move the corners by ~0.1 arcsec, so the bound is tight).
    for x, y in ((1542.0, 1023.5), (0.0, 0.0), (3084.0, 2047.0), (3000.0, 100.0)):
        small_xy = ((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5)
        ra, dec = w_full.all_pix2world(x, y, 0)
        ra2, dec2 = w_small.all_pix2world(*small_xy, 0)
        assert abs(ra - ra2) * np.cos(np.radians(dec)) * 3600 < 1e-4
        assert abs(dec - dec2) * 3600 < 1e-4
        # The inverse polynomial (AP, BP) is scaled too.
        back = w_small.sip_foc2pix(w_small.sip_pix2foc(np.array([small_xy]), 0), 0)
        np.testing.assert_allclose(back[0], small_xy, atol=2e-3)


def test_sample_pixels_are_the_camera_truth(sample_night):
    cam = sample_night.camera
    infos = sample_frame_infos(sample_night.scale, sample_night.seed, camera=cam)
    for name in ("flood-flat-003bias.fit", "darks-002D30.fit", "flood-flat-004R.fit",
                 "SA112-SF1-007R2.fit"):
        np.testing.assert_array_equal(fits.getdata(sample_night.path / name),
                                      cam.render(infos[name]))
    bias = fits.getdata(sample_night.path / "flood-flat-003bias.fit").astype(float)
    assert 1000 < np.median(bias) < 2000
    assert np.std(bias - cam.bias) == pytest.approx(9.0 / 1.5, rel=0.05)
    flat = fits.getdata(sample_night.path / "flood-flat-004R.fit").astype(float)
    assert np.median(cam.trim(flat - cam.bias)) == pytest.approx(20000, rel=0.05)
    light = infos["SA112-SF1-007R2.fit"]
    assert light.exptime == 30.0 and light.filter == "R" and len(light.stars) >= 8
    # Dark current follows each frame's real CCD-TEMP around the median.
    temps = {r["file"]: float(r["ccd-temp"]) for r in _csv_rows()}
    warm, cold = "darks-009D15.fit", "darks-001D30.fit"
    assert temps[warm] > temps[cold]
    assert infos[warm].dark_scale > 1.0 > infos[cold].dark_scale


def test_sample_night_at_full_size_keeps_the_real_values():
    cam = sample_camera(1.0, 0)
    assert cam.raw_shape == (2048, 3085) and cam.shape == (2048, 3072)
    for index, row in enumerate(_csv_rows()):
        h = feder_header(index, scale=1.0)
        for column, text in row.items():
            if not text or column in ("file", "history", "simple", "bitpix", "naxis",
                                      "naxis1", "naxis2"):
                continue
            value = h[column.upper()]
            if isinstance(value, (str, bool)):
                assert str(value) == text, column
            else:
                assert value == float(text), column


def test_sample_night_refuses_a_full_folder_and_can_be_cancelled(tmp_path):
    folder = tmp_path / "night"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(CcdcalError, match="not empty"):
        make_sample_night(folder, scale=0.03)
    calls = []
    paths = make_sample_night(folder, scale=0.03, overwrite=True,
                              progress=lambda *a: calls.append(a))
    assert len(paths) == 78 and calls[-1][:2] == (78, 78) and len(calls) == 79
    assert (folder / "notes.txt").read_text() == "mine"
    assert fits.getdata(paths[0]).shape == (61, 93)

    token = CancelToken()

    def stop_after_five(done, total, message):
        if done == 5:
            token.cancel()

    empty = tmp_path / "cancelled"
    with pytest.raises(Cancelled):
        make_sample_night(empty, scale=0.03, progress=stop_after_five, cancel=token)
    assert os.listdir(empty) == []
    with pytest.raises(ValueError, match="scale"):
        make_sample_night(tmp_path / "big", scale=2.0)


# -- the CCDSoft trap night ---------------------------------------------------------

def test_ccdsoft_night_sets_every_trap(tmp_path):
    from ginga_ccdcal.sample import CCDSOFT_PEDESTAL, make_ccdsoft_night
    night = make_ccdsoft_night(tmp_path / "ccdsoft", seed=2)
    counts = {}
    for frame in night.frames:
        counts[frame.frametype] = counts.get(frame.frametype, 0) + 1
    assert counts == {"bias": 8, "dark": 12, "flat": 6, "light": 7, "unknown": 1}
    headers = {os.path.basename(p): fits.getheader(p) for p in night.paths}
    assert all(h["BIAS"] == CCDSOFT_PEDESTAL and (h["XBINNING"], h["YBINNING"]) == (1, 2)
               and h["SWCREATE"].startswith("CCDSoft") for h in headers.values())
    flats = night.of_type("flat")
    assert {f.imagetyp for f in flats} == {"Light Frame"}
    assert all(os.path.basename(f.path).startswith("flat-") for f in flats)
    assert sorted({f.exptime for f in flats}) == [2.0, 5.0]
    dark_times = {f.exptime for f in night.of_type("dark")}
    assert {2.0, 5.0, 60.0} <= dark_times
    assert {f.set_temp for f in night.frames} == {-10.0, -5.0}
    assert all(abs(h["CCD-TEMP"] - h["SET-TEMP"]) < 0.5 for h in headers.values())
    arc = night.named("arc-neon-001.fits")
    assert arc.frametype == "unknown" and "IMAGETYP" not in headers["arc-neon-001.fits"]
    target = night.named("flat-field-target.fits")
    assert target.frametype == "light" and len(target.info.stars) >= 20
    for frame in flats:
        data = fits.getdata(frame.path).astype(float)
        assert 15000 < np.median(data) < 25000
        corners = np.median([data[:5, :5], data[-5:, -5:]])
        assert corners < 0.9 * np.median(data)  # vignetted
    # Auto-dark lights: the camera took away bias and dark, added the pedestal.
    autodark = [f for f in night.of_type("light") if f.dark_subtracted]
    assert len(autodark) == 3
    cam = night.camera
    for frame in autodark:
        assert "Auto-Dark Subtraction" in str(headers[os.path.basename(frame.path)]["HISTORY"])
        data = fits.getdata(frame.path).astype(float)
        expected = cam.flats["R"] * cam.ideal_light_of(frame.info) + CCDSOFT_PEDESTAL
        assert abs(np.median(data - expected)) < 2.0
    plain = next(f for f in night.of_type("light") if not f.dark_subtracted
                 and f.set_temp == -10.0 and f is not target)
    data = fits.getdata(plain.path).astype(float)
    expected = cam.bias + cam.dark_rate * 60.0 + cam.flats["R"] * cam.ideal_light_of(plain.info)
    assert abs(np.median(data - expected)) < 2.0
    with pytest.raises(CcdcalError, match="already exists"):
        make_ccdsoft_night(tmp_path / "ccdsoft", seed=2)
