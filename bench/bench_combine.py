"""Benchmark ginga_ccdcal.combine against ccdproc.combine.

Writes a stack of synthetic raw frames (uint16 FITS, BZERO=32768, bias-like
values with noise) to a work folder, then, in this one process and on the
same files, times ``ccdproc.combine`` and ``ginga_ccdcal.combine.combine``
for each method, checks that their outputs agree, and prints a table:

* ``ccdproc s`` / ``ours s``: wall time of a call, the best of
  ``--ccdproc-repeat`` (default 1: it is slow) and ``--repeat`` (default 3)
  calls (files in the page cache: they were just written or read);
* ``speedup``: ccdproc time / our time;
* ``floor s``: reading every frame into one float32 stack (one positional
  read and one conversion per file) plus a single ``np.mean(axis=0)`` --
  the least any combine of these files has to do; ``ours/floor`` compares
  our time with it;
* ``ours cpu s`` / ``cpu/floor cpu``: the same in CPU time summed over
  threads, which other processes on a busy machine disturb much less;
* ``peak``: peak increase of resident memory during the first call (see
  ``_common.PeakRSS`` and `set_malloc`: for that call blocks of 128 KiB
  or more are mapped and unmapped on their own, so freed memory leaves
  RSS and each call is measured on its own; the timed repeats run with
  malloc as in a long-running program);
* ``max|diff|``: largest absolute difference between the two results.

Usage::

    python bench/bench_combine.py                 # 2048 x 2048 x 20 frames
    python bench/bench_combine.py --size 4096 --frames 50 --methods median
    python bench/bench_combine.py --quick         # tiny, for the test suite

The script exits with status 1 if any output disagrees.
"""

import argparse
import ctypes
import ctypes.util
import logging
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import (WORK_DIR, PeakRSS, format_bytes, make_stack,  # noqa: E402
                     print_table)

#: name -> (method, keyword arguments shared by ccdproc and us)
METHODS = {
    "average": ("average", {}),
    "median": ("median", {}),
    "sigclip-average": ("average", dict(sigma_clip=True,
                                        sigma_clip_low_thresh=3.0,
                                        sigma_clip_high_thresh=3.0,
                                        sigma_clip_func="mean",
                                        sigma_clip_dev_func="std")),
    "sigclip-median": ("median", dict(sigma_clip=True,
                                      sigma_clip_low_thresh=3.0,
                                      sigma_clip_high_thresh=3.0,
                                      sigma_clip_func="median",
                                      sigma_clip_dev_func="mad_std")),
}
DEFAULT_METHODS = ("average", "median", "sigclip-average")


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def set_malloc(mode):
    """Tune glibc's malloc for measuring memory or for timing.

    ``"measure"``: free heap memory is returned to the OS and every block
    of 128 KiB or more gets its own mapping that goes back to the OS when
    freed, so RSS shows what a call really holds
    (by default glibc raises its mmap threshold after large frees and then
    keeps freed arrays in the heap, where the next call reuses them and
    looks cheaper than it is).  ``"time"``: the 32 MiB threshold glibc
    settles at in a long-running program, so that temporary arrays are
    recycled instead of being mapped and faulted in afresh, as they would
    be in the application.

    Returns False where this is not glibc.
    """
    name = ctypes.util.find_library("c")
    if not name:
        return False
    mmap, trim = (128 << 10, 128 << 10) if mode == "measure" else (32 << 20, 64 << 20)
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, mmap)
        libc.mallopt(_M_TRIM_THRESHOLD, trim)
        if mode == "measure":
            # Hand back what earlier calls freed into the heap, or the
            # measured call would reuse it without RSS growing.
            libc.malloc_trim(0)
        return bool(ok)
    except (OSError, AttributeError):
        return False


def floor_read_and_mean(paths, shape):
    """Read all frames into a float32 stack and take one mean over frames."""
    stack = np.empty((len(paths),) + shape, np.float32)
    nbytes = shape[0] * shape[1] * 2
    for i, path in enumerate(paths):
        with open(path, "rb") as f:
            # make_stack writes one 2880-byte header block per file
            raw = np.frombuffer(os.pread(f.fileno(), nbytes, 2880), ">i2")
        np.add(raw.reshape(shape), np.float32(32768), out=stack[i],
               casting="unsafe")
    return stack.mean(axis=0)


def run_ccdproc(paths, method, kwargs):
    import ccdproc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(ccdproc.combine(list(paths), method=method, unit="adu",
                                          **kwargs).data)


def run_ours(paths, method, kwargs, mem_limit):
    from ginga_ccdcal.combine import combine

    return combine(paths, method, mem_limit=mem_limit, **kwargs).data


class Timing:
    """Best wall time and CPU time (all threads) over repeated calls."""

    def __init__(self):
        self.wall = self.cpu = float("inf")

    def __call__(self, func, *args):
        w0, c0 = time.perf_counter(), time.process_time()
        result = func(*args)
        self.wall = min(self.wall, time.perf_counter() - w0)
        self.cpu = min(self.cpu, time.process_time() - c0)
        return result


def measure(func, *args, repeat=1):
    """Result, `Timing` of ``repeat`` calls, peak memory of the first.

    The first call runs with malloc set to measure memory; the others, if
    any, with malloc as in a long-running program, and usually give the
    best time.
    """
    timing = Timing()
    set_malloc("measure")
    with PeakRSS() as peak:
        result = timing(func, *args)
    set_malloc("time")
    for _ in range(repeat - 1):
        del result
        result = timing(func, *args)
    return result, timing, peak


def compare(ours, theirs):
    """Max abs difference and whether the results agree to float32 rounding."""
    ours = np.asarray(ours, np.float64)
    theirs = np.asarray(theirs, np.float64)
    same_nan = np.array_equal(np.isnan(ours), np.isnan(theirs))
    ok = np.isfinite(theirs)
    diff = float(np.max(np.abs(ours[ok] - theirs[ok]))) if ok.any() else 0.0
    # A float32 result may differ from ccdproc's float64 by half a unit in
    # the last place of float32 (plus one more for rounding of inputs).
    tol = 2 * np.spacing(np.abs(theirs[ok]).astype(np.float32)).astype(np.float64)
    agree = same_nan and bool(np.all(np.abs(ours[ok] - theirs[ok]) <= tol))
    return diff, agree


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048,
                        help="frame side in pixels (default 2048)")
    parser.add_argument("--frames", type=int, default=20,
                        help="number of frames (default 20)")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help="comma-separated, from: " + ", ".join(METHODS))
    parser.add_argument("--quick", action="store_true",
                        help="tiny stack (256 x 256 x 5) for a smoke test")
    parser.add_argument("--workdir", default=WORK_DIR,
                        help="where the frames are written (default bench/_work)")
    parser.add_argument("--mem-limit", type=float, default=None,
                        help="our mem_limit in bytes (default: combine's default)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="calls of ours and of the floor; the best counts")
    parser.add_argument("--ccdproc-repeat", type=int, default=1,
                        help="calls of ccdproc; the best counts (default 1)")
    parser.add_argument("--no-ccdproc", action="store_true",
                        help="skip ccdproc (for sizes where it takes too long)")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.frames = 256, 5
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {list(METHODS)}")

    logging.getLogger("astropy").setLevel(logging.WARNING)
    malloc_fixed = set_malloc("time")

    from ginga_ccdcal.combine import default_mem_limit

    mem_limit = int(args.mem_limit) if args.mem_limit else default_mem_limit()
    shape = (args.size, args.size)
    print(f"writing/reusing {args.frames} frames of {args.size} x {args.size} "
          f"uint16 in {args.workdir}", flush=True)
    paths = make_stack(args.workdir, args.size, args.frames, kind="bias", seed=1)
    stack_bytes = args.frames * args.size * args.size * 2
    print(f"stack on disk: {format_bytes(stack_bytes)}; our mem_limit: "
          f"{format_bytes(mem_limit)}; cores: {os.cpu_count()}; load average "
          f"before: {os.getloadavg()[0]:.2f}", flush=True)

    # Warm the page cache and numpy so no run pays for the first touch.
    floor_read_and_mean(paths, shape)

    rows = []
    all_agree = True
    memory_method = ""
    for name in methods:
        method, kwargs = METHODS[name]
        print(f"running {name} ...", flush=True)
        theirs = t_theirs = p_theirs = None
        if not args.no_ccdproc:
            theirs, t_theirs, p_theirs = measure(run_ccdproc, paths, method,
                                                 kwargs,
                                                 repeat=args.ccdproc_repeat)
        ours, t_ours, p_ours = measure(run_ours, paths, method, kwargs,
                                       mem_limit, repeat=args.repeat)
        _, t_floor, _ = measure(floor_read_and_mean, paths, shape,
                                repeat=args.repeat)
        memory_method = p_ours.method
        row = dict(size=f"{args.size}x{args.size}", frames=args.frames,
                   method=name, ours=t_ours.wall, floor=t_floor.wall,
                   ratio_floor=t_ours.wall / t_floor.wall,
                   cpu_ours=t_ours.cpu, cpu_ratio=t_ours.cpu / t_floor.cpu,
                   peak_ours=p_ours.bytes,
                   bounded="yes" if p_ours.bytes <= mem_limit else "NO")
        if theirs is not None:
            diff, agree = compare(ours, theirs)
            all_agree &= agree
            row.update(ccdproc=t_theirs.wall,
                       speedup=t_theirs.wall / t_ours.wall,
                       peak_ccdproc=p_theirs.bytes, diff=diff,
                       agree="yes" if agree else "NO")
        rows.append(row)
        del theirs, ours

    print()
    print_table(rows, [
        ("size", "size", "s"), ("frames", "frames", "d"), ("method", "method", "s"),
        ("ccdproc", "ccdproc s", ".2f"), ("ours", "ours s", ".3f"),
        ("speedup", "speedup", ".1f"), ("floor", "floor s", ".3f"),
        ("ratio_floor", "ours/floor", ".2f"),
        ("cpu_ours", "ours cpu s", ".3f"), ("cpu_ratio", "cpu/floor cpu", ".2f"),
        ("peak_ccdproc", "ccdproc peak", format_bytes),
        ("peak_ours", "ours peak", format_bytes),
        ("bounded", "<=mem_limit", "s"),
        ("diff", "max|diff|", ".2g"), ("agree", "agree", "s"),
    ])
    print()
    print(f"peak memory: {memory_method}, first call of each"
          + ("; glibc mmap threshold 128 KiB for that call, 32 MiB for the "
             "timed repeats" if malloc_fixed else ""))
    print("floor: read every frame into a float32 stack + np.mean(axis=0)")
    print("cpu: process CPU time of all threads (less sensitive than wall "
          "time to other processes on a shared machine)")
    print(f"times: best of {args.repeat} for ours and the floor, of "
          f"{args.ccdproc_repeat} for ccdproc; load average after: "
          f"{os.getloadavg()[0]:.2f}")
    if args.no_ccdproc:
        print("ccdproc skipped (--no-ccdproc)")
        return 0
    print("outputs agree: " + ("yes" if all_agree else "NO"))
    return 0 if all_agree else 1


if __name__ == "__main__":
    sys.exit(main())
