"""Frame types that contradict the header (issue 10, item 1): the CCDSoft trap
night, bias/dark-named lights, arcs without IMAGETYP, the user's --type globs."""

import json
import os

import numpy as np
import pytest
from astropy.io import fits

from ginga_ccdcal import classify
from ginga_ccdcal.cli import main
from ginga_ccdcal.sample import SyntheticCamera, make_ccdsoft_night, make_header, write_frame
from ginga_ccdcal.scan import frame_from_file, scan_folder


@pytest.fixture(scope="module")
def ccdsoft(tmp_path_factory):
    """The CCDSoft trap night and its scan (made once for this module)."""
    night = make_ccdsoft_night(tmp_path_factory.mktemp("ccdsoft") / "raw", seed=1)
    return night, scan_folder(night.directory)


def _frames_by_name(scan):
    return {f.name: f for f in scan.frames}


def test_flats_saved_as_lights_are_flats_and_say_why(ccdsoft):
    night, scan = ccdsoft
    frames = _frames_by_name(scan)
    flats = [os.path.basename(f.path) for f in night.of_type("flat")]
    assert len(flats) == 6
    for name in flats:
        frame = frames[name]
        assert frame.frametype == "flat", name
        assert frame.type_source == "evidence"
        assert frame.type_note.startswith("header says light; file name and pixels say flat")
        assert frame.type_confidence == "high"


def test_every_frame_of_the_trap_night_gets_its_true_type(ccdsoft):
    night, scan = ccdsoft
    got = {f.path: f.frametype for f in scan.frames}
    assert got == night.truth
    assert not scan.problems


def test_light_named_flat_with_stars_stays_a_light(ccdsoft):
    _, scan = ccdsoft
    target = _frames_by_name(scan)["flat-field-target.fits"]
    assert target.frametype == "light"
    assert target.type_source == "IMAGETYP"
    # The name was looked at, and the user is told why it did not count.
    assert "file name says flat" in target.type_note and "kept as light" in target.type_note


def test_arc_without_imagetyp_is_unknown_not_a_dark(ccdsoft):
    _, scan = ccdsoft
    arc = _frames_by_name(scan)["arc-neon-001.fits"]
    assert arc.frametype == "unknown"
    assert arc.type_confidence == "none"
    assert "no frame type in the header" in arc.type_note
    assert "unknown" in arc.type_note
    # Listed with its reason by the scan.
    assert any("arc-neon-001.fits" in line for line in scan.type_notes())


def test_unknown_frames_stay_out_of_masters(ccdsoft, tmp_path):
    from ginga_ccdcal.masters import build_masters
    _, scan = ccdsoft
    report = build_masters(scan.frames, tmp_path / "masters")
    assert report.masters
    for master in report.masters:
        history = str(fits.getheader(master.path).get("HISTORY", ""))
        assert "arc-neon" not in history, master.name
        assert "flat-field-target" not in history, master.name
    assert {m.kind for m in report.masters} >= {"bias", "dark", "flat"}


def test_scan_command_shows_the_notes(ccdsoft, capsys, monkeypatch, tmp_path):
    night, _ = ccdsoft
    monkeypatch.setenv("GINGA_HOME", str(tmp_path / "home"))
    assert main(["-q", "scan", night.directory, "--files"]) == 0
    out = capsys.readouterr().out
    assert "flat-R-2s-001.fits" in out
    assert "header says light; file name and pixels say flat" in out
    assert "arc-neon-001.fits" in out and "unknown" in out


def _camera():
    return SyntheticCamera((60, 80), seed=5, dark_current=0.5)


@pytest.mark.parametrize("kind, exptime, name", [
    ("bias", 0.0, "bias-001.fits"), ("dark", 120.0, "dark-120s-003.fits"),
    ("dark", 120.0, "Dark_Frame_0007.fit")])
def test_bias_and_dark_named_files_with_a_light_header(tmp_path, kind, exptime, name):
    camera = _camera()
    data = camera.frame(kind, exptime)
    path = write_frame(tmp_path / name, data, make_header("maxim", "light", exptime, "R"))
    frame = frame_from_file(path)
    assert frame.frametype == kind
    assert frame.type_note.startswith(f"header says light; file name and pixels say {kind}")


def test_dark_named_light_with_stars_stays_a_light(tmp_path):
    camera = _camera()
    data = camera.frame("light", 120.0, "R", stars=25, sky=20.0, seed=3)
    path = write_frame(tmp_path / "dark-sky-site-dark-001.fits", data,
                       make_header("maxim", "light", 120.0, "R"))
    frame = frame_from_file(path)
    assert frame.frametype == "light"
    assert "file name says dark" in frame.type_note


def test_names_without_a_type_word_read_no_pixels(tmp_path, monkeypatch):
    camera = _camera()
    path = write_frame(tmp_path / "m57-R-001.fits", camera.frame("light", 60.0, "R"),
                       make_header("maxim", "light", 60.0, "R"))
    import ginga_ccdcal.scan as scan_module

    def refuse(*args, **kwargs):
        raise AssertionError("pixels read for a frame whose header nobody contradicts")
    monkeypatch.setattr(scan_module, "read_image", refuse)
    assert frame_from_file(path).frametype == "light"


def test_pixel_guess_says_how_sure_it_is(tmp_path):
    camera = _camera()
    header = make_header("maxim", "dark", 120.0, IMAGETYP=None)
    path = write_frame(tmp_path / "frame-0001.fits", camera.frame("dark", 120.0), header)
    frame = frame_from_file(path)
    assert (frame.frametype, frame.type_source, frame.type_confidence) == ("dark", "guess", "low")
    assert "no frame type in the header" in frame.type_note and "guess" in frame.type_note
    # With a telling name the same pixels are a surer guess.
    named = write_frame(tmp_path / "dark-0001.fits", camera.frame("dark", 120.0), header)
    frame = frame_from_file(named)
    assert (frame.frametype, frame.type_confidence) == ("dark", "high")


def test_one_function_decides_user_then_header_then_evidence():
    header = fits.Header({"IMAGETYP": "Light Frame", "EXPTIME": 2.0})
    flat = np.full((40, 50), 20000.0) + np.random.default_rng(1).normal(0, 100, (40, 50))

    def pixels():
        return flat
    decided = classify.decide_type(header, "/night/flat-001.fits", pixels=pixels)
    assert (decided.frametype, decided.source) == ("flat", "evidence")
    # The user's glob wins over header and evidence, and says where it came from.
    aliases = {"files": {"flat-*": "dark"}}
    decided = classify.decide_type(header, "/night/flat-001.fits", aliases=aliases,
                                   pixels=pixels)
    assert (decided.frametype, decided.source) == ("dark", "user")
    assert decided.note == "header says light; set by you for files 'flat-*': dark"
    # A glob agreeing with the header needs no note.
    decided = classify.decide_type(header, "/night/flat-001.fits", pixels=pixels,
                                   aliases={"files": {"FLAT-*": "light"}})
    assert (decided.frametype, decided.source, decided.note) == ("light", "user", "")
    # A per-file choice (the browser's Set type) wins over the glob.
    decided = classify.decide_type(header, "/night/flat-001.fits", aliases=aliases,
                                   override="bias", pixels=pixels)
    assert (decided.frametype, decided.source) == ("bias", "user")
    # The user's own spelling of the header value counts as the header.
    odd = fits.Header({"IMAGETYP": "calib-z"})
    decided = classify.decide_type(odd, "/night/x.fits", aliases={"type": {"calib-z": "bias"}},
                                   pixels=pixels)
    assert (decided.frametype, decided.source, decided.note) == ("bias", "IMAGETYP", "")


def test_type_option_is_kept_in_the_vocabulary_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GINGA_HOME", str(tmp_path / "home"))
    camera = _camera()
    raw = tmp_path / "raw"
    raw.mkdir()
    # A sky flat with a few stars: the evidence keeps it a light, the user knows better.
    data = camera.frame("flat", 2.0, "R", seed=2).astype(float)
    yy, xx = np.mgrid[:60, :80]
    for y, x in ((20, 30), (45, 60)):
        data += 8000 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.5 ** 2))
    data = data.astype(np.uint16)
    write_frame(raw / "flat-sky-001.fits", data, make_header("maxim", "light", 2.0, "R"))
    write_frame(raw / "m57-001.fits", camera.frame("light", 60.0, "R", stars=10),
                make_header("maxim", "light", 60.0, "R"))
    assert scan_folder(raw).counts() == {"light": 2}
    vocabulary = tmp_path / "vocabulary.json"
    vocabulary.write_text(json.dumps({"type": {"calib-z": "bias"}}))
    assert main(["-q", "--aliases", str(vocabulary), "scan", str(raw),
                 "--type", "flat=flat-*"]) == 0
    out = capsys.readouterr()
    assert "frametype = flat  (1 frames)" in out.out
    saved = json.loads(vocabulary.read_text())
    assert saved["files"] == {"flat-*": "flat"}
    assert saved["type"] == {"calib-z": "bias"}  # the spellings are kept
    assert "flat-*" in out.err
    # The next run, the browser and the core read the same file.
    assert main(["-q", "--aliases", str(vocabulary), "scan", str(raw)]) == 0
    assert "frametype = flat  (1 frames)" in capsys.readouterr().out
    scan = scan_folder(raw, aliases=classify.load_aliases(vocabulary))
    assert scan.counts() == {"flat": 1, "light": 1}


@pytest.mark.parametrize("value", ["flat", "=flat-*", "sky=flat-*", "flat="])
def test_type_option_rejects_bad_values(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["-q", "scan", str(tmp_path), "--type", value])
    assert exc.value.code == 2
    assert "--type" in capsys.readouterr().err


def test_rescan_sees_a_new_file_type(tmp_path):
    camera = _camera()
    path = write_frame(tmp_path / "sky-001.fits", camera.frame("light", 60.0, "R", stars=8),
                       make_header("maxim", "light", 60.0, "R"))
    first = scan_folder(tmp_path)
    again = scan_folder(tmp_path, previous=first, aliases={"files": {"sky-*": "flat"}})
    [frame] = again.frames
    assert (frame.path, frame.frametype, frame.type_source) == (path, "flat", "user")


# -- a broken vocabulary file: one line, exit status 2, in every command ----------

@pytest.mark.parametrize("command", ["scan", "masters", "reduce", "watch"])
@pytest.mark.parametrize("content", ['{"type": null}', '{"filter": {"Ha": ["x"]}}', "[1]"])
def test_broken_vocabulary_is_one_line_and_status_2(tmp_path, capsys, command, content):
    raw = tmp_path / "raw"
    raw.mkdir()
    vocabulary = tmp_path / "vocabulary.json"
    vocabulary.write_text(content)
    args = ["-q", "--aliases", str(vocabulary), command, str(raw)]
    if command != "scan":
        args += ["--out", str(tmp_path / "out")]
    if command == "watch":
        args += ["--duration", "0.1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(vocabulary) in err[0], err
    assert "Traceback" not in err[0]


def test_endless_vocabulary_file_is_refused(tmp_path, capsys):
    assert main(["-q", "--aliases", "/dev/zero", "scan", str(tmp_path)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "/dev/zero" in line and "too big" in line


def test_type_option_starts_a_new_vocabulary_file_or_says_why_not(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    fresh = tmp_path / "new" / "vocabulary.json"
    assert main(["-q", "--aliases", str(fresh), "scan", str(raw), "--type", "dark=d-*"]) == 2
    assert json.loads(fresh.read_text()) == {"type": {}, "filter": {}, "files": {"d-*": "dark"}}
    capsys.readouterr()
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    target = blocked / "vocabulary.json"
    assert main(["-q", "--aliases", str(target), "scan", str(raw), "--type", "dark=d-*"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert str(target) in line and "cannot save" in line


def test_masters_and_reduce_say_which_types_were_corrected(ccdsoft, tmp_path, capsys,
                                                            monkeypatch):
    night, _ = ccdsoft
    monkeypatch.setenv("GINGA_HOME", str(tmp_path / "home"))
    main(["-q", "masters", night.directory, "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert "flat-R-5s-002.fits: flat - header says light; file name and pixels say flat" in err
    assert "arc-neon-001.fits: unknown" in err
    main(["-q", "reduce", night.directory, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert "flat-R-2s-001.fits: flat - header says light; file name and pixels say flat" in err
    assert "flat-field-target.fits: light - file name says flat" in err
