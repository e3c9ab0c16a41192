"""Checkpoints lose no work: a real `rnnfast train` killed with SIGKILL between epochs and in
the middle of a save always leaves a checkpoint that loads, and `--resume` (as often as
needed) ends bitwise equal to the uninterrupted run, at 1 thread. Ctrl-C and SIGTERM stop
cleanly."""
import os
import signal
import time

import pytest
import torch

from rnnfast.atomic_file import PAUSE_ENV, partial_path

from support import cli_runs

# Small models and few epochs: each case is a handful of short subprocesses.
RECIPES = {
    "LMModel4-constant": ["--model", "4", "--hidden", "8", "--epochs", "2", "2",
                          "--lr", "3e-3", "1e-3"],
    "LMModel3-one-cycle": ["--model", "3", "--hidden", "8", "--epochs", "3", "--lr", "3e-3"],
    # rnnfast.RNN's op, two layers, carrying a (layers, batch, hidden) state.
    "LMModel5-one-cycle": ["--model", "5", "--hidden", "8", "--layers", "2", "--epochs", "3",
                           "--lr", "3e-3"],
}
ONE_THREAD = ["--threads", "1"]
PAUSE_S = 0.6   # every save pauses this long mid-write: time for the test to see it and kill


def recorded(history):
    """The history's numbers, timings left out (repr: NaN, untracked accuracy, equals NaN)."""
    return [{k: repr(v) for k, v in r.items() if k != "seconds"} for r in history]


def assert_same_run(got_path, want_path):
    got, want = (torch.load(p, weights_only=True) for p in (got_path, want_path))
    assert got["resume"]["epochs_done"] == want["resume"]["epochs_done"]
    assert got["state_dict"].keys() == want["state_dict"].keys()
    for k in want["state_dict"]:
        assert torch.equal(got["state_dict"][k], want["state_dict"][k]), k
    g_opt, w_opt = got["resume"]["optimizer"], want["resume"]["optimizer"]
    assert g_opt["param_groups"] == w_opt["param_groups"]      # lr, betas (one-cycle), ...
    for i, w_state in w_opt["state"].items():
        for name, tensor in w_state.items():
            assert torch.equal(g_opt["state"][i][name], tensor), (i, name)
    assert recorded(got["history"]) == recorded(want["history"])
    assert torch.equal(got["resume"]["rng"], want["resume"]["rng"])


@pytest.fixture(scope="module", params=sorted(RECIPES))
def uninterrupted(request, tmp_path_factory):
    """(recipe name, the uninterrupted run's checkpoint)."""
    path = tmp_path_factory.mktemp("full") / "full.pt"
    out = cli_runs.run("train", *RECIPES[request.param], *ONE_THREAD, "--save", path)
    assert out.returncode == 0, out.stderr
    return request.param, path


def kill_when(proc, condition, what):
    cli_runs.wait_for(condition, proc, what=what)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_between_epochs_and_during_saves_then_resume_is_bitwise_equal(uninterrupted,
                                                                              tmp_path):
    name, full = uninterrupted
    path = tmp_path / "run.pt"
    partial = partial_path(str(path))
    slow = {PAUSE_ENV: PAUSE_S}

    # 1. Killed between epochs: as soon as the first checkpoint is complete.
    proc = cli_runs.start("train", *RECIPES[name], *ONE_THREAD, "--save", path, **slow)
    kill_when(proc, lambda: cli_runs.epochs_done(path) == 1, "the first checkpoint")
    assert cli_runs.epochs_done(path) == 1

    # 2. Resumed, and killed in the middle of writing the next checkpoint: the file is still
    # the previous complete one, the half-written one lies beside it.
    proc = cli_runs.start("train", "--resume", path, **slow)
    kill_when(proc, lambda: os.path.exists(partial) and os.path.getsize(partial) > 0,
              "a save in progress")
    assert os.path.exists(partial)
    assert cli_runs.epochs_done(path) == 1

    # 3. Resumed again, to the end.
    out = cli_runs.run("train", "--resume", path)
    assert out.returncode == 0, out.stderr
    assert "resumed from" in out.stdout and "after epoch 1" in out.stdout
    assert "threads=1" in out.stdout            # the recorded thread count, not re-chosen
    assert not os.path.exists(partial)          # the next save replaced the stale part
    assert_same_run(path, full)

    # A finished run resumed once more has nothing left to do, and says so.
    again = cli_runs.run("train", "--resume", path)
    assert again.returncode == 0 and "nothing left to train" in again.stdout


@pytest.mark.parametrize("uninterrupted", ["LMModel4-constant"], indirect=True)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_saves_says_how_to_resume_and_exits_nonzero(sig, uninterrupted, tmp_path):
    name, full = uninterrupted       # one recipe is enough for the signal path
    path = tmp_path / "run.pt"
    # --save-every 3: the stop must write the epoch the periodic saves have not yet written.
    proc = cli_runs.start("train", *RECIPES[name], *ONE_THREAD, "--save", path,
                          "--save-every", "3")
    # The first epoch's row on stdout: a whole epoch is done and nothing is on disk yet.
    first = proc.stdout.readline()
    while not first.split() or not first.split()[0].isdigit():
        first = proc.stdout.readline()
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"rnnfast train: stopped by {signal.Signals(sig).name} after ")
    assert lines[0].endswith(f"continue it with `rnnfast train --resume {path}`")
    assert cli_runs.epochs_done(path) >= 1
    out = cli_runs.run("train", "--resume", path)
    assert out.returncode == 0, out.stderr
    assert_same_run(path, full)


def test_interrupt_without_save_says_nothing_was_saved():
    proc = cli_runs.start("train", "--hidden", "8", "--epochs", "50", "--lr", "1e-3")
    proc.stdout.readline()                     # the header: training has begun
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr
    assert "nothing saved (give --save PATH to be able to resume)" in stderr


def test_a_second_ctrl_c_during_a_save_stops_at_once_and_keeps_the_last_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    partial = partial_path(str(path))
    proc = cli_runs.start("train", "--hidden", "8", "--epochs", "20", "--lr", "1e-3",
                          *ONE_THREAD, "--save", path, **{PAUSE_ENV: 2.0})
    cli_runs.wait_for(lambda: cli_runs.epochs_done(path) == 1, proc, what="the first checkpoint")
    cli_runs.wait_for(lambda: os.path.exists(partial), proc, what="the second save")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr
    assert stderr.strip() == (f"rnnfast train: stopped at once by a second SIGINT; {path} holds "
                              f"the run after epoch 1: continue it with `rnnfast train --resume "
                              f"{path}`")
    assert cli_runs.epochs_done(path) == 1 and not os.path.exists(partial)
