"""The benchmark scripts run end to end at their --quick size.

No timing is asserted: only that each script finishes, prints its table
and finds that the outputs agree with the reference implementation.
"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.bench
def test_combine_bench_quick(tmp_path):
    script = os.path.join(ROOT, "bench", "bench_combine.py")
    proc = subprocess.run(
        [sys.executable, script, "--quick", "--workdir", str(tmp_path),
         "--methods", "average,median,sigclip-average,sigclip-median"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "ccdproc s" in out and "ours s" in out and "ours/floor" in out
    rows = [line.split() for line in out.splitlines()
            if line.startswith("256x256")]
    assert [r[2] for r in rows] == ["average", "median", "sigclip-average",
                                    "sigclip-median"]
    assert all(r[-1] == "yes" for r in rows), out  # outputs agree per method
    assert "outputs agree: yes" in out


@pytest.mark.bench
def test_peers_bench_quick(tmp_path):
    """Ours beside Siril (when siril-cli is installed): same master, a table."""
    script = os.path.join(ROOT, "bench", "bench_peers.py")
    proc = subprocess.run([sys.executable, script, "--quick", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 x 256^2" in proc.stdout and "ours s" in proc.stdout
    assert "MASTERS DIFFER" not in proc.stdout


@pytest.mark.bench
def test_startup_bench_quick():
    script = os.path.join(ROOT, "bench", "bench_startup.py")
    proc = subprocess.run([sys.executable, script, "--quick"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ginga-ccdcal --help" in proc.stdout and "imports of masters" in proc.stdout
