"""Watch mode: real threads, real files, short timeouts, no timing assertions."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from astropy.io import fits

from ginga_ccdcal import watch
from ginga_ccdcal.calibrate import CalibrationOptions, calibrate_frame
from ginga_ccdcal.errors import FrameError
from ginga_ccdcal.masters import build_masters, load_masters
from ginga_ccdcal.match import match_light
from ginga_ccdcal.sample import SyntheticCamera, make_header, write_frame, write_night
from ginga_ccdcal.scan import frame_from_file, scan_folder
from ginga_ccdcal.watch import FolderWatcher

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLL = 0.1          # seconds; keeps the tests quick
WAIT = 30.0         # generous upper bound for anything to happen
CAL_PLAN = [("bias", 0.0, None, 3), ("dark", 300.0, None, 3),
            ("flat", 10.0, "R", 3), ("flat", 10.0, "V", 3)]


class Collector:
    """Results and events from the watcher's threads, with waiting."""

    def __init__(self):
        self.results = []
        self.events = []
        self._cond = threading.Condition()

    def on_result(self, result):
        with self._cond:
            self.results.append(result)
            self._cond.notify_all()

    def on_event(self, text):
        with self._cond:
            self.events.append(text)
            self._cond.notify_all()

    def wait_for(self, count, timeout=WAIT):
        """Wait for at least ``count`` results; return all of them."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.results) >= count, timeout)
            return list(self.results)

    def settle(self, seconds=6 * POLL):
        """Give the watcher time to (wrongly) report more, then return all."""
        time.sleep(seconds)
        with self._cond:
            return list(self.results)

    def of(self, status):
        return [r for r in self.results if r.status == status]


@pytest.fixture
def site(tmp_path):
    """Masters made from a calibration night, an empty raw folder, a camera."""
    camera = SyntheticCamera((32, 40), seed=3)
    calib = tmp_path / "calib"
    write_night(calib, camera, CAL_PLAN, seed=3)
    frames = scan_folder(calib).frames
    masters_dir = tmp_path / "masters"
    report = build_masters(frames, str(masters_dir))
    assert len(report.masters) == 4
    raw = tmp_path / "raw"
    raw.mkdir()
    return Site(camera, raw, tmp_path / "out", masters_dir)


class Site:
    def __init__(self, camera, raw, out, masters_dir):
        self.camera, self.raw, self.out, self.masters_dir = camera, raw, out, masters_dir
        self._count = 0

    def frame_bytes(self, kind="light", exptime=300.0, filter="R"):
        """A complete raw FITS file as bytes (written aside, read back)."""
        self._count += 1
        data = self.camera.frame(kind, exptime, filter if kind in ("flat", "light") else None,
                                 stars=5, seed=(7, self._count))
        header = make_header("maxim", kind, exptime,
                             filter if kind in ("flat", "light") else None,
                             camera=self.camera)
        staging = self.raw.parent / "staging"
        staging.mkdir(exist_ok=True)
        path = write_frame(staging / f"f{self._count}.fits", data, header)
        return open(path, "rb").read()

    def write(self, name, kind="light", **kwargs):
        path = self.raw / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.frame_bytes(kind, **kwargs))
        return str(path)

    def watcher(self, collector, **kwargs):
        kwargs.setdefault("masters_dir", self.masters_dir)
        kwargs.setdefault("poll_interval", POLL)
        return FolderWatcher(self.raw, self.out, on_result=collector.on_result,
                             on_event=collector.on_event, **kwargs)


def expected(path, masters_dir):
    frame = frame_from_file(path)
    return calibrate_frame(frame, match_light(frame, load_masters(str(masters_dir))))


def assert_once_each(results, paths):
    done = [r.path for r in results]
    assert sorted(done) == sorted(os.path.abspath(p) for p in paths), done
    assert len(set(done)) == len(done)


@pytest.mark.parametrize("poll", [False, True], ids=["native", "polling"])
def test_new_lights_calibrated_once_equal_to_calibrate_frame(site, poll):
    col = Collector()
    with site.watcher(col, poll=poll) as watcher:
        assert watcher.mode == ("poll" if poll else "native")
        paths = [site.write(f"M13-{i:03d}R.fit") for i in range(3)]
        paths.append(site.write("M13-001V.fit", filter="V"))
        col.wait_for(len(paths))
        results = col.settle()
    assert all(r.status == "calibrated" for r in results), [r.summary() for r in results]
    assert_once_each(results, paths)
    for result in results:
        want = expected(result.path, site.masters_dir)
        written = fits.getdata(result.output)
        np.testing.assert_array_equal(written, want.data)
        np.testing.assert_array_equal(result.ccd.data, want.data)
        assert fits.getheader(result.output)["CALSTAT"] == "BDF"
        assert result.output == os.path.join(str(site.out), os.path.basename(result.path))
        assert any(line.startswith("flat: master_flat_") for line in result.lines)
        assert result.t_complete <= result.t_start <= result.t_ready
        assert "calibrated ->" in result.summary()
    assert watcher.counts["calibrated"] == len(paths)
    assert not watcher.running


@pytest.fixture
def read_attempts(monkeypatch):
    """Every header read the watcher tries, with the FrameError if it failed."""
    attempts = []
    real = watch.frame_from_file

    def spy(path, **kwargs):
        try:
            frame = real(path, **kwargs)
        except FrameError as exc:
            attempts.append((path, exc.problem))
            raise
        attempts.append((path, None))
        return frame

    monkeypatch.setattr(watch, "frame_from_file", spy)
    return attempts


def test_file_held_open_by_its_writer_is_not_read(site, read_attempts):
    # Linux reports when the writer closes the file: until then it is not
    # complete, however long it sits unchanged.
    data = site.frame_bytes()
    col = Collector()
    with site.watcher(col, settle=0.3) as watcher:
        if watcher.mode != "native" or not sys.platform.startswith("linux"):
            pytest.skip("no close-after-write events on this system")
        path = site.raw / "slow.fits"
        with open(path, "wb") as stream:
            stream.write(data[: len(data) // 2])
            stream.flush()
            assert col.settle(10 * 0.3) == []
            assert read_attempts == []
            stream.write(data[len(data) // 2:])
        col.wait_for(1)
        results = col.settle()
    assert [r.status for r in results] == ["calibrated"], [r.summary() for r in results]
    np.testing.assert_array_equal(fits.getdata(results[0].output),
                                  expected(str(path), site.masters_dir).data)


def test_file_written_slowly_is_waited_for_when_polling(site, read_attempts):
    # Without close events, a file unchanged for `settle` is read; cut short,
    # it is waited for (not reported), and calibrated once it is whole.
    data = site.frame_bytes()
    col = Collector()
    with site.watcher(col, poll=True, settle=0.3):
        path = site.raw / "slow.fits"
        with open(path, "wb") as stream:
            stream.write(data[: len(data) // 2])
            stream.flush()
            deadline = time.monotonic() + WAIT
            while not read_attempts and time.monotonic() < deadline:
                time.sleep(POLL / 2)
            assert col.settle(3 * 0.3) == []
            stream.write(data[len(data) // 2:])
        col.wait_for(1)
        results = col.settle()
    assert any(problem and "truncated" in problem for _, problem in read_attempts)
    assert [r.status for r in results] == ["calibrated"], [r.summary() for r in results]
    np.testing.assert_array_equal(fits.getdata(results[0].output),
                                  expected(str(path), site.masters_dir).data)


def test_temporary_names_wait_for_the_rename(site):
    col = Collector()
    with site.watcher(col):
        temps = {"a.fits.part": "a.fits", "b.tmp": "b.fits", "c.fits~": "c.fits",
                 ".d.fits": "d.fits"}
        for temp in temps:
            site.write(temp)
        assert col.settle() == []
        for temp, final in temps.items():
            os.rename(site.raw / temp, site.raw / final)
        col.wait_for(len(temps))
        results = col.settle()
    assert_once_each(results, [site.raw / f for f in temps.values()])
    assert all(r.status == "calibrated" for r in results)


def test_calibration_frame_is_reported_with_stale_masters(site):
    col = Collector()
    with site.watcher(col):
        path = site.write("Dark-001D300.fit", kind="dark", exptime=300.0)
        flat = site.write("Flat-001R.fit", kind="flat", exptime=10.0, filter="R")
        col.wait_for(2)
        results = col.settle()
    assert_once_each(results, [path, flat])
    by_name = {r.name: r for r in results}
    dark = by_name["Dark-001D300.fit"]
    assert dark.status == "calibration" and dark.frame.frametype == "dark"
    assert dark.output is None and dark.ccd is None
    # The raw dark is newer than the master dark made from the same setup.
    assert [m.name for m in dark.stale] == ["master_dark_300s.fits"]
    assert "new dark 300 s frame" in dark.summary()
    assert "master_dark_300s.fits" in dark.summary()
    assert [m.name for m in by_name["Flat-001R.fit"].stale] == ["master_flat_R.fits"]
    assert not os.listdir(site.out)


def test_restart_does_not_redo(site):
    col = Collector()
    first = [site.write(f"L{i}.fits") for i in range(3)]
    with site.watcher(col):
        col.wait_for(3)
    assert [r.status for r in col.results] == ["calibrated"] * 3
    outputs = {r.name: r.output for r in col.results}
    kept = {n: os.stat(outputs[n]).st_mtime_ns for n in ("L0.fits", "L1.fits")}
    # An output cut short (a power cut after the rename) must be redone.
    cut = outputs["L2.fits"]
    with open(cut, "r+b") as stream:
        stream.truncate(os.path.getsize(cut) // 2)
    late = site.write("L3.fits")           # arrives while nobody watches

    col2 = Collector()
    with site.watcher(col2):
        col2.wait_for(4)
        results = col2.settle()
    assert_once_each(results, first + [late])
    status = {r.name: r.status for r in results}
    assert status == {"L0.fits": "exists", "L1.fits": "exists",
                      "L2.fits": "calibrated", "L3.fits": "calibrated"}
    assert {n: os.stat(outputs[n]).st_mtime_ns for n in kept} == kept
    np.testing.assert_array_equal(fits.getdata(cut),
                                  expected(first[2], site.masters_dir).data)
    assert "already calibrated" in [r for r in results if r.status == "exists"][0].summary()


def test_rescan_finds_lost_events_without_redoing(site, monkeypatch):
    # The operating system may drop events (a full inotify queue): the
    # periodic rescan finds those files, and does not redo the others.
    monkeypatch.setattr(watch, "RESCAN_INTERVAL", 0.2)
    col = Collector()
    with site.watcher(col) as watcher:
        seen = site.write("seen.fits")
        col.wait_for(1)
        monkeypatch.setattr(watch._Handler, "on_any_event", lambda self, event: None)
        lost = site.write("lost.fits")
        col.wait_for(2)
        results = col.settle(2.0)       # about ten rescans
        assert watcher.mode == "native"
    assert_once_each(results, [seen, lost])
    assert [r.status for r in results] == ["calibrated", "calibrated"]


def test_existing_false_only_new_files(site):
    site.write("old.fits")
    col = Collector()
    with site.watcher(col, existing=False):
        new = site.write("new.fits")
        col.wait_for(1)
        results = col.settle()
    assert_once_each(results, [new])


def test_unreadable_file_reported_once_after_settle(site):
    col = Collector()
    with site.watcher(col, settle=0.5):
        bad = site.raw / "notes.fits"
        bad.write_text("not a FITS file\n" * 200)
        (site.raw / "empty.fits").write_bytes(b"")
        col.wait_for(2)
        results = col.settle(1.5)
        assert sorted((r.name, r.status) for r in results) == [
            ("empty.fits", "problem"), ("notes.fits", "problem")]
        text = {r.name: r.summary() for r in results}
        assert text["notes.fits"].startswith(str(bad)) and "not a FITS file" in text["notes.fits"]
        assert "empty file" in text["empty.fits"]
        # Fixed later (rewritten): looked at again, and calibrated.
        bad.write_bytes(site.frame_bytes())
        col.wait_for(3)
        results = col.settle()
    assert [r.status for r in results].count("calibrated") == 1
    assert len(results) == 3


def test_masters_folder_reloaded_when_it_changes(site, tmp_path):
    masters_dir = tmp_path / "new-masters"
    col = Collector()
    with site.watcher(col, masters_dir=masters_dir):
        site.write("before.fits")
        col.wait_for(1)
        before = col.results[0]
        # Nothing to apply: not written, not counted as calibrated.
        assert before.status == "uncalibrated"
        assert before.match.missing == ["bias", "dark", "flat"]
        assert "NOT calibrated, nothing written: no master bias" in before.summary()
        assert not os.path.exists(site.out / "before.fits")
        # Masters rebuilt elsewhere appear in the folder.
        frames = scan_folder(tmp_path / "calib").frames
        build_masters(frames, str(masters_dir))
        site.write("after.fits")
        col.wait_for(2)
        col.settle()
    after = col.results[1]
    assert after.status == "calibrated" and after.match.missing == [] == after.missing
    assert after.banner is None
    assert fits.getheader(after.output)["CALSTAT"] == "BDF"
    reloads = [e for e in col.events if e.startswith("masters from")]
    assert reloads[0].endswith(": none")
    assert any("lights will NOT be calibrated" in e for e in col.events)
    assert "flat filter R" in reloads[-1]


def test_strict_without_masters_is_a_problem_and_writes_nothing(site, tmp_path):
    col = Collector()
    with site.watcher(col, masters_dir=tmp_path / "none",
                      calibration=CalibrationOptions(strict=True)):
        site.write("x.fits")
        col.wait_for(1)
    [result] = col.results
    assert result.status == "problem" and "not calibrated" in result.problem
    assert not os.path.exists(site.out / "x.fits")


def test_subfolders_keep_outputs_apart_and_outputs_inside_raw_ignored(site):
    out = site.raw / "reduced"          # the output folder inside the watched one
    col = Collector()
    watcher = FolderWatcher(site.raw, out, masters_dir=site.masters_dir,
                            poll_interval=POLL, on_result=col.on_result)
    with watcher:
        a = site.write("target.fits")
        b = site.write("night2/target.fits")
        hidden = site.write(".cache/target.fits")
        col.wait_for(2)
        results = col.settle()
    assert_once_each(results, [a, b])
    assert hidden not in [r.path for r in results]
    outputs = sorted(r.output for r in results)
    assert outputs == [str(out / "night2" / "target.fits"), str(out / "target.fits")]


def test_product_in_raw_folder_is_ignored(site):
    col = Collector()
    with site.watcher(col):
        master = site.masters_dir / "master_bias.fits"
        (site.raw / "copy.fits").write_bytes(master.read_bytes())
        col.wait_for(1)
    assert [r.status for r in col.results] == ["ignored"]
    assert "written by ginga_ccdcal" in col.results[0].summary()


def test_burst_is_queued_and_done_once(site):
    col = Collector()
    with site.watcher(col) as watcher:
        paths = [site.write(f"burst{i:02d}.fits") for i in range(12)]
        col.wait_for(len(paths))
        assert watcher.wait_idle(WAIT)
        results = col.settle()
    assert_once_each(results, paths)
    assert all(r.status == "calibrated" for r in results)


def test_stop_is_clean(site):
    col = Collector()
    watcher = site.watcher(col)
    watcher.start()
    assert watcher.running
    with pytest.raises(RuntimeError):
        watcher.start()
    threads = list(watcher._threads) + [watcher._observer]
    watcher.stop()
    watcher.stop()                           # twice is fine
    assert not any(t.is_alive() for t in threads)
    assert watcher.wait(0) is True
    site.write("after-stop.fits")
    assert col.settle() == []


def test_stop_from_a_callback_does_not_deadlock(site):
    col = Collector()
    holder = {}

    def stop_on_first(result):
        col.on_result(result)
        holder["w"].stop()

    watcher = FolderWatcher(site.raw, site.out, masters_dir=site.masters_dir,
                            poll_interval=POLL, on_result=stop_on_first)
    holder["w"] = watcher
    watcher.start()
    site.write("one.fits")
    assert watcher.wait(WAIT)
    for thread in watcher._threads:
        thread.join(WAIT)
        assert not thread.is_alive()
    assert len(col.results) == 1


def test_callback_errors_do_not_stop_the_watcher(site):
    col = Collector()

    def flaky(result):
        col.on_result(result)
        raise ValueError("viewer went away")

    watcher = FolderWatcher(site.raw, site.out, masters_dir=site.masters_dir,
                            poll_interval=POLL, on_result=flaky)
    with watcher:
        site.write("a.fits")
        col.wait_for(1)
        site.write("b.fits")
        col.wait_for(2)
    assert [r.status for r in col.results] == ["calibrated", "calibrated"]


def test_calibration_options_pass_through(site):
    col = Collector()
    with site.watcher(col, calibration=CalibrationOptions(gain=1.5, readnoise=9.0)):
        path = site.write("x.fits")
        col.wait_for(1)
    [result] = col.results
    assert result.status == "calibrated"
    frame = frame_from_file(path)
    want = calibrate_frame(frame, match_light(frame, load_masters(str(site.masters_dir))),
                           CalibrationOptions(gain=1.5, readnoise=9.0))
    assert str(result.ccd.unit) == "electron"
    with fits.open(result.output) as hdul:
        np.testing.assert_array_equal(hdul[0].data, want.data)
        np.testing.assert_array_equal(hdul["UNCERT"].data, want.uncertainty.array)


def test_bad_arguments(site, tmp_path):
    with pytest.raises(FrameError, match="no such folder"):
        FolderWatcher(tmp_path / "nope", site.out)
    with pytest.raises(Exception, match="must differ"):
        FolderWatcher(site.raw, site.raw)


@pytest.mark.bench
def test_bench_watch_quick(tmp_path):
    script = os.path.join(ROOT, "bench", "bench_watch.py")
    proc = subprocess.run([sys.executable, script, "--quick", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "median" in out and "p95" in out and "worst" in out
    assert "missed: 0" in out and "done twice: 0" in out
    assert "output equals calibrate_frame: yes" in out
    # The burst: every file once; memory reported (not judged: no timing or
    # size assertions in tests).
    assert "burst missed: 0, done twice: 0" in out
    assert "burst memory (RSS): before" in out


def test_live_masters_rebuilt_when_new_calibration_frames_arrive(tmp_path):
    import shutil
    from ginga_ccdcal.masters import build_masters, load_masters
    from ginga_ccdcal.sample import SyntheticCamera, write_night
    from ginga_ccdcal.scan import scan_folder
    from ginga_ccdcal.watch import FolderWatcher
    camera = SyntheticCamera((32, 40), seed=8)
    raw, out = tmp_path / "raw", tmp_path / "out"
    write_night(raw, camera, [("bias", 0.0, None, 3), ("dark", 60.0, None, 3),
                              ("flat", 5.0, "R", 3)])
    masters_dir = out / "masters"
    build_masters(scan_folder(raw).frames, masters_dir)
    old_dark = next(m for m in load_masters(masters_dir) if m.kind == "dark")
    results = []
    with FolderWatcher(raw, out, masters_dir=masters_dir, existing=False,
                       rebuild_masters=True, on_result=results.append) as watcher:
        # Two more darks arrive, then a light: it must use a 5-frame dark.
        extra = write_night(tmp_path / "more", camera, [("dark", 60.0, None, 2),
                                                        ("light", 60.0, "R", 1)], seed=9)
        for path in extra:
            target = raw / ("new-" + os.path.basename(path))
            shutil.copy(path, target)
            # Wait for this file's own result: "idle" alone may come before
            # the file system has even told the watcher about it.
            deadline = time.monotonic() + 60
            while not any(r.path == str(target) for r in results):
                assert time.monotonic() < deadline, f"no result for {target.name}"
                time.sleep(0.05)
    light = next(r for r in results if r.status == "calibrated")
    dark_line = next(line for line in light.lines if line.startswith("dark:"))
    assert "(5 frames" in dark_line
    new_dark = next(m for m in load_masters(masters_dir) if m.kind == "dark")
    assert new_dark.n_frames == 5 and new_dark.mtime > old_dark.mtime
    assert any("master rebuilt: master_dark_60s.fits" in line
               for r in results for line in r.lines)
