"""The command line end to end, on the sample night and on bad input."""

import os
import shutil

from astropy.io import fits

from ginga_ccdcal.cli import main


def run(capsys, *args):
    status = main(["--quiet", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def test_sample_night_end_to_end(capsys, sample_night, tmp_path):
    status, out, err = run(capsys, "scan", sample_night.path)
    assert status == 0, err
    assert "78 frames" in out
    for line in ("frametype = bias  (10 frames)", "frametype = dark  (20 frames)",
                 "exptime = 15  (10 frames)", "frametype = light  (38 frames)"):
        assert line in out

    out_dir = tmp_path / "reduced"
    status, out, err = run(capsys, "reduce", sample_night.path, "--out", out_dir)
    assert status == 0, err
    assert "38 calibrated" in out
    masters = sorted(os.listdir(out_dir / "masters"))
    assert masters == ["master_bias.fits", "master_dark_15s.fits",
                       "master_dark_30s.fits", "master_flat_R.fits"]
    calibrated = [n for n in os.listdir(out_dir) if n.endswith(".fit")]
    assert len(calibrated) == 38
    header = fits.getheader(out_dir / calibrated[0])
    # The Feder camera's overscan (OSCANST) is subtracted and trimmed off.
    assert header["CALSTAT"] == "OTBDF" and header["DARKFILE"] == "master_dark_30s.fits"
    raw = fits.getheader(sample_night.path / calibrated[0])
    assert header["NAXIS1"] == raw["OSCANST"] - 1 and header["NAXIS2"] == raw["NAXIS2"]

    # A second run keeps everything and redoes nothing.
    before = {n: os.path.getmtime(out_dir / n) for n in calibrated}
    status, out, err = run(capsys, "reduce", sample_night.path, "--out", out_dir)
    assert "0 calibrated, 38 already there" in out
    assert before == {n: os.path.getmtime(out_dir / n) for n in calibrated}


def test_masters_then_calibrate(capsys, night, tmp_path):
    status, out, err = run(capsys, "masters", night.path, "--out", tmp_path / "m",
                           "--sigma-clip", "bias", "dark")
    assert status == 0, err
    assert fits.getheader(tmp_path / "m" / "master_bias.fits")["CLIPPED"] is True
    status, out, err = run(capsys, "calibrate", *night.files["light"], "--masters",
                           tmp_path / "m", "--out", tmp_path / "cal")
    assert status == 0, err
    assert len(os.listdir(tmp_path / "cal")) == len(night.files["light"])


def test_bad_files_are_listed_and_night_still_reduces(capsys, night, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(night.path, raw)
    good = night.files["light"][0]
    data = open(good, "rb").read()
    (raw / "truncated.fits").write_bytes(data[: len(data) // 2])
    (raw / "empty.fits").write_bytes(b"")
    (raw / "notes.fits").write_text("not a fits file\n" * 300)
    status, out, err = run(capsys, "reduce", raw, "--out", tmp_path / "out")
    assert status == 1
    assert "5 calibrated" in out
    assert "truncated.fits: truncated FITS" in err
    assert "empty.fits: empty file" in err
    assert "notes.fits: not a FITS file" in err
    assert "Traceback" not in err


def test_missing_calibration_is_one_clear_line(capsys, night, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for path in night.files["light"] + night.files["dark"]:
        shutil.copy(path, raw)
    status, out, err = run(capsys, "reduce", raw, "--out", tmp_path / "out")
    assert status == 1
    assert "no bias frames" in err
    # No bias, no flat, and darks of other exposures that cannot be scaled
    # without a bias: nothing applies, so nothing is written as calibrated.
    assert "0 calibrated, 5 not calibrated" in out
    assert err.count("not calibrated: ") == 5
    assert "flat: no master flat for filter R" in err
    assert "Traceback" not in err


def test_empty_and_missing_folders(capsys, tmp_path):
    status, out, err = run(capsys, "reduce", tmp_path, "--out", tmp_path / "out")
    assert status == 2 and "no usable FITS frames" in err
    status, out, err = run(capsys, "scan", tmp_path / "nope")
    assert status == 2 and "no such folder" in err
    status, out, err = run(capsys, "calibrate", tmp_path, "--masters", tmp_path,
                           "--out", tmp_path / "o")
    assert status == 2 and "no masters made by ginga-ccdcal" in err


def test_incomplete_output_is_redone(capsys, night, tmp_path):
    out_dir = tmp_path / "out"
    assert run(capsys, "reduce", night.path, "--out", out_dir)[0] == 0
    victim = out_dir / os.path.basename(night.files["light"][0])
    whole = victim.read_bytes()
    victim.write_bytes(whole[:3000])  # as a power cut could leave it
    status, out, err = run(capsys, "reduce", night.path, "--out", out_dir)
    assert status == 0, err
    assert "1 calibrated, 4 already there" in out
    assert victim.read_bytes()[-1000:] == whole[-1000:]


def test_watch_and_characterise_commands(capsys, night, tmp_path):
    out_dir = tmp_path / "out"
    assert run(capsys, "masters", night.path, "--out", out_dir / "masters")[0] == 0
    status, out, err = run(capsys, "watch", night.path, "--out", out_dir, "--duration", "4")
    assert status == 0, err
    assert out.count(": calibrated -> ") == len(night.files["light"])
    assert "stopped: 5 calibrated, 25 calibration" in out
    status, out, err = run(capsys, "characterise", night.path, "--out", tmp_path / "rep")
    assert status == 0, err
    assert "read noise" in out and "gain" in out
    assert (tmp_path / "rep" / "ccd_report.html").exists()
