"""The drop-in modules against the book's classes and against their own reference backend."""
import copy

import pytest
import torch

import rnnfast
from rnnfast.train import fastai_adam, lm_loss

import book_models

V, H, B = 30, 24, 8
TOL = dict(rtol=1e-4, atol=1e-5)


def ours(i, backend="fused"):
    return rnnfast.LMModel4(V, H, 16, backend=backend) if i == 4 else \
        getattr(rnnfast, f"LMModel{i}")(V, H, backend=backend)


def book(i):
    return getattr(book_models, f"LMModel{i}")(V, H)


def batches(i, n=3):
    T = 16 if i == 4 else 3
    return [torch.randint(0, V, (B, T)) for _ in range(n)]


@pytest.mark.parametrize("i", [1, 2, 3, 4])
def test_state_dict_moves_both_ways(seed, i):
    theirs, mine = book(i), ours(i)
    assert set(mine.state_dict()) == set(theirs.state_dict()) == {
        "i_h.weight", "h_h.weight", "h_h.bias", "h_o.weight", "h_o.bias"}
    mine.load_state_dict(theirs.state_dict())
    back = book(i)
    back.load_state_dict(mine.state_dict())
    for k, v in theirs.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)


@pytest.mark.parametrize("backend", ["fused", "reference"])
@pytest.mark.parametrize("i", [1, 2, 3, 4])
def test_matches_the_book_over_batches(seed, i, backend):
    """Same weights, same batches in a row (state carried for 3 and 4): same outputs and grads."""
    theirs = book(i)
    mine = ours(i, backend)
    mine.load_state_dict(theirs.state_dict())
    for x in batches(i):
        out_theirs, out_mine = theirs(x), mine(x)
        torch.testing.assert_close(out_mine, out_theirs, **TOL)
        y = torch.randint(0, V, out_mine.shape[:-1])
        g_theirs = torch.autograd.grad(lm_loss(out_theirs, y), list(theirs.parameters()))
        g_mine = torch.autograd.grad(lm_loss(out_mine, y), list(mine.parameters()))
        for a, r in zip(g_mine, g_theirs):
            torch.testing.assert_close(a, r, **TOL)


@pytest.mark.parametrize("i", [3, 4])
def test_stateful_reset_and_batch_size_change(seed, i):
    m = ours(i)
    x = batches(i, 1)[0]
    first = m(x)
    assert m.h.shape == (B, H) and not m.h.requires_grad
    second = m(x)
    assert not torch.allclose(first, second)   # the carried state changed the output
    m.reset()
    torch.testing.assert_close(m(x), first, rtol=0, atol=0)
    # A batch of another size starts from zeros instead of failing.
    small = x[:3]
    m.reset()
    fresh = m(small)
    m.reset()
    m(x)
    torch.testing.assert_close(m(small), fresh, rtol=0, atol=0)


def test_state_is_a_non_persistent_buffer_that_follows_to(seed):
    m = ours(4)
    m(batches(4, 1)[0])
    assert "h" not in m.state_dict()
    m = m.double()
    assert m.h.dtype == torch.float64
    m(batches(4, 1)[0])


def test_two_batches_of_t_equal_one_of_2t(seed):
    m = ours(4)
    x = torch.randint(0, V, (B, 32))
    whole = m(x)
    m.reset()
    halves = torch.cat([m(x[:, :16]), m(x[:, 16:])], dim=1)
    torch.testing.assert_close(halves, whole, **TOL)

    m3 = ours(3)
    rnn = rnnfast.ElmanRNN(V, H)
    rnn.load_state_dict({k: v for k, v in m3.state_dict().items() if not k.startswith("h_o")})
    x = torch.randint(0, V, (B, 6))
    m3(x[:, :3])
    m3(x[:, 3:])
    _, h_last = rnn(x)
    torch.testing.assert_close(m3.h, h_last.detach(), **TOL)


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_elman_rnn_layer(seed, backend):
    layer = rnnfast.ElmanRNN(V, H, backend=backend)
    x = torch.randint(0, V, (B, 7))
    h0 = torch.randn(B, H).relu()
    hs, h_last = layer(x, h0)
    assert hs.shape == (B, 7, H) and h_last.shape == (B, H)
    ref, _ = rnnfast.reference.elman_rnn(x, layer.i_h.weight, layer.h_h.weight, layer.h_h.bias, h0)
    torch.testing.assert_close(hs, ref, **TOL)


@pytest.mark.parametrize("i", [1, 4])
def test_compiled_training_step_matches_eager(seed, i):
    eager = ours(i)
    compiled_model = copy.deepcopy(eager)
    compiled = torch.compile(compiled_model, fullgraph=True)
    opt_e, opt_c = fastai_adam(eager, 1e-2), fastai_adam(compiled_model, 1e-2)
    for x in batches(i, 2):
        y = torch.randint(0, V, (B, 16) if i == 4 else (B,))
        for model, opt in ((eager, opt_e), (compiled, opt_c)):
            opt.zero_grad()
            lm_loss(model(x), y).backward()
            opt.step()
    for a, r in zip(compiled_model.parameters(), eager.parameters()):
        torch.testing.assert_close(a, r, **TOL)


def test_backend_is_checked():
    with pytest.raises(ValueError, match="backend must be one of"):
        rnnfast.LMModel4(V, H, backend="cuda")


@pytest.mark.parametrize("i", [1, 3])
def test_short_input_is_a_clear_error(i):
    with pytest.raises(ValueError, match="seq_len >= 3"):
        ours(i)(torch.randint(0, V, (B, 2)))
