"""The CUDA kernels' real sources, run on the CPU by the SIMT emulator (tests/cuda_emulator),
where only the emulated kernels are checked: their launch plans, the token-error record, NaN and
Inf. Values and gradients of both paths against the reference loop and the CPU op, the
persistent one with the very plans plan.cpp would pick (csrc/cuda/persistent_plan.cpp) for an
H200 (132 SMs) and for 1 or 3 SMs: test_backends.py, whose emulated backends are
tests/support/backends.py.

csrc/cuda/*.cu are compiled by g++ as host C++ (one std::thread per CUDA thread of a CTA) and
driven by the CUDA op's own host code (csrc/cuda/time_loops.cpp) through harness.py, with host
loops doing cuBLAS's GEMMs. The emulator is slow (a context switch per thread and barrier), so
the shapes are few and small; the data race and memory checks are in
test_cuda_emulated_sanitizers.py.
"""
import pytest
import torch

import rnnfast  # noqa: F401  (loads the library: torch.ops.rnnfast)

from cuda_emulator.harness import H200_SMEM_PER_BLOCK_OPTIN, H200_SMS
from support.backends import BACKENDS, BY_NAME, PERSISTENT_MAX_H, Emulated
from support.compare import assert_agree
from support.helpers import assert_matches, cpu_truth, make_inputs, reference_truth

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
NAMES = ["d_emb", "d_weight", "d_bias", "d_h0"]
# The persistent backends' cases: (shape, SMs planned for).
PERSISTENT_CASES = [(shape, b.sms) for b in BACKENDS
                    if isinstance(b, Emulated) and b.path == "persistent" for shape in b.shapes]


@pytest.fixture(autouse=True)
def fresh_token_error_record(request):
    if "emu" in request.fixturenames:
        request.getfixturevalue("emu").clear_token_error()


def inputs(B, T, H, V, dtype, with_h0=True, token_dtype=torch.int64):
    """make_inputs drawn in float64 and rounded to dtype (16-bit included), as test_backends.py
    draws them. float32 redraws inputs with a pre-activation within 1e-5 of 0, whose ReLU float32 rounding
    could flip against the float64 truth (16-bit gradients are checked on the kernel's hs)."""
    tokens, emb, w, b, h0 = make_inputs(B, T, H, V, dtype=torch.float64, with_h0=with_h0,
                                        requires_grad=False, token_dtype=token_dtype,
                                        avoid_ties=dtype == torch.float32)
    return (tokens, *[None if t is None else t.to(dtype) for t in (emb, w, b, h0)])


def on(emu, path) -> Emulated:
    """The emulated backend of `path` (the persistent one planned for an H200)."""
    return BY_NAME[f"emulated-{path}"].on(emu)


# ---- the launch plans --------------------------------------------------------------------------

def test_cases_cover_the_plans(emu):
    """The emulated persistent backends' cases (support/backends.py) exercise every kind of plan
    (guards them against planner changes): 1 to 8 lanes per dot product, several rows per CTA, several outputs per thread
    group up to the maximum, a last CTA with fewer rows, more than 48 KiB of shared memory."""
    plans = [(emu.plan(B, H, torch.float32, sms=sms), B) for (B, _, H, _), sms in
             PERSISTENT_CASES]
    assert {p.group for p, _ in plans} >= {1, 2, 4, 8}
    assert max(p.rows_per_cta for p, _ in plans) >= 32
    assert max(p.outputs_per_group for p, _ in plans) == 4
    assert any(p.outputs_per_group == 3 for p, _ in plans)
    assert any(B % p.rows_per_cta != 0 for p, B in plans)
    assert any(p.smem_bytes > 48 * 1024 for p, _ in plans)


ELEMENT = {torch.float64: 8, torch.float32: 4, torch.float16: 2, torch.bfloat16: 2}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_plan_fits_its_kernels(emu, dtype):
    """What the kernels assume of a plan (launch.h), for many sizes and SM counts."""
    acc = 8 if dtype == torch.float64 else 4
    for sms in (1, 3, 16, H200_SMS):
        for H in list(range(1, 70)) + [96, 100, 127, 128, 129, 150, 160, 200, 224, 320, 400]:
            for B in (1, 2, 3, 7, 31, 64, 133, 300, 4096):
                p = emu.plan(B, H, dtype, sms=sms)
                if p is None:
                    continue
                what = f"B={B} H={H} sms={sms}: {p}"
                assert 32 <= p.threads <= 512 and p.threads % 32 == 0, what
                assert p.group in (1, 2, 4, 8, 16, 32) and p.threads % p.group == 0, what
                assert (p.threads // p.group) * p.outputs_per_group >= p.rows_per_cta * H, what
                assert 1 <= p.outputs_per_group <= 4, what
                assert p.ctas * p.rows_per_cta >= B > (p.ctas - 1) * p.rows_per_cta, what
                assert p.ldw >= H and (p.ldw - p.group) % 32 == 0, what
                assert p.state_offset % 16 == 0, what
                assert p.state_offset >= H * p.ldw * ELEMENT[dtype], what
                assert p.smem_bytes == p.state_offset + 2 * p.rows_per_cta * H * acc, what
                assert p.smem_bytes <= H200_SMEM_PER_BLOCK_OPTIN, what


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_largest_persistent_h_on_h200(emu, dtype):
    assert emu.plan(1, PERSISTENT_MAX_H[dtype], dtype) is not None
    assert emu.plan(1, 512, dtype) is None


# ---- out-of-range token ids (csrc/cuda/token_error.h) ----------------------------------------

def _saturated(value):
    return max(-2**31, min(2**31 - 1, value))


BAD_TOKENS = [(-1, torch.int64), ("V", torch.int64), (2**40, torch.int64), (-2**63, torch.int64),
              (2**31 - 1, torch.int32), ("V", torch.int32)]


@pytest.mark.parametrize("path", ["persistent", "stepwise"])
@pytest.mark.parametrize("bad,token_dtype", BAD_TOKENS, ids=str)
@pytest.mark.parametrize("where", [(0, 0), (2, 3), (4, 5)], ids=str)
def test_bad_token_gives_nan_rows_and_a_record(emu, seed, path, bad, token_dtype, where):
    """The bad row of hs is NaN from the bad step on, nothing else changes, and the record
    holds the position and the (saturated) id. (That no read leaves emb is checked under
    AddressSanitizer, in test_cuda_emulated_sanitizers.py.)"""
    B, T, H, V = 5, 6, 16, 7
    value = V if bad == "V" else bad
    tokens, emb, w, b, h0 = inputs(B, T, H, V, torch.float32, token_dtype=token_dtype)
    r, t = where
    good = tokens.clone()
    tokens[r, t] = value
    assert tokens[r, t].item() == value
    zeros = torch.zeros(B, T, H)
    hs = on(emu, path).run(tokens, emb, w, b, h0, zeros).hs

    assert torch.isnan(hs[r, t:]).all()
    want, _ = cpu_truth(good, emb, w, b, h0, zeros)
    assert_matches(hs[r, :t], want[r, :t], torch.float32, "the bad row before the bad step")
    others = [i for i in range(B) if i != r]
    assert_matches(hs[others], want[others], torch.float32, "the other rows")
    record = emu.token_error()
    assert record is not None
    assert (record.position, record.id) == ((r, t), _saturated(value))
    assert (record.seq_len, record.vocab_size) == (T, V)


@pytest.mark.parametrize("path", ["persistent", "stepwise"])
def test_bad_token_in_the_backward(emu, seed, path):
    """With a bad id the backward reports it, scatters nothing for it, and its u_t is NaN, so
    the weight gradient is NaN; the other gradients are those of the valid positions."""
    B, T, H, V = 3, 4, 8, 6
    tokens, emb, w, b, h0 = inputs(B, T, H, V, torch.float64)
    grad_hs = torch.randn(B, T, H, dtype=torch.float64)
    hs = on(emu, path).run(tokens, emb, w, b, h0, grad_hs).hs
    emu.clear_token_error()
    bad = tokens.clone()
    bad[1, 2] = V
    grads = on(emu, path).backward_op(grad_hs, bad, emb, w, hs, h0)
    record = emu.token_error()
    assert (record.position, record.id) == ((1, 2), V)
    # The truth: the bad position's embedding gradient lands in an extra row, dropped.
    emb_extra = torch.cat([emb, torch.zeros(1, H, dtype=emb.dtype)])
    _, want = cpu_truth(bad, emb_extra, w, b, h0, grad_hs, hs=hs)
    assert_matches(grads[0], want[0][:V], torch.float64, "d_emb")
    assert torch.isnan(grads[1]).all()
    assert_matches(grads[2], want[2], torch.float64, "d_bias")
    assert_matches(grads[3], want[3], torch.float64, "d_h0")


@pytest.mark.parametrize("path", ["persistent", "stepwise"])
def test_racing_bad_tokens_leave_one_whole_report(emu, seed, path):
    """Several bad ids at once: the record holds one of them, its position and id together."""
    B, T, H, V = 6, 3, 16, 5
    tokens, emb, w, b, h0 = inputs(B, T, H, V, torch.float32)
    reports = {(0, 1): -3, (2, 0): 7, (5, 2): 2**33}
    for (r, t), value in reports.items():
        tokens[r, t] = value
    on(emu, path).run(tokens, emb, w, b, h0, torch.zeros(B, T, H))
    record = emu.token_error()
    assert (record.position, record.id) in {(pos, _saturated(v)) for pos, v in reports.items()}


# ---- NaN and Inf (the rules of tests/test_nonfinite.py and docs/nonfinite.md) --------------------

NAN, INF = float("nan"), float("inf")


def nonfinite_cases():
    """(name, tokens, emb, w, b, h0, grad_hs): test_nonfinite.py's hand-made cases and a few
    random ones with NaN and +-Inf written into every kind of input."""
    cases = [
        ("relu tie", [[0, 1]], [[0.0], [1.0]], [[1.0]], [0.0], None, None),
        ("nan state", [[0, 1, 1]], [[NAN, 0.5], [0.25, 0.5]], [[0.5, 0], [0, 0.5]], [0.0, 0.0],
         None, None),
        ("masked nan gradient", [[0, 1]], [[-1.0], [1.0]], [[0.5]], [0.0], None,
         [[[NAN], [1.0]]]),
        ("last state stays in its row", [[1, 0], [1, 1]],
         [[NAN, 0.5, 0.5], [0.5, 0.25, 0.75]], (torch.eye(3) * 0.5).tolist(), [0.1] * 3, None,
         None),
        ("infinite embedding", [[0, 1, 2]], [[INF, 0.0], [-INF, 1.0], [0.5, -0.5]],
         [[0.5, 0.25], [-0.25, 0.5]], [0.0, 0.0], None, None),
    ]
    out = [(name, torch.tensor(tok), *(None if x is None else torch.tensor(x)
                                       for x in (e, w, b, h0, g)))
           for name, tok, e, w, b, h0, g in cases]
    with torch.random.fork_rng():
        torch.manual_seed(7)  # fixed cases, whatever ran before collection
        out += _random_nonfinite_cases()
    return out


def _random_nonfinite_cases():
    out = []
    for value in (NAN, INF, -INF):
        unused = make_inputs(2, 3, 3, 4, dtype=torch.float64, requires_grad=False)
        unused[0][:] = torch.tensor([[0, 1, 0], [1, 1, 0]])
        unused[1][3, 1] = value                      # a row no token reads
        out.append((f"{value} in an unused embedding row", *unused, None))
    for i, target in enumerate(["emb", "b", "h0", "grad_hs", "emb", "h0"]):
        tokens, emb, w, b, h0 = make_inputs(3, 4, 5, 4, dtype=torch.float64, requires_grad=False,
                                            avoid_ties=True)
        grad_hs = torch.randn(3, 4, 5, dtype=torch.float64)
        t = {"emb": emb, "b": b, "h0": h0, "grad_hs": grad_hs}[target]
        flat = t.view(-1)
        for j in torch.randint(0, flat.numel(), (2,)).tolist():
            flat[j] = (NAN, INF, -INF)[(i + j) % 3]
        out.append((f"random specials in {target} #{i}", tokens, emb, w, b, h0, grad_hs))
    return out


NONFINITE = nonfinite_cases()


@pytest.mark.parametrize("path", ["persistent", "stepwise"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("case", NONFINITE, ids=lambda c: c[0])
def test_nan_and_inf_propagate(emu, path, dtype, case):
    """NaN and +-Inf where the reference loop has them. Both backward passes multiply per
    position as the reference does (dW = sum of da_t^T u_t, dL/du_t scattered per position),
    and the forward passes group as it does wherever the weight is finite (the persistent one
    computes (h + e) W^T, the step-wise one h W^T + (E W^T)[x], equal unless W holds an Inf),
    so every output agrees in full, embedding and weight gradients included. The CPU op sums
    the embedding gradient per token first and may say NaN where they say Inf (0 * Inf), so
    against it those two agree only on where the result is finite."""
    _, tokens, emb, w, b, h0, grad_hs = case
    emb, w, b = emb.to(dtype), w.to(dtype), b.to(dtype)
    h0 = None if h0 is None else h0.to(dtype)
    B, T = tokens.shape
    grad_hs = torch.ones(B, T, emb.shape[1], dtype=dtype) if grad_hs is None else \
        grad_hs.to(dtype)
    hs, _, grads = on(emu, path).run(tokens, emb, w, b, h0, grad_hs)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)

    want_hs, want_grads = reference_truth(tokens, emb, w, b, h0, grad_hs)
    assert_agree(hs, want_hs.to(dtype), "hs vs the reference", "full", **tol)
    for name, got, want in zip(NAMES, grads, want_grads):
        assert_agree(got, want.to(dtype), f"{name} vs the reference", "full", **tol)

    cpu_hs, cpu_grads = cpu_truth(tokens, emb, w, b, h0, grad_hs, hs=hs)
    assert_agree(hs, cpu_hs.to(dtype), "hs vs the CPU op", "full", **tol)
    for name, got, want in zip(NAMES, grads, cpu_grads):
        pattern = "finiteness" if name in ("d_emb", "d_weight") else "full"
        assert_agree(got, want.to(dtype), f"{name} vs the CPU op", pattern, **tol)


@pytest.mark.parametrize("path", ["persistent", "stepwise"])
def test_infinite_weight(emu, seed, path):
    """An infinite weight: the persistent path groups as the reference does, (h + e) W^T, and
    agrees in full, gradients included. The step-wise path computes h W^T + e W^T, where
    2 Inf - 1 Inf = NaN but (2 - 1) Inf = Inf, so (like the CPU op, see docs/nonfinite.md) it may
    give NaN where the reference does not, never the reverse; its gradients then follow other
    ReLU masks and only their shapes are checked."""
    for trial in range(3):
        tokens, emb, w, b, h0 = inputs(3, 4, 5, 4, torch.float64)
        w.view(-1)[torch.randint(0, 25, (1,))] = INF if trial % 2 == 0 else -INF
        grad_hs = torch.randn(3, 4, 5, dtype=torch.float64)
        hs, _, grads = on(emu, path).run(tokens, emb, w, b, h0, grad_hs)
        want_hs, want_grads = reference_truth(tokens, emb, w, b, h0, grad_hs)
        tol = dict(rtol=1e-10, atol=1e-10)
        if path == "persistent":
            assert_agree(hs, want_hs, "hs", "full", **tol)
            for name, got, want in zip(NAMES, grads, want_grads):
                assert_agree(got, want, name, "full", **tol)
        else:
            assert_agree(hs, want_hs, "hs", "superset", **tol)
            assert [g.shape for g in grads] == [g.shape for g in want_grads]
