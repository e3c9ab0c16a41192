"""The CPU op against the reference loop, where only the CPU is checked: gradcheck, losses on one
state, int32 tokens, autograd's contract, opcheck, torch.compile, determinism. Values and
gradients over the shape table, non-contiguous inputs and the raw backward op: test_backends.py,
on every backend."""
import itertools

import pytest
import torch

import rnnfast
from rnnfast import reference

from support.helpers import TOLERANCES, make_inputs


def grads(outputs, inputs, grad_out, retain_graph=False):
    return torch.autograd.grad(outputs, [i for i in inputs if i is not None], grad_out,
                               retain_graph=retain_graph)


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
