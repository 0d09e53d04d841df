"""Run every benchmark at its default size and collect the tables.

    python bench/run_all.py            # writes bench/RESULTS.md too
    python bench/run_all.py --quick    # every script at its --quick size

Each script compares ginga_ccdcal with ccdproc side by side in one
process and checks that the outputs agree; this only runs them in turn
and keeps what they print.
"""

import argparse
import datetime
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

#: (script, extra arguments at full size, what it measures)
BENCHMARKS = [
    ("bench_combine.py", ["--methods", "average,median,sigclip-average"],
     "master frames: combine 20 x 2048x2048 vs ccdproc.combine"),
    ("bench_combine.py", ["--size", "4096", "--frames", "50", "--no-ccdproc",
                          "--methods", "median", "--repeat", "1"],
     "memory bound: median of 50 x 4096x4096 within the default budget"),
    ("bench_scan.py", [], "scanning 1000 headers vs ImageFileCollection"),
    ("bench_calibrate.py", [], "one 4096x4096 light: bias, scaled dark, flat, write"),
    ("bench_watch.py", [], "watch mode: frame complete -> calibrated, 4096x4096"),
    ("bench_peers.py", [], "whole processes beside Siril: median master bias"),
    ("bench_startup.py", [], "start-up: each command's imports in a fresh interpreter"),
    ("bench_cluster.py", [], "many nights on dask.distributed: 8 nights x 50 frames "
                             "of 2048x2048"),
    ("gui_stall.py", [], "GUI stall: the viewer's largest event-loop pause, "
                         "3085x2048 night, 1280x800"),
]

#: Scripts without a --quick size (the GUI one needs full-size frames to
#: say anything): left out of ``--quick``.
FULL_SIZE_ONLY = {"gui_stall.py"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"),
                        help="markdown file for the tables (not with --quick)")
    args = parser.parse_args(argv)
    sections, failed = [], []
    seen = set()
    for script, extra, what in BENCHMARKS:
        path = os.path.join(HERE, script)
        if not os.path.exists(path):
            print(f"(skipping {script}: not present)")
            continue
        if args.quick:
            if script in seen or script in FULL_SIZE_ONLY:
                continue
            extra = ["--quick"]
        seen.add(script)
        command = [sys.executable, path, *extra]
        print(f"== {what}\n$ python bench/{script} {' '.join(extra)}", flush=True)
        proc = subprocess.run(command, capture_output=True, text=True)
        print(proc.stdout, end="")
        if proc.returncode:
            failed.append(script)
            print(proc.stderr, file=sys.stderr)
        sections.append(f"## {what}\n\n`python bench/{script} {' '.join(extra)}`"
                        f"\n\n```\n{proc.stdout.strip()}\n```\n")
    if not args.quick:
        stamp = datetime.date.today().isoformat()
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        with open(args.output, "w") as stream:
            stream.write(f"# Benchmark results\n\nMeasured {stamp} on {machine} with "
                         "`python bench/run_all.py`.\n\n" + "\n".join(sections))
        print(f"tables written to {args.output}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
