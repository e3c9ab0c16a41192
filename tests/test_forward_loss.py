"""LMModel1-4.forward_loss against forward + lm_loss, and the trainer's use of it."""
import copy

import pytest
import torch

import rnnfast
from rnnfast import train
from rnnfast.train import lm_loss

V, H, B = 30, 24, 8
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-12)}


def model(i, backend="fused"):
    return rnnfast.LMModel4(V, H, 16, backend=backend) if i == 4 else \
        getattr(rnnfast, f"LMModel{i}")(V, H, backend=backend)


def batch(i):
    x = torch.randint(0, V, (B, 16 if i == 4 else 3))
    return x, torch.randint(0, V, x.shape if i == 4 else (B,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("backend", ["fused", "reference"])
@pytest.mark.parametrize("i", [1, 2, 3, 4])
def test_forward_loss_matches_forward_and_lm_loss(seed, i, backend, dtype):
    """Three batches in a row (the state carried for 3 and 4): the same loss, logits, gradient
    of every parameter and carried state as forward followed by the book's loss."""
    mine = model(i, backend).to(dtype)
    theirs = copy.deepcopy(mine)
    for _ in range(3):
        x, y = batch(i)
        logits, loss = mine.forward_loss(x, y)
        want_logits = theirs(x)
        want_loss = lm_loss(want_logits, y)
        assert logits.shape == want_logits.shape and loss.shape == ()
        torch.testing.assert_close(loss, want_loss, **TOL[dtype])
        torch.testing.assert_close(logits, want_logits.detach(), **TOL[dtype])
        got = torch.autograd.grad(loss, list(mine.parameters()))
        want = torch.autograd.grad(want_loss, list(theirs.parameters()))
        for (name, _), a, r in zip(mine.named_parameters(), got, want):
            torch.testing.assert_close(a, r, **TOL[dtype], msg=lambda m: f"{name}: {m}")
        if i in (3, 4):
            torch.testing.assert_close(mine.h, theirs.h, **TOL[dtype])
    # The fused path gives logits for metrics only; the others are forward's own.
    assert logits.requires_grad == (backend == "reference")


def test_fused_path_runs_the_fused_head(seed, monkeypatch):
    calls = []
    real = rnnfast.ops.lm_head_loss
    monkeypatch.setattr(rnnfast.ops, "lm_head_loss", lambda *a: calls.append(1) or real(*a))
    m = model(4)
    m.forward_loss(*batch(4))
    model(4, "reference").forward_loss(*batch(4))
    assert calls == [1]


def test_under_autocast_it_is_forward_and_lm_loss(seed):
    """Autocast runs the head in bfloat16, which the op would not reproduce: forward_loss then
    takes the unfused path and gives exactly what forward + lm_loss give."""
    mine = model(4)
    theirs = copy.deepcopy(mine)
    x, y = batch(4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, loss = mine.forward_loss(x, y)
        want_logits = theirs(x)
        want_loss = lm_loss(want_logits, y)
    assert logits.dtype == torch.bfloat16
    torch.testing.assert_close(loss, want_loss, rtol=0, atol=0)
    torch.testing.assert_close(mine.h, theirs.h, rtol=0, atol=0)


@pytest.mark.parametrize("i", [1, 4])
def test_targets_shape_is_checked(i):
    x, y = batch(i)
    want = r"\(batch, seq_len\) = \(8, 16\)" if i == 4 else r"\(batch,\) = \(8,\)"
    for backend in ("fused", "reference"):
        with pytest.raises(ValueError, match=f"LMModel{i}: targets must have shape {want}"):
            model(i, backend).forward_loss(x, y[:-1])
    with pytest.raises(TypeError, match="targets must be a tensor"):
        model(i).forward_loss(x, None)


def test_compiled_forward_loss_matches_eager(seed):
    mine = model(4)
    theirs = copy.deepcopy(mine)
    compiled = torch.compile(mine.forward_loss, fullgraph=True, backend="aot_eager")
    for _ in range(2):
        x, y = batch(4)
        _, loss = compiled(x, y)
        _, want = theirs.forward_loss(x, y)
        torch.testing.assert_close(loss, want, **TOL[torch.float32])
        for a, r in zip(torch.autograd.grad(loss, list(mine.parameters())),
                        torch.autograd.grad(want, list(theirs.parameters()))):
            torch.testing.assert_close(a, r, **TOL[torch.float32])


def test_training_step_goes_through_forward_loss(monkeypatch):
    """Task.train_step and validate call forward_loss (the path the benchmarks measure), and a
    model without one still trains through forward and lm_loss."""
    task = train.make_task(4, 16, seed=0)
    calls = []
    real = task.model.forward_loss
    monkeypatch.setattr(task.model, "forward_loss", lambda x, y: calls.append(1) or real(x, y))
    opt = train.fastai_adam(task.model, 1e-3)
    x, y = task.train[0][:64], task.train[1][:64]
    task.train_step(x, y, opt)
    assert calls == [1]

    plain = train.ForwardLoss(torch.nn.Linear(3, 5))
    logits, loss = plain(torch.randn(4, 3), torch.randint(0, 5, (4,)))
    assert logits.shape == (4, 5) and loss.requires_grad
