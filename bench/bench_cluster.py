"""Many nights on dask.distributed: in-process vs a local cluster of 1 and 2 workers.

Each night is 10 bias, 10 darks (60 s), 10 flats (R) and 20 lights (60 s,
R) of 2048 x 2048; 8 nights.  The same `ginga_ccdcal.cluster.reduce_nights`
runs them one after the other in this process, then on a
`distributed.LocalCluster` of N single-threaded worker processes
(``--scheduler local:N``), and the products of every run are compared
with the in-process ones.

    python bench/bench_cluster.py            # 8 nights of 2048 x 2048; writes bench/RESULTS.md
    python bench/bench_cluster.py --quick    # 2 nights of 64 x 64 (seconds)

Reported per run: the cluster's start-up time (not in the wall time),
wall time, lights per second (all stages included), speed-up over the
in-process run, scaling efficiency (speed-up over one worker, per
worker), how busy the workers were (task compute time / workers x wall),
the CPU time they got (a task waiting for the disk or for a core the
machine's other users hold is busy without using CPU), the whole
machine's idle and I/O-wait share during the run, the mean compute time
of one light task, and the idle time per task
(workers x wall - compute, over the tasks: waiting for the masters chain,
scheduling, transfers).  Then the scheduler alone: the round trip of one
no-op task at a time (what each hand-off between a night's stages costs)
and the no-op tasks per second it sustains, and the bytes each light
moves, for the projection to many workers in docs/performance.rst.
"""

import argparse
import datetime
import os
import platform
import resource
import shutil
import sys
import time

from astropy.io import fits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The checkout this script is in, not whichever ginga_ccdcal is installed
# (the worker processes inherit the path).
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _common import WORK_DIR, format_bytes, print_table  # noqa: E402

from ginga_ccdcal.cluster import (check_shared_folders, connect,  # noqa: E402
                                  night_jobs, reduce_nights, reduce_nights_on_client)
from ginga_ccdcal.sample import SyntheticCamera, write_night  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SECTION = "## many nights on dask.distributed: 8 nights x 50 frames of 2048x2048"
#: (frametype, exptime, filter, count) of one night at full size.
PLAN = [("bias", 0.0, None, 10), ("dark", 60.0, None, 10), ("flat", 5.0, "R", 10),
        ("light", 60.0, "R", 20)]
QUICK_PLAN = [("bias", 0.0, None, 3), ("dark", 60.0, None, 3), ("flat", 5.0, "R", 3),
              ("light", 60.0, "R", 4)]


def make_nights(folder, size, count, plan, seed=0):
    """``count`` nights: one synthetic night written, the others copies of it.

    Copies keep the set-up time down; every file is still a file of its
    own, read and written separately.  A folder already holding the same
    nights (size, plan, seed in ``made.txt``) is reused.
    """
    recipe = f"{size} {count} {plan} {seed}"
    marker = os.path.join(folder, "made.txt")
    names = [f"night{k + 1:02d}" for k in range(count)]
    nights = [os.path.join(folder, name) for name in names]
    if os.path.exists(marker) and open(marker).read() == recipe:
        return nights
    shutil.rmtree(folder, ignore_errors=True)
    camera = SyntheticCamera((size, size), seed=seed, filters=("R",))
    write_night(nights[0], camera, plan, seed=seed)
    for night in nights[1:]:
        shutil.copytree(nights[0], night)
    with open(marker, "w") as stream:
        stream.write(recipe)
    return nights


def product_digest(root):
    """Every product's pixels and the header cards that do not name a time or path."""
    digest = {}
    for folder, _, names in os.walk(root):
        for name in sorted(names):
            path = os.path.join(folder, name)
            with fits.open(path) as hdul:
                cards = [(c.keyword, c.value) for c in hdul[0].header.cards
                         if c.keyword not in ("CCDCALDT", "HISTORY", "BIASSUM",
                                              "DARKSUM", "FLATSUM")]
                digest[os.path.relpath(path, root)] = (cards, hdul[0].data.tobytes())
    return digest


def noop(x):
    return x


def process_cpu():
    """CPU seconds of this process so far, all threads (also those ended)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_cpu():
    """(busy, idle, iowait) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as stream:
        values = [int(v) for v in stream.readline().split()[1:]]
    idle, iowait = values[3], values[4]
    return sum(values[:8]) - idle - iowait, idle, iowait


class Usage:
    """What the machine and our processes did while the block ran."""

    def __init__(self, client=None):
        self.client = client

    def _ours(self):
        if self.client is None:
            return process_cpu()
        return sum(self.client.run(process_cpu).values())

    def __enter__(self):
        self.start, self.cpu, self.machine = time.perf_counter(), self._ours(), machine_cpu()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.start
        self.cpu = self._ours() - self.cpu
        busy, idle, iowait = (b - a for a, b in zip(self.machine, machine_cpu()))
        total = max(1, busy + idle + iowait)
        self.idle, self.iowait = 100 * idle / total, 100 * iowait / total
        return False

    def row(self, workers, lights):
        return dict(wall=self.wall, cpu=100 * self.cpu / (workers * self.wall),
                    idle=self.idle, iowait=self.iowait, cpu_per_light=self.cpu / lights)


def scheduler_alone(client, sequential, independent):
    """(seconds per no-op task one at a time, no-op tasks per second at once)."""
    client.submit(noop, -1, pure=False).result()  # warm up
    start = time.perf_counter()
    for i in range(sequential):
        client.submit(noop, i, pure=False).result()
    round_trip = (time.perf_counter() - start) / sequential
    start = time.perf_counter()
    client.gather(client.map(noop, range(independent), pure=False))
    return round_trip, independent / (time.perf_counter() - start)


def compute_seconds(task_stream):
    """Compute time per task kind ('light', 'bias'...) from dask's task stream."""
    seconds, counts = {}, {}
    for task in task_stream:
        kind = str(task["key"]).split("-")[0]
        busy = sum(s["stop"] - s["start"] for s in task["startstops"]
                   if s["action"] == "compute")
        seconds[kind] = seconds.get(kind, 0.0) + busy
        counts[kind] = counts.get(kind, 0) + 1
    return seconds, counts


def run_cluster(workers, jobs, lights, quick=False):
    """Reduce ``jobs`` on a fresh ``--scheduler local:N`` cluster; one table row."""
    import distributed
    start = time.perf_counter()
    with connect(f"local:{workers}") as client:
        client.wait_for_workers(workers)
        startup = time.perf_counter() - start
        jobs = [job.absolute() for job in jobs]
        check_shared_folders(client, jobs)
        with distributed.get_task_stream(client) as stream, Usage(client) as usage:
            outcomes = reduce_nights_on_client(client, jobs)
        wall = usage.wall
        seconds, counts = compute_seconds(stream.data)
        sequential, independent = (50, 500) if quick else (200, 2000)
        overhead = scheduler_alone(client, sequential, independent)
    _check(outcomes)
    busy = sum(seconds.values())
    tasks = sum(counts.values())
    return dict(usage.row(workers, lights), run=f"local:{workers}", workers=workers,
                startup=startup, rate=lights / wall, busy=100 * busy / (workers * wall),
                light_s=seconds.get("light", 0) / max(1, counts.get("light", 0)),
                idle_ms=1000 * (workers * wall - busy) / tasks, tasks=tasks,
                round_trip_ms=1000 * overhead[0], noop_rate=overhead[1],
                independent=independent)


def _check(outcomes):
    failed = [o.error for o in outcomes if o.error]
    problems = [p for o in outcomes if o.report for p in o.report.problems]
    if failed or problems:
        raise SystemExit(f"the benchmark nights did not reduce cleanly: {failed + problems}")


def light_bytes(nights, out):
    """Bytes one light moves: its raw file read, its product written."""
    raw = [os.path.join(nights[0], n) for n in sorted(os.listdir(nights[0]))]
    light = next(p for p in raw if fits.getheader(p).get("IMAGETYP", "").lower()
                 .startswith("light"))
    product = os.path.join(out, os.path.basename(nights[0]), os.path.basename(light))
    return os.path.getsize(light), os.path.getsize(product)


def write_results(path, command, text):
    """Put this benchmark's section into RESULTS.md, keeping the others."""
    section = f"{SECTION}\n\n`{command}`\n\n```\n{text.strip()}\n```\n"
    old = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    if SECTION in old:
        start = old.index(SECTION)
        end = old.find("\n## ", start + len(SECTION))
        new = old[:start] + section + (old[end + 1:] if end >= 0 else "")
    else:
        new = old.rstrip("\n") + "\n\n" + section
    with open(path, "w") as stream:
        stream.write(new)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 nights of 64 x 64")
    parser.add_argument("--nights", type=int, help="number of nights (8; quick 2)")
    parser.add_argument("--size", type=int, help="frame side in pixels (2048; quick 64)")
    parser.add_argument("--workers", default="1,2", help="cluster sizes to run (1,2)")
    parser.add_argument("--workdir", default=WORK_DIR)
    parser.add_argument("--results", default=os.path.join(HERE, "RESULTS.md"),
                        help="markdown file to put the table in (not with --quick)")
    args = parser.parse_args(argv)
    size = args.size or (64 if args.quick else 2048)
    count = args.nights or (2 if args.quick else 8)
    plan = QUICK_PLAN if args.quick else PLAN
    lines = []

    def say(line=""):
        print(line, flush=True)
        lines.append(line)

    work = os.path.join(args.workdir, "cluster")
    nights = make_nights(os.path.join(work, f"nights{size}"), size, count, plan)
    lights = count * sum(n for kind, _, _, n in plan if kind == "light")
    frames = count * sum(n for *_, n in plan)
    say(f"{count} nights x {frames // count} frames of {size} x {size} "
        f"({lights} lights); cores: {os.cpu_count()}; "
        f"load average before: {os.getloadavg()[0]:.2f}")

    rows = []
    out_here = os.path.join(work, "out-in-process")
    shutil.rmtree(out_here, ignore_errors=True)
    with Usage() as usage:
        outcomes = reduce_nights(night_jobs(nights, out_here))
    _check(outcomes)
    rows.append(dict(usage.row(1, lights), run="in-process", workers=1, rate=lights / usage.wall))
    reference = product_digest(out_here)
    raw_bytes, product_bytes = light_bytes(nights, out_here)
    identical = True
    for workers in (int(n) for n in args.workers.split(",")):
        out = os.path.join(work, f"out-local{workers}")
        shutil.rmtree(out, ignore_errors=True)
        rows.append(run_cluster(workers, night_jobs(nights, out), lights, args.quick))
        identical &= product_digest(out) == reference
        shutil.rmtree(out)
    shutil.rmtree(out_here)

    one = next((r for r in rows if r["run"] == "local:1"), None)
    for row in rows:
        row["speedup"] = rows[0]["wall"] / row["wall"]
        if one is not None and row["run"] != "in-process":
            row["efficiency"] = one["wall"] / (row["wall"] * row["workers"])
    columns = [("run", "run", "s"), ("workers", "workers", "d"),
               ("startup", "start s", ".1f"), ("wall", "wall s", ".2f"),
               ("rate", "lights/s", ".2f"), ("speedup", "speed-up", ".2f"),
               ("efficiency", "efficiency", ".2f"), ("busy", "busy %", ".0f"),
               ("cpu", "cpu %", ".0f"), ("idle", "host idle %", ".0f"),
               ("iowait", "host iowait %", ".0f"), ("cpu_per_light", "cpu s/light", ".3f"),
               ("light_s", "light task s", ".3f"), ("idle_ms", "idle ms/task", ".0f"),
               ("round_trip_ms", "no-op ms", ".1f"), ("noop_rate", "no-op tasks/s", ".0f")]
    import io
    table = io.StringIO()
    print_table(rows, columns, file=table)
    for line in table.getvalue().rstrip("\n").splitlines():
        say(line)
    say()
    say("start s: starting the LocalCluster (not in wall s); efficiency: local:1 wall / "
        "(workers x wall); busy: task compute time / (workers x wall)")
    say("cpu: CPU time of the process(es) doing the work / (workers x wall); host idle, "
        "host iowait: the whole machine's, during the run (other users included); "
        "cpu s/light: that CPU time (all stages) per light")
    if max(row["idle"] for row in rows) < 5:
        say("the machine had no idle core during the runs (shared): more workers "
            "could not get more CPU, so the scaling here is a floor; see cpu s/light")
    say("no-op ms: one no-op task submitted and its result fetched, one at a time; "
        f"no-op tasks/s: {rows[-1].get('independent', 0)} independent no-ops at once")
    say(f"one light moves {format_bytes(raw_bytes)} read + {format_bytes(product_bytes)} "
        "written; nights are copies of one synthetic night, every file read and "
        "written on its own; page cache warm")
    say(f"load average after: {os.getloadavg()[0]:.2f}")
    say(f"products identical to the in-process run: {'yes' if identical else 'NO'}")
    if not args.quick and args.results:
        command = "python bench/bench_cluster.py" + (" " + " ".join(argv or sys.argv[1:])
                                                    if (argv or sys.argv[1:]) else "")
        stamp = (f"measured {datetime.date.today().isoformat()} on {platform.machine()}, "
                 f"{os.cpu_count()} cores, Python {platform.python_version()}")
        write_results(args.results, command, stamp + "\n\n" + "\n".join(lines))
        print(f"table written to {args.results}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
