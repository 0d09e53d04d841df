"""The random-kill trial (bench/kill_trial.py) at its --quick size.

``reduce`` is stopped by SIGKILL, SIGINT and SIGTERM, resumed, and every
product compared with an uninterrupted run; no temporary file may remain.
"""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.bench
def test_kill_trial_quick(tmp_path):
    script = os.path.join(ROOT, "bench", "kill_trial.py")
    proc = subprocess.run([sys.executable, script, "--quick", "--seed", "3",
                           "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    trials = [line for line in out.splitlines() if line.startswith("trial")]
    assert [re.search(r"SIG[A-Z]+", t).group() for t in trials] == [
        "SIGKILL", "SIGINT", "SIGTERM"]
    assert all(t.endswith("-> identical") for t in trials), out
    assert out.splitlines()[-1] == "3/3 resumed identical, 0 temp files left"
