"""Random inputs for the op and the tolerances the tests hold it to."""
from typing import Optional

import torch

# float64 runs the same arithmetic as the reference up to summation order: near machine
# precision. float32: the fused op computes W h + (E W^T + b)[x] where the reference computes
# W (h + E[x]) + b, so results differ by a few float32 ulps of the partial sums.
TOLERANCES = {
    torch.float64: dict(rtol=1e-10, atol=1e-10),
    torch.float32: dict(rtol=1e-4, atol=1e-4),
}


def make_inputs(B: int, T: int, H: int, V: int, dtype=torch.float64, with_h0: bool = True,
                requires_grad: bool = True, token_dtype=torch.int64):
    """Random tokens and parameters with weights scaled so the states stay O(1) over time."""
    tokens = torch.randint(0, V, (B, T), dtype=token_dtype)
    emb = torch.randn(V, H, dtype=dtype)
    weight = torch.randn(H, H, dtype=dtype) / H ** 0.5
    bias = torch.randn(H, dtype=dtype) * 0.1
    h0: Optional[torch.Tensor] = torch.randn(B, H, dtype=dtype).relu() if with_h0 else None
    params = [emb, weight, bias] + ([h0] if with_h0 else [])
    for p in params:
        p.requires_grad_(requires_grad)
    return tokens, emb, weight, bias, h0
