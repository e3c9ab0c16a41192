"""The emulated CUDA kernels under ThreadSanitizer and AddressSanitizer + UBSan: the CPU
stand-in for compute-sanitizer's racecheck and memcheck, on a machine without a GPU.

tests/cuda_emulator/sanitizer_driver.cpp runs small cases of every kernel (persistent forward
and backward under several plans, including several rows per CTA and several outputs per
thread group; the step-wise kernels; the narrowing kernel; out-of-range token ids) and checks
them against a plain loop, with no Python in the process. Under ThreadSanitizer every
__syncthreads is a barrier it understands and a shuffle orders nothing (as on a GPU), and two
CTAs run at once so that races between CTAs show too. Under AddressSanitizer each CTA's shared
memory and every buffer is a heap block of exactly its size.

The controls prove the set-up can fail: toy kernels with a missing __syncthreads, a shuffle
used as a barrier, two CTAs writing one word, and a read past the shared memory must each be
reported.
"""
import os
import platform
import subprocess

import pytest

from cuda_emulator import build

SUPPRESSIONS = build.EMULATOR / "tsan.supp"
REPORTS = ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "runtime error:",
           "SUMMARY: ", "ERROR: LeakSanitizer")


def sanitizer_env(flavour):
    env = dict(os.environ)
    if flavour == "tsan":
        env["TSAN_OPTIONS"] = f"suppressions={SUPPRESSIONS}:halt_on_error=0:exitcode=66"
    else:
        env["ASAN_OPTIONS"] = "detect_leaks=1:halt_on_error=1"
        env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
    return env


def run_driver(flavour, driver, *args):
    """The driver's exit status and output. ThreadSanitizer cannot start on kernels whose
    address-space randomisation is wider than it expects; then retry without randomisation,
    and skip if that is not allowed here either."""
    cmd = [str(driver), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                            env=sanitizer_env(flavour))
    if "unexpected memory mapping" in result.stderr:
        result = subprocess.run(["setarch", platform.machine(), "-R", *cmd], capture_output=True,
                                text=True, timeout=600, env=sanitizer_env(flavour))
        if "unexpected memory mapping" in result.stderr or result.returncode == 127:
            pytest.skip(f"ThreadSanitizer cannot run on this kernel: {result.stderr[:200]}")
    return result.returncode, result.stdout + result.stderr


@pytest.fixture(scope="module")
def driver(emulator_cache_dir):
    """driver(flavour): the path of that sanitizer build of the driver (built once)."""
    built = {}

    def get(flavour):
        if flavour not in built:
            try:
                built[flavour] = build.build(flavour, emulator_cache_dir)
            except build.Unavailable as e:
                built[flavour] = e
        if isinstance(built[flavour], build.Unavailable):
            pytest.skip(f"cannot build the {flavour} driver: {built[flavour]}")
        return built[flavour]

    return get


@pytest.mark.parametrize("flavour", ["tsan", "asan"])
def test_kernels_run_clean_and_right(driver, flavour):
    args = ["--ctas-at-once", "2"] if flavour == "tsan" else []
    status, output = run_driver(flavour, driver(flavour), *args)
    reports = [line for line in output.splitlines() if line.startswith(REPORTS)]
    assert not reports, f"{flavour} reports:\n{output[-20000:]}"
    assert status == 0 and output.rstrip().endswith("all checks passed"), output[-20000:]
    assert "persistent" in output and "stepwise" in output and "bad token" in output


CONTROLS = [
    ("tsan", "control-missing-syncthreads", "data race", "missing_syncthreads"),
    ("tsan", "control-shuffle-is-no-barrier", "data race", "shuffle_as_barrier"),
    ("tsan", "control-race-between-ctas", "data race", "same_word_from_every_cta"),
    ("asan", "control-smem-overflow", "heap-buffer-overflow", "read_past_smem"),
]


@pytest.mark.parametrize("flavour,control,report,kernel", CONTROLS, ids=lambda c: str(c))
def test_sanitizer_reports_a_broken_toy_kernel(driver, flavour, control, report, kernel):
    status, output = run_driver(flavour, driver(flavour), control)
    assert status != 0, output
    assert report in output and kernel in output, output[-5000:]
