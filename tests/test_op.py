"""The fused op against the reference loop: values, gradients, gradcheck, opcheck."""
import itertools

import pytest
import torch

import rnnfast
from rnnfast import reference

from support.helpers import TOLERANCES, assert_matches, make_inputs

# (B, T, H, V): the book's size, every dimension at 1, odd sizes, long and wide, each hidden
# size of the small-H float32 kernel (16, 32, 48, 64) with a batch that is no multiple of its
# row block, and large weights (H >= 512, read transposed in place), with enough rows for two
# tasks in the last.
SHAPES = [(64, 16, 64, 30), (1, 1, 1, 1), (1, 7, 5, 3), (5, 1, 9, 2), (3, 4, 1, 6),
          (2, 3, 7, 1), (17, 33, 13, 11), (8, 64, 31, 50), (33, 5, 128, 7), (7, 5, 16, 9),
          (13, 3, 32, 4), (3, 6, 48, 5), (11, 4, 64, 3), (3, 4, 512, 5), (2, 3, 600, 4),
          (260, 2, 520, 3)]


def grads(outputs, inputs, grad_out, retain_graph=False):
    return torch.autograd.grad(outputs, [i for i in inputs if i is not None], grad_out,
                               retain_graph=retain_graph)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_h0", [True, False])
def test_matches_reference(seed, dtype, shape, with_h0):
    tokens, emb, w, b, h0 = make_inputs(*shape, dtype=dtype, with_h0=with_h0, avoid_ties=True)
    hs, h_last = rnnfast.elman_rnn(tokens, emb, w, b, h0)
    ref_hs, ref_last = reference.elman_rnn(tokens, emb, w, b, h0)
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(hs, ref_hs, **tol)
    torch.testing.assert_close(h_last, ref_last, **tol)
    assert hs.shape == shape[:3] and hs.dtype == dtype
    if hs.numel() >= 64:  # big enough that both sides of the ReLU are exercised
        assert (hs > 0).any() and (hs == 0).any()

    grad_hs = torch.randn_like(hs)
    got = grads(hs, (emb, w, b, h0), grad_hs)
    want = grads(ref_hs, (emb, w, b, h0), grad_hs)
    for g, r in zip(got, want):
        assert_matches(g, r, dtype)
    if (hs > 0).any():  # a live state passes gradient to the bias: guards against all zeros
        assert got[2].abs().sum() > 0


@pytest.mark.parametrize("shape,with_h0", [((3, 4, 5, 6), True), ((2, 5, 3, 4), False),
                                           ((1, 1, 1, 1), True), ((4, 2, 1, 3), True)])
def test_gradcheck(seed, shape, with_h0):
    tokens, emb, w, b, h0 = make_inputs(*shape, dtype=torch.float64, with_h0=with_h0)

    def fn(emb, w, b, *h0):
        hs, h_last = rnnfast.elman_rnn(tokens, emb, w, b, h0[0] if h0 else None)
        return hs, h_last

    args = (emb, w, b) + ((h0,) if with_h0 else ())
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6)


def test_uses_last_state_and_all_states(seed):
    """A loss on h_last alone and on hs alone both match the reference."""
    tokens, emb, w, b, h0 = make_inputs(6, 9, 10, 12)
    hs, h_last = rnnfast.elman_rnn(tokens, emb, w, b, h0)
    ref_hs, ref_last = reference.elman_rnn(tokens, emb, w, b, h0)
    for out, ref in ((h_last, ref_last), (hs[:, 3], ref_hs[:, 3])):
        g = torch.randn_like(out)
        for a, r in zip(grads(out, (emb, w, b, h0), g, retain_graph=True),
                        grads(ref, (emb, w, b, h0), g, retain_graph=True)):
            torch.testing.assert_close(a, r, **TOLERANCES[torch.float64])


def test_int32_tokens_match_int64(seed):
    tokens, emb, w, b, h0 = make_inputs(4, 6, 8, 9)
    hs64, _ = rnnfast.elman_rnn(tokens, emb, w, b, h0)
    hs32, _ = rnnfast.elman_rnn(tokens.int(), emb, w, b, h0)
    torch.testing.assert_close(hs32, hs64, rtol=0, atol=0)
    g = torch.randn_like(hs64)
    for a, r in zip(grads(hs32, (emb, w, b, h0), g), grads(hs64, (emb, w, b, h0), g)):
        torch.testing.assert_close(a, r, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_non_contiguous_inputs(seed, dtype):
    B, T, H, V = 5, 7, 6, 9
    tokens = torch.randint(0, V, (T, B)).t()                      # transposed
    emb = torch.randn(V, 2 * H, dtype=dtype)[:, ::2]               # strided columns
    w = (torch.randn(H, H, dtype=dtype) / H ** 0.5).t()            # transposed
    b = torch.randn(3 * H, dtype=dtype)[::3]                       # strided
    h0 = torch.randn(1, H, dtype=dtype).relu().expand(B, H)        # stride 0
    assert not any(t.is_contiguous() for t in (tokens, emb, w, b, h0))
    leaves = [t.requires_grad_() for t in (emb, w, b)]
    h0.requires_grad_()
    hs, _ = rnnfast.elman_rnn(tokens, *leaves, h0)
    ref, _ = reference.elman_rnn(tokens.contiguous(), *[t.contiguous() for t in leaves],
                                 h0.contiguous())
    torch.testing.assert_close(hs, ref, **TOLERANCES[dtype])
    g = torch.randn(B, T, H, dtype=dtype).transpose(0, 1).contiguous().transpose(0, 1)
    got = grads(hs, (*leaves, h0), g)
    want = grads(ref, (*leaves, h0), g)
    for a, r in zip(got, want):
        assert_matches(a, r, dtype)


def test_backward_op_directly(seed):
    tokens, emb, w, b, h0 = make_inputs(3, 5, 4, 6, requires_grad=False)
    hs = torch.ops.rnnfast.elman_rnn(tokens, emb, w, b, h0)
    grad_hs = torch.randn_like(hs)
    d_emb, d_w, d_b, d_h0 = torch.ops.rnnfast.elman_rnn_backward(grad_hs, tokens, emb, w, hs, h0)
    leaves = [t.clone().requires_grad_() for t in (emb, w, b, h0)]
    ref, _ = reference.elman_rnn(tokens, *leaves)
    want = torch.autograd.grad(ref, leaves, grad_hs)
    for a, r in zip((d_emb, d_w, d_b, d_h0), want):
        torch.testing.assert_close(a, r, **TOLERANCES[torch.float64])
    *_, d_h0_none = torch.ops.rnnfast.elman_rnn_backward(grad_hs, tokens, emb, w, hs, None)
    assert d_h0_none.shape == (3, 4) and not d_h0_none.any()


def test_no_grad_and_inference_mode(seed):
    tokens, emb, w, b, h0 = make_inputs(3, 5, 4, 6)
    with torch.no_grad():
        hs, _ = rnnfast.elman_rnn(tokens, emb, w, b, h0)
    assert hs.grad_fn is None
    with torch.inference_mode():
        hs2, _ = rnnfast.elman_rnn(tokens, emb, w, b, h0)
    torch.testing.assert_close(hs, hs2, rtol=0, atol=0)


def test_second_backward_raises_the_usual_error(seed):
    tokens, emb, w, b, h0 = make_inputs(2, 3, 4, 5)
    hs, _ = rnnfast.elman_rnn(tokens, emb, w, b, h0)
    loss = hs.sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()


def test_double_backward_is_a_clear_error_but_create_graph_works(seed):
    tokens, emb, w, b, h0 = make_inputs(2, 3, 4, 5)
    hs, _ = rnnfast.elman_rnn(tokens, emb, w, b, h0)
    (g_w,) = torch.autograd.grad(hs.square().sum(), [w], create_graph=True)
    ref, _ = reference.elman_rnn(tokens, emb, w, b, h0)
    (ref_g_w,) = torch.autograd.grad(ref.square().sum(), [w])
    torch.testing.assert_close(g_w, ref_g_w, **TOLERANCES[torch.float64])
    with pytest.raises(RuntimeError, match="double backward"):
        g_w.sum().backward()


def _opcheck_args(with_h0, requires_grad):
    tokens, emb, w, b, h0 = make_inputs(3, 4, 5, 6, with_h0=with_h0, requires_grad=requires_grad)
    return tokens, emb, w, b, h0


@pytest.mark.parametrize("with_h0", [True, False])
@pytest.mark.parametrize("requires_grad", [True, False])
def test_opcheck_forward(seed, with_h0, requires_grad):
    args = _opcheck_args(with_h0, requires_grad)
    torch.library.opcheck(torch.ops.rnnfast.elman_rnn.default, args)


@pytest.mark.parametrize("with_h0", [True, False])
def test_opcheck_backward(seed, with_h0):
    tokens, emb, w, b, h0 = _opcheck_args(with_h0, False)
    hs = torch.ops.rnnfast.elman_rnn(tokens, emb, w, b, h0)
    args = (torch.randn_like(hs), tokens, emb, w, hs, h0)
    torch.library.opcheck(torch.ops.rnnfast.elman_rnn_backward.default, args)


def test_compile_fullgraph_matches_eager(seed):
    tokens, emb, w, b, h0 = make_inputs(4, 6, 8, 10)

    def step(emb, w, b, h0):
        hs, h_last = rnnfast.elman_rnn(tokens, emb, w, b, h0)
        return (hs.square().mean() + h_last.sum()).sum()

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    leaves = (emb, w, b, h0)
    got = torch.autograd.grad(compiled(*leaves), leaves)
    want = torch.autograd.grad(step(*leaves), leaves)
    for a, r in zip(got, want):
        torch.testing.assert_close(a, r, **TOLERANCES[torch.float64])


def test_results_are_deterministic(seed):
    tokens, emb, w, b, h0 = make_inputs(64, 16, 64, 30, dtype=torch.float32)
    runs = []
    for _ in range(2):
        hs, _ = rnnfast.elman_rnn(tokens, emb, w, b, h0)
        runs.append((hs, *grads(hs, (emb, w, b, h0), torch.ones_like(hs))))
    for a, r in itertools.zip_longest(*runs):
        assert torch.equal(a, r)
