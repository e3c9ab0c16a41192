"""Bad input gets a clear Python exception naming the argument, in eager and compiled code.

The calls and what each must do are bad_calls.py's table, the one that test_hostile.py runs in
child processes. Here every case runs in this process, and every raw-op call that is refused
from metadata alone runs again while tracing (FakeTensorMode, torch.compile), where the op's C++
Meta kernel must refuse it with the eager kernel's very message: the checks exist once, in
csrc/checks.cpp.
"""
import builtins

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from support import bad_calls

CASES = bad_calls.all_cases(selftest=False)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.name for c in CASES])
def test_eager(index):
    case = CASES[index]
    why = bad_calls.check(case, bad_calls.run(case))
    assert why is None, why


TRACED = [c for c in bad_calls.op_calls() if c.traceable]


def _eager_error(call: bad_calls.OpCall) -> Exception:
    with pytest.raises(getattr(builtins, call.raises), match=call.match) as eager:
        call.call()
    return eager.value


def test_every_op_has_traced_cases():
    assert {c.op for c in TRACED} == {"elman_rnn", "elman_rnn_backward", "lm_head_loss",
                                      "lm_head_loss_backward"}


@pytest.mark.parametrize("call", TRACED, ids=[c.name for c in TRACED])
def test_fake_tensor_errors(call):
    """The Meta kernel (what torch.compile and torch.export trace with) refuses the same input
    as the eager kernel, with the same exception type and the same message."""
    eager = _eager_error(call)
    args = call.args()
    with FakeTensorMode() as mode:
        fake = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
        with pytest.raises(type(eager), match=call.match) as traced:
            getattr(torch.ops.rnnfast, call.op)(*fake)
    assert str(traced.value) == str(eager)


@pytest.mark.parametrize("call", TRACED, ids=[c.name for c in TRACED])
def test_compiled_errors(call):
    """A compiled graph refuses the input while compiling, with the eager exception and message
    (which Dynamo reports inside its own error). Static shapes: with dynamic ones, a size in the
    message would be printed as a symbol (test_export_* below covers symbolic sizes)."""
    eager = _eager_error(call)
    op = getattr(torch.ops.rnnfast, call.op)
    torch._dynamo.reset()
    compiled = torch.compile(lambda *args: op(*args), fullgraph=True, backend="eager",
                             dynamic=False)
    with pytest.raises(Exception) as traced:
        compiled(*call.args())
    assert repr(eager) in str(traced.value)


class _TokenModel(torch.nn.Module):
    """Both token ops as a model's forward runs them: the recurrence, then the head's loss."""

    def __init__(self, bias: torch.Tensor):
        super().__init__()
        args = bad_calls.good_forward()
        for name, value in (("emb", args["emb_weight"]), ("weight", args["weight"]),
                            ("bias", bias), ("head", torch.randn(bad_calls.V, bad_calls.H)),
                            ("head_bias", torch.zeros(bad_calls.V))):
            self.register_buffer(name, value)

    def forward(self, tokens, h0, targets):
        hs = torch.ops.rnnfast.elman_rnn(tokens, self.emb, self.weight, self.bias, h0)
        loss, logits = torch.ops.rnnfast.lm_head_loss(hs.reshape(-1, hs.shape[-1]), self.head,
                                                      self.head_bias, targets.reshape(-1))
        return loss, logits, hs


def _export(model, B, T):
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, bad_calls.V, (B, T), generator=g)
    targets = torch.randint(0, bad_calls.V, (B, T), generator=g)
    h0 = torch.zeros(B, bad_calls.H)
    batch, seq = torch.export.Dim("batch", min=2), torch.export.Dim("seq", min=2)
    return torch.export.export(model, (tokens, h0, targets),
                               dynamic_shapes=({0: batch, 1: seq}, {0: batch}, {0: batch, 1: seq}))


def test_export_with_a_dynamic_batch_and_seq_len_runs_at_other_sizes():
    """The Meta kernels compute every output's metadata on symbolic sizes (batch and seq_len
    dynamic here, so the head's rows are batch * seq_len)."""
    model = _TokenModel(bad_calls.good_forward()["bias"])
    program = _export(model, 3, 4).module()
    for B, T in ((3, 4), (5, 2), (2, 7)):
        g = torch.Generator().manual_seed(B * 10 + T)
        tokens = torch.randint(0, bad_calls.V, (B, T), generator=g)
        targets = torch.randint(0, bad_calls.V, (B, T), generator=g)
        h0 = torch.randn(B, bad_calls.H, generator=g)
        got, want = program(tokens, h0, targets), model(tokens, h0, targets)
        assert got[1].shape == (B * T, bad_calls.V) and got[1].stride() == (1, B * T)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b)


def test_export_with_dynamic_sizes_refuses_a_bad_shape_with_the_eager_message():
    model = _TokenModel(torch.zeros(bad_calls.H + 1))
    eager = r"rnnfast.elman_rnn: bias must have shape \(hidden_size,\) = \(5,\), got \(6,\)"
    with pytest.raises(ValueError, match=eager):
        model(*(torch.zeros(3, 4, dtype=torch.long), torch.zeros(3, bad_calls.H),
                torch.zeros(3, 4, dtype=torch.long)))
    with pytest.raises(Exception, match=eager):
        _export(model, 3, 4)


def _fake_on(mode, shape, dtype, device):
    from torch._subclasses.fake_tensor import FakeTensor
    return FakeTensor(mode, torch.empty(shape, dtype=dtype, device="meta"), torch.device(device))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_traced_cuda_calls_follow_the_cuda_kernels_rules(dtype):
    """While tracing, the Meta kernels see FakeTensors as meta tensors; the checks still apply
    the rules of the device each one stands for (FakeTensors of CUDA tensors can be made without
    a GPU): the CUDA kernels take 16-bit floats, the CPU kernel does not, and lm_head_loss has
    no CUDA kernel. (The traced message names the device without its index: "cuda".)"""
    B, T, H, V = 3, 4, 5, 6
    mode = FakeTensorMode()
    with mode:
        def on(device, shape, dtype=dtype):
            return _fake_on(mode, shape, dtype, device)
        tokens = on("cuda:0", (B, T), torch.int64)
        hs = torch.ops.rnnfast.elman_rnn(tokens, on("cuda:0", (V, H)), on("cuda:0", (H, H)),
                                         on("cuda:0", (H,)), None)
        assert (hs.shape, hs.dtype, hs.device) == ((B, T, H), dtype, torch.device("cuda:0"))
        grads = torch.ops.rnnfast.elman_rnn_backward(on("cuda:0", (B, T, H)), tokens,
                                                     on("cuda:0", (V, H)), on("cuda:0", (H, H)),
                                                     hs, None)
        assert [g.shape for g in grads] == [(V, H), (H, H), (H,), (B, H)]
        with pytest.raises(TypeError, match="emb_weight must be torch.float32 or torch.float64, "
                                            f"got {dtype}"):
            torch.ops.rnnfast.elman_rnn(on("cpu", (B, T), torch.int64), on("cpu", (V, H)),
                                        on("cpu", (H, H)), on("cpu", (H,)), None)
        with pytest.raises(ValueError, match=r"tokens must be on the same device as emb_weight "
                                             r"\(cuda\), got cpu"):
            torch.ops.rnnfast.elman_rnn(on("cpu", (B, T), torch.int64), on("cuda:0", (V, H)),
                                        on("cuda:0", (H, H)), on("cuda:0", (H,)), None)
        f32 = torch.float32
        with pytest.raises(ValueError, match="hidden must be a CPU tensor, got one on cuda "):
            torch.ops.rnnfast.lm_head_loss(on("cuda:0", (6, H), f32), on("cuda:0", (V, H), f32),
                                           on("cuda:0", (V,), f32),
                                           on("cuda:0", (6,), torch.int64))
