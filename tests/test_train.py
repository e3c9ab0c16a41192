"""The trainer and the command line: a short run learns, and fused matches reference."""
import math
import subprocess
import sys

import pytest

from rnnfast import train


def test_one_cycle_schedule_shape():
    lr0, mom0 = train.one_cycle(1e-2, 0.0)
    peak, mom_peak = train.one_cycle(1e-2, 0.25)
    end, mom_end = train.one_cycle(1e-2, 1.0)
    assert lr0 == pytest.approx(1e-2 / 25) and peak == pytest.approx(1e-2)
    assert end == pytest.approx(1e-2 / 25 / 1e5 * 25) and mom0 == pytest.approx(0.95)
    assert mom_peak == pytest.approx(0.85) and mom_end == pytest.approx(0.95)


def test_optimizer_is_fastais_adam():
    task = train.make_task(4, 16)
    opt = train.fastai_adam(task.model, 1e-3)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert decay["betas"] == (0.9, 0.99) and decay["eps"] == 1e-5
    assert len(no_decay["params"]) == 2    # the two Linear biases


@pytest.mark.parametrize("model_id,schedule", [(1, "constant"), (3, "one-cycle"), (4, "constant")])
def test_short_run_learns(model_id, schedule):
    task = train.make_task(model_id, 32, seed=0)
    before = task.validate()
    history = train.run_recipe(task, [3], [3e-3], schedule)
    assert len(history) == 3
    assert history[-1].valid_loss < before[0]
    assert history[-1].accuracy > 0.3        # the majority class alone scores about 0.15


def test_train_accuracy_only_when_tracked():
    """Off by default (fastai's metrics are validation metrics); when tracked, it is the share
    of the training positions predicted right, which learning lifts above chance."""
    untracked = train.make_task(4, 32, seed=0)
    assert math.isnan(train.run_recipe(untracked, [1], [3e-3], "constant")[0].train_accuracy)
    tracked = train.make_task(4, 32, seed=0)
    tracked.track_train_accuracy = True
    r = train.run_recipe(tracked, [2], [3e-3], "constant")[-1]
    assert 0.3 < r.train_accuracy <= 1.0
    # The same training either way: tracking only reads the logits.
    assert tracked.history[0].train_loss == untracked.history[0].train_loss


@pytest.mark.parametrize("model_id", [1, 4])
def test_fused_and_reference_train_alike(model_id):
    """The fused backend trains through forward_loss (recurrence and head + loss fused), the
    reference one through forward and lm_loss: the same losses."""
    results = {}
    for backend in ("fused", "reference"):
        task = train.make_task(model_id, 32, backend=backend, seed=1)
        results[backend] = train.run_recipe(task, [1], [1e-3], "constant")[0]
    assert results["fused"].train_loss == pytest.approx(results["reference"].train_loss, rel=1e-3)
    assert results["fused"].valid_loss == pytest.approx(results["reference"].valid_loss, rel=1e-3)


def test_cli_train_runs_and_reports():
    out = subprocess.run([sys.executable, "-m", "rnnfast", "train", "--epochs", "2", "--lr",
                          "3e-3", "--hidden", "32"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("LMModel4 (backend=fused")
    assert lines[-1].startswith("reached valid accuracy")
    assert len([l for l in lines if l.split()[0].isdigit()]) == 2


def test_cli_rejects_mismatched_phases():
    with pytest.raises(ValueError, match="one learning rate per phase"):
        train.run_recipe(train.make_task(4, 8), [1, 2], [1e-3], "constant")
