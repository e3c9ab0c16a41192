"""The trainer and the command line: a short run learns, and fused matches reference."""
import math
import os
import subprocess
import sys

import pytest
import torch

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
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-m", "rnnfast", "train", "--epochs", "2", "--lr",
                          "3e-3", "--hidden", "32"], capture_output=True, text=True, timeout=300,
                         env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("LMModel4 (backend=fused")
    assert "threads=1)" in lines[0]                 # the default (rnnfast.threads)
    assert lines[-1].startswith("reached valid accuracy")
    assert len([l for l in lines if l.split()[0].isdigit()]) == 2


def test_cli_rejects_mismatched_phases():
    with pytest.raises(ValueError, match="one learning rate per phase"):
        train.run_recipe(train.make_task(4, 8), [1, 2], [1e-3], "constant")


def test_reported_median_is_the_mean_of_the_middle_two_for_an_even_count():
    from rnnfast.training_run import _summary
    history = [train.EpochResult(i, 1.0, 1.0, 0.5, s) for i, s in enumerate([0.4, 0.1, 0.3, 0.2])]
    assert "250 ms per epoch (median" in _summary(history, 4, 1.0)      # (0.2 + 0.3) / 2
    assert "200 ms per epoch (median" in _summary(history[1:], 3, 1.0)  # the middle one


def test_recipe_position_follows_from_the_epoch_number():
    recipe = train.Recipe((30, 50), (1e-3, 1e-4), "constant")
    assert recipe.total_epochs == 80
    assert [recipe.position(e) for e in (0, 29, 30, 79)] == [(0, 0), (0, 29), (1, 0), (1, 49)]
    with pytest.raises(ValueError):
        recipe.position(80)


def test_run_recipe_in_two_sittings_equals_one(seed):
    """What --resume relies on, in process: stop after an epoch of a one-cycle recipe, carry
    the weights, optimizer state and history over to a fresh task, and finish there."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        whole = train.make_task(3, 8, seed=0)
        whole_opt = train.fastai_adam(whole.model, 3e-3)
        train.run_recipe(whole, [2], [3e-3], "one-cycle", opt=whole_opt)

        first = train.make_task(3, 8, seed=0)
        opt = train.fastai_adam(first.model, 3e-3)

        def stop_after_one(r):
            raise train.StopTraining

        with pytest.raises(train.StopTraining):
            train.run_recipe(first, [2], [3e-3], "one-cycle", on_epoch=stop_after_one, opt=opt)
        second = train.make_task(3, 8, seed=1)       # other weights, overwritten below
        second.model.load_state_dict(first.model.state_dict())
        second_opt = train.fastai_adam(second.model, 3e-3)
        second_opt.load_state_dict(opt.state_dict())
        second.history = list(first.history)
        train.run_recipe(second, [2], [3e-3], "one-cycle", opt=second_opt)
    finally:
        torch.set_num_threads(threads)
    for (name, a), b in zip(whole.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [r.valid_loss for r in second.history] == [r.valid_loss for r in whole.history]


def test_thread_default_is_one_unless_told(monkeypatch):
    from rnnfast import threads
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.choose(None) == 1
    assert threads.choose(3) == 3 and threads.choose(0) is None     # 0: torch's own default
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.choose(None) is None                             # torch follows it
