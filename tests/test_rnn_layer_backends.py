"""rnnfast::rnn_layer (one nn.RNN layer, one or both directions) on each backend against
torch.nn.RNN itself: the CPU op, the CUDA op (on a GPU), and the CUDA op's host code and kernels
on the CPU emulator (csrc/cuda/layer_loops.cpp and layer_kernels.cu, through
tests/cuda_emulator/harness.py). One test body for all of them over one table of layers.

Tolerances (support/helpers.py): float64 against nn.RNN in float64 within 1e-10, forward and
every gradient. Below float64 the states are held to nn.RNN's float64 states at the dtype's
tolerance, and the gradients to the float64 CPU backward run on the backend's own states and
the same rounded inputs: a ReLU pre-activation within rounding of 0 may land on either side of
the kink, and one flipped mask moves a gradient by far more than rounding does. 16-bit dtypes
run on the layers whose gradients sum enough terms (_sums_enough).
"""
import random
from dataclasses import dataclass
from typing import Optional, Tuple

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence

import rnnfast  # noqa: F401  (loads the library: torch.ops.rnnfast)

from support.helpers import assert_matches

ALL_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Layer:
    T: int
    B: int
    I: int
    H: int
    nonlinearity: str
    bias: bool
    bidirectional: bool
    inputs: str          # padded (T, B, I), batch_first (B, T, I), or packed
    with_hx: bool

    def __str__(self):
        return (f"T{self.T}-B{self.B}-I{self.I}-H{self.H}-{self.nonlinearity}"
                f"{'' if self.bias else '-nobias'}{'-bi' if self.bidirectional else ''}"
                f"-{self.inputs}{'-hx' if self.with_hx else ''}")


def _layers(n, seed):
    rng = random.Random(seed)
    inputs = ("padded", "batch_first", "packed")
    return [Layer(T=rng.choice([1, 2, 5, 9]), B=rng.choice([1, 3, 8]), I=rng.choice([1, 4, 13]),
                  H=rng.choice([1, 6, 17, 33]), nonlinearity=("tanh", "relu")[i % 2],
                  bias=rng.random() < 0.75, bidirectional=i % 4 >= 2, inputs=inputs[i % 3],
                  with_hx=rng.random() < 0.6) for i in range(n)]


# Each argument both ways, every layout; an empty batch; then random layers.
LAYERS = [
    Layer(6, 4, 5, 7, "tanh", True, True, "packed", True),   # rows join the reverse walk
    Layer(6, 4, 5, 7, "relu", True, False, "packed", False),  # rows end in the forward walk
    Layer(4, 3, 2, 5, "relu", False, True, "batch_first", True),
    Layer(3, 0, 2, 4, "tanh", True, True, "padded", False),   # an empty batch
] + _layers(10, seed=11)


class Backend:
    name = "cpu"
    dtypes: Tuple[torch.dtype, ...] = (torch.float64, torch.float32)
    marks: Tuple = ()

    def unavailable(self) -> Optional[str]:
        return None

    def bind(self, request) -> "Backend":
        return self

    def forward(self, *args):
        return torch.ops.rnnfast.rnn_layer(*args)

    def backward(self, *args):
        return torch.ops.rnnfast.rnn_layer_backward(*args)


class Cuda(Backend):
    """The CUDA op, its tensors moved there and its results back."""
    name = "cuda"
    dtypes = ALL_DTYPES

    def unavailable(self):
        if not torch.cuda.is_available():
            return "no CUDA GPU on this machine"
        # On a GPU, a build without the CUDA kernels is an error to see, not a case to skip.
        assert torch._C._dispatch_has_kernel_for_dispatch_key("rnnfast::rnn_layer", "CUDA"), \
            "a GPU is present but rnnfast was built without CUDA (no nvcc or CUDA_HOME?)"
        return None

    @staticmethod
    def _moved(args, device):
        def move(a):
            if isinstance(a, list):
                return [move(t) for t in a]
            return a.to(device) if isinstance(a, torch.Tensor) else a
        return [move(a) for a in args]

    def forward(self, x, weights, hx, batch_sizes, *rest):
        x, weights, hx = self._moved([x, weights, hx], "cuda")
        return self._moved(super().forward(x, weights, hx, batch_sizes, *rest), "cpu")

    def backward(self, g_out, g_h, x, weights, hx, batch_sizes, batch, out, *rest):
        g_out, g_h, x, weights, hx, out = self._moved([g_out, g_h, x, weights, hx, out], "cuda")
        d_x, d_w, d_hx = super().backward(g_out, g_h, x, weights, hx, batch_sizes, batch, out,
                                          *rest)
        return self._moved([d_x, d_w, d_hx], "cpu")


class Emulated(Backend):
    """The CUDA host code and kernels on the CPU emulator (conftest.py's emu fixture)."""
    name = "emulated"
    dtypes = ALL_DTYPES
    marks = (pytest.mark.emulated,)
    emu = None

    def bind(self, request):
        bound = Emulated()
        bound.emu = request.getfixturevalue("emu")
        return bound

    def forward(self, *args):
        return self.emu.rnn_layer(*args)

    def backward(self, *args):
        return self.emu.rnn_layer_backward(*args)


BACKENDS = [Backend(), Cuda(), Emulated()]


def _sums_enough(layer: Layer) -> bool:
    """Whether a 16-bit gradient's relative L2 error means something: with H = 1, or few rows,
    a weight's gradient is a handful of numbers, each the difference of a few rounded terms."""
    return layer.H >= 6 and layer.B * layer.T >= 8


def _params():
    for backend in BACKENDS:
        for dtype in backend.dtypes:
            for layer in LAYERS:
                if dtype in (torch.float16, torch.bfloat16) and not _sums_enough(layer):
                    continue
                yield pytest.param(backend, dtype, layer, marks=backend.marks,
                                   id=f"{backend.name}-{str(dtype)[6:]}-{layer}")


@dataclass
class Truth:
    args: tuple          # the op's arguments but the weights' dtype (float64)
    out: torch.Tensor    # nn.RNN's, in the op's layout (time-major or packed)
    h_n: torch.Tensor
    g_out: torch.Tensor  # the incoming gradients, in the op's layout
    g_h: torch.Tensor
    grads: list          # d input, d hx (when given), d of each weight in nn.RNN's order


def truth(layer: Layer) -> Truth:
    """nn.RNN's forward and gradients of <out, g_out> + <h_n, g_h>, in float64."""
    D = 2 if layer.bidirectional else 1
    ref = torch.nn.RNN(layer.I, layer.H, 1, nonlinearity=layer.nonlinearity, bias=layer.bias,
                       batch_first=layer.inputs == "batch_first",
                       bidirectional=layer.bidirectional).double()
    batch_sizes = None
    if layer.inputs == "packed":
        lengths = torch.randint(1, layer.T + 1, (layer.B,))
        lengths[0] = layer.T   # the longest is T
        batch_sizes = (lengths.unsqueeze(0) > torch.arange(layer.T).unsqueeze(1)).sum(1)
        x = torch.randn(int(batch_sizes.sum()), layer.I, dtype=torch.float64)
    elif layer.inputs == "batch_first":
        x = torch.randn(layer.B, layer.T, layer.I, dtype=torch.float64)
    else:
        x = torch.randn(layer.T, layer.B, layer.I, dtype=torch.float64)
    x.requires_grad_()
    hx = torch.randn(D, layer.B, layer.H, dtype=torch.float64, requires_grad=True) \
        if layer.with_hx else None
    out, h_n = ref(PackedSequence(x, batch_sizes) if batch_sizes is not None else x, hx)
    out = out.data if batch_sizes is not None else out
    if layer.inputs == "batch_first":
        out = out.transpose(0, 1)   # the op's output is time-major whatever the input
    g_out, g_h = torch.randn_like(out), torch.randn_like(h_n)
    wrt = [x] + ([hx] if hx is not None else []) + list(ref.parameters())
    grads = torch.autograd.grad((out * g_out).sum() + (h_n * g_h).sum(), wrt)
    weights = [w.detach() for w in ref._flat_weights]
    args = (x.detach(), weights, None if hx is None else hx.detach(), batch_sizes, layer.B,
            layer.nonlinearity, layer.inputs == "batch_first", layer.bidirectional)
    return Truth(args, out.detach(), h_n.detach(), g_out, g_h, list(grads))


def cast(args, dtype):
    def to(a):
        if isinstance(a, list):
            return [to(t) for t in a]
        return a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a
    return tuple(to(a) for a in args)


def flat_grads(d_x, d_w, d_hx, with_hx):
    return [d_x] + ([d_hx] if with_hx else []) + list(d_w)


@pytest.mark.parametrize("backend, dtype, layer", list(_params()))
def test_rnn_layer_matches_nn_rnn(request, seed, backend, dtype, layer):
    why = backend.unavailable()
    if why:
        pytest.skip(why)
    backend = backend.bind(request)
    want = truth(layer)
    args = cast(want.args, dtype)
    out, h_n = backend.forward(*args)
    assert out.dtype == dtype and out.shape == want.out.shape
    assert h_n.dtype == dtype and h_n.shape == want.h_n.shape
    assert_matches(out, want.out, dtype, "output", scale_atol=False)
    assert_matches(h_n, want.h_n, dtype, "h_n", scale_atol=False)

    g_out, g_h = want.g_out.to(dtype), want.g_h.to(dtype)
    got = flat_grads(*backend.backward(g_out, g_h, *args[:4], layer.B, out, *args[5:], True),
                     layer.with_hx)
    if dtype == torch.float64:
        expected = want.grads
    else:   # the float64 backward on the backend's own states and rounded inputs (see the
        # module's docstring)
        wide = cast(args, torch.float64)
        expected = flat_grads(*torch.ops.rnnfast.rnn_layer_backward(
            g_out.double(), g_h.double(), *wide[:4], layer.B, out.double(), *wide[5:], True),
            layer.with_hx)
    names = ["input"] + (["hx"] if layer.with_hx else []) + \
        [f"weight {k}" for k in range(len(got) - 1 - layer.with_hx)]
    for name, g, w in zip(names, got, expected):
        assert g.dtype == dtype, name
        assert_matches(g, w, dtype, name)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_rnn_layer_without_grad_input_or_incoming_gradients(request, seed, backend):
    """need_grad_input=False returns an empty grad_input and the same other gradients; a missing
    grad_output or grad_h_n counts as zeros."""
    why = backend.unavailable()
    if why:
        pytest.skip(why)
    backend = backend.bind(request)
    layer = Layer(5, 3, 4, 6, "tanh", True, True, "packed", True)
    want = truth(layer)
    out, _ = backend.forward(*want.args)
    rest = (*want.args[:4], layer.B, out, *want.args[5:])
    d_x, d_w, d_hx = backend.backward(want.g_out, want.g_h, *rest, False)
    assert d_x.numel() == 0
    _, full_w, full_hx = backend.backward(want.g_out, want.g_h, *rest, True)
    for g, w in zip([*d_w, d_hx], [*full_w, full_hx]):
        assert_matches(g, w, torch.float64)
    for g_out, g_h in ((None, want.g_h), (want.g_out, None)):
        got = flat_grads(*backend.backward(g_out, g_h, *rest, True), True)
        zeros = (torch.zeros_like(want.g_out) if g_out is None else g_out,
                 torch.zeros_like(want.g_h) if g_h is None else g_h)
        expected = flat_grads(*torch.ops.rnnfast.rnn_layer_backward(*zeros, *rest, True), True)
        for g, w in zip(got, expected):
            assert_matches(g, w, torch.float64)
