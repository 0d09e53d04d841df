"""Scanning a folder of FITS headers: ginga_ccdcal.scan vs ccdproc.ImageFileCollection.

Writes N small frames whose headers are real Feder Observatory headers
(about 90 keywords each, as MaxIm DL writes them), then builds the same
table both ways in this process and checks they agree.

    python bench/bench_scan.py            # 1000 files
    python bench/bench_scan.py --files 5000
    python bench/bench_scan.py --quick    # 50 files, to prove it still works
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import WORK_DIR, PeakRSS, print_table  # noqa: E402

from ginga_ccdcal.sample import feder_header, feder_rows, write_frame  # noqa: E402
from ginga_ccdcal.scan import scan_folder  # noqa: E402


def make_folder(folder, n):
    """``n`` 32x48 frames cycling through the Feder night's headers."""
    os.makedirs(folder, exist_ok=True)
    existing = [f for f in os.listdir(folder) if f.endswith(".fit")]
    if len(existing) == n:
        return
    for name in existing:
        os.remove(os.path.join(folder, name))
    rows = feder_rows()
    data = np.full((32, 48), 1000, np.uint16)
    for i in range(n):
        header = feder_header(rows[i % len(rows)], scale=1.0)
        for key in ("NAXIS", "NAXIS1", "NAXIS2", "OSCAN", "OSCANST", "OSCANAX"):
            header.remove(key, ignore_missing=True)
        write_frame(os.path.join(folder, f"frame-{i:05d}.fit"), data, header)


def run_ccdproc(folder):
    from ccdproc import ImageFileCollection
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        collection = ImageFileCollection(folder, keywords="*")
    table = collection.summary
    return {os.path.join(folder, name): (str(t).strip().upper(), float(e), str(f).strip())
            for name, t, e, f in zip(table["file"], table["imagetyp"],
                                     table["exptime"], table["filter"])}


def run_ours(folder):
    result = scan_folder(folder, recursive=False, guess=False)
    return {f.path: (str(f.header["IMAGETYP"]).strip().upper(), f.exptime, f.filter)
            for f in result.frames}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="50 files")
    parser.add_argument("--work", default=WORK_DIR)
    args = parser.parse_args(argv)
    n = 50 if args.quick else args.files
    folder = os.path.join(args.work, f"scan-{n}")
    make_folder(folder, n)
    rows = []
    results = {}
    for name, func in (("ccdproc ImageFileCollection", run_ccdproc),
                       ("ginga_ccdcal scan_folder", run_ours)):
        func(folder)  # warm the page cache and imports for both alike
        with PeakRSS() as peak:
            t0 = time.perf_counter()
            results[name] = func(folder)
            seconds = time.perf_counter() - t0
        rows.append({"what": name, "files": len(results[name]), "s": seconds,
                     "ms/file": 1000 * seconds / n, "peak MiB": peak.bytes / 2**20})
    theirs, ours = results.values()
    agree = theirs == ours
    ratio = rows[0]["s"] / rows[1]["s"]
    print_table(rows, [("what", "", ""), ("files", "files", "d"), ("s", "seconds", ".3f"),
                       ("ms/file", "ms/file", ".2f"), ("peak MiB", "peak MiB", ".1f")])
    print(f"speed-up: {ratio:.1f}x   same table (type, exptime, filter per file): {agree}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
