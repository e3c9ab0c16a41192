"""The CUDA op where only the CUDA kernels are checked (every test needs a GPU): out-of-range
token ids, the dtypes and devices it takes, its path choice, streams, CUDA graphs, torch.compile
and opcheck. Values and gradients over the shape table, non-contiguous inputs and the raw
backward op, on both paths (RNNFAST_CUDA_KERNEL=persistent or stepwise) and the size-based choice:
test_backends.py. Tolerances: tests/support/helpers.py.
"""
import copy
import re

import pytest
import torch

import rnnfast

from support.helpers import assert_matches, cpu_truth, make_inputs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA GPU on this machine")


@pytest.fixture
def kernel(request, monkeypatch):
    monkeypatch.setenv("RNNFAST_CUDA_KERNEL", request.param)
    return request.param


@pytest.fixture(autouse=True)
def no_pending_token_error():
    """A bad token id is reported by the rnnfast call after the kernel that found it (see
    csrc/cuda/token_error.h); make sure no test inherits one, or leaves one behind."""
    _drain_token_error()
    yield
    _drain_token_error()


def _good_call():
    tokens, emb, w, b, h0 = cuda_inputs(1, 1, 2, 2, torch.float32, with_h0=False)
    return torch.ops.rnnfast.elman_rnn(tokens, emb, w, b, h0)


def _drain_token_error():
    torch.cuda.synchronize()
    try:
        _good_call()
    except IndexError:
        pass
    torch.cuda.synchronize()


def cuda_inputs(B, T, H, V, dtype, with_h0=True, token_dtype=torch.int64, requires_grad=False):
    tokens, emb, w, b, h0 = make_inputs(B, T, H, V, dtype=torch.float64, with_h0=with_h0,
                                        requires_grad=False, token_dtype=token_dtype)

    def cast(t):
        return None if t is None else t.to("cuda", dtype).requires_grad_(requires_grad)

    return tokens.cuda(), cast(emb), cast(w), cast(b), cast(h0)


# ---- out-of-range token ids ------------------------------------------------------------------

def _shown(value):
    if value >= 2**31 - 1:
        return f"{2**31 - 1} or more"
    if value <= -2**31:
        return f"{-2**31} or less"
    return str(value)


BAD_TOKENS = [(-1, torch.int64), ("V", torch.int64), (2**40, torch.int64), (-2**63, torch.int64),
              (2**31 - 1, torch.int32), ("V", torch.int32)]


@pytest.mark.parametrize("kernel", ["persistent", "stepwise"], indirect=True)
@pytest.mark.parametrize("bad,token_dtype", BAD_TOKENS, ids=str)
@pytest.mark.parametrize("where", [(0, 0), (2, 3), (4, 5)], ids=str)
def test_bad_token_is_reported_and_never_read(seed, kernel, bad, token_dtype, where):
    B, T, H, V = 5, 6, 16, 7
    value = V if bad == "V" else bad
    tokens, emb, w, b, h0 = cuda_inputs(B, T, H, V, torch.float32, token_dtype=token_dtype)
    r, t = where
    tokens[r, t] = value
    message = (rf"tokens must lie in \[0, vocab_size\) = \[0, {V}\), found {_shown(value)} "
               rf"at position \({r}, {t}\)")
    try:
        hs = torch.ops.rnnfast.elman_rnn(tokens, emb, w, b, h0)
        torch.cuda.synchronize()
    except IndexError as e:  # the kernel had already run when the op returned
        assert re.search(message, str(e)), str(e)
    else:
        # The bad row is NaN from the bad step on; nothing else is touched.
        assert torch.isnan(hs[r, t:]).all()
        good = tokens.clone()
        good[r, t] = 0
        want, _ = cpu_truth(good, emb, w, b, h0, torch.zeros_like(hs))
        assert_matches(hs[r, :t], want[r, :t], torch.float32, "bad row before the bad step")
        others = [i for i in range(B) if i != r]
        assert_matches(hs[others], want[others], torch.float32, "other rows")
        with pytest.raises(IndexError, match=message):
            _good_call()
    _good_call()  # reported once, then cleared


@pytest.mark.parametrize("kernel", ["persistent", "stepwise"], indirect=True)
def test_bad_token_in_backward_op(seed, kernel):
    tokens, emb, w, b, h0 = cuda_inputs(3, 4, 8, 6, torch.float32)
    hs = torch.ops.rnnfast.elman_rnn(tokens, emb, w, b, h0)
    bad = tokens.clone()
    bad[1, 1] = 6
    try:
        grads = torch.ops.rnnfast.elman_rnn_backward(torch.ones_like(hs), bad, emb, w, hs, h0)
        torch.cuda.synchronize()
    except IndexError as e:
        assert "found 6 at position (1, 1)" in str(e)
    else:
        assert torch.isnan(grads[1]).any()  # dW saw a NaN input u_t for the bad position
        with pytest.raises(IndexError, match=r"found 6 at position \(1, 1\)"):
            _good_call()


# ---- dtypes, devices, path choice ------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_16_bit_dtypes_are_accepted_on_cuda_only(dtype):
    tokens, emb, w, b, h0 = cuda_inputs(2, 3, 4, 5, dtype)
    assert torch.ops.rnnfast.elman_rnn(tokens, emb, w, b, h0).dtype == dtype
    with pytest.raises(TypeError, match="emb_weight must be torch.float32 or torch.float64, got"):
        rnnfast.elman_rnn(tokens.cpu(), emb.cpu(), w.cpu(), b.cpu(), h0.cpu())


def test_cuda_dtype_and_device_errors():
    tokens, emb, w, b, h0 = cuda_inputs(2, 3, 4, 5, torch.float32)
    with pytest.raises(TypeError, match="float32, torch.float64, torch.float16 or torch.bfloat16 "
                                        "on CUDA, got torch.int64"):
        rnnfast.elman_rnn(tokens, emb.long(), w.long(), b.long(), h0.long())
    with pytest.raises(TypeError, match="weight must have the same dtype as emb_weight"):
        rnnfast.elman_rnn(tokens, emb, w.half(), b, h0)
    with pytest.raises(ValueError, match="tokens must be on the same device as emb_weight"):
        rnnfast.elman_rnn(tokens.cpu(), emb, w, b, h0)
    with pytest.raises(ValueError, match="h0 must be on the same device as emb_weight"):
        rnnfast.elman_rnn(tokens, emb, w, b, h0.cpu())


def test_forcing_the_persistent_kernel_beyond_its_size_is_an_error(monkeypatch):
    monkeypatch.setenv("RNNFAST_CUDA_KERNEL", "persistent")
    tokens, emb, w, b, h0 = cuda_inputs(2, 3, 512, 5, torch.float32)
    with pytest.raises(ValueError, match="does not fit in one CTA's shared memory"):
        rnnfast.elman_rnn(tokens, emb, w, b, h0)
    monkeypatch.setenv("RNNFAST_CUDA_KERNEL", "fastest")
    with pytest.raises(ValueError, match="RNNFAST_CUDA_KERNEL must be auto, persistent or"):
        rnnfast.elman_rnn(tokens, emb, w, b, h0)


def test_deterministic_mode_is_refused_for_the_backward():
    tokens, emb, w, b, h0 = cuda_inputs(2, 3, 4, 5, torch.float32, requires_grad=True)
    hs, _ = rnnfast.elman_rnn(tokens, emb, w, b, h0)  # the forward has no atomics
    torch.use_deterministic_algorithms(True)
    try:
        with pytest.raises(RuntimeError, match="does not have a deterministic implementation"):
            hs.sum().backward()
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("kernel", ["persistent", "stepwise"], indirect=True)
def test_runs_on_the_current_stream(seed, kernel):
    tokens, emb, w, b, h0 = cuda_inputs(16, 8, 32, 10, torch.float64)
    want = torch.ops.rnnfast.elman_rnn(tokens, emb, w, b, h0)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        # A slow kernel first on this stream: a kernel launched on another stream would race it.
        torch.cuda._sleep(10_000_000)
        emb2 = emb * 1
        got = torch.ops.rnnfast.elman_rnn(tokens, emb2, w, b, h0)
        grads = torch.ops.rnnfast.elman_rnn_backward(torch.ones_like(got), tokens, emb2, w, got,
                                                     h0)
    stream.synchronize()
    assert_matches(got, want, torch.float64, "hs on a side stream")
    _, want_grads = cpu_truth(tokens, emb, w, b, h0, torch.ones_like(want))
    for g, r in zip(grads, want_grads):
        assert_matches(g, r, torch.float64, "gradient on a side stream")


def test_stateful_model_runs_on_cuda(seed):
    """LMModel4 carries its state across batches; on CUDA as on the CPU."""
    cpu_model = rnnfast.LMModel4(30, 64)
    cuda_model = copy.deepcopy(cpu_model).cuda()
    for _ in range(2):
        x = torch.randint(0, 30, (8, 16))
        torch.testing.assert_close(cuda_model(x.cuda()).cpu(), cpu_model(x), rtol=1e-4, atol=1e-4)


def test_lm_head_loss_refuses_cuda_and_forward_loss_falls_back(seed):
    """lm_head_loss has no CUDA kernel: called there it says so, naming hidden; LMModel4's
    forward_loss on CUDA is forward + lm_loss, as on the CPU with the fused head."""
    hidden, weight, bias = (torch.randn(6, 4, device="cuda"), torch.randn(5, 4, device="cuda"),
                            torch.randn(5, device="cuda"))
    targets = torch.randint(0, 5, (6,), device="cuda")
    with pytest.raises(ValueError, match="hidden must be a CPU tensor, got one on cuda"):
        rnnfast.lm_head_loss(hidden, weight, bias, targets)
    with pytest.raises(ValueError, match="weight must be on the same device as hidden"):
        rnnfast.lm_head_loss(hidden.cpu(), weight, bias.cpu(), targets.cpu())
    cpu_model = rnnfast.LMModel4(30, 64)
    cuda_model = copy.deepcopy(cpu_model).cuda()
    x, y = torch.randint(0, 30, (8, 16)), torch.randint(0, 30, (8, 16))
    logits, loss = cuda_model.forward_loss(x.cuda(), y.cuda())
    want_logits, want_loss = cpu_model.forward_loss(x, y)
    assert logits.requires_grad                          # torch's own head on CUDA
    torch.testing.assert_close(loss.cpu(), want_loss, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits.detach().cpu(), want_logits, rtol=1e-4, atol=1e-4)


# ---- CUDA graphs and torch.compile -------------------------------------------------------

@pytest.mark.parametrize("kernel", ["persistent", "stepwise"], indirect=True)
def test_cuda_graph_capture_of_both_ops(seed, kernel):
    B, T, H, V = 8, 5, 32, 11
    tokens, emb, w, b, h0 = cuda_inputs(B, T, H, V, torch.float32)
    grad_hs = torch.randn(B, T, H, device="cuda")

    def both():
        hs = torch.ops.rnnfast.elman_rnn(tokens, emb, w, b, h0)
        return (hs, *torch.ops.rnnfast.elman_rnn_backward(grad_hs, tokens, emb, w, hs, h0))

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            both()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = both()

    for trial in range(3):
        new = cuda_inputs(B, T, H, V, torch.float32)
        for static, value in zip((tokens, emb, w, b, h0), new):
            static.copy_(value)
        grad_hs.copy_(torch.randn_like(grad_hs))
        graph.replay()
        torch.cuda.synchronize()
        want_hs, want_grads = cpu_truth(tokens, emb, w, b, h0, grad_hs)
        for name, got, want in zip(["hs", "d_emb", "d_w", "d_b", "d_h0"], static_out,
                                   (want_hs, *want_grads)):
            assert_matches(got, want, torch.float32, f"replay {trial}: {name}")

    # A bad id in a replayed graph is reported by the next eager call.
    tokens[3, 2] = V
    graph.replay()
    torch.cuda.synchronize()
    assert torch.isnan(static_out[0][3, 2:]).all()
    with pytest.raises(IndexError, match=r"found 11 at position \(3, 2\)"):
        _good_call()


def test_cuda_graph_of_autograd(seed):
    """make_graphed_callables captures the autograd forward and backward graphs."""
    tokens, emb, w, b, h0 = cuda_inputs(8, 6, 64, 12, torch.float32, requires_grad=True)

    def step(emb, w, b, h0):
        hs, _ = rnnfast.elman_rnn(tokens, emb, w, b, h0)
        return hs

    graphed = torch.cuda.make_graphed_callables(step, (emb, w, b, h0))
    grad_hs = torch.randn(8, 6, 64, device="cuda")
    got = torch.autograd.grad(graphed(emb, w, b, h0), (emb, w, b, h0), grad_hs)
    want = torch.autograd.grad(step(emb, w, b, h0), (emb, w, b, h0), grad_hs)
    for g, r in zip(got, want):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype,backend", [(torch.float32, "inductor"),
                                           (torch.bfloat16, "aot_eager")], ids=str)
def test_compile_fullgraph_matches_eager(seed, dtype, backend):
    torch._dynamo.reset()
    tokens, emb, w, b, h0 = cuda_inputs(8, 12, 64, 20, dtype, requires_grad=True)

    def step(emb, w, b, h0):
        hs, h_last = rnnfast.elman_rnn(tokens, emb, w, b, h0)
        return hs.float().square().mean() + h_last.float().sum()

    compiled = torch.compile(step, fullgraph=True, backend=backend)
    leaves = (emb, w, b, h0)
    loss = compiled(*leaves)
    got = torch.autograd.grad(loss, leaves)
    want_loss = step(*leaves)
    want = torch.autograd.grad(want_loss, leaves)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(loss, want_loss, **tol)
    for g, r in zip(got, want):
        assert g.dtype == dtype
        torch.testing.assert_close(g.float(), r.float(), **tol)


@pytest.mark.parametrize("dtype,with_h0", [(torch.float32, True), (torch.bfloat16, False)],
                         ids=str)
def test_opcheck(seed, dtype, with_h0):
    tokens, emb, w, b, h0 = cuda_inputs(3, 4, 8, 6, dtype, with_h0, requires_grad=True)
    torch.library.opcheck(torch.ops.rnnfast.elman_rnn.default, (tokens, emb, w, b, h0))
    hs = torch.ops.rnnfast.elman_rnn(tokens, emb.detach(), w.detach(), b.detach(),
                                     None if h0 is None else h0.detach())
    torch.library.opcheck(torch.ops.rnnfast.elman_rnn_backward.default,
                          (torch.randn_like(hs), tokens, emb.detach(), w.detach(), hs,
                           None if h0 is None else h0.detach()))
