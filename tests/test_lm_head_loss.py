"""rnnfast.lm_head_loss (the LM head and its cross-entropy in one op) against F.linear +
F.cross_entropy: values, gradients, gradcheck, opcheck, torch.compile, NaN/Inf, bad input."""
import pytest
import torch
import torch.nn.functional as F

import rnnfast

from compare import assert_agree
from helpers import TOLERANCES, assert_matches

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

N, H, V = 6, 4, 5


def good():
    hidden, weight, bias, targets = make(N, H, V, dtype=torch.float32, requires_grad=False)
    return dict(hidden=hidden, weight=weight, bias=bias, targets=targets)


def replace(**changes):
    args = good()
    args.update(changes)
    return args


CASES = [
    # (description, arguments, exception, message fragment)
    ("target < 0", replace(targets=torch.tensor([0, 1, -1, 2, 0, 0])), IndexError,
     r"targets must lie in \[0, vocab_size\) = \[0, 5\), found -1 at position 2"),
    ("target -100 (torch's ignore_index)", replace(targets=torch.full((N,), -100)), IndexError,
     "ignore_index is not supported"),
    ("target == V", replace(targets=torch.tensor([0, 0, 0, 0, 0, V])), IndexError,
     "found 5 at position 5"),
    ("target int32 max", replace(targets=torch.full((N,), 2**31 - 1, dtype=torch.int32)),
     IndexError, "targets must lie in"),
    ("target int64 min", replace(targets=torch.full((N,), -2**63)), IndexError,
     "targets must lie in"),
    ("float targets", replace(targets=torch.zeros(N)), TypeError,
     "targets must be an integer tensor of dtype torch.int64 or torch.int32, got torch.float32"),
    ("2-d targets", replace(targets=torch.zeros(N, 1, dtype=torch.long)), ValueError,
     r"targets must have shape \(rows,\) = \(6,\) to match hidden, got \(6, 1\)"),
    ("short targets", replace(targets=torch.zeros(N - 1, dtype=torch.long)), ValueError,
     "targets must have shape"),
    ("integer hidden", replace(hidden=torch.zeros(N, H, dtype=torch.long)), TypeError,
     "hidden must be torch.float32 or torch.float64, got torch.int64"),
    ("bfloat16 hidden", replace(hidden=torch.zeros(N, H, dtype=torch.bfloat16)), TypeError,
     "hidden must be torch.float32 or torch.float64.*use F.linear and F.cross_entropy"),
    ("1-d hidden", replace(hidden=torch.zeros(H)), ValueError,
     r"hidden must have shape \(rows, hidden_size\) with both >= 1, got \(4,\)"),
    ("empty hidden", replace(hidden=torch.zeros(0, H), targets=torch.zeros(0, dtype=torch.long)),
     ValueError, "hidden must have shape"),
    ("weight H mismatch", replace(weight=torch.zeros(V, H + 1)), ValueError,
     r"weight must have shape \(vocab_size, hidden_size\) with vocab_size >= 1 and "
     r"hidden_size = 4 to match hidden, got \(5, 5\)"),
    ("weight 1-d", replace(weight=torch.zeros(H)), ValueError, "weight must have shape"),
    ("empty vocabulary", replace(weight=torch.zeros(0, H), bias=torch.zeros(0)), ValueError,
     "weight must have shape"),
    ("weight dtype", replace(weight=torch.zeros(V, H, dtype=torch.float64)), TypeError,
     r"weight must have the same dtype as hidden \(torch.float32\), got torch.float64"),
    ("bias V mismatch", replace(bias=torch.zeros(V + 1)), ValueError,
     r"bias must have shape \(vocab_size,\) = \(5,\) to match weight, got \(6,\)"),
    ("bias 2-d", replace(bias=torch.zeros(1, V)), ValueError, "bias must have shape"),
    ("bias dtype", replace(bias=torch.zeros(V, dtype=torch.float64)), TypeError,
     "bias must have the same dtype as hidden"),
]


@pytest.mark.parametrize("desc,args,exc,match", CASES, ids=[c[0] for c in CASES])
def test_eager_errors(desc, args, exc, match):
    with pytest.raises(exc, match=match):
        rnnfast.lm_head_loss(**args)


SHAPE_CASES = [c for c in CASES if c[2] is not IndexError]


@pytest.mark.parametrize("desc,args,exc,match", SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
def test_fake_kernel_errors(desc, args, exc, match):
    """The fake kernel (torch.compile, export) refuses the same inputs with the same message."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode() as mode:
        fake = {k: mode.from_tensor(v) for k, v in args.items()}
        with pytest.raises(exc, match=match):
            torch.ops.rnnfast.lm_head_loss(fake["hidden"], fake["weight"], fake["bias"],
                                           fake["targets"])


@pytest.mark.parametrize("name", ["weight", "bias", "targets"])
def test_different_devices(name):
    """meta stands in for a second device on a CPU-only machine."""
    args = good()
    args[name] = args[name].to("meta")
    with pytest.raises(ValueError, match=f"{name} must be on the same device as hidden"):
        rnnfast.lm_head_loss(**args)


def test_not_on_the_cpu_is_a_clear_error():
    """No kernel but the CPU's: elsewhere (here meta; CUDA has a kernel that only refuses) the
    error says so and names the alternative."""
    args = {k: v.to("meta") for k, v in good().items()}
    with pytest.raises(ValueError, match="hidden must be a CPU tensor, got one on meta.*"
                                         "F.cross_entropy"):
        rnnfast.lm_head_loss(**args)
    for op in ("rnnfast::lm_head_loss", "rnnfast::lm_head_loss_backward"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(op, "CUDA")


@pytest.mark.parametrize("name", ["hidden", "weight", "bias", "targets"])
def test_none_is_named(name):
    with pytest.raises(TypeError, match=f"{name} must be a torch.Tensor, got NoneType"):
        rnnfast.lm_head_loss(**replace(**{name: None}))


def test_backward_op_errors():
    args = good()
    hidden, weight, targets = args["hidden"], args["weight"], args["targets"]
    _, logits = torch.ops.rnnfast.lm_head_loss(*args.values())
    g = torch.tensor(1.0)
    bwd = torch.ops.rnnfast.lm_head_loss_backward
    with pytest.raises(ValueError, match=r"grad_loss must be a 0-dim tensor .*got shape \(1,\)"):
        bwd(g.reshape(1), hidden, weight, logits, targets)
    with pytest.raises(TypeError, match="grad_loss must have the same dtype as hidden"):
        bwd(g.double(), hidden, weight, logits, targets)
    with pytest.raises(ValueError, match=r"logits must have shape \(rows, vocab_size\) = \(6, 5\)"):
        bwd(g, hidden, weight, logits[:-1], targets)
    with pytest.raises(TypeError, match="logits must have the same dtype as hidden"):
        bwd(g, hidden, weight, logits.double(), targets)
    bad = targets.clone()
    bad[4] = V
    with pytest.raises(IndexError, match="found 5 at position 4"):
        bwd(g, hidden, weight, logits, bad)
