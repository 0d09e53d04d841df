"""Whole processes side by side: a median master bias by Siril and by us.

Each tool is run as a user runs it, as a fresh process on the same raw
files with the page cache warm (every input is read once before timing):

* Siril 1.0 (``siril-cli -s script.ssf``): ``convert`` the FITS files into
  a sequence, then ``stack bias med -nonorm``;
* ours: ``ginga-ccdcal masters RAW --out OUT --bias-method median``;
* and, for scale, how long the bare Python start-up with the package's
  ``masters`` imports takes (the part of our time spent before any pixel).

Wall time and peak resident memory (the child's ``ru_maxrss``) are those
of the whole process.  The two masters must agree: Siril writes float32
scaled to [0, 1] (divided by 65535), so its result is scaled back before
the comparison.  Without ``siril-cli`` (Debian package ``siril``) the
script says so and measures ours alone.

    python bench/bench_peers.py             # 20 x 2048^2, 24 x 4096^2, 50 x 4096^2
    python bench/bench_peers.py --quick     # 5 x 256^2
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

import numpy as np
from astropy.io import fits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import WORK_DIR, format_bytes, make_stack, print_table  # noqa: E402

#: (frames, side) of the full-size cases.
CASES = [(20, 2048), (24, 4096), (50, 4096)]
QUICK_CASES = [(5, 256)]
SIRIL_SCRIPT = """requires 1.0.0
setext fits
cd {raw}
convert bias -out={work}
cd {work}
stack bias med -nonorm
close
"""


def run(command, cwd=None):
    """Run ``command``; return (seconds, peak RSS bytes, completed output)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{command[0]} failed ({proc.returncode}):\n{output[-2000:]}")
    return seconds, usage.ru_maxrss * 1024, output


def warm(paths):
    """Read every input once, so both tools find the page cache warm."""
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(1 << 24):
                pass


def run_siril(raw, work):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    script = os.path.join(work, "stack.ssf")
    with open(script, "w") as handle:
        handle.write(SIRIL_SCRIPT.format(raw=raw, work=work))
    seconds, peak, _ = run(["siril-cli", "-s", script], cwd=work)
    data = fits.getdata(os.path.join(work, "bias_stacked.fits")).astype(np.float64)
    return seconds, peak, data * 65535.0


def run_ours(raw, out):
    shutil.rmtree(out, ignore_errors=True)
    seconds, peak, _ = run([sys.executable, "-m", "ginga_ccdcal", "-q", "masters", raw,
                            "--out", out, "--bias-method", "median"])
    [name] = [n for n in os.listdir(out) if n.startswith("master_bias")]
    return seconds, peak, fits.getdata(os.path.join(out, name)).astype(np.float64)


def startup_seconds():
    """A fresh interpreter importing what the ``masters`` command imports."""
    seconds, _, _ = run([sys.executable, "-c",
                         "import ginga_ccdcal.cli, ginga_ccdcal.masters, ginga_ccdcal.scan"])
    return seconds


def measure(frames, side, workdir, have_siril, repeat):
    raw = os.path.join(workdir, f"raw_{frames}x{side}")
    paths = make_stack(raw, side, frames, kind="bias", prefix="bias_")
    for extra in set(os.listdir(raw)) - {os.path.basename(p) for p in paths}:
        os.remove(os.path.join(raw, extra))  # another case's frames
    warm(paths)
    ours = [run_ours(raw, os.path.join(workdir, f"ours_{frames}x{side}"))
            for _ in range(repeat)]
    row = {"case": f"{frames} x {side}^2",
           "ours s": min(r[0] for r in ours), "ours peak": max(r[1] for r in ours)}
    if have_siril:
        siril = [run_siril(raw, os.path.join(workdir, f"siril_{frames}x{side}"))
                 for _ in range(repeat)]
        row.update({"siril s": min(r[0] for r in siril),
                    "siril peak": max(r[1] for r in siril)})
        row["speed ratio"] = row["siril s"] / row["ours s"]
        # Siril rounds its float output to the 16-bit scale: about 1 ADU.
        row["max |diff| ADU"] = float(np.max(np.abs(siril[-1][2] - ours[-1][2])))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 frames of 256 x 256")
    parser.add_argument("--workdir", default=os.path.join(WORK_DIR, "peers"))
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs of each tool per case, best time kept (default 3; 1 quick)")
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    have_siril = shutil.which("siril-cli") is not None
    cases = QUICK_CASES if args.quick else CASES
    print(f"median master bias, whole processes, page cache warm, {os.cpu_count()} cores; "
          f"best of {repeat}")
    if not have_siril:
        print("siril-cli not found (Debian package 'siril'): measuring ours alone")
    rows = [measure(frames, side, args.workdir, have_siril, repeat)
            for frames, side in cases]
    columns = [("case", "case", "s"), ("siril s", "Siril s", ".2f"), ("ours s", "ours s", ".2f"),
               ("speed ratio", "Siril/ours", ".2f"), ("siril peak", "Siril peak", format_bytes),
               ("ours peak", "ours peak", format_bytes), ("max |diff| ADU", "max |diff| ADU", ".3f")]
    if not have_siril:
        columns = [c for c in columns if c[0] in ("case", "ours s", "ours peak")]
    print_table(rows, columns)
    print(f"python start-up with the masters command's imports: {startup_seconds():.2f} s")
    if have_siril:
        print("speed ratio = Siril's time / ours (above 1: we are ahead)")
        worst = max(row["max |diff| ADU"] for row in rows)
        if worst > 1.0:
            print(f"MASTERS DIFFER: {worst:.3f} ADU")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
