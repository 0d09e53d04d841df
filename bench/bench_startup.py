"""Start-up: how long each command takes before it touches a pixel.

A small job is dominated by start-up, so every command should import only
what it needs.  For each entry below a fresh interpreter runs it (best of
``--repeat``), and ``python -X importtime`` names the heaviest imports, so
a regression says where it came from.

    python bench/bench_startup.py          # best of 5
    python bench/bench_startup.py --quick  # best of 1
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import print_table  # noqa: E402

#: (what, python arguments)
ENTRIES = [
    ("bare interpreter", ["-c", "pass"]),
    ("ginga-ccdcal --help", ["-m", "ginga_ccdcal", "--help"]),
    ("imports of scan", ["-c", "import ginga_ccdcal.cli, ginga_ccdcal.scan"]),
    ("imports of masters", ["-c", "import ginga_ccdcal.cli, ginga_ccdcal.masters, "
                            "ginga_ccdcal.scan"]),
    ("imports of calibrate/reduce", ["-c", "import ginga_ccdcal.cli, ginga_ccdcal.reduce"]),
    ("imports of watch", ["-c", "import ginga_ccdcal.cli, ginga_ccdcal.watch"]),
]


def best_time(args, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times)


def heaviest_imports(args, count=3):
    """The outside packages that took longest to import, with their seconds.

    A package's time is its largest cumulative figure in the importtime
    listing, i.e. the import that first brought it in with all it pulled.
    """
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], check=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    totals = {}
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        package = parts[2].strip().split(".")[0]
        if package not in ("ginga_ccdcal", "site", "encodings"):
            totals[package] = max(totals.get(package, 0.0), int(parts[1]) / 1e6)
    top = sorted(totals.items(), key=lambda item: -item[1])[:count]
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in top if seconds >= 0.01)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="best of 1")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    rows = [{"what": what, "s": best_time(command, repeat),
             "heaviest": heaviest_imports(command)} for what, command in ENTRIES]
    print(f"fresh interpreter per run, best of {repeat}, {os.cpu_count()} cores")
    print_table(rows, [("what", "", ""), ("s", "s", ".3f"),
                       ("heaviest", "heaviest imports (s, cumulative)", "")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
