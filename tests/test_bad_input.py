"""Bad input gets a clear Python exception naming the argument, in eager and compiled code."""
import pytest
import torch

import rnnfast

from helpers import make_inputs

B, T, H, V = 3, 4, 5, 6


def good():
    tokens, emb, w, b, h0 = make_inputs(B, T, H, V, dtype=torch.float32, requires_grad=False)
    return dict(tokens=tokens, emb_weight=emb, weight=w, bias=b, h0=h0)


def replace(**changes):
    args = good()
    args.update(changes)
    return args


CASES = [
    # (description, arguments, exception, message fragment)
    ("token id < 0", replace(tokens=torch.tensor([[0, 1, -1, 2]] * B)), IndexError,
     r"tokens must lie in \[0, vocab_size\) = \[0, 6\), found -1 at position \(0, 2\)"),
    ("token id == V", replace(tokens=torch.full((B, T), V)), IndexError, "found 6"),
    ("token id int64 max", replace(tokens=torch.full((B, T), 2**63 - 1)), IndexError,
     "tokens must lie in"),
    ("token id int64 min", replace(tokens=torch.full((B, T), -2**63)), IndexError,
     "tokens must lie in"),
    ("token id int32 max", replace(tokens=torch.full((B, T), 2**31 - 1, dtype=torch.int32)),
     IndexError, "tokens must lie in"),
    ("float tokens", replace(tokens=torch.zeros(B, T)), TypeError,
     "tokens must be an integer tensor of dtype torch.int64 or torch.int32, got torch.float32"),
    ("bool tokens", replace(tokens=torch.zeros(B, T, dtype=torch.bool)), TypeError,
     "tokens must be an integer tensor"),
    ("1-d tokens", replace(tokens=torch.zeros(T, dtype=torch.long)), ValueError,
     r"tokens must have shape \(batch, seq_len\), got \(4,\)"),
    ("3-d tokens", replace(tokens=torch.zeros(B, T, 1, dtype=torch.long)), ValueError,
     "tokens must have shape"),
    ("empty batch", replace(tokens=torch.zeros(0, T, dtype=torch.long), h0=None), ValueError,
     "at least one batch row and one time step"),
    ("empty sequence", replace(tokens=torch.zeros(B, 0, dtype=torch.long)), ValueError,
     "at least one batch row and one time step"),
    ("integer embedding", replace(emb_weight=torch.zeros(V, H, dtype=torch.long)), TypeError,
     "emb_weight must be torch.float32 or torch.float64, got torch.int64"),
    ("half embedding", replace(emb_weight=torch.zeros(V, H, dtype=torch.half)), TypeError,
     "emb_weight must be torch.float32 or torch.float64"),
    ("1-d embedding", replace(emb_weight=torch.zeros(V)), ValueError,
     r"emb_weight must have shape \(vocab_size, hidden_size\)"),
    ("weight H mismatch", replace(weight=torch.zeros(H + 1, H + 1)), ValueError,
     r"weight must have shape \(hidden_size, hidden_size\) = \(5, 5\)"),
    ("weight not square", replace(weight=torch.zeros(H, H + 1)), ValueError,
     "weight must have shape"),
    ("bias H mismatch", replace(bias=torch.zeros(H + 1)), ValueError,
     r"bias must have shape \(hidden_size,\) = \(5,\), got \(6,\)"),
    ("bias 2-d", replace(bias=torch.zeros(1, H)), ValueError, "bias must have shape"),
    ("h0 wrong batch", replace(h0=torch.zeros(B + 1, H)), ValueError,
     r"h0 must have shape \(batch, hidden_size\) = \(3, 5\), got \(4, 5\)"),
    ("h0 1-d", replace(h0=torch.zeros(H)), ValueError, "h0 must have shape"),
    ("mixed dtypes: weight", replace(weight=torch.zeros(H, H, dtype=torch.float64)), TypeError,
     r"weight must have the same dtype as emb_weight \(torch.float32\), got torch.float64"),
    ("mixed dtypes: bias", replace(bias=torch.zeros(H, dtype=torch.float64)), TypeError,
     "bias must have the same dtype as emb_weight"),
    ("mixed dtypes: h0", replace(h0=torch.zeros(B, H, dtype=torch.float64)), TypeError,
     "h0 must have the same dtype as emb_weight"),
]


@pytest.mark.parametrize("desc,args,exc,match", CASES, ids=[c[0] for c in CASES])
def test_eager_errors(desc, args, exc, match):
    with pytest.raises(exc, match=match):
        rnnfast.elman_rnn(**args)


SHAPE_CASES = [c for c in CASES if c[2] is not IndexError]


@pytest.mark.parametrize("desc,args,exc,match", SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
def test_fake_kernel_errors(desc, args, exc, match):
    """The fake kernel (used by torch.compile and export) refuses the same inputs, with the
    eager kernel's very message."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    with pytest.raises(exc) as eager:
        torch.ops.rnnfast.elman_rnn(args["tokens"], args["emb_weight"], args["weight"],
                                    args["bias"], args["h0"])
    with FakeTensorMode() as mode:
        fake = {k: (mode.from_tensor(v) if v is not None else None) for k, v in args.items()}
        with pytest.raises(exc, match=match) as compiled:
            torch.ops.rnnfast.elman_rnn(fake["tokens"], fake["emb_weight"], fake["weight"],
                                        fake["bias"], fake["h0"])
    assert str(compiled.value) == str(eager.value)


@pytest.mark.parametrize("name", ["tokens", "weight", "bias", "h0"])
def test_different_devices(name):
    """A tensor on another device than emb_weight is refused by name (meta stands in for a
    second device on a CPU-only machine)."""
    args = good()
    args[name] = args[name].to("meta")
    with pytest.raises(ValueError, match=f"{name} must be on the same device as emb_weight"):
        rnnfast.elman_rnn(**args)


def test_bad_tokens_in_backward_op():
    args = good()
    hs = torch.ops.rnnfast.elman_rnn(*args.values())
    bad = args["tokens"].clone()
    bad[1, 1] = V
    with pytest.raises(IndexError, match=r"found 6 at position \(1, 1\)"):
        torch.ops.rnnfast.elman_rnn_backward(torch.ones_like(hs), bad, args["emb_weight"],
                                             args["weight"], hs, args["h0"])


def test_backward_op_shape_errors():
    args = good()
    hs = torch.ops.rnnfast.elman_rnn(*args.values())
    with pytest.raises(ValueError, match=r"grad_hs must have shape \(batch, seq_len, hidden"):
        torch.ops.rnnfast.elman_rnn_backward(hs[:, :-1], args["tokens"], args["emb_weight"],
                                             args["weight"], hs, args["h0"])
    with pytest.raises(ValueError, match=r"hs must have shape"):
        torch.ops.rnnfast.elman_rnn_backward(hs, args["tokens"], args["emb_weight"],
                                             args["weight"], hs[:1], args["h0"])


def test_model_with_out_of_range_token():
    model = rnnfast.LMModel4(V, H)
    with pytest.raises(IndexError, match="tokens must lie in"):
        model(torch.full((2, 16), V))


@pytest.mark.parametrize("shape", [(0, H), (V, 0)])
def test_empty_embedding(shape):
    args = replace(emb_weight=torch.zeros(shape))
    with pytest.raises(ValueError, match="emb_weight must have shape"):
        rnnfast.elman_rnn(**args)
