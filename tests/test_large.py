"""Sizes past 2^31 elements: every offset into hs (and the backward's buffers) must be 64-bit.

Slow and memory-hungry, so excluded from the normal suite (the `slow` marker); run with

    pytest -m slow tests/test_large.py -s

hs alone is 8 GiB (B*T*H = 2^31 + a little, float32). The forward needs about 9 GiB, the
backward about 17.5 GiB; each test skips itself when /proc/meminfo's MemAvailable is below that
plus a 2 GiB margin, and marks itself the first victim for the OOM killer.

How the results are checked without a second 8 GiB reference: almost every batch row reads
only token 0, whose projected row is negative, so its states are exactly 0 and pass no
gradient. A handful of live rows (the first ones, the ones around element 2^31 and the last
ones) read tokens 1 and 2. The fused op on the whole batch must give the reference's values on
the live rows, exactly zero everywhere else, and the gradients of the live rows alone. A
32-bit offset anywhere would write a live row's states into the wrong place or read the wrong
row, and fail one of the three.
"""
import os

import pytest
import torch

import rnnfast  # noqa: F401  (loads the library: torch.ops.rnnfast)
from rnnfast import reference

pytestmark = pytest.mark.slow

H, T = 16, 64
B = 2**31 // (T * H) + 1            # B*T*H = 2^31 + T*H
BOUNDARY_ROW = 2**31 // (T * H)     # the row holding flat element 2^31 of hs
LIVE = sorted({0, 1, BOUNDARY_ROW - 1, BOUNDARY_ROW, B - 2, B - 1})
GIB = 2**30


def available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def need(gib: float) -> None:
    if not os.path.exists("/proc/meminfo"):
        pytest.skip("needs Linux /proc/meminfo")
    have = available_bytes()
    if have < (gib + 2) * GIB:
        pytest.skip(f"needs {gib + 2:.1f} GiB available, {have / GIB:.1f} GiB are")
    try:  # if memory runs out after all, let the kernel kill this test, not a neighbour
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


def parameters():
    g = torch.Generator().manual_seed(0)
    emb = torch.rand(3, H, generator=g) + 0.1
    emb[0] = -1.0                                   # token 0: P[0] = -sum(W) < 0, dead rows
    weight = torch.rand(H, H, generator=g) / H      # positive, row sums <= 1: states stay O(1)
    bias = torch.zeros(H)
    return emb, weight, bias


def make_tokens():
    tokens = torch.zeros(B, T, dtype=torch.int32)
    pattern = torch.randint(1, 3, (len(LIVE), T), generator=torch.Generator().manual_seed(1),
                            dtype=torch.int32)
    tokens[LIVE] = pattern
    return tokens


def test_forward_past_2_31_elements():
    need(9.0)
    assert B * T * H > 2**31
    emb, weight, bias = parameters()
    tokens = make_tokens()
    hs = torch.ops.rnnfast.elman_rnn(tokens, emb, weight, bias, None)
    assert hs.shape == (B, T, H)

    ref, _ = reference.elman_rnn(tokens[LIVE].long(), emb, weight, bias)
    torch.testing.assert_close(hs[LIVE], ref, rtol=1e-5, atol=1e-6)
    assert (ref > 0).all()
    # Nothing else was written: all other states are exactly 0.
    assert int(torch.count_nonzero(hs)) == ref.numel()


def test_backward_past_2_31_elements():
    need(17.5)
    emb, weight, bias = parameters()
    tokens = make_tokens()
    hs = torch.ops.rnnfast.elman_rnn(tokens, emb, weight, bias, None)
    # grad_hs = hs itself: zero on the dead rows, and no second 8 GiB tensor.
    d_emb, d_w, d_b, _ = torch.ops.rnnfast.elman_rnn_backward(hs, tokens, emb, weight, hs, None)
    del hs

    leaves = [t.clone().requires_grad_() for t in (emb, weight, bias)]
    ref, _ = reference.elman_rnn(tokens[LIVE].long(), *leaves)
    want = torch.autograd.grad(ref, leaves, ref.detach())
    for got, w, name in zip((d_emb, d_w, d_b), want, ("emb_weight", "weight", "bias")):
        torch.testing.assert_close(got, w, rtol=1e-4, atol=1e-4,
                                   msg=lambda m: f"grad of {name}: {m}")
    assert torch.equal(d_emb[0], torch.zeros(H))    # the dead token passed nothing
