"""Watch mode and resume never keep a wrong product (issue 14 items 7-10,
issue 10 items 4 and 12): files filled after pre-allocation, raw files
overwritten, live masters fed by a burst, masters that changed, lights with
nothing to apply.  Real threads and files; no timing assertions."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from astropy.io import fits
from watchdog.events import FileOpenedEvent

from ginga_ccdcal import watch
from ginga_ccdcal.calibrate import calibrate_frame
from ginga_ccdcal.masters import build_masters, load_masters
from ginga_ccdcal.match import match_light
from ginga_ccdcal.reduce import calibrate_lights
from ginga_ccdcal.sample import SyntheticCamera, write_night
from ginga_ccdcal.scan import frame_from_file, scan_folder
from ginga_ccdcal.watch import FolderWatcher

from test_watch import POLL, WAIT, Collector, Site, expected

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAL_PLAN = [("bias", 0.0, None, 3), ("dark", 300.0, None, 3), ("flat", 10.0, "R", 3)]


@pytest.fixture
def site(tmp_path):
    camera = SyntheticCamera((32, 40), seed=5)
    calib = tmp_path / "calib"
    write_night(calib, camera, CAL_PLAN, seed=5)
    masters_dir = tmp_path / "masters"
    build_masters(scan_folder(calib).frames, str(masters_dir))
    raw = tmp_path / "raw"
    raw.mkdir()
    return Site(camera, raw, tmp_path / "out", masters_dir)


def wait_until(condition, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def overwrite_raw(path, data):
    """A new version of a raw file under the same name, with a new mtime."""
    before = os.stat(path).st_mtime_ns
    with open(path, "wb") as stream:
        stream.write(data)
    if os.stat(path).st_mtime_ns == before:   # coarse clocks
        os.utime(path, ns=(before + 10**9, before + 10**9))


# -- item 7: pre-allocated files ------------------------------------------------

def test_preallocated_file_is_calibrated_only_once_filled(site):
    """A copy tool creates the file at full size (zeros after the header),
    then fills it: nothing is calibrated from the zeros."""
    col = Collector()
    with site.watcher(col, settle=0.3) as watcher:
        path = site.raw / "prealloc.fits"
        # Ten settle times unchanged, still open: not complete.
        early = fill_later(site, path, lambda: col.settle(10 * 0.3))
        col.wait_for(1)
        results = col.settle()
        mode = watcher.mode
    if mode == "native" and sys.platform.startswith("linux"):
        assert early == [], [r.summary() for r in early]
    calibrated = [r for r in results if r.status == "calibrated"]
    assert calibrated, [r.summary() for r in results]
    np.testing.assert_array_equal(fits.getdata(site.out / "prealloc.fits"),
                                  expected(str(path), site.masters_dir).data)


def fill_later(site, path, hold):
    """Pre-allocate ``path`` (header, then zeros to full size), let three
    viewers read its header, call ``hold()`` while the writer keeps it
    open, then fill it and close it.  Returns what ``hold`` returned."""
    data = site.frame_bytes()
    header_end = data.index(b"END" + b" " * 77) + 80
    header_end += -header_end % 2880
    with open(path, "wb") as stream:
        stream.write(data[:header_end])
        stream.truncate(len(data))          # full size, data all zeros
        stream.flush()
        # Viewers read it meanwhile (their opens and closes say nothing
        # about the writer).
        for _ in range(3):
            assert fits.getheader(path)["NAXIS"] == 2
        held = hold()
        stream.seek(header_end)
        stream.write(data[header_end:])
    return held


def test_preallocated_file_waits_for_its_writer_when_events_lag(site, monkeypatch):
    """The observer's thread is starved: the writer's "opened" is dispatched
    long after "created".  The creation alone says a writer holds the file
    (creating a file opens it), so the zeros are never calibrated."""
    release, held = threading.Event(), threading.Event()
    real = watch._Handler.on_any_event

    def lagging(handler, event):
        if isinstance(event, FileOpenedEvent) and not held.is_set():
            held.set()
            release.wait(WAIT)          # every later event waits behind it
        real(handler, event)

    monkeypatch.setattr(watch._Handler, "on_any_event", lagging)
    col = Collector()
    path = site.raw / "prealloc.fits"

    def hold():
        wait_until(held.is_set, "the writer's open to be held back")
        early = col.settle(10 * 0.3)    # ten settle times: "created" only
        release.set()
        return early + col.settle(10 * 0.3)   # then every event, readers too

    with site.watcher(col, settle=0.3) as watcher:
        if watcher.mode != "native" or not sys.platform.startswith("linux"):
            pytest.skip("no close-after-write events on this system")
        try:
            early = fill_later(site, path, hold)
        finally:
            release.set()
        col.wait_for(1)
        results = col.settle()
    assert early == [], [r.summary() for r in early]
    assert [r.status for r in results] == ["calibrated"], [r.summary() for r in results]
    np.testing.assert_array_equal(fits.getdata(site.out / "prealloc.fits"),
                                  expected(str(path), site.masters_dir).data)


def test_file_moved_in_from_outside_is_complete_at_once(site, tmp_path):
    """A rename into the folder (from outside it: watchdog would call it
    "created") brings a finished file: no settle time, no writer to wait for."""
    outside = tmp_path / "camera-temp"
    outside.mkdir()
    staged = outside / "moved.fits"
    staged.write_bytes(site.frame_bytes())
    col = Collector()
    with site.watcher(col, settle=600.0) as watcher:   # never by time here
        if watcher.mode != "native" or not sys.platform.startswith("linux"):
            pytest.skip("no rename events on this system")
        os.rename(staged, site.raw / "moved.fits")
        results = col.wait_for(1)
    assert [r.status for r in results] == ["calibrated"], [r.summary() for r in results]


def test_folder_moved_in_is_judged_by_time_not_held(site, tmp_path):
    """A folder of finished frames renamed in: watchdog reports each file
    "created" after the folder, yet no writer holds them (they are not
    waited for as if open, which would take a minute)."""
    night = tmp_path / "night"
    night.mkdir()
    for i in range(3):
        (night / f"N{i}.fits").write_bytes(site.frame_bytes())
    col = Collector()
    with site.watcher(col, settle=0.3):
        os.rename(night, site.raw / "night")
        results = col.wait_for(3)
    assert sorted(r.name for r in results) == [os.path.join("night", f"N{i}.fits")
                                               for i in range(3)]
    assert all(r.status == "calibrated" for r in results), [r.summary() for r in results]


@pytest.mark.parametrize("kinds, writing, closed", [
    # open(name, "w") creates and opens in one call: held from "created" on,
    # even while its "opened" has not been dispatched yet; counted once.
    (["created"], True, False),
    (["created", "modified"], True, False),
    (["created", "opened", "modified"], True, False),
    (["created", "opened", "modified", "closed"], False, True),
    # Readers opening and closing never end the writer's hold, whether their
    # events come before or after the writer's own "opened".
    (["created", "opened", "modified"] + ["opened", "closed_no_write"] * 3, True, False),
    (["created"] + ["opened", "closed_no_write"] * 3 + ["opened", "modified"], True, False),
    # watchdog drops an event equal to the one still queued before it: a
    # viewer's two opens may come as one, its two closes as two.  The
    # creator holds the file all the same.
    (["created", "opened", "modified", "opened", "closed_no_write",
      "closed_no_write"], True, False),
    (["created", "opened", "closed_no_write"], True, False),
    # Renamed into place: done.
    (["moved"], False, True),
    # An open the watcher did not see (before the watch began): judged by time.
    (["modified"], False, False),
    (["opened", "modified", "closed_no_write"], False, False),
])
def test_open_close_events_decide_who_holds_a_file(kinds, writing, closed):
    events = watch._Events()
    for kind in kinds:
        events.note(kind)
    assert (events.writing, events.closed) == (writing, closed)


# -- item 8: a raw file overwritten ----------------------------------------------

def test_overwritten_raw_is_recalibrated_while_watching(site):
    col = Collector()
    with site.watcher(col, settle=0.3):
        path = site.write("M1.fits")
        col.wait_for(1)
        first = fits.getdata(site.out / "M1.fits")
        overwrite_raw(path, site.frame_bytes())
        col.wait_for(2)
        results = col.settle()
    assert [r.status for r in results] == ["calibrated", "calibrated"], \
        [r.summary() for r in results]
    second = results[1]
    assert second.redone and "raw file changed" in second.redone
    assert "recalibrated" in second.summary()
    now = fits.getdata(second.output)
    assert not np.array_equal(now, first)
    np.testing.assert_array_equal(now, expected(path, site.masters_dir).data)
    header = fits.getheader(second.output)
    assert header["RAWSIZE"] == os.path.getsize(path)
    assert len(header["RAWSUM"]) == 16


def test_overwritten_raw_is_recalibrated_on_restart(site):
    col = Collector()
    with site.watcher(col):
        path = site.write("M2.fits")
        kept = site.write("M3.fits")
        col.wait_for(2)
    overwrite_raw(path, site.frame_bytes())        # while nobody watches
    col2 = Collector()
    with site.watcher(col2, settle=0.3) as watcher:
        col2.wait_for(2)
        results = col2.settle()
    status = {r.name: r.status for r in results}
    assert status == {"M2.fits": "calibrated", "M3.fits": "exists"}, status
    assert watcher.redone == 1
    np.testing.assert_array_equal(fits.getdata(site.out / "M2.fits"),
                                  expected(path, site.masters_dir).data)
    assert os.path.exists(kept)


def test_touched_raw_with_same_content_is_kept(site, tmp_path):
    # A new modification time alone (a copy that did not keep it) is not a
    # new version: the checksum decides.
    path = site.write("M4.fits")
    frame = frame_from_file(path)
    masters = load_masters(str(site.masters_dir))
    out = str(tmp_path / "cal")
    assert len(calibrate_lights([frame], masters, out).written) == 1
    stamp = os.stat(path).st_mtime_ns + 5 * 10**9
    os.utime(path, ns=(stamp, stamp))
    report = calibrate_lights([frame_from_file(path)], masters, out)
    assert report.existing and not report.written


def test_raw_changed_between_read_and_checksum_is_redone(site, tmp_path, monkeypatch):
    """The checksum is taken while the frame is calibrated: if the raw file
    changes after the calibration read it but before its checksum, the
    product (old pixels) must not pass for the new file's."""
    from ginga_ccdcal import calibrate, products
    from ginga_ccdcal.products import CHANGED_WHILE_READ, check_light_product
    path = site.write("M5.fits")
    frame = frame_from_file(path)
    match = match_light(frame, load_masters(str(site.masters_dir)))
    changed = threading.Event()
    real_checksum, real_calibrate = products.file_checksum, calibrate.calibrate_frame

    def late_checksum(name):
        assert changed.wait(WAIT)          # hashes the new content
        return real_checksum(name)

    def calibrate_then_overwrite(*args, **kwargs):
        ccd = real_calibrate(*args, **kwargs)   # the old pixels
        overwrite_raw(path, site.frame_bytes())
        stamp = os.stat(path).st_mtime_ns + 10**9
        os.utime(path, ns=(stamp, stamp))
        changed.set()
        return ccd

    monkeypatch.setattr(products, "file_checksum", late_checksum)
    monkeypatch.setattr(calibrate, "calibrate_frame", calibrate_then_overwrite)
    out = str(tmp_path / "cal")
    notes = []
    written, _ = calibrate.calibrate_and_write(frame, match, out, notes=notes)
    monkeypatch.undo()
    header = fits.getheader(written)
    assert header["RAWSUM"] == CHANGED_WHILE_READ
    assert notes == ["the raw file changed while it was read; calibrate it again"]
    assert any("changed while it was read" in h for h in header["HISTORY"])
    verdict = check_light_product(written, frame_from_file(path), match)
    assert not verdict.keep and "raw file changed" in verdict.reason


# -- item 10: resume keeps only what is still right ------------------------------

def test_resume_redoes_lights_made_without_a_master_now_available(site, tmp_path):
    """`watch` ran before the flat master existed; a later calibrate must
    not keep those lights as "already there"."""
    partial = tmp_path / "partial-masters"
    partial.mkdir()
    for name in ("master_bias.fits", "master_dark_300s.fits"):
        shutil.copy(site.masters_dir / name, partial / name)
    lights = [frame_from_file(site.write(f"L{i}.fits")) for i in range(3)]
    out = str(tmp_path / "cal")
    first = calibrate_lights(lights, load_masters(str(partial)), out)
    assert len(first.written) == 3
    assert fits.getheader(first.written[0])["CALSTAT"] == "BD"

    again = calibrate_lights(lights, load_masters(str(partial)), out)
    assert len(again.existing) == 3 and not again.written   # nothing new

    full = load_masters(str(site.masters_dir))
    report = calibrate_lights(lights, full, out)
    assert not report.existing
    assert len(report.written) == 3 and len(report.redone) == 3
    assert all("flat now available (master_flat_R.fits)" in why
               for _, why in report.redone), report.redone
    for light, path in zip(lights, report.written):
        assert fits.getheader(path)["CALSTAT"] == "BDF"
        np.testing.assert_array_equal(
            fits.getdata(path), calibrate_frame(light, match_light(light, full)).data)


def test_resume_redoes_lights_whose_master_was_rebuilt(site, tmp_path):
    light = frame_from_file(site.write("L.fits"))
    out = str(tmp_path / "cal")
    calibrate_lights([light], load_masters(str(site.masters_dir)), out)
    # The master dark is rebuilt from more frames (same name, new content).
    more = tmp_path / "more"
    write_night(more, site.camera, [("dark", 300.0, None, 2)], seed=11)
    frames = scan_folder(tmp_path / "calib").frames + scan_folder(more).frames
    build_masters(frames, str(site.masters_dir), overwrite=True)
    masters = load_masters(str(site.masters_dir))
    report = calibrate_lights([light], masters, out)
    assert len(report.redone) == 1 and not report.existing
    assert any("master_dark_300s.fits was rebuilt since" in why for _, why in report.redone)


def test_resume_never_replaces_a_file_it_did_not_write(site, tmp_path):
    light = frame_from_file(site.write("L.fits"))
    out = tmp_path / "cal"
    out.mkdir()
    mine = out / "L.fits"
    mine.write_bytes(site.frame_bytes())        # someone's own file
    before = mine.read_bytes()
    report = calibrate_lights([light], load_masters(str(site.masters_dir)), str(out))
    assert not report.written and not report.existing
    assert "not written by ginga_ccdcal" in report.problems[0]
    assert mine.read_bytes() == before


def test_watch_redoes_lights_calibrated_before_a_master_appeared(site, tmp_path):
    masters_dir = tmp_path / "grow"
    masters_dir.mkdir()
    for name in ("master_bias.fits", "master_dark_300s.fits"):
        shutil.copy(site.masters_dir / name, masters_dir / name)
    col = Collector()
    with site.watcher(col, masters_dir=masters_dir):
        site.write("L.fits")
        col.wait_for(1)
    [first] = col.results
    assert first.status == "calibrated" and first.missing == ["flat"]
    assert first.banner.startswith("partly calibrated: flat NOT applied (")
    assert "NOT applied: flat" in first.summary()
    shutil.copy(site.masters_dir / "master_flat_R.fits", masters_dir)
    col2 = Collector()
    with site.watcher(col2, masters_dir=masters_dir):
        col2.wait_for(1)
    [second] = col2.results
    assert second.status == "calibrated" and second.missing == []
    assert "flat now available" in second.redone
    assert fits.getheader(second.output)["CALSTAT"] == "BDF"


# -- issue 10 item 4: masters first; nothing quietly uncalibrated -----------------

def test_watch_builds_missing_masters_from_the_folder_first(tmp_path):
    camera = SyntheticCamera((32, 40), seed=6)
    raw, out = tmp_path / "raw", tmp_path / "out"
    paths = write_night(raw, camera, CAL_PLAN + [("light", 300.0, "R", 2)], seed=6)
    lights = [p for p in paths if frame_from_file(p).frametype == "light"]
    col = Collector()
    with FolderWatcher(raw, out, masters_dir=out / "masters", poll_interval=POLL,
                       on_result=col.on_result, on_event=col.on_event) as watcher:
        assert watcher.wait_idle(WAIT)
        results = col.settle()
    done = [r for r in results if r.status == "calibrated"]
    assert len(done) == len(lights), [r.summary() for r in results]
    assert all(fits.getheader(r.output)["CALSTAT"] == "BDF" for r in done)
    assert sorted(m.name for m in load_masters(out / "masters")) == [
        "master_bias.fits", "master_dark_300s.fits", "master_flat_R.fits"]
    assert any(e.startswith("masters built before watching") for e in col.events)


def test_light_without_any_master_is_not_written_nor_counted(site, tmp_path):
    col = Collector()
    with site.watcher(col, masters_dir=tmp_path / "empty") as watcher:
        site.write("alone.fits")
        col.wait_for(1)
    [result] = col.results
    assert result.status == "uncalibrated"
    assert "no master bias, dark or flat" in result.problem
    assert result.banner.startswith("NOT calibrated")
    assert watcher.counts["calibrated"] == 0 and watcher.counts["uncalibrated"] == 1
    assert not os.path.exists(site.out / "alone.fits")
    assert any("lights will NOT be calibrated" in e for e in col.events)


# -- item 9: live masters fed by a burst -------------------------------------------

def test_live_masters_follow_a_burst_and_rebuild_dependants(tmp_path, monkeypatch):
    camera = SyntheticCamera((32, 40), seed=9)
    raw, out, stock = tmp_path / "raw", tmp_path / "out", tmp_path / "stock"
    raw.mkdir()
    files = write_night(stock, camera, [("dark", 60.0, None, 3), ("bias", 0.0, None, 4),
                                        ("flat", 5.0, "R", 5)], seed=9)
    by_kind = {}
    for path in files:
        by_kind.setdefault(frame_from_file(path).frametype, []).append(path)
    # A frame that lands while the masters are being built: written after
    # the folder was scanned, before the master is written.
    late = list(by_kind["flat"][-1:])
    real_build = watch.build_masters

    def build_while_a_frame_lands(frames, *args, **kwargs):
        if late and any(f.frametype == "flat" for f in frames):
            shutil.copy(late.pop(), raw / "flat-late.fits")
        return real_build(frames, *args, **kwargs)

    monkeypatch.setattr(watch, "build_masters", build_while_a_frame_lands)
    masters_dir = out / "masters"
    col = Collector()
    with FolderWatcher(raw, out, masters_dir=masters_dir, rebuild_masters=True,
                       poll_interval=POLL, settle=0.3, burst_quiet=0.3,
                       on_result=col.on_result, on_event=col.on_event) as watcher:
        for path in by_kind["dark"]:                 # darks before any bias
            shutil.copy(path, raw)
        wait_until(lambda: watcher.counts["calibration"] == 3, "the darks")
        assert watcher.wait_idle(WAIT)
        [dark] = [m for m in load_masters(masters_dir) if m.kind == "dark"]
        assert not dark.bias_subtracted and dark.n_frames == 3
        for path in by_kind["bias"]:                 # then a burst of biases
            shutil.copy(path, raw)
        wait_until(lambda: watcher.counts["calibration"] == 7, "the biases")
        assert watcher.wait_idle(WAIT)
        for path in by_kind["flat"][:-1]:            # and flats, one lands mid-build
            shutil.copy(path, raw)
        wait_until(lambda: watcher.counts["calibration"] == 12, "the flats")
        assert watcher.wait_idle(WAIT)
        masters = {m.kind: m for m in load_masters(masters_dir)}
    assert masters["bias"].n_frames == 4
    # The dark made before the bias existed was rebuilt with it.
    assert masters["dark"].bias_subtracted and masters["dark"].n_frames == 3
    assert masters["dark"].header["BIASFILE"] == "master_bias.fits"
    # Every flat, the late one included, is in the master flat.
    assert masters["flat"].n_frames == 5
    rebuilt = [e for e in col.events if e.startswith("master rebuilt")]
    assert any("master_dark_60s.fits" in e and "master_bias.fits is" in e
               for e in rebuilt), rebuilt


# -- issue 10 item 12: settle and Ctrl-C ---------------------------------------------

def test_cli_watch_reports_junk_after_settle_and_ctrl_c_exits_0(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    (raw / "junk.fits").write_text("not a FITS file\n" * 300)
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ginga_ccdcal", "--quiet", "watch", str(raw),
         "--out", str(out), "--settle", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        # The problem line comes within seconds (not after 30 s).
        deadline = time.monotonic() + WAIT
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "junk.fits" in line:
                break
        assert "junk.fits" in lines[-1] and "not a FITS file" in lines[-1], lines
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "stopped: 1 problem" in stdout
    assert "Traceback" not in stderr


def test_master_inputs_survive_long_wrapped_paths(tmp_path):
    from ginga_ccdcal.products import check_masters, master_inputs
    raw = tmp_path / ("a" * 40) / ("b" * 40) / "raw with spaces"
    paths = write_night(raw, SyntheticCamera((16, 16), seed=1), [("bias", 0.0, None, 3)])
    build_masters(scan_folder(raw).frames, str(tmp_path / "m"))
    [master] = load_masters(str(tmp_path / "m"))
    # Named relative to their folder in the header; placed among the files
    # present (a copy elsewhere with the same names does not fool it).
    decoy = tmp_path / "elsewhere"
    decoy.mkdir()
    shutil.copy(paths[0], decoy)
    present = [str(decoy / os.path.basename(paths[0]))] + list(paths)
    assert sorted(master_inputs(master, present)) == sorted(os.path.abspath(p)
                                                           for p in paths)
    assert master_inputs(master, []) == []
    # Up to date: nothing to rebuild.  One input gone: outdated, and why.
    assert not check_masters([master], scan_folder(raw).frames, raw_root=str(raw))
    os.remove(paths[0])
    check = check_masters([master], scan_folder(raw).frames, raw_root=str(raw))
    assert "1 of its frames gone" in check.outdated[master.path]
