"""The op on every backend against the reference loop and the CPU op, both in float64: the CPU
kernels, the CUDA kernels on a GPU (their size-based choice and each path forced), and the CUDA
kernels' sources on the CPU emulator (tests/cuda_emulator), one body per behaviour.

The backends and the shapes each takes are tests/support/backends.py; the tolerances, and why,
tests/support/helpers.py. A CUDA case skips without a GPU; the emulated cases are marked
`emulated`. What only one backend does (gradcheck, streams and graphs, launch plans, the
token-error record) is in test_op.py, test_cuda.py and test_cuda_emulated.py.
"""
import pytest
import torch

from support.backends import BACKENDS, BY_NAME, SHAPES, token_dtype
from support.helpers import (TIE_MARGIN, assert_matches, cpu_truth, make_inputs,
                             min_abs_preactivation, reference_truth)

NAMES = ["d_emb", "d_weight", "d_bias", "d_h0"]
SHORT = {torch.float64: "f64", torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}


def shape_id(shape):
    return "x".join(map(str, shape))


def params(shapes, dtypes=None, h0s=(True, False), strided=False):
    """(backend name, shape, dtype, with_h0) for every backend that takes them."""
    out = []
    for backend in BACKENDS:
        if strided and not backend.strided:
            continue
        for shape in shapes:
            for dtype in backend.dtypes:
                speed = backend.speed(shape, dtype)
                if speed is None or (dtypes is not None and dtype not in dtypes):
                    continue
                marks = backend.marks + ((pytest.mark.slow,) if speed == "slow" else ())
                for with_h0 in h0s:
                    out.append(pytest.param(
                        backend.name, shape, dtype, with_h0, marks=marks,
                        id=f"{backend.name}-{shape_id(shape)}-{SHORT[dtype]}"
                           f"{'' if with_h0 else '-no_h0'}"))
    return out


@pytest.fixture
def backend(request):
    chosen = BY_NAME[request.param]
    reason = chosen.unavailable()
    if reason:
        pytest.skip(reason)
    return chosen.bind(request)


def draw(backend, shape, dtype, with_h0=True, tokens=torch.int64):
    """make_inputs drawn in float64, rounded to dtype and put on the backend's device; float32
    redraws inputs with a pre-activation within TIE_MARGIN of 0 (see helpers.py)."""
    inputs = make_inputs(*shape, dtype=torch.float64, with_h0=with_h0, requires_grad=False,
                         token_dtype=tokens, avoid_ties=dtype == torch.float32)
    return (inputs[0].to(backend.device),
            *[None if t is None else t.to(backend.device, dtype) for t in inputs[1:]])


def tie_free(tokens, emb, w, b, h0) -> bool:
    cpu = [None if t is None else t.cpu() for t in (tokens, emb, w, b, h0)]
    return min_abs_preactivation(*cpu) >= TIE_MARGIN


def assert_agrees_with_truth(result, inputs, grad_hs, dtype):
    """hs (and h_last) against both float64 truths; the gradients against them in float64 (and
    in float32 on tie-free inputs), and below float64 against the float64 backward on the
    backend's own hs (helpers.py says why)."""
    tokens, emb, w, b, h0 = inputs
    direct = dtype == torch.float64 or (dtype == torch.float32 and tie_free(*inputs))
    for truth in (cpu_truth, reference_truth):
        want_hs, want_grads = truth(tokens, emb, w, b, h0, grad_hs)
        assert_matches(result.hs, want_hs, dtype, f"hs vs {truth.__name__}", scale_atol=False)
        if result.h_last is not None:
            assert_matches(result.h_last, want_hs[:, -1], dtype, f"h_last vs {truth.__name__}",
                           scale_atol=False)
        if direct:
            for name, got, want in zip(NAMES, result.grads, want_grads):
                assert_matches(got, want, dtype, f"{name} vs {truth.__name__}")
    if dtype != torch.float64:
        _, want_grads = cpu_truth(tokens, emb, w, b, h0, grad_hs, hs=result.hs)
        for name, got, want in zip(NAMES, result.grads, want_grads):
            assert_matches(got, want, dtype, f"{name} vs the float64 backward on the same hs")


@pytest.mark.parametrize("backend,shape,dtype,with_h0", params(SHAPES), indirect=["backend"])
def test_forward_and_backward_match(seed, backend, shape, dtype, with_h0):
    B, T, H, V = shape
    inputs = draw(backend, shape, dtype, with_h0, token_dtype(shape))
    grad_hs = torch.randn(B, T, H, dtype=torch.float64).to(backend.device, dtype)
    result = backend.run(*inputs, grad_hs)
    hs = result.hs
    assert hs.shape == (B, T, H) and hs.dtype == dtype and hs.device == inputs[1].device
    if result.h_last is not None:
        assert result.h_last.data_ptr() == hs[:, -1].data_ptr()   # a view, as documented
    assert [g.dtype for g in result.grads] == [dtype] * 4
    assert_agrees_with_truth(result, inputs, grad_hs, dtype)
    if hs.numel() >= 256:  # big enough that both sides of the ReLU are exercised
        assert (hs > 0).any() and (hs == 0).any()
    if (hs > 0).any():  # a live state passes gradient to the bias: guards against all zeros
        assert result.grads[2].abs().sum() > 0


@pytest.mark.parametrize("backend,shape,dtype,with_h0",
                         params([(3, 5, 4, 6), (5, 6, 16, 7)], [torch.float64], h0s=(True,)),
                         indirect=["backend"])
def test_backward_op_directly_and_zero_grad_h0(seed, backend, shape, dtype, with_h0):
    B, T, H, V = shape
    tokens, emb, w, b, h0 = draw(backend, shape, dtype)
    hs = backend.forward_op(tokens, emb, w, b, h0)
    grad_hs = torch.randn_like(hs)
    got = backend.backward_op(grad_hs, tokens, emb, w, hs, h0)
    for truth in (cpu_truth, reference_truth):
        _, want = truth(tokens, emb, w, b, h0, grad_hs)
        for name, g, r in zip(NAMES, got, want):
            assert_matches(g, r, dtype, f"{name} vs {truth.__name__}", scale_atol=False)
    *_, d_h0 = backend.backward_op(grad_hs, tokens, emb, w, hs, None)
    assert d_h0.shape == (B, H) and not d_h0.any()


@pytest.mark.parametrize("backend,shape,dtype,with_h0",
                         params([(5, 7, 6, 9), (5, 7, 24, 9)],
                                [torch.float64, torch.float32, torch.bfloat16], h0s=(True,),
                                strided=True),
                         indirect=["backend"])
def test_non_contiguous_inputs(seed, backend, shape, dtype, with_h0):
    B, T, H, V = shape

    def on(t):
        return t.to(backend.device, dtype)

    tokens = torch.randint(0, V, (T, B)).to(backend.device).t()             # transposed
    emb = on(torch.randn(V, 2 * H, dtype=torch.float64))[:, ::2]             # strided columns
    w = on(torch.randn(H, H, dtype=torch.float64) / H ** 0.5).t()            # transposed
    b = on(torch.randn(3 * H, dtype=torch.float64))[::3]                     # strided
    h0 = on(torch.randn(1, H, dtype=torch.float64).relu()).expand(B, H)      # stride 0
    grad_hs = on(torch.randn(T, B, H, dtype=torch.float64)).transpose(0, 1)
    inputs = (tokens, emb, w, b, h0)
    assert not any(t.is_contiguous() for t in inputs + (grad_hs,))
    assert_agrees_with_truth(backend.run(*inputs, grad_hs), inputs, grad_hs, dtype)
