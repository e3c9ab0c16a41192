"""The GPU session's scripts run here first, as far as a machine without a GPU allows.

A GPU is lent only now and then, for a few minutes; a typo in benchmarks/gpu_check.sh or
gpu_bench.py would waste that turn. So: the shell script parses, the sanitizer workload
compiles, and the benchmark runs end to end in its CPU smoke mode and prints its table.
"""
import os
import py_compile
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")


def test_gpu_check_script_parses():
    proc = subprocess.run(["bash", "-n", os.path.join(BENCH, "gpu_check.sh")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_sanitizer_case_compiles(tmp_path):
    py_compile.compile(os.path.join(BENCH, "sanitizer_case.py"),
                       cfile=str(tmp_path / "sanitizer_case.pyc"), doraise=True)


def test_gpu_bench_smoke_run_on_cpu():
    proc = subprocess.run(
        [sys.executable, os.path.join(BENCH, "gpu_bench.py"), "--device", "cpu", "--cases",
         "3,2,4,5", "5,3,6,7", "--no-compile", "--budget", "0.01"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "WARNING" not in proc.stdout and "failed" not in proc.stdout, proc.stdout
    table = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert table[0].startswith("| B,T,H,V | pass | rnnfast ms | eager ms | cuDNN ms |")
    rows = table[2:]
    assert [r.split(" | ")[:2] for r in rows] == [
        ["| 3,2,4,5", "fwd"], ["| 3,2,4,5", "fwd+bwd"], ["| 5,3,6,7", "fwd"],
        ["| 5,3,6,7", "fwd+bwd"]]
    for row in rows:  # every time and ratio is a positive number
        cells = [c.strip() for c in row.strip("|").split("|")[2:]]
        assert all(re.fullmatch(r"\d+\.\d+x?", c) and float(c.rstrip("x")) > 0 for c in cells), row
