"""The CUDA kernels' real sources, run on the CPU by the SIMT emulator (tests/cuda_emulator),
against the reference loop and the CPU op: evidence that the kernels compute the right thing
on a machine without a GPU.

csrc/cuda/*.cu are compiled by g++ as host C++ (one std::thread per CUDA thread of a CTA) and
driven through harness.py, which mirrors the host code of persistent.cpp and stepwise.cpp with
torch doing cuBLAS's GEMMs. The persistent kernels run with the very plans plan.cpp would pick
(csrc/cuda/persistent_plan.cpp) for an H200 (132 SMs), and for 1 or 3 SMs to put several batch
rows in a CTA and several outputs on a thread group. Tolerances as in tests/test_cuda.py:
float64 1e-10 and float32 1e-4 (absolute part scaled by the largest entry); float16/bfloat16 a
relative L2 error of 1e-2/5e-2, the gradients against the float64 backward on the kernel's own
hs. The emulator is slow (a context switch per thread and barrier), so the shapes are few and
small; the data race and memory checks are in test_cuda_emulated_sanitizers.py.
"""
import random

import pytest
import torch

import rnnfast  # noqa: F401  (loads the library: torch.ops.rnnfast)

from support.compare import assert_agree
from cuda_emulator import build
from cuda_emulator.harness import H200_SMEM_PER_BLOCK_OPTIN, H200_SMS, EmulatedCuda
from support.helpers import make_inputs, reference_truth

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
H200 = H200_SMS

# ((B, T, H, V), SMs the persistent kernels are planned for).
PERSISTENT_CASES = [
    ((64, 16, 64, 30), 1),      # the book's size: 32 rows per CTA, 4 outputs per thread
    ((64, 16, 64, 30), 3),      # 22, 22 and 20 rows, 3 outputs per thread
    ((4, 5, 64, 30), H200),     # each dot product split over 8 lanes
    ((1, 1, 1, 1), H200),
    ((3, 5, 2, 4), H200),
    ((7, 9, 33, 11), 3),        # 3, 3 and 1 rows, 4 lanes per dot product
    ((5, 3, 100, 7), H200),     # 4 lanes; more than 48 KiB of shared memory
    ((2, 4, 128, 3), H200),     # 2 lanes
    ((20, 3, 100, 7), 1),       # 2000 outputs on 512 threads: 4 each
    ((300, 3, 16, 9), H200),    # 3 rows per CTA on 132 SMs, 100 CTAs
    ((6, 4, 150, 13), H200),    # near float64's largest H (160)
]
# The step-wise path: one thread per (row, unit), 256 per CTA (4 CTAs at 16 x 64); H up to
# what the persistent kernels cannot take.
STEPWISE_SHAPES = [(16, 8, 64, 30), (3, 5, 2, 4), (7, 9, 33, 11), (4, 3, 300, 5),
                   (2, 2, 520, 3)]


def random_cases(n, seed):
    rng = random.Random(seed)
    return [((rng.randint(1, 12), rng.randint(1, 8), rng.choice([1, 5, 16, 31, 64, 65, 128]),
              rng.randint(1, 20)), rng.choice([1, 3, H200])) for _ in range(n)]


PERSISTENT_CASES += random_cases(4, seed=2024)


def case_id(case):
    (B, T, H, V), sms = case
    return f"{B}x{T}x{H}x{V}-{sms}sm"


@pytest.fixture(scope="session")
def emu(emulator_cache_dir):
    try:
        return EmulatedCuda(build.build("library", emulator_cache_dir))
    except build.Unavailable as e:
        pytest.skip(f"cannot build the CUDA emulator: {e}")


@pytest.fixture(autouse=True)
def fresh_token_error_record(request):
    if "emu" in request.fixturenames:
        request.getfixturevalue("emu").clear_token_error()


def inputs(B, T, H, V, dtype, with_h0=True, token_dtype=torch.int64):
    """make_inputs drawn in float64 and rounded to dtype (16-bit included), as test_cuda.py.
    float32 redraws inputs with a pre-activation within 1e-5 of 0, whose ReLU float32 rounding
    could flip against the float64 truth (16-bit gradients are checked on the kernel's hs)."""
    tokens, emb, w, b, h0 = make_inputs(B, T, H, V, dtype=torch.float64, with_h0=with_h0,
                                        requires_grad=False, token_dtype=token_dtype,
                                        avoid_ties=dtype == torch.float32)
    return (tokens, *[None if t is None else t.to(dtype) for t in (emb, w, b, h0)])


def run_emulated(emu, path, tokens, emb, w, b, h0, grad_hs, sms=H200):
    """hs and (d_emb, d_w, d_b, d_h0) from the emulated kernels on one path."""
    if path == "stepwise":
        hs = emu.forward_stepwise(tokens, emb, w, b, h0)
        return hs, emu.backward_stepwise(grad_hs, tokens, emb, w, hs, h0)
    plan = emu.plan(tokens.shape[0], emb.shape[1], emb.dtype, sms=sms)
    assert plan is not None, "no persistent plan"
    hs = emu.forward_persistent(plan, tokens, emb, w, b, h0)
    return hs, emu.backward_persistent(plan, grad_hs, tokens, emb, w, hs, h0)


def as64(t):
    return None if t is None else t.detach().double()


def cpu_truth(tokens, emb, w, b, h0, grad_hs, hs=None):
    """The CPU op in float64: hs and the gradients, the latter on `hs` when given."""
    e, w, b, h0 = (as64(t) for t in (emb, w, b, h0))
    want_hs = torch.ops.rnnfast.elman_rnn(tokens, e, w, b, h0)
    states = want_hs if hs is None else as64(hs)
    return want_hs, torch.ops.rnnfast.elman_rnn_backward(as64(grad_hs), tokens, e, w, states, h0)


def assert_matches(actual, expected, dtype, what):
    a, e = actual.double(), expected.detach().double()
    assert a.shape == e.shape, what
    if dtype in (torch.float64, torch.float32):
        tol = 1e-10 if dtype == torch.float64 else 1e-4
        scale = max(1.0, e.abs().max().item()) if e.numel() else 1.0
        torch.testing.assert_close(a, e, rtol=tol, atol=tol * scale, msg=lambda m: f"{what}: {m}")
    else:
        tol = 1e-2 if dtype == torch.float16 else 5e-2
        assert torch.isfinite(a).all(), what
        err = ((a - e).norm() / e.norm().clamp_min(1e-12)).item()
        assert err <= tol, f"{what}: relative L2 error {err:.3g} > {tol}"


NAMES = ["d_emb", "d_weight", "d_bias", "d_h0"]


def check_against_truth(emu, path, shape, dtype, index, sms=H200):
    """One problem through the emulated path, against the CPU op and the reference loop."""
    B, T, H, V = shape
    with_h0 = index % 2 == 0
    token_dtype = torch.int32 if index % 3 == 1 else torch.int64
    tokens, emb, w, b, h0 = inputs(B, T, H, V, dtype, with_h0, token_dtype)
    grad_hs = torch.randn(B, T, H, dtype=torch.float64).to(dtype)
    hs, grads = run_emulated(emu, path, tokens, emb, w, b, h0, grad_hs, sms)
    assert hs.dtype == dtype and hs.shape == (B, T, H)
    assert [g.dtype for g in grads] == [dtype] * 4
    for truth in (cpu_truth, reference_truth):
        want_hs, want_grads = truth(tokens, emb, w, b, h0, grad_hs)
        assert_matches(hs, want_hs, dtype, f"hs vs {truth.__name__}")
        if dtype in (torch.float16, torch.bfloat16):
            continue
        for name, got, want in zip(NAMES, grads, want_grads):
            assert_matches(got, want, dtype, f"{name} vs {truth.__name__}")
    if dtype in (torch.float16, torch.bfloat16):
        _, want_grads = cpu_truth(tokens, emb, w, b, h0, grad_hs, hs=hs)
        for name, got, want in zip(NAMES, grads, want_grads):
            assert_matches(got, want, dtype, f"{name} vs the float64 backward on the same hs")
    if hs.numel() >= 256:  # both sides of the ReLU were exercised
        assert (hs > 0).any() and (hs == 0).any()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", PERSISTENT_CASES, ids=case_id)
def test_persistent_kernels_match(emu, seed, case, dtype):
    shape, sms = case
    check_against_truth(emu, "persistent", shape, dtype, PERSISTENT_CASES.index(case), sms)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", STEPWISE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_stepwise_kernels_match(emu, seed, shape, dtype):
    check_against_truth(emu, "stepwise", shape, dtype, STEPWISE_SHAPES.index(shape))


# Larger launches as an H200 runs them (seconds each): the book's size on 64 CTAs of 512
# threads, and test_cuda.py's largest persistent shapes.
SLOW_PERSISTENT_CASES = [((64, 16, 64, 30), H200), ((3000, 2, 96, 13), H200),
                         ((40, 6, 150, 13), H200)]


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", SLOW_PERSISTENT_CASES, ids=case_id)
def test_persistent_kernels_match_at_h200_sizes(emu, seed, case, dtype):
    shape, sms = case
    check_against_truth(emu, "persistent", shape, dtype, SLOW_PERSISTENT_CASES.index(case), sms)


# ---- the launch plans --------------------------------------------------------------------------

def test_cases_cover_the_plans(emu):
    """The persistent cases above exercise every kind of plan (guards them against planner
    changes): 1 to 8 lanes per dot product, several rows per CTA, several outputs per thread
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
    for sms in (1, 3, 16, H200):
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


# Largest H of the persistent kernels on an H100/H200, as tests/test_cuda.py states them.
PERSISTENT_MAX_H = {torch.float64: 160, torch.float32: 224, torch.float16: 320,
                    torch.bfloat16: 320}


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
    hs, _ = run_emulated(emu, path, tokens, emb, w, b, h0, zeros)

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
    hs, _ = run_emulated(emu, path, tokens, emb, w, b, h0, grad_hs)
    emu.clear_token_error()
    bad = tokens.clone()
    bad[1, 2] = V
    if path == "stepwise":
        grads = emu.backward_stepwise(grad_hs, bad, emb, w, hs, h0)
    else:
        plan = emu.plan(B, H, torch.float64)
        grads = emu.backward_persistent(plan, grad_hs, bad, emb, w, hs, h0)
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
    run_emulated(emu, path, tokens, emb, w, b, h0, torch.zeros(B, T, H))
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
    hs, grads = run_emulated(emu, path, tokens, emb, w, b, h0, grad_hs)
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
        hs, grads = run_emulated(emu, path, tokens, emb, w, b, h0, grad_hs)
        want_hs, want_grads = reference_truth(tokens, emb, w, b, h0, grad_hs)
        tol = dict(rtol=1e-10, atol=1e-10)
        if path == "persistent":
            assert_agree(hs, want_hs, "hs", "full", **tol)
            for name, got, want in zip(NAMES, grads, want_grads):
                assert_agree(got, want, name, "full", **tol)
        else:
            assert_agree(hs, want_hs, "hs", "superset", **tol)
            assert [g.shape for g in grads] == [g.shape for g in want_grads]
