"""Run in a fresh process (the CPU GEMM backend is chosen once per process, from
RNNFAST_CPU_GEMM): rnnfast.RNN against nn.RNN and the token op against the reference loop, in
float32, at sizes whose products are large enough for oneDNN to take them (blas.h) and at sizes
small_gemm's AVX-512 kernel takes (up to H = 256), forward and every gradient. Prints "ok" when
all agree; an assertion names what did not."""
import sys

import torch

import rnnfast
from rnnfast import reference

from support.helpers import assert_matches, make_inputs
from support.rnn_cases import Case, build, gradients, outputs


def rnn_cases():
    # B 136 > 128 rows: the one-task rule for a large weight; H 512 and 256 on either side of it;
    # bidirectional and packed: transposed and strided slices go to oneDNN as well.
    yield Case(64, 512, 2, "tanh", True, False, 0.0, "padded", True, 3, 136)
    yield Case(256, 256, 1, "tanh", True, True, 0.0, "packed_unsorted", False, 6, 72)
    # Both directions in one task at H 512, with packed rows that stop early and a given hx.
    yield Case(32, 512, 1, "tanh", True, True, 0.0, "packed_sorted", True, 4, 20)
    # Time-major rows in both directions at H 512: each dW_hh is one product after the walks,
    # the reverse one pairing each step with the next, and both add the hx term.
    yield Case(48, 512, 1, "relu", True, True, 0.0, "padded", True, 3, 24)
    # small_gemm's AVX-512 strips of 64, 32 and 16 columns, and a last block of fewer than 6 rows.
    yield Case(40, 176, 2, "tanh", True, False, 0.0, "batch_first", True, 5, 13)
    # Where BLAS multiplies (RNNFAST_CPU_GEMM=blas, or auto where it keeps BLAS), walks of 8 steps
    # and more pack W_hh once (step_gemm.h): on 2 threads, two tasks of 128 rows whose packed
    # rows stop early (each step's product of its own number of rows), and one task per direction.
    yield Case(32, 512, 1, "tanh", True, False, 0.0, "packed_sorted", True, 10, 256)
    yield Case(24, 512, 1, "relu", True, True, 0.0, "padded", True, 9, 16)


def one_thread_cases():
    # The packed products on one thread: one task of all rows, both layers and directions.
    yield Case(12, 520, 2, "tanh", True, True, 0.0, "batch_first", True, 9, 11)


def check_rnn(case) -> None:
    built = build(case, torch.float32)
    out_o, h_o = outputs(built.ours, built, 0)
    out_t, h_t = outputs(built.theirs, built, 0)
    assert_matches(out_o, out_t, torch.float32, f"{case} output")
    assert_matches(h_o, h_t, torch.float32, f"{case} h_n")
    g = torch.randn_like(out_t)
    for i, (a, b) in enumerate(zip(gradients(built, built.ours, out_o, h_o, g, h_o * 0 + 1),
                                   gradients(built, built.theirs, out_t, h_t, g, h_t * 0 + 1))):
        assert_matches(a, b, torch.float32, f"{case} gradient {i}")


def main() -> int:
    torch.manual_seed(0)
    for case in rnn_cases():
        check_rnn(case)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for case in one_thread_cases():
        check_rnn(case)
    torch.set_num_threads(threads)
    # An empty batch at H 512: one task of no rows, forward and backward.
    ours = rnnfast.RNN(8, 512, bidirectional=True)
    x = torch.randn(3, 0, 8, requires_grad=True)
    out, h_n = ours(x)
    (out.sum() + h_n.sum()).backward()
    assert out.shape == (3, 0, 1024) and h_n.shape == (2, 0, 512) and x.grad.shape == x.shape
    # (64, 10, 512): on 2 threads two tasks of 32 rows, multiplying by a packed W where BLAS
    # runs them.
    for B, T, H in ((136, 4, 512), (13, 6, 144), (64, 10, 512)):
        tokens, emb, w, b, h0 = make_inputs(B, T, H, 30, dtype=torch.float32, avoid_ties=True)
        got, want = rnnfast.elman_rnn(tokens, emb, w, b, h0)[0], reference.elman_rnn(
            tokens, emb, w, b, h0)[0]
        assert_matches(got, want, torch.float32, f"elman_rnn H{H} hs")
        g = torch.randn_like(got)
        for i, (a, r) in enumerate(zip(torch.autograd.grad(got, (emb, w, b, h0), g),
                                       torch.autograd.grad(want, (emb, w, b, h0), g))):
            assert_matches(a, r, torch.float32, f"elman_rnn H{H} gradient {i}")
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
