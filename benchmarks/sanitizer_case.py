"""A tiny workload for compute-sanitizer (run by benchmarks/gpu_check.sh).

Runs every rnnfast CUDA kernel once or twice: elman_rnn on both paths, every dtype, forward
and backward, h0 given and None, a CTA with fewer rows than the others, thread groups of 1..8
lanes and several outputs per group, and out-of-range token ids, which must never be read; and
rnn_layer on packed, batch-first and padded input, both directions, with and without hx and
biases. memcheck runs with torch's caching allocator off, so a read past a tensor is a read
past an allocation.
"""
import os
import sys

# Run as a script from anywhere: use this checkout's rnnfast (built in place).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402  (after the path fix above)

import rnnfast  # noqa: E402,F401  (registers the ops)

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def drain():
    """Consumes a deferred bad-token report (see csrc/cuda/token_error.h)."""
    torch.cuda.synchronize()
    try:
        one(torch.float32, 1, 1, 2, 2, with_h0=False)
    except IndexError:
        pass
    torch.cuda.synchronize()


def one(dtype, B, T, H, V, with_h0, bad=None):
    tokens = torch.randint(0, V, (B, T), device="cuda")
    if bad is not None:
        (row, t), value = bad
        tokens[row, t] = value
    emb = torch.randn(V, H, device="cuda", dtype=dtype)
    w = (torch.randn(H, H, device="cuda") / H ** 0.5).to(dtype)
    b = torch.randn(H, device="cuda", dtype=dtype)
    h0 = torch.randn(B, H, device="cuda", dtype=dtype) if with_h0 else None
    hs = torch.ops.rnnfast.elman_rnn(tokens, emb, w, b, h0)
    torch.ops.rnnfast.elman_rnn_backward(torch.randn_like(hs), tokens, emb, w, hs, h0)


def layer(dtype, packed, batch_first, bidirectional, with_hx, bias):
    T, B, I, H = 5, 4, 3, 33
    D = 2 if bidirectional else 1
    weights = []
    for _ in range(D):
        weights += [torch.randn(H, I), torch.randn(H, H) / H ** 0.5]
        weights += [torch.randn(H), torch.randn(H)] if bias else []
    weights = [w.to("cuda", dtype) for w in weights]
    batch_sizes = torch.tensor([4, 3, 3, 1, 1]) if packed else None
    if packed:
        x = torch.randn(int(batch_sizes.sum()), I, device="cuda", dtype=dtype)
    else:
        x = torch.randn(*((B, T) if batch_first else (T, B)), I, device="cuda", dtype=dtype)
    hx = torch.randn(D, B, H, device="cuda", dtype=dtype) if with_hx else None
    args = (x, weights, hx, batch_sizes, B, "tanh" if with_hx else "relu", batch_first,
            bidirectional)
    out, h_n = torch.ops.rnnfast.rnn_layer(*args)
    torch.ops.rnnfast.rnn_layer_backward(torch.randn_like(out), torch.randn_like(h_n), *args[:5],
                                         out, *args[5:], True)


def main():
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for kernel in ("persistent", "stepwise"):
        os.environ["RNNFAST_CUDA_KERNEL"] = kernel
        for i, dtype in enumerate(DTYPES):
            one(dtype, 5, 4, 16, 7, with_h0=i % 2 == 0)           # 2 lanes per dot product
            one(dtype, 3, 3, 64, 5, with_h0=i % 2 == 1)           # 8 lanes
            one(dtype, 2, 2, 33, 3, with_h0=True)                 # H not a multiple of 32
        one(torch.float32, 2 * sms + 5, 3, 16, 9, with_h0=True)   # 3 rows per CTA, a 2-row tail
        one(torch.float32, 255 * sms + 1, 2, 8, 9, with_h0=False)  # 1 lane, 4 outputs per group
        for bad in (((1, 2), 7), ((0, 0), -1), ((4, 3), 2**40)):
            try:
                one(torch.float32, 5, 4, 16, 7, with_h0=True, bad=bad)
            except IndexError:
                pass
            drain()
    for i, dtype in enumerate(DTYPES):
        layer(dtype, packed=True, batch_first=False, bidirectional=True, with_hx=i % 2 == 0,
              bias=True)
        layer(dtype, packed=False, batch_first=i % 2 == 1, bidirectional=i % 2 == 0,
              with_hx=True, bias=i % 2 == 1)
    torch.cuda.synchronize()
    print("sanitizer_case: done")


if __name__ == "__main__":
    main()
