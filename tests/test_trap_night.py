"""Issue 10, "Done when": the CCDSoft trap night reduces correctly with no option.

`sample.make_ccdsoft_night` writes a night as CCDSoft saves it for an SBIG
camera (flats saved as lights, auto-dark-subtracted lights and a flat with a pedestal,
``BIAS = 100``, binning 1 x 2, flats of two exposures, two cooler
set-points, an arc frame with no IMAGETYP, a light named like a flat), with
the truth about every frame.  ``ginga-ccdcal reduce NIGHT --out OUT`` is run
once through `ginga_ccdcal.cli.main`, and every product is checked against
that truth: the CLI's lines, each master's inputs, each calibrated light's
pixels, and what the headers say.
"""

import contextlib
import io
import os

import numpy as np
import pytest
from astropy.io import fits

from ginga_ccdcal.cli import main
from ginga_ccdcal.fitsfile import read_image
from ginga_ccdcal.provenance import camera_pedestal, steps_done
from ginga_ccdcal.sample import CCDSOFT_PEDESTAL, make_ccdsoft_night


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    """The trap night, reduced once: (night, out folder, status, stdout, stderr)."""
    root = tmp_path_factory.mktemp("trap")
    night = make_ccdsoft_night(root / "night", seed=3)
    out = root / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["-q", "reduce", str(night.directory), "--out", str(out)])
    return night, str(out), status, stdout.getvalue(), stderr.getvalue()


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


def _master_inputs(path):
    """Base names of the raw frames a master's HISTORY says went in."""
    header = fits.getheader(path)
    prefix = "ccdcal: input "
    return sorted(os.path.basename(str(h)[len(prefix):].strip())
                  for h in header.get("HISTORY", []) if str(h).startswith(prefix))


def _masters(out):
    folder = os.path.join(out, "masters")
    return {name: os.path.join(folder, name) for name in sorted(os.listdir(folder))
            if name.endswith(".fits")}


def _names(frames):
    return sorted(os.path.basename(f.path) for f in frames)


# -- the night writes what the readers read -----------------------------------

def test_auto_dark_lights_carry_the_traces_the_readers_read(reduced):
    night = reduced[0]
    assert sum(f.dark_subtracted for f in night.frames) == 4  # 3 lights, 1 flat
    for frame in night.of_type("light") + night.of_type("flat"):
        header = fits.getheader(frame.path)
        done = steps_done(header)
        if frame.dark_subtracted:
            assert "dark" in done and "bias" in done, frame.path
            # What real CCDSoft writes: the correction to add, -100.
            assert header["PEDESTAL"] == -CCDSOFT_PEDESTAL
            assert camera_pedestal(header) == -CCDSOFT_PEDESTAL
        else:
            assert not done, frame.path
            assert camera_pedestal(header) is None
    # The BIAS = 100 card of every raw frame is no pedestal to take off.
    for frame in night.frames:
        if not frame.dark_subtracted:
            assert camera_pedestal(fits.getheader(frame.path)) is None


def test_bias_card_alone_is_the_pedestal_of_a_dark_subtracted_frame():
    """``BIAS = 100`` (what was added) on a dark-subtracted frame with no
    PEDESTAL card: the correction is -100; on a raw frame it is nothing."""
    header = fits.Header([("BIAS", 100, "PEDESTAL ADDED TO DARK-SUBTRACTED IMAGES")])
    assert camera_pedestal(header) is None
    header.add_history("Auto-Dark Subtraction")
    assert camera_pedestal(header) == -100.0
    header["PEDESTAL"] = -50
    assert camera_pedestal(header) == -50.0  # the explicit correction wins



def test_light_with_only_the_bias_card_loses_its_pedestal(reduced, tmp_path):
    """An auto-dark light whose header has ``BIAS = 100`` and no PEDESTAL
    (some CCDSoft set-ups): calibrated like the others, and the product
    keeps no pedestal card a later reader could apply again."""
    import shutil

    from ginga_ccdcal.calibrate import calibrate_frame
    from ginga_ccdcal.masters import load_masters
    from ginga_ccdcal.match import match_light
    from ginga_ccdcal.scan import frame_from_file

    night, out = reduced[:2]
    light = next(f for f in night.of_type("light") if f.dark_subtracted)
    copy = str(tmp_path / os.path.basename(light.path))
    shutil.copy2(light.path, copy)
    with fits.open(copy, mode="update") as hdul:
        del hdul[0].header["PEDESTAL"]
    frame = frame_from_file(copy)
    ccd = calibrate_frame(frame, match_light(frame, load_masters(os.path.join(out, "masters"))))
    expected, _ = _calibrated(out, light)
    np.testing.assert_allclose(np.asarray(ccd.data, dtype=float), expected, atol=1e-3)
    assert camera_pedestal(ccd.header) is None
    assert "BIAS" not in ccd.header and "PEDESTAL" not in ccd.header

# -- the CLI ------------------------------------------------------------------

def test_exit_status_and_every_line_are_honest(reduced):
    night, out, status, stdout, stderr = reduced
    errors = _lines(stderr)
    assert status == 0, stdout + stderr
    assert not [e for e in errors if e.startswith(("skipped:", "warning:",
                                                   "not calibrated:", "Traceback"))]
    notes = [e for e in errors if e.startswith("note: ")]
    assert len(notes) == len(errors), errors
    for flat in night.of_type("flat"):
        said = [n for n in notes if os.path.basename(flat.path) + ":" in n]
        assert len(said) == 1, (flat.path, notes)   # once, not twice
        assert "header says light; file name and pixels say flat" in said[0]
    arc = night.of_type("unknown")[0]
    said = [n for n in notes if os.path.basename(arc.path) + ":" in n]
    assert len(said) == 1 and ": unknown - " in said[0] and "not used" in said[0]
    target = [n for n in notes if "flat-field-target.fits:" in n]
    assert len(target) == 1 and ": light - " in target[0]
    assert len(notes) == len(night.of_type("flat")) + 2
    assert f"{len(night.of_type('light'))} calibrated" in stdout
    counts = {kind: len(night.of_type(kind)) for kind in
              ("bias", "dark", "flat", "light", "unknown")}
    assert ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) in stdout


# -- the masters --------------------------------------------------------------

def _expected_groups(night):
    """Per master kind, the frame groups a careful observer combines."""
    groups = {}
    for frame in night.of_type("bias"):
        groups.setdefault(("bias", frame.set_temp), []).append(frame)
    for frame in night.of_type("dark"):
        groups.setdefault(("dark", frame.exptime, frame.set_temp), []).append(frame)
    for frame in night.of_type("flat"):
        groups.setdefault(("flat", frame.filter), []).append(frame)
    return {key: _names(frames) for key, frames in groups.items()}


def test_each_master_has_exactly_the_right_inputs(reduced):
    night, out = reduced[:2]
    made = sorted(_master_inputs(path) for path in _masters(out).values())
    assert made == sorted(_expected_groups(night).values())
    arc = os.path.basename(night.of_type("unknown")[0].path)
    assert not any(arc in names for names in made)


def test_each_flat_had_the_dark_of_its_own_exposure(reduced):
    night, out = reduced[:2]
    flat = fits.getheader(_masters(out)["master_flat_R.fits"])
    assert flat["DARKSUB"] is True and flat["BIASSUB"] is True
    assert flat["NDARKSUB"] == 6 and flat["FLATNORM"] == "mean"
    # HISTORY wraps long lines at 72 characters: join, then split on our prefix.
    history = "".join(str(h) for h in flat["HISTORY"])
    lines = [line for line in history.split("ccdcal: ") if line.startswith("flat flat-R-")]
    assert len(lines) == 6
    for line in lines:
        frame = night.named(line.split()[1].rstrip(":"))
        if frame.dark_subtracted:
            # Auto-dark by the camera: neither the dark nor the bias again,
            # and its pedestal off before it is scaled and combined.
            assert "dark not subtracted: already subtracted by the camera" in line
            assert "bias not subtracted" in line and "master_" not in line
            assert "pedestal of 100 ADU removed" in line
        else:
            assert f"master_dark_{frame.exptime:g}s" in line, line
            assert "same exposure" in line, line
    assert sum(f.dark_subtracted for f in night.of_type("flat")) == 1


def test_master_flat_agrees_with_the_camera_flat(reduced):
    night, out = reduced[:2]
    data, _, _ = read_image(_masters(out)["master_flat_R.fits"])
    truth = night.camera.flats["R"] / night.camera.flats["R"].mean()
    # Six flats of ~20000 ADU: ~0.3 % noise per pixel.
    assert np.abs(np.asarray(data) / truth - 1).max() < 0.02
    assert abs(np.mean(np.asarray(data) / truth) - 1) < 1e-3


def test_masters_of_two_set_points_stay_apart(reduced):
    out = reduced[1]
    for path in _masters(out).values():
        header = fits.getheader(path)
        if header["MSTRTYPE"] in ("bias", "dark"):
            assert header["CCDTMAX"] - header["CCDTMIN"] < 1.0, path


# -- the calibrated lights ----------------------------------------------------

def _calibrated(out, frame):
    path = os.path.join(out, os.path.basename(frame.path))
    data, header, _ = read_image(path)
    return np.asarray(data, dtype=float), header


def _noise_adu(camera, truth):
    """Per-pixel noise of a calibrated light (read and photon noise), ADU."""
    return np.sqrt((camera.read_noise / camera.gain) ** 2
                   + np.clip(truth, 0, None) / camera.gain)


@pytest.mark.parametrize("which", ["auto-dark", "raw", "flat-field-target"])
def test_calibrated_lights_agree_with_the_camera_truth(reduced, which):
    night, out = reduced[:2]
    camera = night.camera
    lights = [f for f in night.of_type("light")
              if (which == "flat-field-target") == ("flat-field-target" in f.path)
              and (which != "auto-dark" or f.dark_subtracted)
              and (which != "raw" or not f.dark_subtracted)]
    assert lights
    for frame in lights:
        data, _ = _calibrated(out, frame)
        # The master flat is divided by its mean (FLATNORM = 'mean'), the
        # camera's flat by its median: the calibrated level is the signal
        # times the camera flat's mean.
        truth = camera.ideal_light_of(frame.info) * camera.flats[frame.filter].mean()
        residual = data - truth
        # Block medians: noise averages out, a pedestal left in (100 / flat,
        # up to 30 % vignetting) or a dark taken twice does not.
        ny, nx = residual.shape
        blocks = residual[: ny // 8 * 8, : nx // 8 * 8].reshape(
            ny // 8 * 8 // 8, 8, -1, 8).swapaxes(1, 2).reshape(-1, 64)
        sigma = float(np.median(_noise_adu(camera, truth))) / np.sqrt(64) * 1.26
        # The masters' own noise adds a little: 6 sigma leaves room for it.
        assert np.all(np.abs(np.median(blocks, axis=1)) < 6 * sigma), (
            frame.path, np.abs(np.median(blocks, axis=1)).max(), sigma)
        assert abs(np.median(residual)) < 2 * sigma, frame.path


def test_headers_say_what_was_done_and_why(reduced):
    night, out = reduced[:2]
    for frame in night.of_type("light"):
        _, header = _calibrated(out, frame)
        history = " ".join(str(h) for h in header.get("HISTORY", []))
        if frame.dark_subtracted:
            assert header["CALSTAT"].strip() == "BDF"
            assert "dark not applied: already subtracted by the camera software" in history
            assert "bias not applied" in history
            assert "camera pedestal removed" in history
            assert "PEDESTAL" not in header and "BIASFILE" not in header
            assert "DARKFILE" not in header and header["FLATFILE"] == "master_flat_R.fits"
        else:
            assert header["CALSTAT"].strip() == "BDF"
            for key in ("BIASFILE", "DARKFILE", "FLATFILE"):
                assert key in header
            want = f"{frame.set_temp:+.0f}C"
            assert want in header["DARKFILE"] and want in header["BIASFILE"]
        assert "CALMISS" not in header


def test_no_absolute_path_in_any_product_header(reduced):
    night, out = reduced[:2]
    roots = {os.path.abspath(night.directory), os.path.abspath(out),
             os.path.dirname(os.path.abspath(out))}
    products = list(_masters(out).values()) + [
        os.path.join(out, n) for n in os.listdir(out) if n.endswith(".fits")]
    assert len(products) > 7
    for path in products:
        header = fits.getheader(path)
        # HISTORY and COMMENT wrap long lines: join them before looking.
        text = " ".join(str(v) for k, v in header.items()
                        if k not in ("HISTORY", "COMMENT"))
        text += " " + "".join(str(v) for v in header.get("HISTORY", []))
        text += " " + "".join(str(v) for v in header.get("COMMENT", []))
        for root in roots:
            assert root not in text, (path, root)


# -- calibration frames the camera software calibrated already ----------------

def _calibrated_by_camera(path, camera, subtract, history=None, **keywords):
    """Rewrite a raw frame as camera software leaves it: ``subtract`` taken
    off, a 100 ADU pedestal added, and the header's trace of it."""
    with fits.open(path, mode="update") as hdul:
        data = hdul[0].data.astype(np.float64) - subtract + 100.0
        hdul[0].data = np.clip(np.rint(data), 0, 65535).astype(np.uint16)
        hdul[0].header["PEDESTAL"] = (-100, "correction to add for zero-based ADU")
        if history:
            hdul[0].header.add_history(history)
        for key, value in keywords.items():
            hdul[0].header[key] = value


def test_masters_do_not_redo_what_the_camera_did(tmp_path):
    """A flat CCDSoft auto-dark-subtracted and darks IRAF bias-subtracted
    (ZEROCOR) get neither step again, and lose their pedestal."""
    from ginga_ccdcal.masters import build_masters, master_data
    from ginga_ccdcal.sample import SyntheticCamera, write_night
    from ginga_ccdcal.scan import scan_folder

    camera = SyntheticCamera((40, 48), bias_level=1000.0, dark_current=2.0, seed=41,
                             hot_pixel_fraction=0.0)
    paths = write_night(tmp_path / "raw", camera,
                        [("bias", 0.0, None, 4), ("dark", 10.0, None, 4),
                         {"frametype": "flat", "exptime": 10.0, "filter": "R",
                          "count": 4, "level": 8000.0}], noise=False)
    darks, flats = paths[4:8], paths[8:12]
    for path in darks[:2]:
        _calibrated_by_camera(path, camera, camera.bias, ZEROCOR="bias subtracted")
    for path in flats[:3]:
        _calibrated_by_camera(path, camera, camera.bias + camera.dark_rate * 10.0,
                              "Auto-Dark Subtraction")
    report = build_masters(scan_folder(tmp_path / "raw").frames, tmp_path / "m")
    by_kind = {m.kind: m for m in report.masters}
    dark = master_data(by_kind["dark"])
    assert by_kind["dark"].header["BIASSUB"] is True
    np.testing.assert_allclose(dark, camera.dark_rate * 10.0, atol=1.1)  # whole ADU
    flat = master_data(by_kind["flat"])
    truth = camera.flats["R"] / camera.flats["R"].mean()
    np.testing.assert_allclose(flat, truth, rtol=2e-3)
    history = "".join(str(h) for h in by_kind["flat"].header["HISTORY"])
    assert "already subtracted by the camera software" in history
    assert by_kind["flat"].header["DARKSUB"] is True


# -- masters outdated since the last run ----------------------------------------

def test_reduce_rebuilds_masters_whose_frames_changed(tmp_path):
    """A bias frame replaced after a run: the next run rebuilds the master
    bias and what depends on it, says why, and recalibrates the lights."""
    from ginga_ccdcal.reduce import reduce_night
    from ginga_ccdcal.sample import SyntheticCamera, write_night

    camera = SyntheticCamera((32, 40), seed=43)
    paths = write_night(tmp_path / "raw", camera,
                        [("bias", 0.0, None, 3), ("dark", 10.0, None, 3),
                         ("flat", 2.0, "R", 3), ("light", 10.0, "R", 2)])
    out = tmp_path / "out"
    first = reduce_night(tmp_path / "raw", out)
    built = {os.path.basename(m.path): fits.getheader(m.path)["CCDCALDT"]
             for m in first.masters.masters}
    assert sorted(built) == ["master_bias.fits", "master_dark_10s.fits",
                             "master_flat_R.fits"]
    # Later, the observer replaces a bad bias frame by a better one of the
    # same name (the masters are dated back: no waiting in a test).
    for master in first.masters.masters:
        earlier = os.stat(master.path).st_mtime - 60
        os.utime(master.path, (earlier, earlier))
    with fits.open(paths[0], mode="update") as hdul:
        hdul[0].data = camera.frame("bias", seed=99)
    second = reduce_night(tmp_path / "raw", out)
    assert not second.masters.kept, [m.path for m in second.masters.kept]
    bias = next(m for m in second.masters.masters if m.kind == "bias")
    assert any("rebuilt" in line and "changed" in line
               for line in second.masters.summary(bias))
    assert len(second.calibration.redone) == 2
    assert not second.calibration.existing
    # A third run with nothing changed keeps everything.
    third = reduce_night(tmp_path / "raw", out)
    assert len(third.masters.kept) == 3 and len(third.calibration.existing) == 2


def test_reduce_keeps_masters_that_left_a_frame_out_on_purpose(tmp_path):
    """A saturated flat is in no master: a second run keeps the masters."""
    from ginga_ccdcal.reduce import reduce_night
    from ginga_ccdcal.sample import SyntheticCamera, write_night

    camera = SyntheticCamera((32, 40), seed=44)
    write_night(tmp_path / "raw", camera,
                [("bias", 0.0, None, 3), ("dark", 10.0, None, 3), ("flat", 2.0, "R", 3),
                 {"frametype": "flat", "exptime": 2.0, "filter": "R", "count": 1,
                  "level": 80000.0}, ("light", 10.0, "R", 1)])
    first = reduce_night(tmp_path / "raw", tmp_path / "out")
    assert any("saturated" in p for p in first.masters.problems)
    second = reduce_night(tmp_path / "raw", tmp_path / "out")
    assert len(second.masters.kept) == 3, second.masters.notes
    assert len(second.calibration.existing) == 1


# -- one statistic in one place -------------------------------------------------

def test_no_hand_written_mad_constant_in_the_package():
    """The MAD-to-sigma factor comes from `astropy.stats.mad_std`, never
    typed in by hand (1.4826, or 0.6745 the other way round)."""
    import re

    import ginga_ccdcal
    root = os.path.dirname(ginga_ccdcal.__file__)
    typed = re.compile(r"(?<![\d.])(1\.48[0-9]*|0\.674[0-9]*)(?![\d])")
    found = []
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as stream:
                    for number, line in enumerate(stream, 1):
                        code = line.split("#")[0]
                        if typed.search(code):
                            found.append(f"{os.path.relpath(path, root)}:{number}: "
                                         + line.strip())
    assert not found, found


# -- watch says why a frame's type is unknown -----------------------------------

def test_watch_says_why_the_arc_frame_is_unknown(reduced, tmp_path):
    import shutil
    import threading

    from ginga_ccdcal.scan import frame_from_file
    from ginga_ccdcal.watch import FolderWatcher

    night, out = reduced[:2]
    arc = night.of_type("unknown")[0].path
    raw = tmp_path / "raw"
    raw.mkdir()
    results, arrived = [], threading.Event()

    def on_result(result):
        results.append(result)
        arrived.set()

    with FolderWatcher(raw, tmp_path / "out", masters_dir=os.path.join(out, "masters"),
                       poll_interval=0.1, on_result=on_result):
        shutil.copy2(arc, raw / "arc-neon-001.fits")
        assert arrived.wait(30.0)
    [result] = results
    note = frame_from_file(str(raw / "arc-neon-001.fits")).type_note
    assert note and "fit no type" in note
    assert result.status == "ignored"
    assert note in result.problem and "frame type unknown" in result.problem


def test_a_guessed_frame_is_listed_once(tmp_path, capsys):
    """A frame typed from its pixels alone is one line in the CLI, not a
    warning and a note."""
    from ginga_ccdcal.sample import SyntheticCamera, write_night

    camera = SyntheticCamera((32, 40), seed=45)
    paths = write_night(tmp_path / "raw", camera,
                        [("bias", 0.0, None, 3), ("dark", 10.0, None, 3),
                         ("flat", 2.0, "R", 3), ("light", 10.0, "R", 1)])
    with fits.open(paths[6], mode="update") as hdul:
        del hdul[0].header["IMAGETYP"]
    main(["-q", "reduce", str(tmp_path / "raw"), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    name = os.path.basename(paths[6])
    assert sum(line.count(name) for line in text.splitlines()) == 1, text


# -- a frame belongs to the masters of its own set-point --------------------------

def test_a_frame_belongs_only_to_the_masters_of_its_set_point(reduced):
    """A -10 C bias or dark makes no -5 C master 'older' (watch's line
    'older now', the stale checks of watch and reduce)."""
    import dataclasses

    from ginga_ccdcal.masters import load_masters, stale_masters
    from ginga_ccdcal.products import check_masters, masters_lacking
    from ginga_ccdcal.scan import scan_folder

    night, out = reduced[:2]
    frames = scan_folder(night.directory).frames
    masters = load_masters(os.path.join(out, "masters"))
    present = [f.path for f in frames]
    for frame in frames:
        if frame.frametype in ("bias", "dark", "flat"):
            lacking = masters_lacking(frame, masters, present)
            assert lacking == [], (frame.path, [m.name for m in lacking])
    # A bias and a 60 s dark taken again at -10 C, after the masters.
    later = max(m.mtime for m in masters) + 10
    again = [dataclasses.replace(f, path=f.path.replace(".fits", "-again.fits"),
                                 mtime=later)
             for f in frames if os.path.basename(f.path) in ("bias-001.fits",
                                                             "dark-60s-001.fits")]
    stale = sorted(m.name for m, _ in stale_masters(masters, again))
    assert stale == ["master_bias_-10C.fits", "master_dark_60s_-10C.fits"]
    outdated = check_masters(masters, frames + again, raw_root=night.directory).outdated
    assert not any("-5C" in path for path in outdated), outdated
