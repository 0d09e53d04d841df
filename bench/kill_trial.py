"""The random-kill trial: interrupt ``ginga-ccdcal reduce``, resume, compare.

A small synthetic night (`ginga_ccdcal.sample`) is reduced once without
interruption (the reference).  Then, trial after trial, a fresh run of
``python -m ginga_ccdcal reduce`` is stopped with SIGKILL, SIGINT or
SIGTERM (in turn) at a random moment, or just as a file is being written,
and run again to completion.  Every product of the resumed run must equal
the reference's: the same files, equal pixels (NaN where NaN) and equal
headers apart from date stamps (``CCDCALDT``, times in HISTORY, the output
folder's own path; a master checksum must be that of the master beside
it).  Temporary files left anywhere under the output folder are counted.

Usage::

    python bench/kill_trial.py                 # 12 trials
    python bench/kill_trial.py --trials 30 --seed 7
    python bench/kill_trial.py --quick         # 3 trials, one per signal

Prints one line per trial and ends with ``N/N resumed identical, 0 temp
files left``; the exit status is 0 only if every trial passed.
"""

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from astropy.io import fits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ginga_ccdcal.safe_write import TEMP_SUFFIX  # noqa: E402
from ginga_ccdcal.sample import SyntheticCamera, write_night  # noqa: E402

#: The night: (frametype, exptime, filter, count); frames of SHAPE pixels.
PLAN = [("bias", 0.0, None, 5), ("dark", 60.0, None, 5), ("flat", 10.0, "R", 5),
        ("flat", 10.0, "V", 5), ("light", 60.0, "R", 6), ("light", 60.0, "V", 6)]
SHAPE = (128, 160)
SIGNALS = (signal.SIGKILL, signal.SIGINT, signal.SIGTERM)
_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?")


def make_night(folder, seed):
    """Write the trial's raw night into ``folder``; returns the paths."""
    camera = SyntheticCamera(SHAPE, seed=seed)
    return write_night(folder, camera, PLAN, style="maxim", seed=seed)


def _command(raw, out):
    return [sys.executable, "-m", "ginga_ccdcal", "-q", "reduce", raw, "--out", out]


def temp_files(folder):
    """Our temporary files anywhere under ``folder``."""
    return [os.path.join(root, name) for root, _, names in os.walk(folder)
            for name in names if name.endswith(TEMP_SUFFIX)]


def products(folder):
    """Relative paths of the finished FITS files under ``folder``."""
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, _, names in os.walk(folder) for name in names
                  if name.endswith((".fit", ".fits")) and not name.startswith("."))


def run_to_end(raw, out):
    """Run ``reduce`` to completion; returns (exit status, seconds, stderr)."""
    start = time.monotonic()
    proc = subprocess.run(_command(raw, out), cwd=ROOT, capture_output=True, text=True)
    return proc.returncode, time.monotonic() - start, proc.stderr


def run_and_stop(raw, out, signum, delay, at_write):
    """Start ``reduce``; send ``signum`` after ``delay`` seconds, or (with
    ``at_write``) as soon as a temporary file appears under ``out``.

    Returns (exit status, whether it was still running when signalled,
    whether a write was in progress when it was).
    """
    proc = subprocess.Popen(_command(raw, out), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + delay
    writing = False
    while proc.poll() is None:
        if at_write:
            writing = bool(temp_files(out))
            if writing:
                break
        elif time.monotonic() >= deadline:
            break
        time.sleep(0.001 if at_write else 0.005)
    running = proc.poll() is None
    if running:
        writing = writing or bool(temp_files(out))
        proc.send_signal(signum)
    return proc.wait(), running, writing


def _normalised_header(header, out):
    """Header cards as comparable text: date stamps and ``out`` masked.

    HISTORY and COMMENT are joined first (astropy wraps long lines, and a
    time stamp may be cut in two).
    """
    cards, commentary = [], {"HISTORY": "", "COMMENT": ""}
    for card in header.cards:
        if card.keyword in commentary:
            commentary[card.keyword] += str(card.value)
        elif card.keyword == "CCDCALDT":
            continue
        elif card.keyword.endswith("SUM") and card.keyword[:4] in ("BIAS", "DARK", "FLAT"):
            cards.append((card.keyword, "<checksum>"))  # of a dated master: checked apart
        else:
            cards.append((card.keyword, str(card.value)))
    cards += sorted(commentary.items())
    return [(key, _STAMP.sub("<date>", text.replace(out, "<OUT>"))) for key, text in cards]


def _checksums_consistent(header, out):
    """Each master checksum in ``header`` is that of the master file used."""
    from ginga_ccdcal.provenance import file_checksum
    for role in ("BIAS", "DARK", "FLAT"):
        if f"{role}FILE" in header:
            master = os.path.join(out, "masters", header[f"{role}FILE"])
            if header[f"{role}SUM"] != file_checksum(master):
                return False
    return True


def differences(reference, out):
    """Ways the products under ``out`` differ from those under ``reference``."""
    found = []
    expected, got = products(reference), products(out)
    if expected != got:
        found.append(f"files differ: missing {sorted(set(expected) - set(got))}, "
                     f"extra {sorted(set(got) - set(expected))}")
    for rel in sorted(set(expected) & set(got)):
        with fits.open(os.path.join(reference, rel)) as a, \
                fits.open(os.path.join(out, rel)) as b:
            if len(a) != len(b):
                found.append(f"{rel}: {len(a)} vs {len(b)} HDUs")
                continue
            for ha, hb in zip(a, b):
                if not np.array_equal(ha.data, hb.data, equal_nan=True):
                    found.append(f"{rel}: pixels differ")
                if _normalised_header(ha.header, reference) != \
                        _normalised_header(hb.header, out):
                    found.append(f"{rel}: header differs")
                if not _checksums_consistent(hb.header, out):
                    found.append(f"{rel}: master checksum does not match the master")
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="3 trials (SIGKILL, SIGINT, SIGTERM once each)")
    parser.add_argument("--workdir", help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    trials = 3 if args.quick else args.trials
    rng = random.Random(args.seed)
    work = args.workdir or tempfile.mkdtemp(prefix="ccdcal-kill-")
    os.makedirs(work, exist_ok=True)
    raw = os.path.join(work, "raw")
    shutil.rmtree(raw, ignore_errors=True)
    make_night(raw, args.seed)
    reference = os.path.join(work, "reference")
    shutil.rmtree(reference, ignore_errors=True)
    status, seconds, err = run_to_end(raw, reference)
    if status != 0:
        print(f"reference run failed (exit {status}):\n{err}")
        return 1
    print(f"reference: {len(products(reference))} products in {seconds:.1f} s")
    identical = left_by_kill = interrupted = mid_write = 0
    left_after = []
    for trial in range(trials):
        signum = SIGNALS[trial % len(SIGNALS)]
        at_write = trial % 2 == 1
        delay = rng.uniform(0.2, seconds)
        out = os.path.join(work, f"trial-{trial:03d}")
        shutil.rmtree(out, ignore_errors=True)
        stopped, running, writing = run_and_stop(raw, out, signum, delay, at_write)
        interrupted += running
        mid_write += writing
        leftovers = len(temp_files(out))
        left_by_kill += leftovers
        status, _, err = run_to_end(raw, out)
        problems = differences(reference, out) + (
            [f"resumed run exit {status}: {err.strip()[-300:]}"] if status else [])
        left = temp_files(out)
        left_after += left
        identical += not problems and not left
        when = "at a write" if at_write else f"after {delay:.2f} s"
        print(f"trial {trial + 1:3d}: {signal.Signals(signum).name:7s} {when:14s} "
              f"exit {stopped:4d}{'' if running else ' (had finished)'}, "
              f"{leftovers} temp left by the kill -> "
              + ("identical" if not problems and not left else
                 "; ".join(problems + [f"{len(left)} temp files left"])))
        shutil.rmtree(out, ignore_errors=True)
    print(f"{interrupted} of {trials} runs were stopped while running, {mid_write} "
          f"during a write; the kills left {left_by_kill} temp file(s), removed by "
          "the next run")
    print(f"{identical}/{trials} resumed identical, {len(left_after)} temp files left")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if identical == trials and not left_after else 1


if __name__ == "__main__":
    sys.exit(main())
