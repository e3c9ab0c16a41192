"""Random inputs for the op and the tolerances the tests hold it to."""
import math
from typing import Optional

import torch
import torch.nn.functional as F

# float64 runs the same arithmetic as the reference up to summation order: near machine
# precision. float32: the fused op computes W h + (E W^T + b)[x] where the reference computes
# W (h + E[x]) + b, so results differ by a few float32 ulps of the partial sums; gradients,
# sums over every position, are held to atol relative to their largest entry (assert_matches).
TOLERANCES = {
    torch.float64: dict(rtol=1e-10, atol=1e-10),
    torch.float32: dict(rtol=1e-4, atol=1e-4),
}


def assert_matches(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype) -> None:
    """got vs want within TOLERANCES[dtype], the absolute part scaled by want's largest entry:
    a gradient entry sums B*T terms, and rounding grows with the terms, not with the entry."""
    tol = TOLERANCES[dtype]
    scale = max(1.0, float(want.detach().abs().max())) if want.numel() else 1.0
    torch.testing.assert_close(got, want, rtol=tol["rtol"], atol=tol["atol"] * scale)


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

    avoid_ties redraws (up to 20 times) inputs where some pre-activation lies within 1e-5 of 0:
    in float32 the fused op and the reference round differently, and such a state can land on
    either side of the ReLU, which changes gradients by far more than rounding."""
    for _ in range(20):
        inputs = _draw_inputs(B, T, H, V, dtype, with_h0, requires_grad, token_dtype)
        if not avoid_ties or min_abs_preactivation(*inputs) >= 1e-5:
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
