"""Threads: concurrent callers, the intra-op thread count, and run-to-run determinism.

Batch rows never interact, and the kernel splits them across intra-op threads, so the forward
does the same arithmetic per row whatever the split: hs is bitwise the same for any thread
count. The gradients are sums over all rows and steps, which BLAS (threaded by torch's thread
count) and the kernel may group differently for another thread count. Tolerance across thread
counts, relative to the largest entry of each result: 1e-5 for float32, 1e-12 for float64 (seen
here: up to 3e-6 and 6e-15, in the weight gradient only). For the same input and the same
thread count, every result is bitwise identical from run to run.
"""
import threading

import pytest
import torch

import rnnfast

from support.helpers import make_inputs

ACROSS_THREAD_COUNTS = {torch.float64: 1e-12, torch.float32: 1e-5}
# (B, T, H, V): the book's size; a batch big enough to be split; long and thin; tiny; a large
# weight (one task whose step products BLAS or oneDNN spread over the threads, csrc/blas.h);
# float32 walks that multiply by a packed W where BLAS runs them (csrc/step_gemm.h's
# packs_weight): two tasks of 8 rows, or one on one thread.
SHAPES = [(64, 16, 64, 30), (200, 24, 96, 50), (7, 64, 8, 5), (1, 3, 2, 2), (200, 4, 512, 30),
          (16, 16, 512, 30)]


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def fwd_bwd(inputs):
    tokens, emb, w, b, h0 = inputs
    hs, _ = rnnfast.elman_rnn(tokens, emb, w, b, h0)
    g = torch.linspace(-1, 1, hs.numel(), dtype=hs.dtype).reshape(hs.shape)
    return [hs.detach(), *torch.autograd.grad(hs, (emb, w, b, h0), g)]


def assert_bitwise(a, b, what):
    for i, (x, y) in enumerate(zip(a, b)):
        assert torch.equal(x, y), f"{what}: output {i} differs"


def test_concurrent_python_threads_match_serial(seed):
    inputs = [make_inputs(*shape, dtype=dtype) for shape in SHAPES
              for dtype in (torch.float32, torch.float64)]
    serial = [fwd_bwd(x) for x in inputs]
    rounds = 5
    results = {}
    errors = []
    start = threading.Barrier(len(inputs))

    def worker(i):
        try:
            start.wait()
            results[i] = [fwd_bwd(inputs[i]) for _ in range(rounds)]
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    for i, runs in results.items():
        for r in runs:
            assert_bitwise(r, serial[i], f"input {i} in a thread vs serial")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_thread_count_changes_results_only_by_rounding(seed, restore_threads, shape, dtype):
    inputs = make_inputs(*shape, dtype=dtype)
    by_count = {}
    for n in (1, 2, 3):
        torch.set_num_threads(n)
        runs = [fwd_bwd(inputs) for _ in range(3)]
        for r in runs[1:]:
            assert_bitwise(r, runs[0], f"{n} threads, repeated run")
        by_count[n] = runs[0]
    for n in (2, 3):
        assert torch.equal(by_count[n][0], by_count[1][0]), f"hs differs, {n} vs 1 threads"
        for i, (x, y) in enumerate(zip(by_count[n], by_count[1])):
            scale = float(y.abs().max())
            err = float((x - y).abs().max())
            assert err <= ACROSS_THREAD_COUNTS[dtype] * scale, \
                f"output {i}, {n} vs 1 threads: max difference {err:.3g}, largest entry {scale:.3g}"
