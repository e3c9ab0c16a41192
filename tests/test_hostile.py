"""Every case of bad_calls.py (the one table of bad calls, which test_bad_input.py runs
in-process), run in child processes (support/hostile_cases.py) so that a crash, an abort or a hang fails
the case that caused it instead of taking the test run down with it.

One child runs all cases (starting a Python with torch costs seconds; a case costs
milliseconds). When a child dies, the case it had started is recorded as the crash and a new
child resumes after it. Under the sanitizer build (.ci/sanitize.sh) the children inherit
LD_PRELOAD and the sanitizer options, so an out-of-bounds access in any case fails that case.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest

import rnnfast

from support import bad_calls

HERE = Path(__file__).resolve().parent
CHILD_TIMEOUT_S = float(os.environ.get("RNNFAST_HOSTILE_TIMEOUT", "300"))


def _describe_death(returncode: Optional[int], stderr: str) -> str:
    if returncode is None:
        how = f"hung (killed after {CHILD_TIMEOUT_S:.0f} s)"
    elif returncode < 0:
        how = f"died of {signal.Signals(-returncode).name}"
    else:
        how = f"exited with status {returncode}"
    return f"the child process {how} while running this case; stderr ends:\n{stderr[-4000:]}"


def run_children(extra_env: Optional[Dict[str, str]] = None, first: int = 0) -> Dict[int, dict]:
    """index -> the child's result line, or {"died": why} for the case that killed a child."""
    env = dict(os.environ, **(extra_env or {}))
    # The children must load the same rnnfast as this process (the sanitizer run tests a copy).
    root = str(Path(rnnfast.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, str(HERE), env.get("PYTHONPATH", "")])
    results: Dict[int, dict] = {}
    while True:
        cmd = [sys.executable, str(HERE / "support" / "hostile_cases.py"), str(first)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                  timeout=CHILD_TIMEOUT_S)
            stdout, stderr, returncode = proc.stdout, proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as e:
            stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            stderr = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            returncode = None
        started, done = None, False
        for line in stdout.splitlines():
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if "start" in record:
                started = record["start"]
            elif "index" in record:
                results[record["index"]] = record
                started = None
            elif record.get("done"):
                done = True
        if done and returncode == 0:
            return results
        if started is None:  # died between cases (e.g. at start-up or exit): blame no case
            raise RuntimeError(_describe_death(returncode, stderr))
        results[started] = {"died": _describe_death(returncode, stderr)}
        first = started + 1


CASES: List[bad_calls.Hostile] = bad_calls.all_cases()


@pytest.fixture(scope="module")
def results():
    return run_children()


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.name for c in CASES])
def test_hostile_case(results, index):
    case = CASES[index]
    result = results.get(index)
    assert result is not None, "the case never ran"
    assert "died" not in result, result.get("died")
    why = bad_calls.check(case, result)
    assert why is None, why


def test_a_crashing_case_is_caught_and_the_next_one_still_runs():
    """The harness itself: a case that kills its child is reported, and the run goes on."""
    names = [c.name for c in bad_calls.all_cases(selftest=True)]
    crash = names.index("selftest: the child dies of SIGSEGV")
    results = run_children({"RNNFAST_HOSTILE_SELFTEST": "1"}, first=crash)
    assert "died of SIGSEGV" in results[crash]["died"]
    assert results[crash + 1] == {"index": crash + 1, "outcome": "returned"}
