"""rnnfast.lm_head_loss (the LM head and its cross-entropy in one op) against F.linear +
F.cross_entropy: values, gradients, gradcheck, opcheck, torch.compile, NaN/Inf, bad input."""
import pytest
import torch
import torch.nn.functional as F

import rnnfast

from support.compare import assert_agree
from support.helpers import TOLERANCES, assert_matches

NAN, INF = float("nan"), float("inf")

# (N, H, V): the book's LMModel4 size (1024 rows, enough for two tasks on two threads), every
# dimension at 1, odd sizes, a wide vocabulary, a long thin one.
SHAPES = [(1024, 64, 30), (1, 1, 1), (1, 5, 7), (6, 1, 4), (9, 3, 1), (17, 13, 11),
          (40, 8, 100), (3000, 4, 3)]


def make(N, H, V, dtype=torch.float64, requires_grad=True, target_dtype=torch.int64):
    hidden = torch.randn(N, H, dtype=dtype)
    weight = torch.randn(V, H, dtype=dtype) / H ** 0.5
    bias = torch.randn(V, dtype=dtype) * 0.5
    targets = torch.randint(0, V, (N,), dtype=target_dtype)
    for t in (hidden, weight, bias):
        t.requires_grad_(requires_grad)
    return hidden, weight, bias, targets


def torch_head_loss(hidden, weight, bias, targets):
    logits = F.linear(hidden, weight, bias)
    return F.cross_entropy(logits, targets.long()), logits


def both(hidden, weight, bias, targets, grad_loss=None):
    """(loss, logits, grads) of the op and of torch for the same inputs."""
    out = []
    for fn in (rnnfast.lm_head_loss, torch_head_loss):
        leaves = [t.detach().clone().requires_grad_() for t in (hidden, weight, bias)]
        loss, logits = fn(*leaves, targets)
        grads = torch.autograd.grad(loss, leaves, grad_loss)
        out.append((loss.detach(), logits.detach(), grads))
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_torch(seed, dtype, shape):
    (loss, logits, grads), (ref_loss, ref_logits, ref_grads) = both(*make(*shape, dtype=dtype))
    tol = TOLERANCES[dtype]
    assert loss.shape == () and loss.dtype == dtype
    torch.testing.assert_close(loss, ref_loss, **tol)
    torch.testing.assert_close(logits, ref_logits, **tol)
    for g, r in zip(grads, ref_grads):
        assert_matches(g, r, dtype)
    assert grads[2].abs().sum() > 0 or shape[2] == 1   # V = 1: the loss is 0 whatever the input


@pytest.mark.parametrize("shape", [(5, 3, 4), (1, 1, 1), (3, 1, 2), (2, 4, 1), (9, 2, 6)])
def test_gradcheck(seed, shape):
    hidden, weight, bias, targets = make(*shape)
    fn = lambda h, w, b: rnnfast.lm_head_loss(h, w, b, targets)[0]   # noqa: E731
    assert torch.autograd.gradcheck(fn, (hidden, weight, bias), eps=1e-6, atol=1e-6)


def test_int32_targets_match_int64(seed):
    hidden, weight, bias, targets = make(50, 6, 9)
    a = both(hidden, weight, bias, targets)[0]
    b = both(hidden, weight, bias, targets.int())[0]
    torch.testing.assert_close(a[:2], b[:2], rtol=0, atol=0)
    torch.testing.assert_close(a[2], b[2], rtol=0, atol=0)


def test_logits_layout_and_no_gradient(seed):
    """logits are the transpose of a contiguous (V, N) matrix, take no gradient, and can be
    viewed as (B, T, V)."""
    hidden, weight, bias, targets = make(12, 5, 7, dtype=torch.float32)
    loss, logits = rnnfast.lm_head_loss(hidden, weight, bias, targets)
    assert loss.requires_grad and not logits.requires_grad
    assert logits.shape == (12, 7) and logits.t().is_contiguous()
    torch.testing.assert_close(logits.view(3, 4, 7), F.linear(hidden, weight, bias).view(3, 4, 7))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_non_contiguous_inputs(seed, dtype):
    hidden = torch.randn(6, 3, 4, dtype=dtype)[:, 1]              # rows 12 apart
    weight = torch.randn(4, 5, dtype=dtype).t()                   # transposed
    bias = torch.randn(10, dtype=dtype)[::2]                      # strided
    targets = torch.randint(0, 5, (12,))[::2]
    assert not any(t.is_contiguous() for t in (hidden, weight, bias, targets))
    (loss, logits, grads), (ref_loss, ref_logits, ref_grads) = both(hidden, weight, bias, targets)
    torch.testing.assert_close(loss, ref_loss, **TOLERANCES[dtype])
    torch.testing.assert_close(logits, ref_logits, **TOLERANCES[dtype])
    for g, r in zip(grads, ref_grads):
        assert_matches(g, r, dtype)


def test_backward_op_takes_logits_in_any_layout(seed):
    hidden, weight, bias, targets = make(8, 3, 5, requires_grad=False)
    _, logits = torch.ops.rnnfast.lm_head_loss(hidden, weight, bias, targets)
    g = torch.tensor(0.7, dtype=torch.float64)
    a = torch.ops.rnnfast.lm_head_loss_backward(g, hidden, weight, logits, targets)
    b = torch.ops.rnnfast.lm_head_loss_backward(g, hidden, weight, logits.contiguous(), targets)
    leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
    want = torch.autograd.grad(torch_head_loss(*leaves, targets)[0], leaves, g)
    for x, y, w in zip(a, b, want):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
        torch.testing.assert_close(x, w, **TOLERANCES[torch.float64])


@pytest.mark.parametrize("shape", [(1024, 64, 30), (3001, 17, 30)])  # two tasks on 2 threads
def test_loss_does_not_depend_on_the_thread_count(seed, shape):
    """The rows' losses are summed in one fixed order after the parallel part."""
    hidden, weight, bias, targets = make(*shape, dtype=torch.float32, requires_grad=False)
    threads = torch.get_num_threads()
    try:
        losses = []
        for n in (1, 2):
            torch.set_num_threads(n)
            losses.append(torch.ops.rnnfast.lm_head_loss(hidden, weight, bias, targets)[0])
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(losses[0], losses[1])


def test_no_grad_and_inference_mode(seed):
    args = make(4, 3, 5)
    with torch.no_grad():
        loss, _ = rnnfast.lm_head_loss(*args)
    assert loss.grad_fn is None
    with torch.inference_mode():
        loss2, _ = rnnfast.lm_head_loss(*args)
    torch.testing.assert_close(loss, loss2, rtol=0, atol=0)


def test_second_backward_raises_the_usual_error(seed):
    loss, _ = rnnfast.lm_head_loss(*make(4, 3, 5))
    loss.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()


def test_double_backward_is_a_clear_error_but_create_graph_works(seed):
    hidden, weight, bias, targets = make(4, 3, 5)
    loss, _ = rnnfast.lm_head_loss(hidden, weight, bias, targets)
    (g_w,) = torch.autograd.grad(loss, [weight], create_graph=True)
    (ref_g_w,) = torch.autograd.grad(torch_head_loss(hidden, weight, bias, targets)[0], [weight])
    torch.testing.assert_close(g_w, ref_g_w, **TOLERANCES[torch.float64])
    with pytest.raises(RuntimeError, match="double backward"):
        g_w.sum().backward()


@pytest.mark.parametrize("requires_grad", [True, False])
@pytest.mark.parametrize("target_dtype", [torch.int64, torch.int32])
def test_opcheck_forward(seed, requires_grad, target_dtype):
    args = make(6, 4, 5, requires_grad=requires_grad, target_dtype=target_dtype)
    torch.library.opcheck(torch.ops.rnnfast.lm_head_loss.default, args)


def test_opcheck_backward(seed):
    # Inputs without requires_grad: with it, opcheck's aot_dispatch test differentiates the
    # backward op, which is deliberately not differentiable (see test_double_backward...).
    hidden, weight, bias, targets = make(6, 4, 5, requires_grad=False)
    _, logits = torch.ops.rnnfast.lm_head_loss(hidden, weight, bias, targets)
    args = (torch.tensor(1.3, dtype=torch.float64), hidden, weight, logits, targets)
    torch.library.opcheck(torch.ops.rnnfast.lm_head_loss_backward.default, args)


def test_compile_fullgraph_matches_eager(seed):
    hidden, weight, bias, targets = make(24, 8, 10)

    def step(hidden, weight, bias):
        loss, logits = rnnfast.lm_head_loss(hidden.relu() * 2, weight, bias, targets)
        return loss + logits.argmax(-1).sum() * 0

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    leaves = (hidden, weight, bias)
    got = torch.autograd.grad(compiled(*leaves), leaves)
    want = torch.autograd.grad(step(*leaves), leaves)
    for a, r in zip(got, want):
        torch.testing.assert_close(a, r, **TOLERANCES[torch.float64])


# --- NaN and Inf: the same as F.cross_entropy, placed the same -------------------------------

def assert_like_torch(hidden, weight, bias, targets, grad_loss=None):
    (loss, logits, grads), (ref_loss, ref_logits, ref_grads) = both(hidden, weight, bias,
                                                                    targets, grad_loss)
    tol = TOLERANCES[hidden.dtype]
    assert_agree(loss, ref_loss, "loss", **tol)
    assert_agree(logits, ref_logits, "logits", **tol)
    for name, g, r in zip(("d_hidden", "d_weight", "d_bias"), grads, ref_grads):
        assert_agree(g, r, name, **tol)
    return loss, grads


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_nan_in_a_row(seed, dtype):
    hidden, weight, bias, targets = make(7, 4, 6, dtype=dtype)
    hidden.data[3, 1] = NAN
    loss, (d_hidden, d_weight, d_bias) = assert_like_torch(hidden, weight, bias, targets)
    assert loss.isnan() and d_hidden[3].isnan().all() and d_hidden[[0, 1, 2, 4, 5, 6]].isfinite().all()
    assert d_bias.isnan().all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_minus_inf_logit(seed, dtype):
    """A class at -Inf: rows aiming at it have an infinite loss, the others ignore it; every
    gradient stays finite (its probability is 0)."""
    hidden, weight, bias, targets = make(8, 3, 5, dtype=dtype)
    bias.data[2] = -INF
    targets[:2] = 2
    targets[2:] = torch.tensor([0, 1, 3, 4, 0, 1])
    loss, grads = assert_like_torch(hidden, weight, bias, targets)
    assert loss == INF and all(g.isfinite().all() for g in grads)
    # Without a row aiming at it, the loss is finite too.
    loss, _ = assert_like_torch(hidden[2:], weight, bias, targets[2:])
    assert loss.isfinite()


@pytest.mark.parametrize("value", [INF, -INF])
def test_a_row_at_plus_inf_or_all_minus_inf_is_nan(seed, value):
    hidden, weight, bias, targets = make(5, 2, 4)
    weight.data.abs_()
    hidden.data[1] = value                    # logits of row 1: all +Inf, or all -Inf
    loss, (d_hidden, _, _) = assert_like_torch(hidden, weight, bias, targets)
    assert loss.isnan() and d_hidden[1].isnan().all()


@pytest.mark.parametrize("grad_loss", [INF, NAN, 0.0, -2.5])
def test_incoming_gradient(seed, grad_loss):
    hidden, weight, bias, targets = make(6, 3, 4)
    bias.data[0] = -1000.0                    # a probability that underflows to 0: 0 * Inf = NaN
    assert_like_torch(hidden, weight, bias, targets, torch.tensor(grad_loss, dtype=torch.float64))


# --- Bad input --------------------------------------------------------------------------------
#
# The bad calls of both head ops, and what each must raise, are rows of
# tests/support/bad_calls.py (the one table of bad calls): test_bad_input.py runs them eagerly,
# under FakeTensorMode and torch.compile; test_hostile.py in child processes.


def test_both_ops_have_a_cuda_kernel_that_refuses():
    """The CUDA kernels only refuse (bad_calls.py holds the message), so that a CUDA call names
    the argument and the alternative instead of the dispatcher's "Could not run"."""
    for op in ("rnnfast::lm_head_loss", "rnnfast::lm_head_loss_backward"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(op, "CUDA")
