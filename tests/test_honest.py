"""Never silently wrong: every product is right or says what was not done.

Issue 10 items 2, 4, 5 (flat pixels near zero), 6, 9, 10 (relative
paths), 12, and issue 14 item 11 — each on a night made in code.
"""

import os
import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData

from ginga_ccdcal import provenance
from ginga_ccdcal.calibrate import CalibrationOptions, calibrate_and_write, calibrate_frame
from ginga_ccdcal.cli import main
from ginga_ccdcal.errors import CcdcalError
from ginga_ccdcal.masters import build_masters, load_masters, master_data
from ginga_ccdcal.match import match_light
from ginga_ccdcal.reduce import calibrate_lights
from ginga_ccdcal.sample import SyntheticCamera, write_night
from ginga_ccdcal.scan import scan_folder


def run(capsys, *args):
    status = main(["--quiet", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def _masters(capsys, night, tmp_path):
    status, out, err = run(capsys, "masters", night.path, "--out", tmp_path / "m")
    assert status == 0, err
    return tmp_path / "m"


# -- item 2: calibrate calibrates lights only ----------------------------------

def test_calibrate_folder_calibrates_only_lights(capsys, night, tmp_path):
    masters = _masters(capsys, night, tmp_path)
    status, out, err = run(capsys, "calibrate", night.path, "--masters", masters,
                           "--out", tmp_path / "cal")
    assert status == 0, err
    assert "5 calibrated" in out
    written = sorted(os.listdir(tmp_path / "cal"))
    assert written == sorted(os.path.basename(p) for p in night.files["light"])
    # It says what it left alone.
    assert "25 calibration frames" in out and "5 bias" in out


def test_calibration_frame_named_explicitly_is_calibrated_with_a_note(capsys, night,
                                                                      tmp_path):
    masters = _masters(capsys, night, tmp_path)
    flat = night.files["flat"][0]
    status, out, err = run(capsys, "calibrate", flat, "--masters", masters,
                           "--out", tmp_path / "cal")
    assert "note: " in err and "header says flat" in err
    assert os.listdir(tmp_path / "cal") == [os.path.basename(flat)]
    history = "".join(fits.getheader(tmp_path / "cal" / os.path.basename(flat))["HISTORY"])
    assert "the header says flat; calibrated as a light" in history


# -- item 4: honest outputs and counts -----------------------------------------

def test_light_with_nothing_applied_is_not_written_nor_counted(capsys, tmp_path):
    camera = SyntheticCamera((40, 48), seed=3)
    raw = tmp_path / "raw"
    # Flats for V only: the R lights get no bias, no dark and no flat.
    write_night(raw, camera, [("flat", 5.0, "V", 3), ("light", 60.0, "R", 2),
                              ("light", 60.0, "V", 1)], seed=3)
    status, out, err = run(capsys, "reduce", raw, "--out", tmp_path / "out")
    assert status == 1
    assert "1 calibrated, 2 not calibrated" in out
    lines = [l for l in err.splitlines() if l.startswith("not calibrated: ")]
    assert len(lines) == 2 and all("no master bias, dark or flat" in l for l in lines)
    assert not any(l.startswith("skipped: ") and "not calibrated" in l
                   for l in err.splitlines())
    products = [n for n in os.listdir(tmp_path / "out") if n.endswith(".fit")]
    assert len(products) == 1 and products[0].endswith("V.fit")
    # The partial one says what it lacks: HISTORY, a keyword, the CLI.
    header = fits.getheader(tmp_path / "out" / products[0])
    assert header["CALSTAT"] == "F" and header["CALMISS"] == "bias,dark"
    history = " ".join(header["HISTORY"])
    assert "bias NOT applied: no master bias" in history
    assert "warning: " in err and "bias not applied" in err


def test_report_lists_missing_steps_for_the_gui(night, tmp_path):
    scan = scan_folder(night.path)
    report = build_masters([f for f in scan.frames if f.frametype != "flat"],
                           tmp_path / "m")
    lights = scan.of_type("light")
    result = calibrate_lights(lights, report.masters, tmp_path / "out")
    assert len(result.written) == 5
    assert result.missing == {light.path: ["flat"] for light in lights}
    assert result.not_calibrated == {}
    result = calibrate_lights(lights, [], tmp_path / "out2")
    assert result.written == [] and set(result.not_calibrated) == {l.path for l in lights}
    assert not os.listdir(tmp_path / "out2")


def test_strict_message_has_no_double_negative(night, tmp_path):
    scan = scan_folder(night.path)
    report = build_masters([f for f in scan.frames if f.frametype != "flat"],
                           tmp_path / "m")
    light = scan.of_type("light")[0]
    with pytest.raises(CcdcalError) as info:
        calibrate_frame(light, match_light(light, report.masters),
                        CalibrationOptions(strict=True))
    assert "missing no" not in str(info.value)
    assert "flat: no master flat for filter" in str(info.value)


# -- item 5: flat pixels at or near zero ---------------------------------------

def test_flat_pixels_near_zero_are_masked_not_nan(night, tmp_path):
    scan = scan_folder(night.path)
    report = build_masters(scan.frames, tmp_path / "m")
    flat = next(m for m in report.masters if m.kind == "flat" and m.filter == "R")
    with fits.open(flat.path, mode="update") as hdul:
        data = hdul[0].data
        data[3, 4], data[5, 6], data[7, 8], data[9, 10] = 0.0, -0.5, 1e-5, np.nan
    masters = load_masters(tmp_path / "m")
    light = next(f for f in scan.of_type("light") if f.filter == "R")
    notes = []
    path, ccd = calibrate_and_write(light, match_light(light, masters), tmp_path / "out",
                                    notes=notes)
    assert np.all(np.isfinite(ccd.data))
    bad = np.zeros(ccd.shape, bool)
    bad[3, 4] = bad[5, 6] = bad[7, 8] = bad[9, 10] = True
    np.testing.assert_array_equal(ccd.mask, bad)
    assert ccd.header["FLATLOW"] == 4
    assert any("4 pixel(s)" in n and "flat" in n for n in notes)
    with fits.open(path) as hdul:
        assert "MASK" in hdul
    back = CCDData.read(path)
    np.testing.assert_array_equal(back.mask, bad)


# -- item 6: steps already done by the camera software -------------------------

def _header(**cards):
    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    return header


@pytest.mark.parametrize("header, roles, says", [
    (_header(), set(), None),
    (fits.Header([("HISTORY", "Auto-Dark Subtraction")]), {"bias", "dark"},
     "HISTORY 'Auto-Dark Subtraction'"),
    (fits.Header([("HISTORY", "Dark Subtraction")]), {"bias", "dark"}, "Dark Subtraction"),
    (_header(CALSTAT="BDF"), {"bias", "dark", "flat"}, "CALSTAT"),
    (_header(CALSTAT="D"), {"bias", "dark"}, "CALSTAT"),
    (_header(CALSTAT="B"), {"bias"}, "CALSTAT"),
    (_header(ZEROCOR="Jul  4 12:00 Zero is Zero"), {"bias"}, "ZEROCOR"),
    (_header(ZEROCOR="z", DARKCOR="d", FLATCOR="f"), {"bias", "dark", "flat"}, "IRAF"),
    (_header(SUBBIAS="ccd=<CCDData>, master=<CCDData>"), {"bias"}, "SUBBIAS"),
    (_header(SUBBIAS="x", SUBDARK="y"), {"bias", "dark"}, "ccdproc"),
])
def test_steps_done_reads_every_camera_software(header, roles, says):
    done = provenance.steps_done(header)
    assert set(done) == roles
    if says:
        assert any(says in reason for reason in done.values())


def test_camera_dark_subtraction_is_not_done_twice(night, tmp_path):
    camera = night.camera
    scan = scan_folder(night.path)
    report = build_masters(scan.frames, tmp_path / "m")
    light = next(f for f in scan.of_type("light") if f.filter == "R")
    # CCDSoft's auto-dark: a full dark (with its bias) taken and subtracted.
    raw = tmp_path / "raw"
    raw.mkdir()
    path = str(raw / light.name)
    # SBIG software adds a pedestal of 100 ADU so no pixel goes negative,
    # and says how to undo it: PEDESTAL = -100, "correction to add".
    with fits.open(light.path) as hdul:
        data = hdul[0].data.astype(float) - camera.bias - camera.dark_rate * light.exptime
        header = hdul[0].header.copy()
    header.add_history("Auto-Dark Subtraction")
    header["PEDESTAL"] = (-100, "Correction to add for zero-based ADU")
    fits.writeto(path, (data + 100).astype(np.float32), header)
    done = scan_folder(raw).frames[0]
    match = match_light(done, report.masters)
    assert not match.bias and not match.dark and match.flat
    assert match.missing == []
    assert any("already subtracted by the camera software" in line
               for line in match.describe())
    ccd = calibrate_frame(done, match)
    # Only the flat is applied: no bias or dark taken off a second time.
    expected = data / master_data(match.flat.master)
    np.testing.assert_allclose(ccd.data, expected, rtol=1e-5, atol=1e-2)
    assert ccd.header["CALSTAT"] == "BDF"
    # The pedestal is gone from the pixels, so it must go from the header.
    assert "PEDESTAL" not in ccd.header
    history = "".join(ccd.header["HISTORY"])
    assert ("dark not applied: already subtracted by the camera software "
            "(HISTORY 'Auto-Dark Subtraction')") in history
    assert "CALMISS" not in ccd.header


# -- item 9: one bad frame never stops a batch ---------------------------------

def test_dark_scale_fit_with_structureless_dark_among_good_ones(capsys, tmp_path):
    camera = SyntheticCamera((40, 48), seed=6)
    raw = tmp_path / "raw"
    write_night(raw, camera, [("bias", 0.0, None, 3), ("dark", 60.0, None, 3),
                              ("dark", 120.0, None, 3), ("flat", 5.0, "R", 3),
                              ("light", 60.0, "R", 2), ("light", 300.0, "R", 2)], seed=6)
    masters = tmp_path / "m"
    assert run(capsys, "masters", raw, "--out", masters)[0] == 0
    with fits.open(masters / "master_dark_120s.fits", mode="update") as hdul:
        hdul[0].data[:] = 5.0       # no hot pixels, nothing to fit
    status, out, err = run(capsys, "calibrate", raw, "--masters", masters,
                           "--out", tmp_path / "cal", "--dark-scale", "fit")
    assert status == 1
    assert "Traceback" not in err
    assert "2 calibrated" in out
    skipped = [l for l in err.splitlines() if l.startswith("skipped: ")]
    assert len(skipped) == 2
    assert all("no structure" in l and "master_dark_120s" in l for l in skipped)


def test_fit_dark_scale_raises_a_ccdcal_error():
    from ginga_ccdcal.dark_scale import fit_dark_scale
    with pytest.raises(CcdcalError):
        fit_dark_scale(np.ones((10, 10)), np.full((10, 10), 3.0))


# -- item 10: headers name files relative to their folders ---------------------

def test_products_carry_no_absolute_paths(capsys, night, tmp_path):
    out = tmp_path / "out"
    assert run(capsys, "reduce", night.path, "--out", out)[0] == 0
    products = [os.path.join(d, n) for d, _, names in os.walk(out) for n in names]
    assert len(products) == 5 + 5
    for path in products:
        text = fits.getheader(path).tostring()
        assert str(tmp_path) not in text, path
    bias = fits.getheader(out / "masters" / "master_bias.fits")
    assert any(h.endswith(os.path.basename(night.files["bias"][0])) for h in bias["HISTORY"])
    light = fits.getheader(out / os.path.basename(night.files["light"][0]))
    assert f"raw frame {os.path.basename(night.files['light'][0])}" in "".join(
        light["HISTORY"])


def test_relative_name():
    assert provenance.relative_name("/data/n1/sub/a.fit", "/data/n1") == "sub/a.fit"
    assert provenance.relative_name("/data/n1/a.fit", None) == "a.fit"
    assert provenance.relative_name("/elsewhere/a.fit", "/data/n1") == "a.fit"


# -- item 12: plain words for plain mistakes -----------------------------------

def test_only_lights_says_what_it_found_and_creates_nothing(capsys, night, tmp_path):
    raw = tmp_path / "lights"
    raw.mkdir()
    for path in night.files["light"]:
        shutil.copy(path, raw)
    for command in ("masters", "reduce"):
        out = tmp_path / f"out-{command}"
        status, _, err = run(capsys, command, raw, "--out", out)
        assert status == 2, command
        assert f"no calibration frames in {raw}: 0 bias, 0 dark, 0 flat" in err
        assert not out.exists(), command


def test_empty_folder_creates_nothing(capsys, night, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    masters = _masters(capsys, night, tmp_path)
    status, _, err = run(capsys, "masters", empty, "--out", tmp_path / "o1")
    assert status == 2 and "0 bias, 0 dark, 0 flat" in err
    status, _, err = run(capsys, "calibrate", empty, "--masters", masters,
                         "--out", tmp_path / "o2")
    assert status == 2 and f"no light frames in {empty}" in err
    status, _, err = run(capsys, "calibrate", night.files["bias"][0], tmp_path / "nope",
                         "--masters", masters, "--out", tmp_path / "o3")
    assert status == 2 and "nope" in err and "no such file or folder" in err
    assert not any((tmp_path / n).exists() for n in ("o1", "o2", "o3"))


def test_output_folder_equal_to_raw_is_refused(capsys, night, tmp_path):
    masters = _masters(capsys, night, tmp_path)
    before = sorted(os.listdir(night.path))
    status, _, err = run(capsys, "masters", night.path, "--out", night.path)
    assert status == 2 and "must differ from the raw folder" in err
    status, _, err = run(capsys, "calibrate", night.path, "--masters", masters,
                         "--out", night.path)
    assert status == 2 and "must differ from the raw folder" in err
    assert sorted(os.listdir(night.path)) == before


def test_option_errors_caught_at_parse_time(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["reduce", str(tmp_path), "--out", str(tmp_path / "o"), "--readnoise", "5"])
    assert info.value.code == 2
    assert "--readnoise needs --gain" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["calibrate", str(tmp_path), "--masters", "m", "--out", "o", "--gain", "abc"])
    err = capsys.readouterr().err
    assert "--gain: 'abc' is not a number or 'header'" in err
    assert "lambda" not in err


def test_global_options_after_the_command(capsys, night, tmp_path):
    aliases = tmp_path / "aliases.json"
    aliases.write_text('{"type": {"Light Frame": "flat"}}')
    status = main(["scan", str(night.path), "-q", "--aliases", str(aliases)])
    out = capsys.readouterr().out
    assert status == 0
    assert "frametype = flat  (15 frames)" in out


def test_characterise_keeps_an_existing_report(capsys, night, tmp_path):
    report = tmp_path / "rep"
    report.mkdir()
    (report / "ccd_report.html").write_text("my notes")
    status, _, err = run(capsys, "characterise", night.path, "--out", report)
    assert status == 2 and "--overwrite" in err
    assert (report / "ccd_report.html").read_text() == "my notes"


# -- issue 14 item 11: one name in two input folders ---------------------------

def test_same_name_in_two_input_folders_both_kept(capsys, night, tmp_path):
    masters = _masters(capsys, night, tmp_path)
    light_r = [p for p in night.files["light"] if fits.getval(p, "FILTER") == "R"]
    for folder, source in (("a", light_r[0]), ("b", light_r[1])):
        (tmp_path / folder).mkdir()
        shutil.copy(source, tmp_path / folder / "light_001.fit")
    status, out, err = run(capsys, "calibrate", tmp_path / "a", tmp_path / "b",
                           "--masters", masters, "--out", tmp_path / "cal")
    assert status == 0, err
    assert "2 calibrated" in out
    a = fits.getdata(tmp_path / "cal" / "a" / "light_001.fit")
    b = fits.getdata(tmp_path / "cal" / "b" / "light_001.fit")
    assert not np.array_equal(a, b)


def test_clashing_outputs_are_never_lost_silently(night, tmp_path):
    scan = scan_folder(night.path)
    report = build_masters(scan.frames, tmp_path / "m")
    light = scan.of_type("light")[0]
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(light.path, other / light.name)
    twin = scan_folder(other).frames[0]
    result = calibrate_lights([light, twin], report.masters, tmp_path / "out")
    assert len(result.written) == 1
    assert len(result.problems) == 1 and "same output" in result.problems[0]
    assert str(other / light.name) in result.problems[0]
