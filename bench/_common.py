"""Helpers shared by the benchmark scripts in this folder.

* :func:`make_stack` writes a stack of synthetic raw frames (uint16 FITS
  with BZERO=32768, like camera software writes) made in code;
* :class:`PeakRSS` measures the peak increase of the process's resident
  memory while a block of code runs, including what numpy allocates in C;
* :func:`timed` runs a function and returns its result and wall time;
* :func:`print_table` prints rows of values as an aligned text table.
"""

import os
import re
import threading
import time

import numpy as np
from astropy.io import fits

__all__ = ["WORK_DIR", "make_frame", "make_stack", "drop_page_cache_hint",
           "PeakRSS", "timed", "print_table", "format_bytes"]

#: Default scratch folder for generated data (listed in .gitignore).
WORK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_work")


def make_frame(shape, rng, level=1000.0, noise=8.0, kind="bias"):
    """One raw frame as uint16 values (before BZERO encoding).

    ``kind="bias"`` gives a bias level with a column pattern, a gradient,
    read noise and a few hot pixels; ``kind="flat"`` a vignetted
    illumination at ``level`` with Poisson-like noise.
    """
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "flat":
        r2 = ((x - w / 2) / w) ** 2 + ((y - h / 2) / h) ** 2
        image = level * (1.0 - 0.3 * r2)
        image += rng.standard_normal(shape, dtype=np.float32) * np.sqrt(image)
    else:
        columns = rng.normal(0, 2.0, w).astype(np.float32)
        image = level + columns[None, :] + 0.002 * y
        image += rng.standard_normal(shape, dtype=np.float32) * noise
        hot = rng.integers(0, h * w, max(1, h * w // 100000))
        image.flat[hot] += 20000
    return np.clip(np.rint(image), 0, 65535).astype(np.uint16)


def make_stack(folder, size, frames, kind="bias", seed=1, prefix=None):
    """Write ``frames`` uint16 FITS files of ``size`` x ``size`` pixels.

    Files that already exist with the right size are kept, so repeated
    benchmark runs do not pay for writing them again.

    Parameters
    ----------
    folder : str
    size : int or (int, int)
        Square side, or (rows, columns).
    frames : int
    kind : {"bias", "flat"}
    seed : int
    prefix : str, optional
        File name prefix (default ``f"{kind}{rows}x{cols}_"``).

    Returns
    -------
    list of str
        The file paths.
    """
    shape = (size, size) if np.isscalar(size) else tuple(size)
    prefix = prefix or f"{kind}{shape[0]}x{shape[1]}_"
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(frames):
        path = os.path.join(folder, f"{prefix}{i:03d}.fits")
        paths.append(path)
        header = fits.Header()
        header["IMAGETYP"] = kind.upper()
        header["EXPTIME"] = 0.0 if kind == "bias" else 5.0
        header["BENCHSED"] = (seed, "random seed of the synthetic frames")
        if os.path.exists(path):
            try:
                with fits.open(path) as old:
                    if (old[0].header.get("BENCHSED") == seed
                            and old[0].shape == shape):
                        continue
            except OSError:
                pass
        # One generator per frame: each file depends only on (seed, i).
        rng = np.random.default_rng([seed, i])
        data = make_frame(shape, rng, level=1000.0 if kind == "bias" else 20000.0,
                          kind=kind)
        hdu = fits.PrimaryHDU(data=data, header=header)  # uint16 -> BZERO=32768
        hdu.writeto(path, overwrite=True)
    return paths


def drop_page_cache_hint(paths):
    """Ask the kernel to drop cached pages of ``paths`` (best effort).

    Benchmarks here measure warm-cache runs (files just written or read);
    this is for scripts that want a colder start where the OS allows it.
    """
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except (AttributeError, OSError):
            pass
        finally:
            os.close(fd)


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(re.findall(r"\d+", line)[0])
    return None


class PeakRSS:
    """Peak increase of resident memory (VmRSS) while the block runs.

    Two measurements are taken and the larger kept: the kernel's own
    high-water mark (``VmHWM`` after resetting it through
    ``/proc/self/clear_refs``, exact but Linux-only and sometimes not
    permitted), and a thread sampling ``VmRSS`` every millisecond (catches
    everything numpy allocates in C, unlike ``tracemalloc``, but can miss a
    peak shorter than the interval).  ``method`` says which were available.

    Examples
    --------
    >>> with PeakRSS() as peak:
    ...     x = np.ones(10_000_000)
    >>> peak.bytes > 50e6
    True
    """

    def __init__(self, interval=0.001):
        self.interval = interval
        self.bytes = 0
        self.method = ""

    def _reset_hwm(self):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def _sample(self):
        while not self._stop.is_set():
            rss = _status_kib("VmRSS")
            if rss is not None and rss > self._peak:
                self._peak = rss
            self._stop.wait(self.interval)

    def __enter__(self):
        self._base = _status_kib("VmRSS") or 0
        self._peak = self._base
        self._hwm_ok = self._reset_hwm()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        peak = self._peak
        methods = ["VmRSS sampling"]
        if self._hwm_ok:
            hwm = _status_kib("VmHWM")
            if hwm is not None:
                peak = max(peak, hwm)
                methods.insert(0, "VmHWM (reset via clear_refs)")
        self.bytes = max(0, peak - self._base) * 1024
        self.method = " + ".join(methods)
        return False


def timed(func, *args, **kwargs):
    """Run ``func`` and return ``(result, seconds)``."""
    t0 = time.perf_counter()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - t0


def format_bytes(n):
    """``1536`` -> ``"1.5 KiB"``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def print_table(rows, columns, file=None):
    """Print ``rows`` (dicts) as a text table with the given ``columns``.

    Parameters
    ----------
    rows : list of dict
    columns : list of (key, title, format) tuples
        ``format`` is a format spec such as ``".2f"`` or a callable.
    file : file-like, optional
    """
    def cell(row, key, fmt):
        value = row.get(key, "")
        if value is None or value == "":
            return "-"
        if callable(fmt):
            return fmt(value)
        return format(value, fmt)

    table = [[title for _, title, _ in columns]]
    for row in rows:
        table.append([cell(row, key, fmt) for key, _, fmt in columns])
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    lines = []
    for k, r in enumerate(table):
        lines.append("  ".join(v.rjust(w) for v, w in zip(r, widths)))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    print("\n".join(lines), file=file, flush=True)
