"""Random inputs for the op, its float64 truths, and the tolerances the tests hold every backend
(the CPU op, the CUDA kernels, the emulated ones) to."""
import math
from typing import Optional

import torch
import torch.nn.functional as F

# Against a float64 truth (the reference loop, or the CPU op in float64, on the very same values:
# 16-bit inputs upcast exactly):
#   float64  rtol = atol = 1e-10: the same arithmetic up to summation order.
#   float32  rtol = atol = 1e-4: the fused op computes W h + (E W^T + b)[x] where the reference
#            computes W (h + E[x]) + b, so results differ by a few float32 ulps of the partial sums.
#   float16  relative L2 error <= 1e-2, bfloat16 <= 5e-2: 16-bit storage of h_t (and on the
#            CUDA step-wise path of da and u), with float32 accumulation.
# States are held to rtol and atol as they stand. A gradient entry sums B*T terms, and its rounding
# grows with the terms, not with the entry: there atol is relative to the largest entry of the
# truth (assert_matches, scale_atol).
# Below float64, a pre-activation within rounding of 0 (float32: ~1e-7) can land on the other side
# of the ReLU than in float64, and that one flipped mask moves a gradient by far more than
# rounding does: a property of low-precision arithmetic, not an error of the kernel. So gradients
# below float64 are held to the float64 backward run on the kernel's own states, and float32
# ones to the truths too when no pre-activation lies within TIE_MARGIN of 0 (make_inputs'
# avoid_ties redraws such inputs; at B*T*H = 576,000 a few per draw lie that close).
TOLERANCES = {
    torch.float64: dict(rtol=1e-10, atol=1e-10),
    torch.float32: dict(rtol=1e-4, atol=1e-4),
}
RELATIVE_L2 = {torch.float16: 1e-2, torch.bfloat16: 5e-2}
TIE_MARGIN = 1e-5


def assert_matches(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype, what: str = "",
                   scale_atol: bool = True) -> None:
    """got vs want within the tolerance of dtype (above). want has got's dtype and device, or is
    a float64 truth (on any device). scale_atol: the absolute part scaled by want's largest entry,
    as for a gradient."""
    if (got.dtype, got.device) != (want.dtype, want.device):
        assert want.dtype == torch.float64, \
            f"{what}: want must be of got's dtype and device, or the float64 truth"
        got, want = got.detach().double().cpu(), want.detach().cpu()
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)}, want {tuple(want.shape)}"
    if dtype in RELATIVE_L2:
        a, e = got.detach().double(), want.detach().double()
        assert torch.isfinite(a).all(), f"{what}: not finite"
        err, tol = ((a - e).norm() / e.norm().clamp_min(1e-12)).item(), RELATIVE_L2[dtype]
        assert err <= tol, f"{what}: relative L2 error {err:.3g} > {tol}"
        return
    tol = TOLERANCES[dtype]
    scale = 1.0
    if scale_atol and want.numel():
        scale = max(1.0, float(want.detach().abs().max()))
    torch.testing.assert_close(got, want, rtol=tol["rtol"], atol=tol["atol"] * scale,
                               msg=lambda m: f"{what}: {m}" if what else m)


def min_abs_preactivation(tokens, emb, weight, bias, h0) -> float:
    """The smallest |pre-activation| over the whole recurrence, computed in float64."""
    with torch.no_grad():
        e, w, b = emb.double(), weight.double(), bias.double()
        h = h0.double() if h0 is not None else torch.zeros(tokens.shape[0], e.shape[1],
                                                           dtype=torch.float64)
        smallest = math.inf
        for t in range(tokens.shape[1]):
            a = F.linear(h + e[tokens[:, t]], w, b)
            smallest = min(smallest, float(a.abs().min()))
            h = a.relu()
    return smallest


def make_inputs(B: int, T: int, H: int, V: int, dtype=torch.float64, with_h0: bool = True,
                requires_grad: bool = True, token_dtype=torch.int64, avoid_ties: bool = False):
    """Random tokens and parameters with weights scaled so the states stay O(1) over time.

    avoid_ties redraws (up to 20 times) inputs where some pre-activation lies within TIE_MARGIN
    of 0: in float32 the fused op and the reference round differently, and such a state can land
    on either side of the ReLU, which changes gradients by far more than rounding."""
    for _ in range(20):
        inputs = _draw_inputs(B, T, H, V, dtype, with_h0, requires_grad, token_dtype)
        if not avoid_ties or min_abs_preactivation(*inputs) >= TIE_MARGIN:
            break
    return inputs


def _draw_inputs(B, T, H, V, dtype, with_h0, requires_grad, token_dtype):
    tokens = torch.randint(0, V, (B, T), dtype=token_dtype)
    emb = torch.randn(V, H, dtype=dtype)
    weight = torch.randn(H, H, dtype=dtype) / H ** 0.5
    bias = torch.randn(H, dtype=dtype) * 0.1
    h0: Optional[torch.Tensor] = torch.randn(B, H, dtype=dtype).relu() if with_h0 else None
    params = [emb, weight, bias] + ([h0] if with_h0 else [])
    for p in params:
        p.requires_grad_(requires_grad)
    return tokens, emb, weight, bias, h0


def reference_truth(tokens, emb, w, b, h0, grad_hs):
    """hs and (d_emb, d_w, d_b, d_h0) from the reference loop and autograd in float64, on the
    inputs' device; d_h0 is zeros without h0, as the op returns it."""
    from rnnfast import reference

    leaves = [None if t is None else t.detach().double().requires_grad_()
              for t in (emb, w, b, h0)]
    hs, _ = reference.elman_rnn(tokens, *leaves)
    grads = torch.autograd.grad(hs, [t for t in leaves if t is not None],
                                grad_hs.detach().double())
    if h0 is None:
        grads = (*grads, torch.zeros(tokens.shape[0], emb.shape[1], dtype=torch.float64,
                                     device=tokens.device))
    return hs.detach(), grads


def cpu_truth(tokens, emb, w, b, h0, grad_hs, hs=None):
    """hs and (d_emb, d_w, d_b, d_h0) from the CPU op in float64 on the same values, on the CPU;
    the gradients on the states `hs` (e.g. a kernel's own) when given."""
    def cpu64(t):
        return None if t is None else t.detach().double().cpu()

    tokens = tokens.cpu()
    e, w, b, h0 = (cpu64(t) for t in (emb, w, b, h0))
    want_hs = torch.ops.rnnfast.elman_rnn(tokens, e, w, b, h0)
    states = want_hs if hs is None else cpu64(hs)
    return want_hs, torch.ops.rnnfast.elman_rnn_backward(cpu64(grad_hs), tokens, e, w, states, h0)
