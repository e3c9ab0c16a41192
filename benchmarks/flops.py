"""FLOP counts, and the machine's own ceiling: a large float32 matmul measured in the same run.

Every variant is credited with the same, mathematical FLOPs, whatever it actually executes:
  recurrence forward   2·B·T·H²   (one (B×H)·(H×H) matmul per step)
  recurrence backward  4·B·T·H²   (one for the input gradient, one for the weight gradient)
  head forward         2·B·T·H·V  (LMModel4's h_o over every position), backward 4·B·T·H·V
Element-wise work (bias, ReLU, embedding gathers, cross-entropy, the optimizer) is not counted.
The fused op's extra P = E·Wᵀ (2·V·H²) is not credited either, so its GFLOP/s is never
flattered by work the others don't do.
"""
import statistics
import time

import torch

from .config import CELL, FWD, Size


def recurrence_flops(s: Size, mode: str) -> int:
    fwd = 2 * s.B * s.T * s.H * s.H
    return fwd if mode == FWD else 3 * fwd


def head_flops(s: Size, mode: str) -> int:
    fwd = 2 * s.B * s.T * s.H * s.V
    return fwd if mode == FWD else 3 * fwd


def flops(level: str, s: Size, mode: str) -> int:
    total = recurrence_flops(s, mode)
    return total if level == CELL else total + head_flops(s, mode)


_operands = {}


def matmul_ceiling(n: int, reps: int, warmup: int = 2, seed: int = 0) -> dict:
    """GFLOP/s of an n×n·n×n float32 matmul at the current thread count (median of `reps`
    after `warmup` calls); the yardstick every variant's GFLOP/s is divided by."""
    if n not in _operands:     # made once: the probes run often, and only the product is timed
        g = torch.Generator().manual_seed(seed)
        _operands[n] = (torch.randn(n, n, generator=g), torch.randn(n, n, generator=g),
                        torch.empty(n, n))
    a, b, out = _operands[n]
    for _ in range(warmup):
        torch.mm(a, b, out=out)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - t0)
    work = 2 * n ** 3
    return {"n": n, "gflops_median": work / statistics.median(times) / 1e9,
            "gflops_best": work / min(times) / 1e9, "samples_s": times}
