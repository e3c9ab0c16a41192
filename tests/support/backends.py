"""The op's backends as small adapters, and the one table of shapes they run (test_backends.py).

A backend runs the op on given inputs: `run` as its users reach it (rnnfast.elman_rnn and
autograd; for the emulated kernels, their forward and backward launches as the CUDA op's host code
makes them), `forward_op` and `backward_op` the two raw ops. Each declares its dtypes and the
shapes it takes; one that cannot run on this machine says why (`unavailable`).
"""
import copy
import random
from typing import Dict, List, NamedTuple, Optional, Tuple

import pytest
import torch

import rnnfast
from cuda_emulator.harness import H200_SMS

ALL_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)

# Largest H the persistent CUDA kernels take per dtype on an H100/H200 (csrc/cuda/plan.cpp);
# forcing them beyond is an error (test_cuda.py).
PERSISTENT_MAX_H = {torch.float64: 160, torch.float32: 224, torch.float16: 320,
                    torch.bfloat16: 320}


def _random_shapes(n, seed):
    rng = random.Random(seed)
    return [(rng.randint(1, 40), rng.randint(1, 24), rng.choice([1, 5, 16, 31, 64, 65, 128, 160]),
             rng.randint(1, 40)) for _ in range(n)]


# (B, T, H, V), each row for a reason:
SHAPES = [
    (64, 16, 64, 30),    # the book's size
    (1, 1, 1, 1), (1, 7, 5, 3), (5, 1, 9, 2), (3, 4, 1, 6), (2, 3, 7, 1),    # dimensions at 1
    (3, 5, 2, 4), (17, 33, 13, 11), (8, 64, 31, 50), (33, 5, 128, 7),        # odd, long, wide
    # each hidden size of the CPU's small-H float32 kernel (16, 32, 48, 64), with a batch that
    # is no multiple of its row block
    (7, 5, 16, 9), (13, 3, 32, 4), (3, 6, 48, 5), (11, 4, 64, 3),
    # large weights (H >= 512: the CPU reads them transposed in place; too large for the
    # persistent CUDA kernels), enough rows for two CPU tasks in the last
    (3, 4, 512, 5), (2, 3, 600, 4), (260, 2, 520, 3), (2, 2, 520, 3),
    # the persistent CUDA kernels: a dot product split over 8, 4 and 2 lanes (and more than
    # 48 KiB of shared memory at H = 100); several rows per CTA (B > #SMs); several outputs per
    # thread group (B * H large); H near float64's largest (160); the step-wise path's H
    (4, 5, 64, 30), (7, 9, 33, 11), (5, 3, 100, 7), (2, 4, 128, 3), (20, 3, 100, 7),
    (300, 3, 16, 9), (3000, 2, 96, 13), (40, 6, 150, 13), (6, 4, 150, 13), (4, 3, 300, 5),
    (16, 8, 64, 30),
]
RANDOM_SHAPES = _random_shapes(6, seed=1234)


def _emulated_random(n, seed):
    """The emulated persistent kernels' random cases, each with the SM count it is planned for."""
    rng = random.Random(seed)
    return [((rng.randint(1, 12), rng.randint(1, 8), rng.choice([1, 5, 16, 31, 64, 65, 128]),
              rng.randint(1, 20)), rng.choice([1, 3, H200_SMS])) for _ in range(n)]


EMULATED_RANDOM = _emulated_random(4, seed=2024)
SHAPES += RANDOM_SHAPES + [s for s, _ in EMULATED_RANDOM if s not in SHAPES]


def token_dtype(shape) -> torch.dtype:
    """int32 tokens for every third row of SHAPES, int64 for the others."""
    return torch.int32 if SHAPES.index(shape) % 3 == 1 else torch.int64


class Result(NamedTuple):
    hs: torch.Tensor
    h_last: Optional[torch.Tensor]   # None where the backend has none (the emulated kernels)
    grads: Tuple[torch.Tensor, ...]  # d_emb, d_weight, d_bias, d_h0 (zeros without h0)


class Backend:
    """The CPU op; the other backends change what differs."""
    name = "cpu"
    device = "cpu"
    dtypes: Tuple[torch.dtype, ...] = (torch.float64, torch.float32)
    strided = True        # takes non-contiguous inputs
    marks: Tuple = ()

    def unavailable(self) -> Optional[str]:
        return None

    def speed(self, shape, dtype) -> Optional[str]:
        """"fast", "slow" (a case for -m slow), or None: not a shape it takes."""
        return "fast"

    def bind(self, request) -> "Backend":
        """Ready for one test (request: the test's pytest request)."""
        return self

    def forward_op(self, tokens, emb, w, b, h0):
        return torch.ops.rnnfast.elman_rnn(tokens, emb, w, b, h0)

    def backward_op(self, grad_hs, tokens, emb, w, hs, h0):
        return torch.ops.rnnfast.elman_rnn_backward(grad_hs, tokens, emb, w, hs, h0)

    def run(self, tokens, emb, w, b, h0, grad_hs) -> Result:
        # detach() keeps each input's layout (clone() would make a strided one contiguous).
        leaves = [None if t is None else t.detach().requires_grad_() for t in (emb, w, b, h0)]
        hs, h_last = rnnfast.elman_rnn(tokens, *leaves)
        grads = torch.autograd.grad(hs, [t for t in leaves if t is not None], grad_hs)
        if h0 is None:
            grads = (*grads, torch.zeros(tokens.shape[0], emb.shape[1], dtype=emb.dtype,
                                         device=emb.device))
        return Result(hs.detach(), h_last.detach(), tuple(grads))


class Cuda(Backend):
    """The CUDA op, its path chosen by size ("auto") or forced (RNNFAST_CUDA_KERNEL)."""
    device = "cuda"
    dtypes = ALL_DTYPES

    def __init__(self, kernel: str):
        self.kernel = kernel
        self.name = "cuda" if kernel == "auto" else f"cuda-{kernel}"

    def unavailable(self):
        return None if torch.cuda.is_available() else "no CUDA GPU on this machine"

    def speed(self, shape, dtype):
        if self.kernel == "persistent" and shape[2] > PERSISTENT_MAX_H[dtype]:
            return None
        return "fast"

    def bind(self, request):
        request.getfixturevalue("monkeypatch").setenv("RNNFAST_CUDA_KERNEL", self.kernel)
        return self


class Emulated(Backend):
    """The CUDA kernels' sources on the CPU emulator (tests/cuda_emulator/harness.py), on one
    path; the persistent one planned for `sms` SMs. The emulator is slow (a context switch per
    thread and barrier): each declares its few small shapes, and larger ones for -m slow."""
    dtypes = ALL_DTYPES
    strided = False       # the kernels take contiguous host tensors, as the host code makes them
    marks = (pytest.mark.emulated,)

    def __init__(self, path: str, shapes, sms: int = H200_SMS, slow=(),
                 slow_dtypes=(torch.float32, torch.bfloat16)):
        self.path, self.sms, self.shapes = path, sms, list(shapes)
        self.slow, self.slow_dtypes = list(slow), slow_dtypes
        self.name = f"emulated-{path}" + ("" if sms == H200_SMS else f"-{sms}sm")
        self.emu = None

    def speed(self, shape, dtype):
        if shape in self.shapes:
            return "fast"
        if shape in self.slow and dtype in self.slow_dtypes:
            return "slow"
        return None

    def bind(self, request):
        return self.on(request.getfixturevalue("emu"))

    def on(self, emu) -> "Emulated":
        """This backend on `emu` (conftest.py's emu fixture: a harness.EmulatedCuda)."""
        bound = copy.copy(self)
        bound.emu = emu
        return bound

    def _plan(self, tokens, emb):
        """The persistent launch plan, or None for the step-wise path."""
        if self.path == "stepwise":
            return None
        plan = self.emu.plan(tokens.shape[0], emb.shape[1], emb.dtype, sms=self.sms)
        assert plan is not None, "no persistent plan"
        return plan

    def forward_op(self, tokens, emb, w, b, h0):
        return self.emu.forward(self._plan(tokens, emb), tokens, emb, w, b, h0)

    def backward_op(self, grad_hs, tokens, emb, w, hs, h0):
        return self.emu.backward(self._plan(tokens, emb), grad_hs, tokens, emb, w, hs, h0)

    def run(self, tokens, emb, w, b, h0, grad_hs):
        hs = self.forward_op(tokens, emb, w, b, h0)
        return Result(hs, None, tuple(self.backward_op(grad_hs, tokens, emb, w, hs, h0)))


# The emulated persistent kernels, planned for an H200 and for 1 or 3 SMs (several batch rows
# in a CTA, several outputs on a thread group).
EMULATED_PERSISTENT: Dict[int, List[Tuple[int, int, int, int]]] = {
    1: [(64, 16, 64, 30),      # the book's size: 32 rows per CTA, 4 outputs per thread
        (20, 3, 100, 7)],      # 2000 outputs on 512 threads: 4 each
    3: [(64, 16, 64, 30),      # 22, 22 and 20 rows, 3 outputs per thread
        (7, 9, 33, 11)],       # 3, 3 and 1 rows, 4 lanes per dot product
    H200_SMS: [(4, 5, 64, 30),     # each dot product split over 8 lanes
               (1, 1, 1, 1), (3, 5, 2, 4),
               (5, 3, 100, 7),     # 4 lanes; more than 48 KiB of shared memory
               (2, 4, 128, 3),     # 2 lanes
               (300, 3, 16, 9),    # 3 rows per CTA on 132 SMs, 100 CTAs
               (6, 4, 150, 13)],   # near float64's largest H (160)
}
for _shape, _sms in EMULATED_RANDOM:
    EMULATED_PERSISTENT[_sms].append(_shape)
# Larger launches as an H200 runs them (seconds each, -m slow): the book's size on 64 CTAs of
# 512 threads, and the largest persistent shapes of the CUDA backends.
EMULATED_SLOW = [(64, 16, 64, 30), (3000, 2, 96, 13), (40, 6, 150, 13)]
# The step-wise path: one thread per (row, unit), 256 per CTA (4 CTAs at 16 x 64); H up to
# what the persistent kernels cannot take.
EMULATED_STEPWISE = [(16, 8, 64, 30), (3, 5, 2, 4), (7, 9, 33, 11), (4, 3, 300, 5),
                     (2, 2, 520, 3)]

BACKENDS: List[Backend] = [
    Backend(), Cuda("auto"), Cuda("persistent"), Cuda("stepwise"),
    Emulated("persistent", EMULATED_PERSISTENT[H200_SMS], slow=EMULATED_SLOW),
    Emulated("persistent", EMULATED_PERSISTENT[1], sms=1),
    Emulated("persistent", EMULATED_PERSISTENT[3], sms=3),
    Emulated("stepwise", EMULATED_STEPWISE),
]
BY_NAME = {b.name: b for b in BACKENDS}
assert all(s in SHAPES for b in BACKENDS if isinstance(b, Emulated) for s in b.shapes + b.slow)
