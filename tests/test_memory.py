"""Memory: repeated calls leave resident memory flat, and backward keeps only what it needs."""
import os
import resource

import pytest
import torch

import rnnfast

from support.helpers import make_inputs


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="ASan's quarantine holds freed memory on purpose")
def test_ten_thousand_forward_backward_calls_leave_resident_memory_flat(seed, one_thread):
    # hs alone is 8 KiB here, so leaking even one output or saved buffer per call would add
    # 80 MiB over the loop; the bound leaves room for allocator noise. One intra-op thread:
    # the loop measures memory, and on a busy machine thread hand-offs only add time.
    tokens, emb, w, b, h0 = make_inputs(8, 8, 32, 30, dtype=torch.float32)
    leaves = (emb, w, b, h0)

    def step():
        hs, h_last = rnnfast.elman_rnn(tokens, emb, w, b, h0)
        return torch.autograd.grad((hs.sum() + h_last.sum()), leaves)

    for _ in range(500):  # warm-up: thread pools, allocator caches
        step()
    before = resident_bytes()
    for _ in range(10_000):
        step()
    grown = resident_bytes() - before
    print(f"resident memory grew by {grown / 2**20:.1f} MiB over 10,000 calls")
    assert grown < 40 * 2**20


@pytest.mark.parametrize("with_h0", [True, False])
def test_backward_keeps_only_the_inputs_it_reads_and_hs(seed, with_h0):
    """Saved for backward: tokens, emb_weight, weight, h0 (the caller's tensors, not copies) and
    the output hs; not bias, and nothing per time step beyond hs itself."""
    tokens, emb, w, b, h0 = make_inputs(3, 5, 4, 6, with_h0=with_h0)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        hs, _ = rnnfast.elman_rnn(tokens, emb, w, b, h0)
    expected = [tokens, emb, w, hs] + ([h0] if with_h0 else [])
    assert len(saved) == len(expected)
    for s, e in zip(saved, expected):
        assert s.data_ptr() == e.data_ptr() and s.shape == e.shape
    assert all(s.data_ptr() != b.data_ptr() for s in saved)
