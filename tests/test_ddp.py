"""DistributedDataParallel under torchrun, 2 processes with gloo on this machine.

torchrun is launched for real (python -m torch.distributed.run --standalone), as a user would.
"""
import os
import re
import signal
import subprocess
import sys

import pytest
import torch

import rnnfast
from rnnfast import distributed
from rnnfast.atomic_file import PAUSE_ENV

from support import cli_runs, ddp_worker

HERE = os.path.dirname(os.path.abspath(__file__))
NPROC = 2

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or
                                not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def torchrun(*args, timeout=300):
    # One thread per process: the two ranks share this machine's cores. PYTHONPATH: the worker
    # script must import the rnnfast this process tests (a checkout's, or an installed one when
    # the tests run from an sdist), not whichever one is first on the path.
    root = os.path.dirname(os.path.dirname(os.path.abspath(rnnfast.__file__)))
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={NPROC}", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_rows_split_into_contiguous_blocks():
    for n in (1, 2, 7, 8, 64):
        blocks = [distributed.Shard(r, 3).rows(n) for r in range(3)]
        covered = [i for b in blocks for i in range(n)[b]]
        assert covered == list(range(n))                  # every row once, in order
        sizes = [b.stop - b.start for b in blocks]
        assert max(sizes) - min(sizes) <= 1


def test_averaged_gradients_equal_one_process_on_the_whole_batch(tmp_path):
    out = torchrun(os.path.join(HERE, "support", "ddp_worker.py"), str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(NPROC)]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single_grads, single_h = ddp_worker.run(distributed.Shard())
    finally:
        torch.set_num_threads(threads)
    assert single_h.shape[0] == ddp_worker.BS
    for rank in ranks:
        assert rank["world_size"] == NPROC
        # Several steps in a row: after the first, the carried state of each rank's rows and the
        # weights after the optimizer step must both be right for the gradients to match.
        for step, (got, want) in enumerate(zip(rank["grads"], single_grads)):
            for name in want:
                torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6,
                                           msg=lambda m: f"step {step}, {name}: {m}")
        rows = distributed.Shard(rank["rank"], NPROC).rows(ddp_worker.BS)
        torch.testing.assert_close(rank["h"], single_h[rows], rtol=1e-5, atol=1e-6)


def test_rnnfast_train_under_torchrun_converges_and_rank0_reports():
    out = torchrun("-m", "rnnfast", "train", "--epochs", "3", "--lr", "3e-3", "--hidden", "32")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("LMModel4 (backend=fused") and f"ranks={NPROC}" in lines[0]
    epochs = [l for l in lines if l.split()[0].isdigit()]
    assert len(epochs) == 3                     # printed once (rank 0), not once per rank
    train_losses = [float(l.split()[1]) for l in epochs]
    assert train_losses[-1] < train_losses[0]
    accuracy = float(re.search(r"reached valid accuracy ([\d.]+)", lines[-1]).group(1))
    assert accuracy > 0.3                       # the majority class alone scores about 0.15


def test_batch_size_must_split_evenly():
    from rnnfast import train
    task = train.make_task(4, 8, bs=63)
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        task.distribute(distributed.Shard(0, 2))


def test_a_bad_option_under_torchrun_is_one_line_from_one_rank():
    out = torchrun("-m", "rnnfast", "train", "--bs", "63", "--epochs", "1", "--lr", "1e-3")
    ours = [l for l in out.stderr.splitlines() if l.startswith("rnnfast train")]
    assert ours == ["rnnfast train: error: --bs 63: under torchrun with 2 processes the batch "
                    "size must be a multiple of 2, so that every process takes as many rows "
                    "of each batch"]
    assert out.stdout == "" and "exitcode  : 2" in out.stderr   # torchrun's own report


def test_sigterm_under_torchrun_then_resume_ends_bitwise_equal(tmp_path):
    """Rank 0 writes the checkpoint; every rank resumes from it; SIGTERM to torchrun stops all
    ranks at the same epoch boundary."""
    args = ["-m", "rnnfast", "train", "--hidden", "8", "--epochs", "4", "--lr", "3e-3"]
    full, run = tmp_path / "full.pt", tmp_path / "run.pt"
    out = torchrun(*args, "--save", str(full))
    assert out.returncode == 0, out.stdout + out.stderr

    root = os.path.dirname(HERE)
    # Each save pauses mid-write, so that the run cannot finish all its epochs before the
    # poll sees the first checkpoint and SIGTERM reaches every rank.
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             f"--nproc_per_node={NPROC}", *args, "--save", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1", **{PAUSE_ENV: "0.6"},
                                     PYTHONPATH=os.pathsep.join(
                                         [root, os.environ.get("PYTHONPATH", "")])))
    cli_runs.wait_for(lambda: cli_runs.epochs_done(run) is not None, proc,
                      what="the first checkpoint")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert "rnnfast train: stopped by SIGTERM after " in stderr, stderr
    done = cli_runs.epochs_done(run)
    assert 1 <= done < 4

    resumed = torchrun("-m", "rnnfast", "train", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resumed from {run} after epoch {done}" in resumed.stdout
    a, b = (torch.load(p, weights_only=True) for p in (full, run))
    assert b["resume"]["epochs_done"] == 4
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
