"""The bad-input corpus, made in code: every bad file gets one clear line
naming it and what is wrong, the rest of the night still reduces, and no
raw file is ever changed.

Write failures (read-only folder, full disk, a process killed mid-write)
must never leave a half-written file under a final name, and a rerun picks
up where the failed one stopped without redoing finished frames.
"""

import errno
import gzip
import hashlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from astropy.io import fits

from ginga_ccdcal import safe_write
from ginga_ccdcal.calibrate import calibrate_frame
from ginga_ccdcal.errors import CcdcalError
from ginga_ccdcal.masters import load_masters
from ginga_ccdcal.match import match_light
from ginga_ccdcal.reduce import reduce_night
from ginga_ccdcal.sample import make_header, write_frame
from ginga_ccdcal.scan import frame_from_file, scan_folder
from ginga_ccdcal.watch import FolderWatcher

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_LIGHTS = 5          # lights of the `night` fixture (3 R, 2 V)
N_MASTERS = 5         # bias, dark 60 s, dark 120 s, flat R, flat V


# -- helpers -------------------------------------------------------------------

def checksums(folder):
    """SHA-1 of every file under ``folder`` (relative path -> hex)."""
    sums = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as stream:
                sums[os.path.relpath(path, folder)] = hashlib.sha1(stream.read()).hexdigest()
    return sums


class Untouched:
    """Context: the raw folder is byte-identical afterwards."""

    def __init__(self, folder):
        self.folder = folder

    def __enter__(self):
        self.before = checksums(self.folder)
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            assert checksums(self.folder) == self.before, "a raw file was modified"


def messages(night):
    """Every line a user sees from a `NightReport`."""
    return night.problems + night.calibration.warnings


def lines_about(night, path):
    path = str(path)
    return [line for line in messages(night) if path in line]


def light_template(night):
    """Pixels and header of the night's first R light."""
    path = night.files["light"][0]
    with fits.open(path) as hdul:
        return hdul[0].data.copy(), hdul[0].header.copy()


def temp_files(folder):
    return [os.path.join(r, n) for r, _, files in os.walk(folder)
            for n in files if n.endswith(".ccdcal-tmp")]


def fits_outputs(folder):
    return sorted(os.path.relpath(os.path.join(r, n), folder)
                  for r, _, files in os.walk(folder) for n in files
                  if n.lower().endswith((".fit", ".fits")) and not n.startswith("."))


def assert_night_went_through(night, out, n_lights=N_LIGHTS):
    written = [p for p in night.calibration.written
               if os.path.basename(p).startswith("M13-")]
    assert len(written) == n_lights, messages(night)
    for path in written:
        assert fits.getheader(path)["CALSTAT"] == "BDF"


# -- files that cannot be used ----------------------------------------------------

def _truncated(folder, night):
    data = open(night.files["light"][0], "rb").read()
    (folder / "truncated.fits").write_bytes(data[: len(data) // 2])
    return "truncated.fits", "truncated FITS"


def _empty(folder, night):
    (folder / "empty.fits").write_bytes(b"")
    return "empty.fits", "empty file (0 bytes)"


def _not_fits(folder, night):
    (folder / "notes.fits").write_text("observing log, not an image\n" * 200)
    return "notes.fits", "not a FITS file"


def _table_only(folder, night):
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name="flux", format="E", array=np.arange(10.0))])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(folder / "catalog.fits")
    return "catalog.fits", "no image in the file"


def _cube(folder, night):
    data, header = light_template(night)
    cube = np.stack([data, data, data]).astype(np.int32)
    fits.PrimaryHDU(cube, header=make_header("maxim", "light", 300.0, "R")).writeto(
        folder / "cube.fits")
    return "cube.fits", "not a 2-D image (data shape (3, 64, 80))"


# Hostile headers, made by editing the cards of a good light's bytes.

def _card(key, value):
    """One 80-byte header card ``KEY = value`` (``value`` as raw bytes)."""
    return (f"{key:<8}= ".encode("ascii") + value).ljust(80)


def _with_cards(raw, **cards):
    """The FITS bytes ``raw`` with some cards replaced (by keyword)."""
    raw = bytearray(raw)
    for key, card in cards.items():
        target = key.ljust(8).encode("ascii")
        start = next(i for i in range(0, len(raw), 80) if raw[i:i + 8] == target)
        raw[start:start + 80] = card
    return bytes(raw)


def _light_bytes(night):
    with open(night.files["light"][0], "rb") as stream:
        return stream.read()


def _bad_value(name, key, value):
    def maker(folder, night):
        (folder / name).write_bytes(
            _with_cards(_light_bytes(night), **{key: _card(key, value)}))
        return name, f"bad header: {key} = "
    return maker


_naxis1_text = _bad_value("naxis1-text.fits", "NAXIS1", b"'abc'")
_bitpix_text = _bad_value("bitpix-text.fits", "BITPIX", b"'x'")
_naxis_real = _bad_value("naxis-real.fits", "NAXIS", b"2.5")
_naxis_huge = _bad_value("naxis-huge.fits", "NAXIS", b"1000000000000")


def _short_text(folder, night):
    (folder / "readme.fits").write_text("not an image\n")
    return "readme.fits", "not a FITS file"


def _gzip_bomb(folder, night):
    """146 bytes of gzip whose header declares a 20000 x 20000 image."""
    cards = [_card("SIMPLE", b"T".rjust(20)), _card("BITPIX", b"16".rjust(20)),
             _card("NAXIS", b"2".rjust(20)), _card("NAXIS1", b"20000".rjust(20)),
             _card("NAXIS2", b"20000".rjust(20)), _card("IMAGETYP", b"'Light Frame'"),
             _card("EXPTIME", b"300.0".rjust(20)), _card("FILTER", b"'R'"),
             b"END".ljust(80)]
    (folder / "bomb.fits.gz").write_bytes(gzip.compress(b"".join(cards).ljust(2880)))
    return "bomb.fits.gz", "more than the memory budget"


def _gzip_cut(folder, night):
    """A gzipped light whose stream stops after the header."""
    raw = _light_bytes(night)
    (folder / "cut.fits.gz").write_bytes(gzip.compress(raw[:2880 * 2]))
    return "cut.fits.gz", "truncated FITS"


def _fz_bomb(folder, night):
    """A tile-compressed light whose header declares a 20000 x 20000 image."""
    data, header = light_template(night)
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data.astype(np.int16))]).writeto(buffer)
    raw = _with_cards(buffer.getvalue()[2880:],
                      ZNAXIS1=_card("ZNAXIS1", b"20000".rjust(20)),
                      ZNAXIS2=_card("ZNAXIS2", b"20000".rjust(20)))
    (folder / "bomb.fits.fz").write_bytes(buffer.getvalue()[:2880] + raw)
    return "bomb.fits.fz", "more than the memory budget"


HOSTILE = [_naxis1_text, _bitpix_text, _naxis_real, _naxis_huge, _short_text,
           _gzip_bomb, _gzip_cut, _fz_bomb]
HOSTILE_IDS = ["NAXIS1-text", "BITPIX-text", "NAXIS-real", "NAXIS-huge", "short-text",
               "gzip-bomb", "gzip-cut", "fz-bomb"]


@pytest.mark.parametrize("maker", [_truncated, _empty, _not_fits, _table_only, _cube]
                         + HOSTILE,
                         ids=["truncated", "zero-byte", "not-FITS", "table-only", "3-D cube"]
                         + HOSTILE_IDS)
def test_unusable_file_is_named_and_the_night_goes_on(night, tmp_path, maker):
    name, what = maker(night.path, night)
    out = tmp_path / "out"
    with Untouched(night.path):
        report = reduce_night(night.path, out)
    path = os.path.join(str(night.path), name)
    lines = lines_about(report, path)
    assert len(lines) == 1, messages(report)
    assert lines[0].startswith(path + ": ") and what in lines[0]
    assert "Traceback" not in lines[0]
    # Refused when the folder is scanned, never listed as a frame first.
    assert path in [p.path for p in report.scan.problems]
    assert path not in [f.path for f in report.scan.frames]
    assert_night_went_through(report, out)
    assert len(report.masters.masters) == N_MASTERS


def test_bad_header_values_through_the_command_line(night, tmp_path, capsys):
    from ginga_ccdcal.cli import main
    bad = dict(maker(night.path, night) for maker in
               (_naxis1_text, _bitpix_text, _naxis_real))
    with Untouched(night.path):
        status = main(["-q", "reduce", str(night.path), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert status == 1
    assert "Traceback" not in out + err
    assert f"{N_LIGHTS} calibrated" in out
    for name, card in zip(bad, ("NAXIS1 = 'abc'", "BITPIX = 'x'", "NAXIS = 2.5")):
        [line] = [x for x in err.splitlines() if name in x]
        assert line.startswith(f"skipped: {night.path / name}: bad header: {card} ")


def test_absurd_axis_count_is_refused_at_once(night, tmp_path):
    """NAXIS = 10**12 once looped over every axis; FITS allows 999."""
    name, what = _naxis_huge(night.path, night)
    child = subprocess.run(
        [sys.executable, "-m", "ginga_ccdcal", "-q", "reduce", str(night.path),
         "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert child.returncode == 1, child.stderr
    assert "Traceback" not in child.stderr
    assert (f"skipped: {night.path / name}: bad header: NAXIS = 1000000000000 is out "
            "of range (0..999)") in child.stderr.splitlines()
    assert f"{N_LIGHTS} calibrated" in child.stdout


def test_watch_mode_reports_each_bad_file_once(night, tmp_path):
    bad = dict(maker(night.path, night) for maker in
               [_truncated, _empty, _not_fits, _table_only, _cube] + HOSTILE)
    results, done = [], threading.Event()

    def collect(result):
        results.append(result)
        if len(results) >= len(bad) + N_LIGHTS:
            done.set()

    masters = tmp_path / "masters"
    reduce_night(night.path, tmp_path / "first", masters_dir=masters)
    with Untouched(night.path):
        watcher = FolderWatcher(night.path, tmp_path / "out", masters_dir=masters,
                                poll_interval=0.1, settle=0.3, on_result=collect)
        with watcher:
            assert done.wait(30)
            assert watcher.wait_idle(30)
    problems = {r.name: r.summary() for r in results if r.status == "problem"}
    assert sorted(problems) == sorted(bad)
    for name, what in bad.items():
        assert problems[name].startswith(os.path.join(str(night.path), name) + ": ")
        assert what in problems[name]
    assert sum(r.status == "calibrated" for r in results) == N_LIGHTS
    assert len(results) == len(bad) + N_LIGHTS + 25     # + the calibration frames


def test_watch_mode_passes_on_warnings(night, tmp_path):
    masters = tmp_path / "masters"
    reduce_night(night.path, tmp_path / "first", masters_dir=masters)
    raw = tmp_path / "raw"
    raw.mkdir()
    data, _ = light_template(night)
    results, done = [], threading.Event()

    def collect(result):
        results.append(result)
        if len(results) == 3:
            done.set()

    with FolderWatcher(raw, tmp_path / "out", masters_dir=masters, poll_interval=0.1,
                       on_result=collect):
        pixels = data.astype(np.float32)
        pixels[1, 2] = np.nan
        write_frame(raw / "holes.fits", pixels, make_header("maxim", "light", 300.0, "R"))
        _saturated_light(raw)
        write_frame(raw / "garbled.fits", data,
                    make_header("maxim", "light", 300.0, "R", IMAGETYP="xq?"))
        assert done.wait(30)
    text = {r.name: r.summary() for r in results}
    assert all(r.status == "calibrated" for r in results), text
    assert "1 pixel(s) are NaN" in text["holes.fits"]
    assert "saturated" in text["clouds-lit.fits"]
    assert "type guessed as 'light'" in text["garbled.fits"]


# -- odd but usable files ------------------------------------------------------------

def _expected_output(path, masters_dir):
    frame = frame_from_file(path)
    return calibrate_frame(frame, match_light(frame, load_masters(str(masters_dir))))


def test_image_in_extension_and_tile_compressed_are_calibrated(night, tmp_path):
    data, header = light_template(night)
    image_header = header.copy()
    for key in ("BZERO", "BSCALE"):
        image_header.remove(key, ignore_missing=True)
    fits.HDUList([fits.PrimaryHDU(header=fits.Header([("ORIGIN", "test")])),
                  fits.ImageHDU(data, header=image_header)]).writeto(night.path / "mef.fits")
    fits.HDUList([fits.PrimaryHDU(),
                  fits.CompImageHDU(data, header=image_header)]).writeto(
        night.path / "packed.fits.fz")
    out = tmp_path / "out"
    with Untouched(night.path):
        report = reduce_night(night.path, out)
    assert not report.problems, report.problems
    assert_night_went_through(report, out)
    reference = fits.getdata(out / os.path.basename(night.files["light"][0]))
    for name in ("mef.fits", "packed.fits"):      # .fz is written uncompressed
        np.testing.assert_array_equal(fits.getdata(out / name), reference)
        assert fits.getheader(out / name)["CALSTAT"] == "BDF"


def test_nan_and_inf_pixels_stay_where_they_are(night, tmp_path):
    data, header = light_template(night)
    pixels = data.astype(np.float32)
    pixels[5, 6], pixels[7, 8], pixels[9, 10] = np.nan, np.inf, -np.inf
    write_frame(night.path / "holes.fits", pixels, make_header("maxim", "light", 300.0, "R"))
    # A bias frame with NaN pixels must not spoil the master bias.
    bias = fits.getdata(night.files["bias"][0]).astype(np.float32)
    bias[20:22, 30:32] = np.nan
    os.remove(night.files["bias"][0])
    write_frame(night.path / "Bias-nan.fit", bias, make_header("maxim", "bias", 0.0))
    out = tmp_path / "out"
    with Untouched(night.path):
        report = reduce_night(night.path, out)
    assert_night_went_through(report, out)
    assert np.isfinite(fits.getdata(out / "masters" / "master_bias.fits")).all()
    result = fits.getdata(out / "holes.fits")
    bad = ~np.isfinite(result)
    assert bad[5, 6] and bad[7, 8] and bad[9, 10]
    assert bad.sum() == 3            # nothing spread to the neighbours


def test_nan_and_inf_pixels_are_reported(night, tmp_path):
    data, _ = light_template(night)
    pixels = data.astype(np.float32)
    pixels[5, 6], pixels[7, 8] = np.nan, np.inf
    write_frame(night.path / "holes.fits", pixels, make_header("maxim", "light", 300.0, "R"))
    report = reduce_night(night.path, tmp_path / "out")
    [line] = lines_about(report, night.path / "holes.fits")
    assert line.startswith(str(night.path / "holes.fits") + ": ")
    assert re.search(r"\b2 pixel.*\bNaN\b", line), line


def _saturated_light(folder):
    pixels = np.full((64, 80), 65535, dtype=np.uint16)
    pixels[:, :20] = 3000                    # three quarters of the frame saturated
    write_frame(folder / "clouds-lit.fits", pixels, make_header("maxim", "light", 300.0, "R"))
    return folder / "clouds-lit.fits"


def test_saturated_light_goes_through(night, tmp_path):
    path = _saturated_light(night.path)
    out = tmp_path / "out"
    with Untouched(night.path):
        report = reduce_night(night.path, out)
    assert_night_went_through(report, out)
    assert os.path.exists(out / path.name)


def test_saturated_light_is_reported(night, tmp_path):
    path = _saturated_light(night.path)
    report = reduce_night(night.path, tmp_path / "out")
    [line] = lines_about(report, path)
    assert line.startswith(str(path) + ": ") and "75" in line and "saturated" in line


def _saturate_flats(night, filter_name):
    flats = [p for p in night.files["flat"]
             if fits.getheader(p)["FILTER"] == filter_name]
    for path in flats:
        os.remove(path)
        write_frame(path, np.full((64, 80), 65535, dtype=np.uint16),
                    make_header("maxim", "flat", 10.0, filter_name))
    return flats


def test_saturated_flats_are_left_out_and_named(night, tmp_path):
    flats = _saturate_flats(night, "R")
    out = tmp_path / "out"
    with Untouched(night.path):
        report = reduce_night(night.path, out)
    for flat in flats:
        [line] = lines_about(report, flat)
        assert line.startswith(flat + ": ") and "saturated" in line and "not used" in line
    assert not os.path.exists(out / "masters" / "master_flat_R.fits")
    assert any("master_flat_R.fits: not made" in line for line in report.problems)
    # The night goes on: V lights fully calibrated, R lights without a flat
    # (and saying so).
    assert len(report.calibration.written) == N_LIGHTS
    for path in report.calibration.written:
        calstat = fits.getheader(path)["CALSTAT"]
        assert calstat == ("BDF" if path.endswith("V.fit") else "BD")
    r_lights = [p for p in night.files["light"] if p.endswith("R.fit")]
    for light in r_lights:
        assert any("flat not applied" in line for line in lines_about(report, light))


# -- headers and setups ------------------------------------------------------------

def test_mismatched_shapes_and_binning(night, tmp_path):
    data, _ = light_template(night)
    # One bias of another size among the biases, a 2x2-binned light.
    write_frame(night.path / "Bias-small.fit", data[:32, :40].copy(),
                make_header("maxim", "bias", 0.0))
    write_frame(night.path / "binned.fits", data,
                make_header("maxim", "light", 300.0, "R", XBINNING=2, YBINNING=2))
    out = tmp_path / "out"
    with Untouched(night.path):
        report = reduce_night(night.path, out)
    assert_night_went_through(report, out)
    biases = {m.shape: m for m in report.masters.masters if m.kind == "bias"}
    assert biases[(64, 80)].n_frames == 5 and biases[(32, 40)].n_frames == 1
    lines = lines_about(report, night.path / "binned.fits")
    # No bias, dark or flat of its binning: listed, and not written.
    assert any("binning 2x2" in line and "not calibrated: no master bias, dark or flat"
               in line for line in lines)
    assert not (out / "binned.fits").exists()
    # The full-size lights used the full-size bias only.
    for path in report.calibration.written:
        if os.path.basename(path).startswith("M13-"):
            assert fits.getheader(path)["BIASFILE"] == biases[(64, 80)].name


def test_missing_or_garbled_exptime_and_filter(night, tmp_path):
    data, _ = light_template(night)
    write_frame(night.path / "no-exptime.fits", data,
                make_header("maxim", "light", 300.0, "R", EXPTIME="n/a", EXPOSURE=None))
    write_frame(night.path / "no-filter.fits", data,
                make_header("maxim", "light", 300.0, None))
    dark = fits.getdata(night.files["dark"][0])
    write_frame(night.path / "Dark-garbled.fit", dark,
                make_header("maxim", "dark", 60.0, EXPTIME="sixty", EXPOSURE=None))
    out = tmp_path / "out"
    with Untouched(night.path):
        report = reduce_night(night.path, out)
    assert_night_went_through(report, out)
    [line] = [x for x in lines_about(report, night.path / "no-exptime.fits")]
    assert "dark not applied" in line and "no exposure time" in line
    [line] = [x for x in lines_about(report, night.path / "no-filter.fits")]
    assert "flat not applied" in line and "filter None" in line
    [line] = [x for x in lines_about(report, night.path / "Dark-garbled.fit")]
    assert "dark without EXPTIME/EXPOSURE" in line
    # Both lights still got what could be applied.
    assert fits.getheader(out / "no-exptime.fits")["CALSTAT"] == "BF"
    assert fits.getheader(out / "no-filter.fits")["CALSTAT"] == "BD"


def test_missing_imagetyp_is_guessed_and_the_night_goes_on(night, tmp_path):
    bias = fits.getdata(night.files["bias"][0])
    write_frame(night.path / "untyped-bias.fits", bias,
                make_header("maxim", "bias", 0.0, IMAGETYP=None))
    out = tmp_path / "out"
    with Untouched(night.path):
        report = reduce_night(night.path, out)
    assert_night_went_through(report, out)
    [frame] = [f for f in report.scan.frames if f.name == "untyped-bias.fits"]
    assert frame.frametype == "bias" and frame.guessed


def test_garbled_imagetyp_is_guessed_and_reported(night, tmp_path):
    data, _ = light_template(night)
    write_frame(night.path / "garbled.fits", data,
                make_header("maxim", "light", 300.0, "R", IMAGETYP="xq?"))
    out = tmp_path / "out"
    with Untouched(night.path):
        report = reduce_night(night.path, out)
    [line] = lines_about(report, night.path / "garbled.fits")
    assert "type guessed as 'light'" in line
    # A light with stars is not taken for a flat (it was, once) ...
    assert fits.getheader(out / "masters" / "master_flat_R.fits")["NCOMBINE"] == 5
    # ... and is calibrated like the others.
    assert fits.getheader(out / "garbled.fits")["CALSTAT"] == "BDF"


def test_same_file_name_in_subfolders_does_not_collide(night, tmp_path):
    source = night.files["light"][0]
    name = os.path.basename(source)
    for sub in ("target-a", "target-b"):
        (night.path / sub).mkdir()
        data, header = light_template(night)
        # Different pixels, so a collision would show.
        write_frame(night.path / sub / name, data + (1 if sub == "target-a" else 7),
                    header)
    out = tmp_path / "out"
    with Untouched(night.path):
        report = reduce_night(night.path, out)
    assert not report.problems
    outputs = fits_outputs(out)
    for rel in (name, f"target-a/{name}", f"target-b/{name}"):
        assert rel in outputs
        np.testing.assert_array_equal(
            fits.getdata(out / rel),
            _expected_output(str(night.path / rel), out / "masters").data)


# -- writing fails -------------------------------------------------------------------

def test_output_folder_is_a_file(night, tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("I am a file")
    with Untouched(night.path):
        with pytest.raises(CcdcalError, match="cannot create output folder") as err:
            reduce_night(night.path, blocker)
        assert str(blocker) in str(err.value)
        with pytest.raises(CcdcalError, match="cannot create output folder"):
            FolderWatcher(night.path, blocker).start()


def _read_only(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    monkeypatch.setattr(os, "link", refuse)
    monkeypatch.setattr(os, "replace", refuse)


def test_read_only_output_folder(night, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _read_only(monkeypatch)
    with Untouched(night.path):
        with pytest.raises(CcdcalError) as err:
            reduce_night(night.path, out)
    text = str(err.value)
    assert str(out / "masters" / "master_bias.fits") in text
    assert "Read-only file system" in text
    assert fits_outputs(out) == [] and temp_files(out) == []


def test_read_only_output_folder_in_watch_mode(night, tmp_path, monkeypatch):
    masters = tmp_path / "masters"
    reduce_night(night.path, tmp_path / "first", masters_dir=masters)
    raw = tmp_path / "raw"
    raw.mkdir()
    out = tmp_path / "out"
    results = []
    _read_only(monkeypatch)
    with FolderWatcher(raw, out, masters_dir=masters, poll_interval=0.1,
                       on_result=results.append) as watcher:
        for path in night.files["light"][:2]:
            shutil.copy(path, raw)
        deadline = time.monotonic() + 30
        while len(results) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watcher.wait_idle(30)
    assert [r.status for r in results] == ["problem", "problem"]
    for result in results:
        assert "cannot write (Read-only file system)" in result.summary()
        assert result.summary().startswith(result.path + ": ")
    assert fits_outputs(out) == [] and temp_files(out) == []


class _FullDisk(io.FileIO):
    """A file whose disk fills up after ``limit`` bytes."""

    limit = None

    def write(self, data):
        if self.limit is not None:
            room = self.limit - self.tell()
            if room < len(data):
                if room > 0:
                    super().write(bytes(data)[:room])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def test_full_disk_mid_write_then_rerun(night, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_fdopen = os.fdopen
    opened = []

    def filling_fdopen(fd, mode="r", *args, **kwargs):
        if "w" not in mode:
            return real_fdopen(fd, mode, *args, **kwargs)
        opened.append(fd)
        raw = _FullDisk(fd, "wb")
        # The masters and two lights fit; then the disk is full, part-way
        # through the next file.
        if len(opened) > N_MASTERS + 2:
            raw.limit = 4000
        return io.BufferedWriter(raw)

    monkeypatch.setattr(safe_write.os, "fdopen", filling_fdopen)
    with Untouched(night.path):
        report = reduce_night(night.path, out)
    failed = [p for p in report.calibration.problems if "No space left on device" in p]
    assert len(failed) == N_LIGHTS - 2 and len(report.calibration.written) == 2
    for line in failed:
        assert line.startswith(str(out)) and ": cannot write (No space left" in line
    # Only whole files under final names; no temporary file left behind.
    assert temp_files(out) == []
    assert len(fits_outputs(out)) == N_MASTERS + 2
    for rel in fits_outputs(out):
        with fits.open(out / rel) as hdul:
            hdul.verify("exception")
            assert hdul[0].data is not None
    done = {p: os.stat(p).st_mtime_ns for p in report.calibration.written}

    monkeypatch.setattr(safe_write.os, "fdopen", real_fdopen)     # space freed
    with Untouched(night.path):
        again = reduce_night(night.path, out)
    assert not again.problems
    assert sorted(again.calibration.existing) == sorted(done)
    assert len(again.calibration.written) == N_LIGHTS - 2
    assert {p: os.stat(p).st_mtime_ns for p in done} == done
    assert len(again.masters.kept) == N_MASTERS


# The child reduces the night with a write that stops half-way through the
# ``die_at``-th file and waits to be killed.
_CHILD = textwrap.dedent("""
    import io, os, sys, time
    from astropy.io import fits
    from ginga_ccdcal.reduce import reduce_night

    raw, out, die_at, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    real = fits.HDUList.writeto
    count = [0]

    def writeto(self, fileobj, *args, **kwargs):
        count[0] += 1
        if count[0] < die_at:
            return real(self, fileobj, *args, **kwargs)
        buffer = io.BytesIO()
        real(self, buffer, *args, **kwargs)
        data = buffer.getvalue()
        fileobj.write(data[: len(data) // 2])
        fileobj.flush()
        with open(marker, "w") as note:
            note.write(fileobj.name if isinstance(fileobj.name, str) else "")
        time.sleep(600)

    fits.HDUList.writeto = writeto
    reduce_night(raw, out)
""")


@pytest.mark.parametrize("die_at", [2, N_MASTERS + 2], ids=["in-master", "in-light"])
def test_killed_mid_write_leaves_no_partial_file_and_rerun_resumes(night, tmp_path, die_at):
    out = tmp_path / "out"
    marker = tmp_path / "writing"
    before = checksums(night.path)
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(night.path), str(out),
                              str(die_at), str(marker)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline:
            assert child.poll() is None, child.stdout.read().decode()
            time.sleep(0.05)
        assert marker.exists(), "the child never reached the write"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert checksums(night.path) == before
    finished = fits_outputs(out)
    assert len(finished) == die_at - 1
    # The file being written is only a hidden temporary (which scans skip).
    leftovers = temp_files(out)
    assert len(leftovers) == 1 and os.path.basename(leftovers[0]).startswith(".")
    for rel in finished:
        with fits.open(out / rel) as hdul:
            hdul.verify("exception")
            assert hdul[0].data is not None
    mtimes = {rel: os.stat(out / rel).st_mtime_ns for rel in finished}

    with Untouched(night.path):
        report = reduce_night(night.path, out)
    assert not report.problems, report.problems
    assert len(fits_outputs(out)) == N_MASTERS + N_LIGHTS
    assert {rel: os.stat(out / rel).st_mtime_ns for rel in finished} == mtimes
    assert len(report.masters.kept) == min(die_at - 1, N_MASTERS)
    assert len(report.calibration.existing) == max(0, die_at - 1 - N_MASTERS)
    # The resumed night equals one reduced in a single go.
    reduce_night(night.path, tmp_path / "clean")
    for rel in fits_outputs(out):
        np.testing.assert_array_equal(fits.getdata(out / rel),
                                      fits.getdata(tmp_path / "clean" / rel))


# -- many files ----------------------------------------------------------------------

def test_five_thousand_tiny_files_scan(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(5)
    templates = {}
    for kind, exptime, filt in (("bias", 0.0, None), ("dark", 60.0, None),
                                ("flat", 5.0, "R"), ("light", 60.0, "R")):
        buffer = io.BytesIO()
        pixels = (1000 + rng.normal(0, 5, (8, 8))).astype(np.uint16)
        fits.PrimaryHDU(pixels, header=make_header("maxim", kind, exptime, filt)).writeto(buffer)
        templates[kind] = buffer.getvalue()
    plan = {"bias": 1500, "dark": 1500, "flat": 1500, "light": 500}
    for kind, count in plan.items():
        sub = folder / ("calib" if kind != "light" else "lights")
        sub.mkdir(exist_ok=True)
        for i in range(count):
            fd = os.open(sub / f"{kind}_{i:05d}.fits", os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, templates[kind])
            os.close(fd)
    (folder / "calib" / "broken.fits").write_bytes(templates["bias"][:3000])
    with Untouched(folder):
        result = scan_folder(folder)
    assert result.counts() == plan
    assert [str(p) for p in result.problems] == [
        f"{folder / 'calib' / 'broken.fits'}: truncated FITS (3000 of 5760 bytes); "
        "is the file still being written?"]
    # A rescan with nothing changed reuses every frame it had.
    again = scan_folder(folder, previous=result)
    assert all(a is b for a, b in zip(again.frames, result.frames))


def test_stale_temp_files_of_a_killed_run_are_cleared(night, tmp_path):
    from ginga_ccdcal.safe_write import TEMP_SUFFIX
    out = tmp_path / "out"
    (out / "masters").mkdir(parents=True)
    old = out / f".M13-001R.fit.x1{TEMP_SUFFIX}"
    young = out / "masters" / f".master_bias.fits.x2{TEMP_SUFFIX}"
    for path in (old, young):
        path.write_bytes(b"half a file")
    os.utime(old, (0, 0))
    reduce_night(night.path, out)
    assert not old.exists()
    assert young.exists()  # may belong to a writer still at work


# -- header text a FITS file cannot hold ------------------------------------------

def _text_lights(night):
    """Copies of the first R light with OBJECT holding a tab, a newline, a
    DEL, a byte outside ASCII, and one whose keyword is not ASCII; and a
    bias whose INSTRUME holds a tab.  Returns {name: expected OBJECT}."""
    raw = _light_bytes(night)
    expected = {}
    for name, value, shown in (("tab.fits", b"'M13\there'", "M13\\there"),
                               ("newline.fits", b"'M13\nhere'", "M13\\nhere"),
                               ("del.fits", b"'M13\x7fhere'", "M13\\x7fhere"),
                               ("accent.fits", b"'caf\xe9 M13'", "caf\\xe9 M13")):
        (night.path / name).write_bytes(_with_cards(raw, OBJECT=_card("OBJECT", value)))
        expected[name] = shown
    (night.path / "keyword.fits").write_bytes(
        _with_cards(raw, OBJECT=b"OBJ\xc9CT  = 'M13'".ljust(80)))
    expected["keyword.fits"] = None
    with open(night.files["bias"][0], "rb") as stream:
        bias = stream.read()
    (night.path / "Bias-000-tab.fit").write_bytes(
        _with_cards(bias, INSTRUME=_card("INSTRUME", b"'SBIG\tST-8'")))
    return expected


def _history(header):
    """HISTORY text with astropy's line wrapping undone."""
    return "".join(str(line) for line in header["HISTORY"])


def test_control_and_non_ascii_header_text_is_escaped_not_fatal(night, tmp_path, capsys):
    from ginga_ccdcal.cli import main
    expected = _text_lights(night)
    out = tmp_path / "out"
    with Untouched(night.path):
        status = main(["-q", "reduce", str(night.path), "--out", str(out)])
    stdout, stderr = capsys.readouterr()
    assert status == 0, stderr
    assert f"{N_LIGHTS + len(expected)} calibrated" in stdout
    for name, shown in expected.items():
        header = fits.getheader(out / name)
        history = _history(header)
        assert "ccdcal: header sanitised: " in history
        if shown is None:
            assert "OBJECT" not in header and not any("OBJ" in k for k in header)
            assert "OBJ\\xc9CT  = 'M13' dropped (keyword not ASCII)" in history
        else:
            assert header["OBJECT"] == shown
            assert "OBJECT value escaped" in history
        assert "?" not in header.get("OBJECT", "")
    # A master starts from its first frame's header: here the one with a tab.
    bias = fits.getheader(out / "masters" / "master_bias.fits")
    assert bias["NCOMBINE"] == 6
    assert bias["INSTRUME"] == "SBIG\\tST-8"
    assert "header sanitised: INSTRUME value escaped" in _history(bias)


def test_newline_in_a_value_keeps_the_scan_tree_one_line_per_group(night, capsys):
    from ginga_ccdcal.cli import main
    _text_lights(night)
    main(["-q", "scan", str(night.path), "--group-by", "OBJECT"])
    tree = capsys.readouterr().out
    assert "OBJECT = M13\\nhere  (1 frames)" in tree.splitlines()
    assert not any(line.startswith("here") for line in tree.splitlines())


def test_non_ascii_folder_name_goes_into_history_escaped(night, tmp_path):
    # Headers name the raw frame relative to the raw folder, so the folder's
    # own name stays out; a non-ASCII file name goes in, escaped visibly.
    folder = tmp_path / "Überwald"
    shutil.copytree(night.path, folder)
    light = sorted(folder.glob("M13-*R.fit"))[0]
    light.rename(folder / light.name.replace("M13-", "M13-Überwald-"))
    report = reduce_night(folder, tmp_path / "out")
    assert not report.calibration.problems
    assert_night_went_through(report, tmp_path / "out")
    [written] = [p for p in report.calibration.written if "berwald-" in p]
    assert "raw frame M13-\\xdcberwald-" in _history(fits.getheader(written))


def test_write_fits_sanitises_what_it_is_given(tmp_path):
    text = "".join(card.decode("latin-1") for card in (
        _card("OBJECT", b"'a\tb'"), _card("EXPTIME", b"3O0".rjust(20)),
        _card("COMMENT", b"x")[:8] + b"bell\x07 here".ljust(72),
        b"N\xc9W     = 1".ljust(80), b"END".ljust(80)))
    header = fits.Header.fromstring(text.ljust(2880))
    path = safe_write.write_fits(tmp_path / "out.fits", np.zeros((4, 4), np.float32),
                                 header)
    written = fits.getheader(path)
    assert written["OBJECT"] == "a\\tb"
    assert written["EXPTIME"] == "3O0"
    assert "bell\\x07 here" in str(written["COMMENT"])
    history = _history(written)
    assert history.startswith("ccdcal: header sanitised: OBJECT value escaped; EXPTIME "
                              "value 3O0 is not a FITS value, kept as text; COMMENT card "
                              "escaped; card N\\xc9W")
    assert temp_files(tmp_path) == []


# -- writes that fail: file-size limit, kills, SIGTERM ------------------------------

_LIMITED = textwrap.dedent("""
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # then writes fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
    from ginga_ccdcal.cli import main
    sys.exit(main(["-q", "reduce", *sys.argv[2:]]))
""")


def test_file_size_limit_skips_one_product_and_the_run_goes_on(night, tmp_path):
    # A light like the others (so masters fit it) with a long header: its
    # product alone exceeds the limit.
    data, _ = light_template(night)
    header = make_header("maxim", "light", 300.0, "R")
    for i in range(1000):
        header.add_history(f"observing log line {i}")
    write_frame(night.path / "big.fits", data, header)
    out = tmp_path / "out"
    with Untouched(night.path):
        child = subprocess.run([sys.executable, "-c", _LIMITED, "45000", str(night.path),
                                "--out", str(out)], cwd=ROOT, capture_output=True,
                               text=True, timeout=300)
    assert "Traceback" not in child.stderr, child.stderr
    assert child.returncode == 1
    assert f"skipped: {out / 'big.fits'}: cannot write (File too large)" in \
        child.stderr.splitlines()
    assert f"{N_LIGHTS} calibrated" in child.stdout
    assert temp_files(out) == []
    assert len(fits_outputs(out)) == N_MASTERS + N_LIGHTS


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _temp_name(final, pid):
    return f".{final}.pid{pid}.ab12cd34{safe_write.TEMP_SUFFIX}"


def test_temp_files_of_dead_writers_are_removed_at_any_depth(tmp_path):
    dead = _dead_pid()
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    orphans = [tmp_path / _temp_name("x.fits", dead), deep / _temp_name("y.fits", dead)]
    mine = tmp_path / _temp_name("z.fits", os.getpid())       # a live writer's
    other = tmp_path / "a" / ".notes.ccdcal-tmp.txt"           # not ours
    for path in orphans + [mine, other]:
        path.write_bytes(b"half a file")
    removed = safe_write.remove_stale_temps(tmp_path)
    assert sorted(removed) == sorted(map(str, orphans))
    assert mine.exists() and other.exists()


def test_a_locked_temp_file_is_kept_even_if_old(tmp_path):
    """A live writer's lock wins over age and over a reused process id."""
    import fcntl
    dead = _dead_pid()
    locked = tmp_path / _temp_name("x.fits", dead)
    locked.write_bytes(b"being written")
    os.utime(locked, (0, 0))
    with open(locked, "rb") as stream:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX)
        assert safe_write.remove_stale_temps(tmp_path) == []
    assert safe_write.remove_stale_temps(tmp_path) == [str(locked)]


def test_write_fits_names_its_temp_file_after_its_process(tmp_path, monkeypatch):
    seen = []
    real = safe_write.os.replace

    def spy(source, target):
        seen.append(os.path.basename(source))
        return real(source, target)

    monkeypatch.setattr(safe_write.os, "replace", spy)
    safe_write.write_fits(tmp_path / "a.fits", np.zeros((2, 2)), overwrite=True)
    [name] = seen
    assert safe_write.temp_owner(name) == os.getpid() and name.startswith(".a.fits.")


@pytest.mark.parametrize("command", ["reduce", "masters", "calibrate", "watch"])
def test_every_command_clears_dead_writers_temp_files(night, tmp_path, capsys, command):
    from ginga_ccdcal.cli import main
    out = tmp_path / "out"
    masters = tmp_path / "masters"
    if command == "calibrate":
        reduce_night(night.path, tmp_path / "first", masters_dir=masters)
    (out / "deep").mkdir(parents=True)
    orphan = out / "deep" / _temp_name("M13-001R.fit", _dead_pid())
    orphan.write_bytes(b"half a file")
    args = {"reduce": ["reduce", night.path, "--out", out],
            "masters": ["masters", night.path, "--out", out],
            "calibrate": ["calibrate", *night.files["light"], "--masters", masters,
                          "--out", out],
            "watch": ["watch", night.path, "--out", out, "--masters", masters,
                      "--duration", "0.5", "--new-only"]}[command]
    main(["-q", *map(str, args)])
    err = capsys.readouterr().err
    assert not orphan.exists()
    assert f"note: removed 1 temporary file(s) left in {out} by an interrupted run" in err


# The child runs ``ginga-ccdcal reduce`` with a write that stops half-way
# through the ``die_at``-th file and waits for a signal.
_CLI_CHILD = _CHILD.replace("reduce_night(raw, out)\n", """
from ginga_ccdcal.cli import main
sys.exit(main(["-q", "reduce", raw, "--out", out]))
""")
assert _CLI_CHILD != _CHILD


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_sigterm_stops_as_cleanly_as_ctrl_c(night, tmp_path, signum):
    out = tmp_path / "out"
    marker = tmp_path / "writing"
    child = subprocess.Popen([sys.executable, "-c", _CLI_CHILD, str(night.path), str(out),
                              str(N_MASTERS + 2), str(marker)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline:
            assert child.poll() is None, child.stderr.read()
            time.sleep(0.05)
        assert marker.exists(), "the child never reached the write"
        child.send_signal(signum)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 128 + signum
    assert "Traceback" not in err
    assert ("terminated" if signum == signal.SIGTERM else "interrupted") in err
    assert temp_files(out) == []
    assert len(fits_outputs(out)) == N_MASTERS + 1
