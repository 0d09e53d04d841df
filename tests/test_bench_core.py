"""The scan and calibration benchmarks still run and agree (no timing asserted)."""

import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


@pytest.mark.bench
@pytest.mark.parametrize("script, agreement", [
    ("bench_scan.py", "same table (type, exptime, filter per file): True"),
    ("bench_calibrate.py", ": agree"),
])
def test_benchmark_quick(tmp_path, script, agreement):
    proc = subprocess.run([sys.executable, os.path.join(BENCH, script), "--quick",
                           "--work", str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "speed-up:" in proc.stdout and agreement in proc.stdout
