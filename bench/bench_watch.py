"""Benchmark the watch mode: latency from "file written" to "calibrated ready".

Masters (bias, 30 s dark, R flat) are built first from synthetic frames;
then a writer thread writes raw lights (uint16 FITS, BZERO=32768, streamed
in 4 MiB pieces the way camera software writes) into a watched folder at a
steady rate while a `ginga_ccdcal.watch.FolderWatcher` calibrates them.
Meanwhile the main thread runs a Qt event loop (``QT_QPA_PLATFORM=offscreen``)
with a timer ticking every 10 ms, and records its largest gap: how long a
viewer running in the same process would freeze.

Reported (seconds):

* ``closed -> ready``: from the writer closing the file to the calibrated
  frame written and handed to the callback (what the observer sees);
* ``complete -> ready``: from the watcher deciding the file is complete
  (the result's ``latency``);
* ``calibrate``: the worker's own time for the frame (read, calibrate, write);

with the median, 95th percentile and worst; then whether every frame was
calibrated exactly once, whether the first output equals
`ginga_ccdcal.calibrate.calibrate_frame` on its raw file, and the event
loop's largest gap.  Files are in the page cache (just written).

Then a burst: ``--burst`` small lights (``--burst-size``) dropped into the
folder back to back, as when a night's frames are copied in at once; reported
are the seconds from the first file written to the last result, whether
each was calibrated once, and the process's resident memory (RSS) before,
at its peak and after: it must stay flat, not grow with the queue.

Usage::

    python bench/bench_watch.py                 # 4096 x 4096, 50 frames, one every 2 s
    python bench/bench_watch.py --poll          # polling observer (network drives):
                                                # a file counts as written once
                                                # unchanged for --settle s (2)
    python bench/bench_watch.py --quick         # 256 x 256, 5 frames, burst of 40
    python bench/bench_watch.py --burst 0       # no burst phase

Exit status 1 if a frame was missed or done twice, or the output differs.
"""

import argparse
import io
import os
import shutil
import sys
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import WORK_DIR, make_frame, print_table  # noqa: E402

from ginga_ccdcal.calibrate import calibrate_frame  # noqa: E402
from ginga_ccdcal.masters import build_masters, load_masters  # noqa: E402
from ginga_ccdcal.match import match_light  # noqa: E402
from ginga_ccdcal.scan import frame_from_file, scan_folder  # noqa: E402
from ginga_ccdcal.watch import FolderWatcher  # noqa: E402

CHUNK = 4 << 20
EXPTIME = 30.0


def fits_bytes(data, **cards):
    """A uint16 frame as the bytes of a FITS file with ``cards`` in its header."""
    header = fits.Header()
    for key, value in cards.items():
        header[key.replace("_", "-")] = value
    buffer = io.BytesIO()
    fits.PrimaryHDU(data=data, header=header).writeto(buffer)   # BZERO = 32768
    return buffer.getvalue()


def make_masters(workdir, size):
    """Masters for ``size`` x ``size`` frames (made once, kept in ``workdir``)."""
    calib = os.path.join(workdir, f"calib{size}")
    masters = os.path.join(workdir, f"masters{size}")
    if len(load_masters(masters)) == 3:
        return masters
    shutil.rmtree(calib, ignore_errors=True)
    os.makedirs(calib)
    for kind, exptime, level, count in (("bias", 0.0, 1000.0, 3),
                                        ("dark", EXPTIME, 1010.0, 3),
                                        ("flat", 5.0, 20000.0, 3)):
        for i in range(count):
            rng = np.random.default_rng([size, i, len(kind)])
            data = make_frame((size, size), rng, level=level,
                              kind="flat" if kind == "flat" else "bias")
            cards = dict(IMAGETYP=kind.upper(), EXPTIME=exptime)
            if kind == "flat":
                cards["FILTER"] = "R"
            with open(os.path.join(calib, f"{kind}_{i:02d}.fits"), "wb") as stream:
                stream.write(fits_bytes(data, **cards))
    report = build_masters(scan_folder(calib).frames, masters)
    if report.problems or len(report.masters) != 3:
        raise SystemExit(f"could not build the masters: {report.problems}")
    return masters


def percentile(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


class EventLoopProbe:
    """A Qt event loop in the main thread with a 10 ms timer; largest gap."""

    def __init__(self):
        from qtpy import QtCore
        self.QtCore = QtCore
        self.app = QtCore.QCoreApplication.instance() or QtCore.QCoreApplication([])
        self.gap = 0.0
        self.ticks = 0
        self._last = None

    def _tick(self):
        now = time.perf_counter()
        if self._last is not None:
            self.gap = max(self.gap, now - self._last)
        self._last = now
        self.ticks += 1

    def run_until(self, done):
        """Run the loop until ``done`` (a threading.Event) is set."""
        timer = self.QtCore.QTimer()
        timer.setInterval(10)
        timer.timeout.connect(self._tick)
        stopper = self.QtCore.QTimer()
        stopper.setInterval(50)
        stopper.timeout.connect(lambda: done.is_set() and self.app.quit())
        timer.start()
        stopper.start()
        self.app.exec_() if hasattr(self.app, "exec_") else self.app.exec()
        timer.stop()
        stopper.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=4096, help="frame side, pixels")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--interval", type=float, default=2.0,
                        help="seconds between frames")
    parser.add_argument("--poll", action="store_true", help="polling observer")
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds a file must stay unchanged when no close "
                             "event says it is complete (polling)")
    parser.add_argument("--no-qt", action="store_true",
                        help="no Qt event loop (no stall measurement)")
    parser.add_argument("--burst", type=int, default=200,
                        help="files in the burst phase (0: none)")
    parser.add_argument("--burst-size", type=int, default=256,
                        help="frame side of the burst's files, pixels")
    parser.add_argument("--quick", action="store_true",
                        help="256 x 256, 5 frames, 0.3 s apart; a burst of 40")
    parser.add_argument("--workdir", default=os.path.join(WORK_DIR, "watch"))
    parser.add_argument("--keep", action="store_true",
                        help="keep the raw and calibrated lights afterwards")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.frames, args.interval = 256, 5, 0.3
        args.poll_interval = min(args.poll_interval, 0.2)
        args.burst = min(args.burst, 40)

    workdir = os.path.abspath(args.workdir)
    raw, out = os.path.join(workdir, "raw"), os.path.join(workdir, "out")
    for folder in (raw, out):
        shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(raw)
    t0 = time.perf_counter()
    masters_dir = make_masters(workdir, args.size)
    print(f"masters ready in {time.perf_counter() - t0:.1f} s: {masters_dir}")
    # Start with the disk quiet: what earlier benchmarks wrote is flushed
    # now, not in the middle of this one's writes.
    os.sync()

    rng = np.random.default_rng(11)
    light = make_frame((args.size, args.size), rng, level=3000.0, kind="flat")
    payload = fits_bytes(light, IMAGETYP="LIGHT", EXPTIME=EXPTIME, FILTER="R")

    closed, results = {}, {}
    lock = threading.Lock()
    all_done = threading.Event()

    def on_result(result):
        with lock:
            results.setdefault(result.path, []).append(result)
            if sum(len(v) for v in results.values()) >= args.frames:
                all_done.set()

    def writer():
        start = time.monotonic()
        for i in range(args.frames):
            # A steady cadence, like an imaging sequence.
            delay = start + i * args.interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            path = os.path.join(raw, f"light_{i:04d}.fits")
            with open(path, "wb") as stream:
                for k in range(0, len(payload), CHUNK):
                    stream.write(payload[k:k + CHUNK])
            closed[path] = time.monotonic()

    watcher = FolderWatcher(raw, out, masters_dir=masters_dir, on_result=on_result,
                            poll=args.poll, poll_interval=args.poll_interval,
                            settle=args.settle)
    probe = None
    if not args.no_qt:
        try:
            probe = EventLoopProbe()
        except Exception as exc:  # no Qt binding: measure without it
            print(f"no Qt event loop ({exc}); stall not measured")
    deadline_s = args.frames * args.interval + 120.0
    with watcher:
        thread = threading.Thread(target=writer, name="camera", daemon=True)
        thread.start()
        if probe is not None:
            watchdog_timer = threading.Timer(deadline_s, all_done.set)
            watchdog_timer.start()
            probe.run_until(all_done)
            watchdog_timer.cancel()
        else:
            all_done.wait(deadline_s)
        thread.join()
        watcher.wait_idle(30.0)
        # Give a duplicate the chance to show up.
        time.sleep(3 * args.poll_interval)
    mode = watcher.mode

    calibrated = {p: rs for p, rs in results.items()
                  if any(r.status == "calibrated" for r in rs)}
    missed = sorted(set(closed) - set(calibrated))
    twice = sorted(p for p, rs in results.items() if len(rs) > 1)
    other = sorted(f"{r.summary()}" for rs in results.values() for r in rs
                   if r.status != "calibrated")
    first = [rs[0] for p, rs in sorted(calibrated.items())]
    e2e = [r.t_ready - closed[r.path] for r in first if r.path in closed]
    latency = [r.latency for r in first]
    work = [r.t_ready - r.t_start for r in first]

    same = False
    if first:
        frame = frame_from_file(first[0].path)
        want = calibrate_frame(frame, match_light(frame, load_masters(masters_dir)))
        same = bool(np.array_equal(fits.getdata(first[0].output), want.data,
                                   equal_nan=True))

    print(f"\nwatch mode ({mode}{f', poll {args.poll_interval:g} s' if mode == 'poll' else ''}): "
          f"{args.frames} frames of {args.size} x {args.size}, one every "
          f"{args.interval:g} s, {os.cpu_count()} cores")
    rows = [dict(measure=name, n=len(values), median=percentile(values, 50),
                 p95=percentile(values, 95), worst=max(values) if values else None)
            for name, values in (("closed -> ready", e2e), ("complete -> ready", latency),
                                 ("calibrate", work))]
    print_table(rows, [("measure", "measure", "s"), ("n", "n", "d"),
                       ("median", "median s", ".3f"), ("p95", "p95 s", ".3f"),
                       ("worst", "worst s", ".3f")])
    print(f"frames written: {len(closed)}, calibrated: {len(calibrated)}, "
          f"missed: {len(missed)}, done twice: {len(twice)}")
    for line in other:
        print(f"  not calibrated: {line}")
    print(f"output equals calibrate_frame: {'yes' if same else 'NO'}")
    if probe is not None:
        print(f"Qt event loop in the main thread: largest gap {probe.gap * 1000:.0f} ms "
              f"(10 ms timer, {probe.ticks} ticks)")
    if not args.keep:
        for folder in (raw, out):
            shutil.rmtree(folder, ignore_errors=True)
    ok = not missed and not twice and same
    if args.burst > 0:
        ok = run_burst(args, workdir) and ok
    return 0 if ok else 1


def rss_mb():
    """Resident memory of this process now, MB (Linux; NaN elsewhere)."""
    try:
        with open("/proc/self/statm") as stream:
            pages = int(stream.read().split()[1])
    except (OSError, ValueError, IndexError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_burst(args, workdir):
    """Drop ``args.burst`` lights into a watched folder at once; report."""
    size = args.burst_size
    masters_dir = make_masters(workdir, size)
    raw, out = os.path.join(workdir, "burst-raw"), os.path.join(workdir, "burst-out")
    for folder in (raw, out):
        shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(raw)
    rng = np.random.default_rng(12)
    payload = fits_bytes(make_frame((size, size), rng, level=3000.0, kind="flat"),
                         IMAGETYP="LIGHT", EXPTIME=EXPTIME, FILTER="R")
    results, lock, all_done = {}, threading.Lock(), threading.Event()
    samples = []

    def on_result(result):
        result.ccd = None   # keep the statuses, not 200 calibrated frames
        with lock:
            results.setdefault(result.path, []).append(result)
            samples.append(rss_mb())
            if len(results) >= args.burst:
                all_done.set()

    watcher = FolderWatcher(raw, out, masters_dir=masters_dir, on_result=on_result,
                            poll=args.poll, poll_interval=args.poll_interval,
                            settle=args.settle)
    with watcher:
        watcher.wait_idle(30.0)
        before = rss_mb()
        start = time.monotonic()
        for i in range(args.burst):
            with open(os.path.join(raw, f"burst_{i:04d}.fits"), "wb") as stream:
                stream.write(payload)
        all_done.wait(args.burst * 2.0 + 120.0)
        drained = time.monotonic() - start
        watcher.wait_idle(30.0)
        time.sleep(3 * args.poll_interval)
        after = rss_mb()
    calibrated = sum(1 for rs in results.values()
                     if any(r.status == "calibrated" for r in rs))
    twice = sum(1 for rs in results.values() if len(rs) > 1)
    missed = args.burst - calibrated
    peak = max(samples + [before, after])
    print(f"\nburst ({watcher.mode}): {args.burst} files of {size} x {size} written at "
          f"once, drained in {drained:.2f} s")
    print(f"burst missed: {missed}, done twice: {twice}")
    print(f"burst memory (RSS): before {before:.0f} MB, peak {peak:.0f} MB, "
          f"after {after:.0f} MB")
    if not args.keep:
        for folder in (raw, out):
            shutil.rmtree(folder, ignore_errors=True)
    return missed == 0 and twice == 0


if __name__ == "__main__":
    sys.exit(main())
