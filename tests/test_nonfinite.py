"""NaN, Inf and ReLU ties, one hand-made case each (the property test covers them at random).

Each case pins one rule the fused op shares with torch.relu and the reference loop, or one
place where the kernel has to take care that an exact zero never meets a NaN or Inf the
reference would not multiply (csrc/elman_rnn_cpu.cpp, "NaN/Inf safety").
"""
import pytest
import torch

import rnnfast
from rnnfast import reference

from support.compare import assert_agree
from support.helpers import TOLERANCES

NAN, INF = float("nan"), float("inf")


def both(tokens, emb, w, b, h0=None, grad=None):
    """(hs, grads) of the fused op and of the reference for the same inputs."""
    out = []
    for fn in (rnnfast.elman_rnn, reference.elman_rnn):
        leaves = [t.clone().requires_grad_() for t in (emb, w, b) + ((h0,) if h0 is not None
                                                                      else ())]
        hs, _ = fn(tokens, *leaves[:3], leaves[3] if h0 is not None else None)
        g = torch.ones_like(hs) if grad is None else grad
        out.append((hs.detach(), torch.autograd.grad(hs, leaves, g)))
    return out


def assert_same(pair, pattern="full"):
    (hs, grads), (ref_hs, ref_grads) = pair
    tol = TOLERANCES[hs.dtype]
    assert_agree(hs, ref_hs, "hs", pattern, **tol)
    for i, (g, r) in enumerate(zip(grads, ref_grads)):
        assert_agree(g, r, f"grad {i}", pattern, **tol)


def test_relu_tie_at_zero_is_torch_relu():
    """A pre-activation of exactly 0 gives h = 0 and passes no gradient, as torch.relu does."""
    tokens = torch.tensor([[0, 1]])
    emb = torch.tensor([[0.0], [1.0]])          # step 0: a = 0 exactly; step 1: a = 1
    w, b = torch.tensor([[1.0]]), torch.tensor([0.0])
    (hs, (d_emb, d_w, d_b)), ref = both(tokens, emb, w, b)
    assert hs.tolist() == [[[0.0], [1.0]]]
    x = torch.zeros(1, requires_grad=True)
    (relu_grad,) = torch.autograd.grad(torch.relu(x), x)
    assert relu_grad.item() == 0.0
    assert d_emb[0].item() == 0.0 and d_b.item() == 1.0   # only step 1 passes gradient
    assert_same(((hs, (d_emb, d_w, d_b)), ref))


def test_negative_zero_stays_as_torch_relu_leaves_it():
    tokens = torch.zeros(1, 1, dtype=torch.long)
    emb, w, b = torch.full((1, 1), -0.0), torch.zeros(1, 1), torch.full((1,), -0.0)
    hs, _ = rnnfast.elman_rnn(tokens, emb, w, b)
    assert torch.equal(torch.signbit(hs), torch.signbit(torch.relu(torch.tensor([[[-0.0]]]))))


def test_nan_state_propagates_and_passes_gradient():
    """relu(NaN) = NaN, and the backward masks on output <= 0, which NaN is not."""
    tokens = torch.tensor([[0, 1, 1]])
    emb = torch.tensor([[NAN, 0.5], [0.25, 0.5]])
    w, b = torch.eye(2) * 0.5, torch.zeros(2)
    pair = both(tokens, emb, w, b)
    hs, (d_emb, d_w, d_b) = pair[0]
    assert hs.isnan().all()                     # step 0 is NaN and W mixes it into every unit
    # Every state passes its (finite) gradient: d_b is the sum over all 3 steps of 1 + carry.
    assert torch.isfinite(d_b).all() and (d_b >= 3).all()
    assert d_w.isnan().all()                    # it multiplies the NaN states
    assert_same(pair)


def test_masked_nan_gradient_is_dropped():
    """A NaN upstream gradient at a state that ReLU zeroed does not reach the parameters."""
    tokens = torch.tensor([[0, 1]])
    emb = torch.tensor([[-1.0], [1.0]])         # step 0 is dead (h = 0), step 1 alive
    w, b = torch.tensor([[0.5]]), torch.tensor([0.0])
    grad = torch.tensor([[[NAN], [1.0]]])
    pair = both(tokens, emb, w, b, grad=grad)
    assert all(torch.isfinite(g).all() for g in pair[0][1])
    assert_same(pair)


@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_nonfinite_row_of_an_unused_token_touches_nothing(value):
    """As with nn.Embedding, a row the batch never reads has no say in any gradient."""
    tokens = torch.tensor([[0, 1, 0], [1, 1, 0]])
    emb = torch.randn(4, 3)
    emb[3, 1] = value                            # token 3 never occurs
    w, b = torch.randn(3, 3) / 2, torch.randn(3) * 0.1
    pair = both(tokens, emb, w, b, h0=torch.rand(2, 3))
    assert all(torch.isfinite(g).all() for g in pair[0][1])
    assert_same(pair)


@pytest.mark.parametrize("value", [NAN, INF])
def test_nonfinite_weight_leaves_unused_tokens_with_zero_gradient(value):
    tokens = torch.tensor([[0, 1]])
    emb, b = torch.randn(3, 2), torch.zeros(2)
    w = torch.randn(2, 2)
    w[0, 1] = value
    (_, (d_emb, _, _)), (_, (ref_d_emb, _, _)) = both(tokens, emb, w, b)
    assert torch.equal(d_emb[2], torch.zeros(2)) and torch.equal(ref_d_emb[2], torch.zeros(2))


def test_nonfinite_last_state_stays_in_its_batch_row():
    """Batch row 0's last state is NaN in every unit, but the reference's weight gradient is NaN
    only in the column of the NaN embedding entry: the kernel must not pair row 1's first step
    with row 0's last state (0 * NaN) when it batches the weight gradient into one GEMM."""
    tokens = torch.tensor([[1, 0], [1, 1]])     # token 0 (with a NaN) is row 0's last step
    emb = torch.tensor([[NAN, 0.5, 0.5], [0.5, 0.25, 0.75]])
    w, b = torch.eye(3) * 0.5, torch.full((3,), 0.1)
    pair = both(tokens, emb, w, b)
    hs, (_, d_w, _) = pair[0]
    assert hs[0, 1].isnan().all() and torch.isfinite(hs[1]).all()
    assert d_w[:, 0].isnan().all() and torch.isfinite(d_w[:, 1:]).all()
    assert_same(pair)


def test_infinite_embedding_matches_reference_forward():
    tokens = torch.tensor([[0, 1, 2]])
    emb = torch.tensor([[INF, 0.0], [-INF, 1.0], [0.5, -0.5]])
    w, b = torch.tensor([[0.5, 0.25], [-0.25, 0.5]]), torch.zeros(2)
    (hs, grads), (ref_hs, ref_grads) = both(tokens, emb, w, b)
    assert_agree(hs, ref_hs, "hs", "full")
    # The weight and embedding gradients group 0 * Inf differently (see test_fuzz_reference).
    for g, r, pattern in zip(grads, ref_grads, ("finiteness", "finiteness", "full")):
        assert_agree(g, r, "grad", pattern, **TOLERANCES[torch.float32])
