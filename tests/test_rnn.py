"""rnnfast.RNN against torch.nn.RNN itself: parameters, forward and every gradient over many
random configurations, and the integrations (gradcheck, opcheck, compile, export, TorchScript,
autocast, errors).

Tolerances: float64 within 1e-10 (the same arithmetic up to summation order); float32 within
rtol = atol = 1e-4, the absolute part relative to the largest entry (helpers.assert_matches),
with inputs redrawn where a ReLU pre-activation lies within 1e-4 of 0 (float32 rounding can put
such a state on either side of the kink in either implementation).
"""
import copy
import dataclasses

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import rnnfast

from support.helpers import assert_matches
from support.rnn_cases import Case, build, gradients, near_relu_kink, outputs, random_cases

CASES = random_cases(60)


def compare(case: Case, dtype, seed: int, device: str = "cpu") -> None:
    """rnnfast.RNN on `device` against nn.RNN on the CPU, in dtype."""
    for _ in range(20):
        built = build(case, dtype)
        if dtype == torch.float64 or not near_relu_kink(built):
            break
    theirs = built.theirs
    out_t, h_t = outputs(theirs, built, seed)
    ours = built.ours.to(device)
    # The same leaves, moved differentiably: gradients reach built.leaf and built.hx.
    moved = dataclasses.replace(built, input=built.input.to(device),
                                hx=None if built.hx is None else built.hx.to(device))
    out_o, h_o = outputs(ours, moved, seed)
    assert out_o.device.type == device
    assert out_o.shape == out_t.shape and h_o.shape == h_t.shape
    if case.inputs in ("padded", "batch_first", "unbatched"):
        assert out_o.stride() == out_t.stride()       # nn.RNN's layout, batch_first included
    assert_matches(out_o.cpu(), out_t, dtype)
    assert_matches(h_o.cpu(), h_t, dtype)
    g_out, g_h = torch.randn_like(out_t), torch.randn_like(h_t)
    got = gradients(moved, ours, out_o, h_o, g_out.to(device), g_h.to(device))
    want = gradients(built, theirs, out_t, h_t, g_out, g_h)
    names = ["input"] + (["hx"] if built.hx is not None else []) + \
        [n for n, _ in theirs.named_parameters()]
    for name, g, w in zip(names, got, want):
        assert (g is None) == (w is None), name
        if w is not None:
            assert_matches(g.cpu(), w, dtype, name)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_nn_rnn_float64(seed, case):
    compare(case, torch.float64, seed)


@pytest.mark.parametrize("case", CASES[::3], ids=str)
def test_matches_nn_rnn_float32(seed, case):
    compare(case, torch.float32, seed)


# On a GPU: rnn_layer's CUDA kernels under the module (without dropout, whose masks the CUDA
# generator draws differently).
CUDA_CASES = [c for c in CASES if c.dropout == 0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("case", CUDA_CASES[::2], ids=str)
def test_matches_nn_rnn_on_cuda(seed, case, dtype, monkeypatch):
    assert rnnfast.rnn._CUDA_KERNELS, "rnnfast was built without CUDA: rnn_layer has no CUDA kernel"

    def torch_layers(*args):
        raise AssertionError("rnnfast.RNN ran torch's RNN kernels on CUDA, not rnn_layer's")
    monkeypatch.setattr(rnnfast.RNN, "_torch_layers", torch_layers)
    compare(case, dtype, seed, "cuda")


@pytest.mark.parametrize("case", CASES[::4], ids=str)
def test_torch_kernel_path_matches_nn_rnn(seed, case, monkeypatch):
    """The path taken on a device rnn_layer has no kernel for (CUDA in a CPU-only build), run on
    the CPU."""
    calls = []
    monkeypatch.setattr(rnnfast.rnn, "_runs_on_torch_kernels",
                        lambda x, cuda_kernels: calls.append(x) or True)
    compare(case, torch.float64, seed)
    assert calls, "the torch-kernel path was not taken"


@pytest.mark.parametrize("case", [c for c in CASES if c.dropout == 0][:6], ids=str)
def test_matches_nn_rnn_in_eval_mode(seed, case):
    built = build(case)
    built.ours.eval()
    built.theirs.eval()
    out_t, h_t = outputs(built.theirs, built, seed)
    out_o, h_o = outputs(built.ours, built, seed)
    assert_matches(out_o, out_t, torch.float64)
    g = torch.randn_like(out_t)
    for a, b in zip(gradients(built, built.ours, out_o, h_o, g, 0 * h_o),
                    gradients(built, built.theirs, out_t, h_t, g, 0 * h_t)):
        if b is not None:
            assert_matches(a, b, torch.float64)


def test_parameters_are_nn_rnns_names_shapes_order_and_initialisation(seed):
    for kw in (dict(num_layers=3, bidirectional=True), dict(num_layers=2, bias=False)):
        torch.manual_seed(seed)
        theirs = torch.nn.RNN(7, 5, **kw)
        torch.manual_seed(seed)
        ours = rnnfast.RNN(7, 5, **kw)
        assert [(n, p.shape) for n, p in ours.named_parameters()] == \
            [(n, p.shape) for n, p in theirs.named_parameters()]
        for (n, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters()):
            assert torch.equal(a, b), n
        assert ours._flat_weights_names == theirs._flat_weights_names
        assert ours._all_weights == theirs._all_weights
        assert [[p.shape for p in ps] for ps in ours.all_weights] == \
            [[p.shape for p in ps] for ps in theirs.all_weights]
        theirs.load_state_dict(ours.state_dict(), strict=True)
        ours.load_state_dict(theirs.state_dict(), strict=True)
        assert repr(ours).replace("rnnfast.RNN", "RNN") == repr(theirs)


def test_flat_weights_follow_to_and_assignment(seed):
    m = rnnfast.RNN(3, 4).double()
    assert all(w.dtype == torch.float64 for w in m._flat_weights)
    m.weight_hh_l0 = torch.nn.Parameter(torch.zeros(4, 4, dtype=torch.float64))
    assert m._flat_weights[1] is m.weight_hh_l0
    m.flatten_parameters()   # nothing to flatten; must not fail
    out, _ = m(torch.randn(2, 1, 3, dtype=torch.float64))
    assert out.dtype == torch.float64


def test_empty_batch_as_nn_rnn(seed):
    ours, theirs = rnnfast.RNN(3, 4, 2), torch.nn.RNN(3, 4, 2)
    x = torch.randn(5, 0, 3)
    (o1, h1), (o2, h2) = ours(x), theirs(x)
    assert o1.shape == o2.shape and h1.shape == h2.shape


@pytest.mark.parametrize("kw", [dict(), dict(nonlinearity="relu", bidirectional=True),
                                dict(num_layers=2, bias=False)], ids=str)
def test_gradcheck(seed, kw):
    m = rnnfast.RNN(3, 4, **kw).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    D = 2 if kw.get("bidirectional") else 1
    hx = torch.randn(kw.get("num_layers", 1) * D, 2, 4, dtype=torch.float64, requires_grad=True)
    params = list(m.parameters())

    def f(x, hx, *ws):
        return torch.func.functional_call(m, dict(zip([n for n, _ in m.named_parameters()], ws)),
                                          (x, hx))
    assert torch.autograd.gradcheck(f, (x, hx, *params))


def test_gradcheck_packed(seed):
    m = rnnfast.RNN(2, 3, bidirectional=True).double()
    x = torch.randn(4, 3, 2, dtype=torch.float64, requires_grad=True)

    def f(x, *ws):
        packed = pack_padded_sequence(x, torch.tensor([4, 2, 1]))
        out, h = torch.func.functional_call(
            m, dict(zip([n for n, _ in m.named_parameters()], ws)), (packed,))
        return out.data, h
    assert torch.autograd.gradcheck(f, (x, *m.parameters()))


def _layer_args(requires_grad, packed=False, bidirectional=True):
    m = rnnfast.RNN(4, 5, bidirectional=bidirectional)
    w = [p.detach().clone().requires_grad_(requires_grad) for p in m._flat_weights]
    hx = torch.randn(2 if bidirectional else 1, 3, 5, requires_grad=requires_grad)
    if packed:
        sizes = torch.tensor([3, 3, 2, 1])
        x = torch.randn(int(sizes.sum()), 4, requires_grad=requires_grad)
        return (x, w, hx, sizes, 3, "relu", False, bidirectional)
    x = torch.randn(3, 6, 4, requires_grad=requires_grad)
    return (x, w, hx, None, 3, "tanh", True, bidirectional)


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck_forward(seed, packed, requires_grad):
    torch.library.opcheck(torch.ops.rnnfast.rnn_layer.default,
                          _layer_args(requires_grad, packed))


def test_opcheck_backward(seed):
    args = _layer_args(False)
    out, h_n = torch.ops.rnnfast.rnn_layer(*args)
    x, w, hx, sizes, batch, nl, bf, bi = args
    torch.library.opcheck(torch.ops.rnnfast.rnn_layer_backward.default,
                          (torch.randn_like(out), torch.randn_like(h_n), x, w, hx, sizes, batch,
                           out, nl, bf, bi))


@pytest.mark.parametrize("need_grad_input", [True, False])
def test_opcheck_backward_with_and_without_grad_input(seed, need_grad_input):
    args = _layer_args(False)
    out, h_n = torch.ops.rnnfast.rnn_layer(*args)
    x, w, hx, sizes, batch, nl, bf, bi = args
    call = (torch.randn_like(out), torch.randn_like(h_n), x, w, hx, sizes, batch, out, nl, bf, bi,
            need_grad_input)
    torch.library.opcheck(torch.ops.rnnfast.rnn_layer_backward.default, call)
    d_x, d_w, d_hx = torch.ops.rnnfast.rnn_layer_backward(*call)
    full_x, full_w, full_hx = torch.ops.rnnfast.rnn_layer_backward(*call[:-1])
    assert d_x.shape == (x.shape if need_grad_input else (0,))
    for a, b in zip([*d_w, d_hx] + ([d_x] if need_grad_input else []), [*full_w, full_hx, full_x]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("kw", [dict(), dict(nonlinearity="relu", bidirectional=True),
                                dict(num_layers=2, batch_first=True)], ids=str)
def test_input_without_grad_matches_nn_rnn(seed, kw):
    """Data that takes no gradient (the backward skips dX): every other gradient as nn.RNN's."""
    theirs = torch.nn.RNN(3, 4, **kw).double()
    ours = rnnfast.RNN(3, 4, **kw).double()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(*((2, 5) if kw.get("batch_first") else (5, 2)), 3, dtype=torch.float64)
    D = 2 if kw.get("bidirectional") else 1
    hx = torch.randn(kw.get("num_layers", 1) * D, 2, 4, dtype=torch.float64, requires_grad=True)
    got, want = [], []
    for module, grads in ((ours, got), (theirs, want)):
        out, h_n = module(x, hx)
        g_out = torch.randn_like(out, generator=torch.Generator().manual_seed(1))
        grads += torch.autograd.grad((out * g_out).sum() + h_n.square().sum(),
                                     [hx, *module.parameters()])
    for name, a, b in zip(["hx"] + [n for n, _ in ours.named_parameters()], got, want):
        assert_matches(a, b, torch.float64, name)
    assert got[1].abs().sum() > 0


def test_double_backward_is_a_clear_error(seed):
    m = rnnfast.RNN(3, 4).double()
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    out, _ = m(x)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward .* is not supported"):
        g.sum().backward()


def test_compiled_training_step_matches_eager(seed):
    eager = rnnfast.RNN(4, 6, 2, batch_first=True, bidirectional=True)
    compiled_model = copy.deepcopy(eager)
    compiled = torch.compile(compiled_model, fullgraph=True)
    for model in (eager, compiled):
        torch.manual_seed(seed)
        x = torch.randn(3, 7, 4)
        out, h = model(x)
        (out.square().sum() + h.sum()).backward()
    for a, b in zip(compiled_model.parameters(), eager.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)


def test_export_with_dynamic_batch_and_length_and_torchscript(seed, tmp_path):
    m = rnnfast.RNN(4, 5, 2, nonlinearity="relu", batch_first=True).eval()
    batch, length = torch.export.Dim("batch", min=1), torch.export.Dim("length", min=1)
    program = torch.export.export(m, (torch.randn(3, 6, 4),),
                                  dynamic_shapes=({0: batch, 1: length},))
    scripted = torch.jit.script(m)
    scripted.save(str(tmp_path / "rnn.pt"))
    loaded = torch.jit.load(str(tmp_path / "rnn.pt"))
    for shape in ((3, 6, 4), (5, 2, 4), (1, 9, 4)):
        x = torch.randn(*shape)
        want = m(x)
        for got in (program.module()(x), scripted(x), loaded(x)):
            torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
            torch.testing.assert_close(got[1], want[1], rtol=0, atol=0)


def test_autocast_runs_in_float32(seed):
    m = rnnfast.RNN(4, 5)
    x = torch.randn(6, 2, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, h = m(x.bfloat16())
    assert out.dtype == torch.float32 and h.dtype == torch.float32
    want, _ = m(x.bfloat16().float())
    torch.testing.assert_close(out, want)
    out.sum().backward()
    assert m.weight_hh_l0.grad is not None


def _error(f):
    try:
        f()
    except Exception as e:  # noqa: BLE001 - compared below
        return type(e), str(e).split("\n")[0]
    return None


# Bad calls, each made on both classes: rnnfast.RNN must refuse them as nn.RNN does (the same
# exception type and message), naming the argument.
BAD_CALLS = {
    "input size": lambda cls: cls(4, 5)(torch.randn(3, 2, 6)),
    "4-D input": lambda cls: cls(4, 5)(torch.randn(3, 2, 4, 1)),
    "hx shape": lambda cls: cls(4, 5, 2)(torch.randn(3, 2, 4), torch.randn(2, 3, 5)),
    "2-D hx, batched input": lambda cls: cls(4, 5)(torch.randn(3, 2, 4), torch.randn(1, 5)),
    "3-D hx, unbatched input": lambda cls: cls(4, 5)(torch.randn(3, 4), torch.randn(1, 1, 5)),
    "input dtype": lambda cls: cls(4, 5)(torch.randn(3, 2, 4, dtype=torch.float64)),
    "integer input": lambda cls: cls(4, 5)(torch.ones(3, 2, 4, dtype=torch.long)),
    "empty sequence": lambda cls: cls(4, 5)(torch.randn(0, 2, 4)),
    "nonlinearity": lambda cls: cls(4, 5, nonlinearity="sigmoid"),
    "negative dropout": lambda cls: cls(4, 5, dropout=-0.1),
    "dropout above 1": lambda cls: cls(4, 5, dropout=2),
    "proj_size": lambda cls: cls(4, 5, proj_size=2),
    "num_layers 0": lambda cls: cls(4, 5, 0),
    "hidden_size 0": lambda cls: cls(4, 0),
    "hidden_size a float": lambda cls: cls(4, 5.0),
    "input_size 0": lambda cls: cls(0, 5),
    "bias not a bool": lambda cls: cls(4, 5, bias=1),
}


@pytest.mark.parametrize("what", BAD_CALLS)
def test_bad_input_is_refused_as_nn_rnn_refuses_it(what):
    ours, theirs = _error(lambda: BAD_CALLS[what](rnnfast.RNN)), \
        _error(lambda: BAD_CALLS[what](torch.nn.RNN))
    assert theirs is not None and ours == theirs


def test_bad_hx_dtype_and_non_tensors_name_the_argument():
    m = rnnfast.RNN(4, 5)
    with pytest.raises(ValueError, match="hx must have the same dtype as the weights"):
        m(torch.randn(3, 2, 4), torch.randn(1, 2, 5, dtype=torch.float64))
    with pytest.raises(TypeError, match="input must be a Tensor or a PackedSequence"):
        m([[1.0]])
    with pytest.raises(TypeError, match="hx must be a Tensor or None"):
        m(torch.randn(3, 2, 4), 0.5)


def test_bad_batch_sizes_are_refused():
    x, w, hx, _, _, _, _, bi = _layer_args(False, packed=True)
    op = torch.ops.rnnfast.rnn_layer
    for sizes, msg in (([3, 3, 4], "sorted longest first"), ([3, 3, 2, 2], "must sum to"),
                       ([2, 2, 2, 1], "sorted longest first")):
        n = sum(sizes)
        with pytest.raises(ValueError, match=msg):
            op(torch.randn(9 if msg == "must sum to" else n, 4), w, hx, torch.tensor(sizes), 3,
               "tanh", False, bi)
