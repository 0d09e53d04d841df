"""Calibrating one light (bias, scaled dark, flat) and writing it: ours vs ccdproc.

ccdproc's way is the notebook recipe: read the light as CCDData, then
``subtract_bias``, ``subtract_dark(scale=True)``, ``flat_correct`` and
``write``, with the masters already in memory.  Ours is
``calibrate_and_write`` with the masters cached in memory between frames
(as the plugins and the watch mode run it).  Both write float32 FITS.
The floor is reading the raw and writing its float32 copy, nothing else:
no calibration can take less.

    python bench/bench_calibrate.py             # 4096 x 4096
    python bench/bench_calibrate.py --quick     # 256 x 256
"""

import argparse
import os
import shutil
import sys
import time
import warnings

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import WORK_DIR, PeakRSS, make_frame, print_table  # noqa: E402

from ginga_ccdcal.calibrate import calibrate_and_write  # noqa: E402
from ginga_ccdcal.fitsfile import read_image  # noqa: E402
from ginga_ccdcal.masters import load_masters  # noqa: E402
from ginga_ccdcal.match import match_light  # noqa: E402
from ginga_ccdcal.safe_write import write_fits  # noqa: E402
from ginga_ccdcal.scan import frame_from_file  # noqa: E402


def make_inputs(folder, size, rng):
    """A light, and master bias / 120 s dark / R flat made directly."""
    os.makedirs(folder, exist_ok=True)
    shape = (size, size)
    bias = make_frame(shape, rng).astype(np.float32)
    dark = np.abs(rng.normal(5.0, 1.0, shape)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    flat = (1 - 0.2 * ((xx - size / 2) ** 2 + (yy - size / 2) ** 2) / size ** 2)
    flat = (flat / np.median(flat)).astype(np.float32)
    masters = os.path.join(folder, "masters")
    for kind, data, extra in (("bias", bias, {"EXPTIME": 0.0}),
                              ("dark", dark, {"EXPTIME": 120.0, "BIASSUB": True}),
                              ("flat", flat, {"FILTER": "R", "EXPTIME": 5.0})):
        header = fits.Header({"MSTRTYPE": kind, "IMAGETYP": f"MASTER {kind.upper()}",
                              "CCDCALV": "bench", "NCOMBINE": 10, **extra})
        write_fits(os.path.join(masters, f"master_{kind}.fits"), data, header,
                   overwrite=True)
    light = bias + 2.5 * dark + flat * rng.normal(2000, 50, shape).astype(np.float32)
    light = np.clip(np.rint(light), 0, 65535).astype(np.uint16)
    header = fits.Header({"IMAGETYP": "Light Frame", "EXPTIME": 300.0, "FILTER": "R"})
    path = os.path.join(folder, "light.fit")
    hdu = fits.PrimaryHDU(light, header)
    hdu.scale("int16", bzero=32768)
    hdu.writeto(path, overwrite=True)
    return path, masters


def run_ccdproc(light_path, masters, out):
    import ccdproc
    ccd = CCDData.read(light_path, unit="adu")
    ccd = ccdproc.subtract_bias(ccd, masters["bias"])
    ccd = ccdproc.subtract_dark(ccd, masters["dark"], data_exposure=300 * u.s,
                                dark_exposure=120 * u.s, scale=True)
    ccd = ccdproc.flat_correct(ccd, masters["flat"], norm_value=1)
    ccd.data = ccd.data.astype(np.float32)
    ccd.write(out, overwrite=True)
    return ccd.data


def run_ours(light_path, masters, out_dir):
    frame = frame_from_file(light_path)
    match = match_light(frame, masters)
    path, ccd = calibrate_and_write(frame, match, out_dir, overwrite=True)
    return ccd.data


def run_floor(light_path, _masters, out_dir):
    """The least any calibration does: read the raw as float32 (the fastest
    way this package has: straight from the file into reused memory) and
    write float32 pixels."""
    data = read_image(light_path, dtype=np.float32, reuse=True)[0]
    write_fits(os.path.join(out_dir, "floor.fits"), data, overwrite=True)
    return data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="256 x 256, 1 repeat")
    parser.add_argument("--work", default=WORK_DIR)
    args = parser.parse_args(argv)
    size, repeat = (256, 1) if args.quick else (args.size, args.repeat)
    folder = os.path.join(args.work, f"calibrate-{size}")
    light, masters_dir = make_inputs(folder, size, np.random.default_rng(2))
    ours_masters = load_masters(masters_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs_masters = {m.kind: CCDData.read(m.path, unit="adu") for m in ours_masters}
    out = os.path.join(folder, "out")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    runs = (("ccdproc recipe", run_ccdproc, (theirs_masters, os.path.join(out, "ccdproc.fits"))),
            ("ginga_ccdcal", run_ours, (ours_masters, out)),
            ("floor: read + write", run_floor, (None, out)))
    results = {name: func(light, *target)  # warm-up: page cache, master cache
               for name, func, target in runs}
    os.sync()  # earlier writes flushed now, not during the timed turns
    # The three take turns, so a slow spell of the machine's disk or memory
    # (writes here vary by 2x from one minute to the next) falls on all.
    times = {name: [] for name, _, _ in runs}
    peaks = dict.fromkeys(times, 0)
    for _ in range(repeat):
        for name, func, target in runs:
            with PeakRSS() as peak:
                t0 = time.perf_counter()
                func(light, *target)
                times[name].append(time.perf_counter() - t0)
            peaks[name] = max(peaks[name], peak.bytes)
    rows = [{"what": name, "size": f"{size}x{size}", "s": min(times[name]),
             "peak MiB": peaks[name] / 2**20} for name in times]
    diff = float(np.nanmax(np.abs(results["ccdproc recipe"] - results["ginga_ccdcal"])))
    scale = float(np.nanmax(np.abs(results["ccdproc recipe"])))
    print_table(rows, [("what", "", ""), ("size", "size", ""), ("s", "s/frame (best)", ".3f"),
                       ("peak MiB", "peak MiB", ".0f")])
    agree = diff <= 1e-5 * scale
    pairs = [o / f for o, f in zip(times["ginga_ccdcal"], times["floor: read + write"])]
    print(f"ours / floor (read raw, write float32): {rows[1]['s'] / rows[2]['s']:.2f} "
          f"(best / best); {float(np.median(pairs)):.2f} (median of {len(pairs)} turns)")
    print(f"speed-up: {rows[0]['s'] / rows[1]['s']:.1f}x   max |difference| {diff:.3g} "
          f"(of values up to {scale:.3g}): {'agree' if agree else 'DISAGREE'}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
