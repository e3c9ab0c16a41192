"""The one table of bad (and documented edge-case) calls of every public function, op and module.

Each case is a call and what must happen: an exception of a given type whose message matches a
pattern (naming the argument and what was expected), or a normal return (a documented result;
the call itself asserts on what it got). The table is the contract docs/inputs.md states.

Three runners read it:
  * test_bad_input.py runs every case in the test process (eager), and every raw-op case whose
    refusal needs no data (op_calls(), traceable) again under FakeTensorMode and torch.compile,
    where the op's C++ Meta kernel must refuse it with the eager message;
  * test_hostile.py runs every case in child processes (hostile_cases.py is the child), so that
    a crash, an abort or a hang fails the case that caused it instead of the test run;
  * .ci/sanitize.sh runs both under AddressSanitizer and UBSan.
"""
import os
import re
import signal
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch

import rnnfast
from rnnfast import reference

B, T, H, V = 3, 4, 5, 6
I64_MAX, I64_MIN, I32_MAX, I32_MIN = 2**63 - 1, -2**63, 2**31 - 1, -2**31
FORWARD_ARGS = ("tokens", "emb_weight", "weight", "bias", "h0")
BACKWARD_ARGS = ("grad_hs", "tokens", "emb_weight", "weight", "hs", "h0")


@dataclass
class Hostile:
    name: str
    call: Callable[[], object]
    raises: Optional[str] = None    # exception class name; None: must return normally
    match: str = ""                 # regex the message must contain


def good_forward() -> Dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return dict(tokens=torch.randint(0, V, (B, T), generator=g),
                emb_weight=torch.randn(V, H, generator=g),
                weight=torch.randn(H, H, generator=g) / H ** 0.5,
                bias=torch.randn(H, generator=g) * 0.1,
                h0=torch.randn(B, H, generator=g).relu())


def good_backward() -> Dict[str, torch.Tensor]:
    f = good_forward()
    hs = torch.ops.rnnfast.elman_rnn(*f.values())
    return dict(grad_hs=torch.ones_like(hs), tokens=f["tokens"], emb_weight=f["emb_weight"],
                weight=f["weight"], hs=hs, h0=f["h0"])


def _tokens_with(value, at=(1, 2), dtype=torch.int64):
    t = good_forward()["tokens"].to(dtype)
    t[at] = value
    return t


def _huge_expanded(rows, cols, dtype=torch.float32):
    # stride-0 views: no memory until someone makes them contiguous (8 PiB and more)
    return torch.zeros(1, 1, dtype=dtype).expand(rows, cols)


def _without_h0(args, tokens):
    args["h0"] = None  # else h0's batch size is refused first
    return tokens


def _huge_tokens(args):
    return _without_h0(args, _huge_expanded(2**50, T, torch.int64))


OTHER_DEVICE = "meta"  # stands in for a second device on a CPU-only machine
R_TOK_DTYPE = r"tokens must be an integer tensor of dtype torch.int64 or torch.int32, got "
R_RANGE = r"tokens must lie in \[0, vocab_size\) = \[0, 6\), found "
R_ALLOC = r"can't allocate memory"

# (argument, what is wrong, replacement factory, exception, message pattern), shared by the
# forward function and the forward op.
FORWARD_MUTATIONS = [
    # tokens: dtype
    ("tokens", "float32", lambda a: a["tokens"].float(), "TypeError",
     R_TOK_DTYPE + "torch.float32"),
    ("tokens", "float64 requiring grad", lambda a: a["tokens"].double().requires_grad_(),
     "TypeError", R_TOK_DTYPE + "torch.float64"),
    ("tokens", "bool", lambda a: a["tokens"].bool(), "TypeError", R_TOK_DTYPE + "torch.bool"),
    ("tokens", "int16", lambda a: a["tokens"].short(), "TypeError", R_TOK_DTYPE + "torch.int16"),
    ("tokens", "int8", lambda a: a["tokens"].to(torch.int8), "TypeError", R_TOK_DTYPE),
    ("tokens", "uint8", lambda a: a["tokens"].byte(), "TypeError", R_TOK_DTYPE + "torch.uint8"),
    # tokens: rank and size
    ("tokens", "0-d", lambda a: torch.tensor(1), "ValueError",
     r"tokens must have shape \(batch, seq_len\), got \(\)"),
    ("tokens", "1-d", lambda a: a["tokens"][0], "ValueError",
     r"tokens must have shape \(batch, seq_len\), got \(4,\)"),
    ("tokens", "3-d", lambda a: a["tokens"][..., None], "ValueError",
     r"tokens must have shape \(batch, seq_len\), got \(3, 4, 1\)"),
    ("tokens", "empty batch", lambda a: a["tokens"][:0], "ValueError",
     r"tokens must hold at least one batch row and one time step, got shape \(0, 4\)"),
    ("tokens", "empty sequence", lambda a: a["tokens"][:, :0], "ValueError",
     r"tokens must hold at least one batch row and one time step, got shape \(3, 0\)"),
    ("tokens", "empty batch (h0 None)", lambda a: _without_h0(a, a["tokens"][:0]), "ValueError",
     "at least one batch row and one time step"),
    ("tokens", "empty both", lambda a: a["tokens"][:0, :0], "ValueError",
     "at least one batch row and one time step"),
    # tokens: values
    ("tokens", "id -1", lambda a: _tokens_with(-1), "IndexError",
     R_RANGE + r"-1 at position \(1, 2\)"),
    ("tokens", "id V", lambda a: _tokens_with(V), "IndexError",
     R_RANGE + r"6 at position \(1, 2\)"),
    ("tokens", "id V at the last position", lambda a: _tokens_with(V, at=(B - 1, T - 1)),
     "IndexError", R_RANGE + r"6 at position \(2, 3\)"),
    ("tokens", "id int64 max", lambda a: _tokens_with(I64_MAX), "IndexError",
     R_RANGE + str(I64_MAX)),
    ("tokens", "id int64 min", lambda a: _tokens_with(I64_MIN), "IndexError",
     R_RANGE + str(I64_MIN)),
    ("tokens", "id int32 max", lambda a: _tokens_with(I32_MAX, dtype=torch.int32), "IndexError",
     R_RANGE + str(I32_MAX)),
    ("tokens", "id int32 min", lambda a: _tokens_with(I32_MIN, dtype=torch.int32), "IndexError",
     R_RANGE + str(I32_MIN)),
    ("tokens", "id -1 in every row", lambda a: torch.tensor([[0, 1, -1, 2]] * B), "IndexError",
     R_RANGE + r"-1 at position \(0, 2\)"),
    ("tokens", "every id V", lambda a: torch.full((B, T), V), "IndexError", "found 6"),
    ("tokens", "every id int64 max", lambda a: torch.full((B, T), I64_MAX), "IndexError",
     "tokens must lie in"),
    ("tokens", "every id int64 min", lambda a: torch.full((B, T), I64_MIN), "IndexError",
     "tokens must lie in"),
    ("tokens", "every id int32 max", lambda a: torch.full((B, T), I32_MAX, dtype=torch.int32),
     "IndexError", "tokens must lie in"),
    ("tokens", "all ids out of range in a transposed view",
     lambda a: torch.full((T, B), V + 7).t(), "IndexError", R_RANGE + r"13 at position \(0, 0\)"),
    ("tokens", "on another device", lambda a: a["tokens"].to(OTHER_DEVICE), "ValueError",
     r"tokens must be on the same device as emb_weight \(cpu\), got meta"),
    ("tokens", "2^50 rows, expanded (h0 None)", lambda a: _huge_tokens(a), "RuntimeError", R_ALLOC),
    # emb_weight
    ("emb_weight", "int64", lambda a: a["emb_weight"].long(), "TypeError",
     "emb_weight must be torch.float32 or torch.float64, got torch.int64"),
    ("emb_weight", "float16", lambda a: a["emb_weight"].half(), "TypeError",
     "emb_weight must be torch.float32 or torch.float64, got torch.float16"),
    ("emb_weight", "bfloat16", lambda a: a["emb_weight"].bfloat16(), "TypeError",
     "emb_weight must be torch.float32 or torch.float64, got torch.bfloat16"),
    ("emb_weight", "complex64", lambda a: a["emb_weight"].to(torch.complex64), "TypeError",
     "emb_weight must be torch.float32 or torch.float64, got "),
    ("emb_weight", "0-d", lambda a: torch.tensor(1.0), "ValueError",
     r"emb_weight must have shape \(vocab_size, hidden_size\) with both >= 1, got \(\)"),
    ("emb_weight", "1-d", lambda a: a["emb_weight"][0], "ValueError",
     r"emb_weight must have shape \(vocab_size, hidden_size\) with both >= 1, got \(5,\)"),
    ("emb_weight", "3-d", lambda a: a["emb_weight"][None], "ValueError",
     r"emb_weight must have shape \(vocab_size, hidden_size\)"),
    ("emb_weight", "vocab 0", lambda a: a["emb_weight"][:0], "ValueError",
     r"emb_weight must have shape \(vocab_size, hidden_size\) with both >= 1, got \(0, 5\)"),
    ("emb_weight", "hidden 0", lambda a: a["emb_weight"][:, :0], "ValueError",
     r"emb_weight must have shape .* got \(6, 0\)"),
    ("emb_weight", "on another device", lambda a: a["emb_weight"].to(OTHER_DEVICE), "ValueError",
     r"tokens must be on the same device as emb_weight \(meta\), got cpu"),
    ("emb_weight", "2^50 rows, expanded", lambda a: _huge_expanded(2**50, H), "RuntimeError",
     R_ALLOC),
    # weight
    ("weight", "float64 (emb_weight float32)", lambda a: a["weight"].double(), "TypeError",
     r"weight must have the same dtype as emb_weight \(torch.float32\), got torch.float64"),
    ("weight", "int64", lambda a: a["weight"].long(), "TypeError",
     r"weight must have the same dtype as emb_weight \(torch.float32\), got torch.int64"),
    ("weight", "0-d", lambda a: torch.tensor(1.0), "ValueError",
     r"weight must have shape \(hidden_size, hidden_size\) = \(5, 5\) to match emb_weight, "
     r"got \(\)"),
    ("weight", "1-d", lambda a: a["weight"][0], "ValueError",
     r"weight must have shape \(hidden_size, hidden_size\) = \(5, 5\).*got \(5,\)"),
    ("weight", "3-d", lambda a: a["weight"][None], "ValueError",
     r"weight must have shape .*\(1, 5, 5\)"),
    ("weight", "(H+1, H+1)", lambda a: torch.zeros(H + 1, H + 1), "ValueError",
     r"weight must have shape \(hidden_size, hidden_size\) = \(5, 5\).*got \(6, 6\)"),
    ("weight", "(H, H+1)", lambda a: torch.zeros(H, H + 1), "ValueError",
     r"weight must have shape .*got \(5, 6\)"),
    ("weight", "(H+1, H)", lambda a: torch.zeros(H + 1, H), "ValueError", r"got \(6, 5\)"),
    ("weight", "on another device", lambda a: a["weight"].to(OTHER_DEVICE), "ValueError",
     r"weight must be on the same device as emb_weight \(cpu\), got meta"),
    # bias
    ("bias", "float64", lambda a: a["bias"].double(), "TypeError",
     r"bias must have the same dtype as emb_weight \(torch.float32\), got torch.float64"),
    ("bias", "int32", lambda a: a["bias"].int(), "TypeError", "bias must have the same dtype"),
    ("bias", "0-d", lambda a: torch.tensor(0.0), "ValueError",
     r"bias must have shape \(hidden_size,\) = \(5,\), got \(\)"),
    ("bias", "2-d", lambda a: a["bias"][None], "ValueError",
     r"bias must have shape \(hidden_size,\) = \(5,\), got \(1, 5\)"),
    ("bias", "(H+1,)", lambda a: torch.zeros(H + 1), "ValueError",
     r"bias must have shape \(hidden_size,\) = \(5,\), got \(6,\)"),
    ("bias", "(0,)", lambda a: torch.zeros(0), "ValueError", r"got \(0,\)"),
    ("bias", "on another device", lambda a: a["bias"].to(OTHER_DEVICE), "ValueError",
     "bias must be on the same device as emb_weight"),
    # h0
    ("h0", "float64", lambda a: a["h0"].double(), "TypeError",
     r"h0 must have the same dtype as emb_weight \(torch.float32\), got torch.float64"),
    ("h0", "0-d", lambda a: torch.tensor(0.0), "ValueError",
     r"h0 must have shape \(batch, hidden_size\) = \(3, 5\), got \(\)"),
    ("h0", "1-d", lambda a: a["h0"][0], "ValueError", r"h0 must have shape .* got \(5,\)"),
    ("h0", "3-d", lambda a: a["h0"][None], "ValueError", r"h0 must have shape .* got \(1, 3, 5\)"),
    ("h0", "batch B+1", lambda a: torch.zeros(B + 1, H), "ValueError",
     r"h0 must have shape \(batch, hidden_size\) = \(3, 5\), got \(4, 5\)"),
    ("h0", "batch B-1", lambda a: torch.zeros(B - 1, H), "ValueError", r"got \(2, 5\)"),
    ("h0", "hidden H+1", lambda a: torch.zeros(B, H + 1), "ValueError", r"got \(3, 6\)"),
    ("h0", "on another device", lambda a: a["h0"].to(OTHER_DEVICE), "ValueError",
     "h0 must be on the same device as emb_weight"),
]

# Arguments that are not tensors at all. The public function checks them itself; the raw op is
# checked by torch's schema parser, which names the argument too, except for None in a
# required tensor slot, which reaches the dispatcher as an undefined tensor.
NON_TENSORS = [("None", None), ("a list", [[0, 1], [1, 0]]), ("a float", 3.0)]


def _forward_fn(args):
    hs, h_last = rnnfast.elman_rnn(**args)
    return hs


def _forward_op(args):
    return torch.ops.rnnfast.elman_rnn(*(args[k] for k in FORWARD_ARGS))


@dataclass
class OpCall:
    """A raw op called with one argument replaced (a row of FORWARD_MUTATIONS,
    BACKWARD_MUTATIONS, HEAD_MUTATIONS or HEAD_BACKWARD_MUTATIONS), as plain arguments: what
    test_bad_input.py also runs under FakeTensorMode and torch.compile."""
    op: str          # the op's name in torch.ops.rnnfast
    arg: str
    what: str
    make: Callable[[dict], object]
    raises: str
    match: str

    @property
    def name(self) -> str:
        return f"torch.ops.rnnfast.{self.op}: {self.arg} {self.what}"

    @property
    def traceable(self) -> bool:
        """Whether the Meta kernel must refuse it too: a TypeError or ValueError, found from
        metadata. Not: token ids out of range (the real kernels read them), allocations that
        fail (a Meta kernel allocates nothing), None for a tensor (the dispatcher refuses it)."""
        return self.raises in ("TypeError", "ValueError")

    def args(self) -> List[object]:
        names, good = _OP_ARGS[self.op]
        args = good()
        args[self.arg] = self.make(args)
        return [args[k] for k in names]

    def call(self):
        return getattr(torch.ops.rnnfast, self.op)(*self.args())


def op_calls() -> List[OpCall]:
    return [OpCall("elman_rnn", *row) for row in FORWARD_MUTATIONS] + \
        [OpCall("elman_rnn_backward", *row) for row in BACKWARD_MUTATIONS] + \
        [OpCall("lm_head_loss", *row) for row in HEAD_MUTATIONS] + \
        [OpCall("lm_head_loss_backward", *row) for row in HEAD_BACKWARD_MUTATIONS]


def _argument_cases(ops, mutations, arg_names, good, type_error, optional=()) -> List[Hostile]:
    """Each mutation of a good call, and each non-tensor in each tensor argument, through every
    (target, run) of `ops`: the public function (`type_error(arg, value)`, its TypeError's
    pattern) and the raw op (the dispatcher's own messages). A None in an `optional` argument
    is the documented default, not a bad call."""
    cases = []
    for target, run in ops:
        for arg, what, make, exc, pattern in mutations:
            def call(arg=arg, make=make, run=run):
                args = good()
                args[arg] = make(args)
                return run(args)
            cases.append(Hostile(f"{target}: {arg} {what}", call, exc, pattern))
        for arg in arg_names:
            for what, value in NON_TENSORS:
                if arg in optional and value is None:
                    continue

                def call(arg=arg, value=value, run=run):
                    args = good()
                    args[arg] = value
                    return run(args)
                if target.startswith("rnnfast."):
                    exc, pattern = "TypeError", type_error(arg, value)
                elif value is None:
                    exc, pattern = "RuntimeError", "tensor does not have a device"
                else:
                    exc, pattern = "RuntimeError", \
                        f"Expected a value of type '.*Tensor.*' for argument '{arg}'"
                cases.append(Hostile(f"{target}: {arg} is {what}", call, exc, pattern))
    return cases


def forward_cases() -> List[Hostile]:
    return _argument_cases(
        (("rnnfast.elman_rnn", _forward_fn), ("torch.ops.rnnfast.elman_rnn", _forward_op)),
        FORWARD_MUTATIONS, FORWARD_ARGS, good_forward,
        lambda arg, value: f"{arg} must be a torch.Tensor.*, got ", optional=("h0",))


def _check_against_reference(args):
    hs, _ = rnnfast.elman_rnn(**args)
    ref, _ = reference.elman_rnn(**{k: (v.contiguous() if v is not None else None)
                                    for k, v in args.items()})
    torch.testing.assert_close(hs, ref, rtol=1e-4, atol=1e-4)


def _with(**changes):
    def call():
        args = good_forward()
        args.update({k: (v(args) if callable(v) else v) for k, v in changes.items()})
        _check_against_reference(args)
    return call


DOCUMENTED_FORWARD = [
    Hostile("documented: int32 tokens", _with(tokens=lambda a: a["tokens"].int())),
    Hostile("documented: transposed tokens",
            _with(tokens=lambda a: a["tokens"].t().contiguous().t())),
    Hostile("documented: stride-0 (expanded) h0", _with(h0=lambda a: a["h0"][:1].expand(B, H))),
    Hostile("documented: strided emb_weight",
            _with(emb_weight=lambda a: torch.randn(V, 2 * H)[:, ::2])),
    Hostile("documented: h0 None", _with(h0=None)),
    Hostile("documented: float64 throughout",
            _with(emb_weight=lambda a: a["emb_weight"].double(),
                  weight=lambda a: a["weight"].double(),
                  bias=lambda a: a["bias"].double(), h0=lambda a: a["h0"].double())),
    Hostile("documented: B = T = H = V = 1",
            _with(tokens=torch.zeros(1, 1, dtype=torch.long), emb_weight=torch.ones(1, 1),
                  weight=torch.ones(1, 1), bias=torch.zeros(1), h0=torch.ones(1, 1))),
]


def _backward_op(args):
    return torch.ops.rnnfast.elman_rnn_backward(*(args[k] for k in BACKWARD_ARGS))


BACKWARD_MUTATIONS = [
    ("grad_hs", "float64", lambda a: a["grad_hs"].double(), "TypeError",
     r"grad_hs must have the same dtype as emb_weight \(torch.float32\), got torch.float64"),
    ("grad_hs", "2-d", lambda a: a["grad_hs"][:, 0], "ValueError",
     r"grad_hs must have shape \(batch, seq_len, hidden_size\) = \(3, 4, 5\), got \(3, 5\)"),
    ("grad_hs", "seq_len T-1", lambda a: a["grad_hs"][:, 1:], "ValueError",
     r"grad_hs must have shape \(batch, seq_len, hidden_size\) = \(3, 4, 5\), got \(3, 3, 5\)"),
    ("grad_hs", "batch B+1", lambda a: torch.zeros(B + 1, T, H), "ValueError", r"got \(4, 4, 5\)"),
    ("grad_hs", "hidden H+1", lambda a: torch.zeros(B, T, H + 1), "ValueError", r"got \(3, 4, 6\)"),
    ("grad_hs", "on another device", lambda a: a["grad_hs"].to(OTHER_DEVICE), "ValueError",
     "grad_hs must be on the same device as emb_weight"),
    ("grad_hs", "None", lambda a: None, "RuntimeError", "tensor does not have a device"),
    ("hs", "float64", lambda a: a["hs"].double(), "TypeError",
     r"hs must have the same dtype as emb_weight"),
    ("hs", "2-d", lambda a: a["hs"][:, 0], "ValueError",
     r"hs must have shape \(batch, seq_len, hidden_size\) = \(3, 4, 5\), got \(3, 5\)"),
    ("hs", "batch 1", lambda a: a["hs"][:1], "ValueError",
     r"hs must have shape .* got \(1, 4, 5\)"),
    ("hs", "on another device", lambda a: a["hs"].to(OTHER_DEVICE), "ValueError",
     "hs must be on the same device as emb_weight"),
    ("tokens", "id V", lambda a: _tokens_with(V), "IndexError",
     R_RANGE + r"6 at position \(1, 2\)"),
    ("tokens", "id int64 min", lambda a: _tokens_with(I64_MIN), "IndexError", R_RANGE),
    ("tokens", "id int32 max", lambda a: _tokens_with(I32_MAX, dtype=torch.int32), "IndexError",
     R_RANGE),
    ("tokens", "float32", lambda a: a["tokens"].float(), "TypeError", R_TOK_DTYPE),
    ("tokens", "empty batch", lambda a: a["tokens"][:0], "ValueError", "at least one batch row"),
    ("tokens", "seq_len T+1 (hs and grad_hs T)", lambda a: torch.zeros(B, T + 1, dtype=torch.long),
     "ValueError", r"hs must have shape \(batch, seq_len, hidden_size\) = \(3, 5, 5\)"),
    ("emb_weight", "float16", lambda a: a["emb_weight"].half(), "TypeError",
     "emb_weight must be torch.float32 or torch.float64"),
    ("emb_weight", "hidden H+1", lambda a: torch.zeros(V, H + 1), "ValueError",
     r"weight must have shape \(hidden_size, hidden_size\) = \(6, 6\)"),
    ("weight", "(H, H+1)", lambda a: torch.zeros(H, H + 1), "ValueError", "weight must have shape"),
    ("weight", "float64", lambda a: a["weight"].double(), "TypeError",
     "weight must have the same dtype"),
    ("h0", "batch B+1", lambda a: torch.zeros(B + 1, H), "ValueError", "h0 must have shape"),
    ("h0", "float64", lambda a: a["h0"].double(), "TypeError", "h0 must have the same dtype"),
]


def backward_cases() -> List[Hostile]:
    cases = [Hostile(c.name, c.call, c.raises, c.match) for c in op_calls()
             if c.op == "elman_rnn_backward"]

    def without_h0():
        args = good_backward()
        args["h0"] = None
        *_, d_h0 = _backward_op(args)
        assert d_h0.shape == (B, H) and not d_h0.any()
    cases.append(Hostile("documented: elman_rnn_backward without h0 gives zeros for h0",
                         without_h0))
    return cases


# --- rnnfast.lm_head_loss and its backward op --------------------------------------------

HN, HH, HV = 6, 4, 5  # rows, hidden size, vocabulary of the head's calls
HEAD_ARGS = ("hidden", "weight", "bias", "targets")
HEAD_BACKWARD_ARGS = ("grad_loss", "hidden", "weight", "logits", "targets")
R_TARGETS = r"targets must lie in \[0, vocab_size\) = \[0, 5\), found "


def good_head() -> Dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return dict(hidden=torch.randn(HN, HH, generator=g),
                weight=torch.randn(HV, HH, generator=g) / HH ** 0.5,
                bias=torch.randn(HV, generator=g) * 0.5,
                targets=torch.randint(0, HV, (HN,), generator=g))


def good_head_backward() -> Dict[str, torch.Tensor]:
    f = good_head()
    _, logits = torch.ops.rnnfast.lm_head_loss(*f.values())
    return dict(grad_loss=torch.tensor(1.0), hidden=f["hidden"], weight=f["weight"],
                logits=logits, targets=f["targets"])


def _setting(args, value, **others):
    """value for the mutated argument, after setting others (which must change with it)."""
    args.update(others)
    return value


def _all_on(args, device, name):
    for k in HEAD_ARGS:
        args[k] = args[k].to(device)
    return args[name]


def _targets_with(value, at, dtype=torch.int64):
    t = good_head()["targets"].to(dtype)
    t[at] = value
    return t


# (argument, what is wrong, replacement factory, exception, message pattern), shared by the
# function and the op.
HEAD_MUTATIONS = [
    ("targets", "id -1", lambda a: torch.tensor([0, 1, -1, 2, 0, 0]), "IndexError",
     R_TARGETS + "-1 at position 2"),
    ("targets", "-100 (torch's ignore_index)", lambda a: torch.full((HN,), -100), "IndexError",
     "ignore_index is not supported"),
    ("targets", "id V", lambda a: torch.tensor([0, 0, 0, 0, 0, HV]), "IndexError",
     "found 5 at position 5"),
    ("targets", "every id int32 max", lambda a: torch.full((HN,), I32_MAX, dtype=torch.int32),
     "IndexError", "targets must lie in"),
    ("targets", "every id int64 min", lambda a: torch.full((HN,), I64_MIN), "IndexError",
     "targets must lie in"),
    ("targets", "float32", lambda a: torch.zeros(HN), "TypeError",
     "targets must be an integer tensor of dtype torch.int64 or torch.int32, got torch.float32"),
    ("targets", "2-d", lambda a: torch.zeros(HN, 1, dtype=torch.long), "ValueError",
     r"targets must have shape \(rows,\) = \(6,\) to match hidden, got \(6, 1\)"),
    ("targets", "rows N-1", lambda a: torch.zeros(HN - 1, dtype=torch.long), "ValueError",
     "targets must have shape"),
    ("targets", "on another device", lambda a: a["targets"].to(OTHER_DEVICE), "ValueError",
     "targets must be on the same device as hidden"),
    ("hidden", "int64", lambda a: torch.zeros(HN, HH, dtype=torch.long), "TypeError",
     "hidden must be torch.float32 or torch.float64, got torch.int64"),
    ("hidden", "bfloat16", lambda a: torch.zeros(HN, HH, dtype=torch.bfloat16), "TypeError",
     "hidden must be torch.float32 or torch.float64.*use F.linear and F.cross_entropy"),
    ("hidden", "1-d", lambda a: torch.zeros(HH), "ValueError",
     r"hidden must have shape \(rows, hidden_size\) with both >= 1, got \(4,\)"),
    ("hidden", "no rows (targets neither)",
     lambda a: _setting(a, torch.zeros(0, HH), targets=torch.zeros(0, dtype=torch.long)),
     "ValueError", "hidden must have shape"),
    # No kernel but the CPU's: elsewhere (here meta; CUDA has a kernel that only refuses) the
    # error says so and names the alternative.
    ("hidden", "and every other argument on meta", lambda a: _all_on(a, "meta", "hidden"),
     "ValueError", "hidden must be a CPU tensor, got one on meta.*F.cross_entropy"),
    ("weight", "hidden size H+1", lambda a: torch.zeros(HV, HH + 1), "ValueError",
     r"weight must have shape \(vocab_size, hidden_size\) with vocab_size >= 1 and "
     r"hidden_size = 4 to match hidden, got \(5, 5\)"),
    ("weight", "1-d", lambda a: torch.zeros(HH), "ValueError", "weight must have shape"),
    ("weight", "empty vocabulary (bias too)",
     lambda a: _setting(a, torch.zeros(0, HH), bias=torch.zeros(0)), "ValueError",
     "weight must have shape"),
    ("weight", "float64", lambda a: a["weight"].double(), "TypeError",
     r"weight must have the same dtype as hidden \(torch.float32\), got torch.float64"),
    ("weight", "on another device", lambda a: a["weight"].to(OTHER_DEVICE), "ValueError",
     "weight must be on the same device as hidden"),
    ("bias", "(V+1,)", lambda a: torch.zeros(HV + 1), "ValueError",
     r"bias must have shape \(vocab_size,\) = \(5,\) to match weight, got \(6,\)"),
    ("bias", "2-d", lambda a: torch.zeros(1, HV), "ValueError", "bias must have shape"),
    ("bias", "float64", lambda a: a["bias"].double(), "TypeError",
     "bias must have the same dtype as hidden"),
    ("bias", "on another device", lambda a: a["bias"].to(OTHER_DEVICE), "ValueError",
     "bias must be on the same device as hidden"),
]

HEAD_BACKWARD_MUTATIONS = [
    ("grad_loss", "1-d", lambda a: a["grad_loss"].reshape(1), "ValueError",
     r"grad_loss must be a 0-dim tensor .*got shape \(1,\)"),
    ("grad_loss", "float64", lambda a: a["grad_loss"].double(), "TypeError",
     "grad_loss must have the same dtype as hidden"),
    ("logits", "rows N-1", lambda a: a["logits"][:-1], "ValueError",
     r"logits must have shape \(rows, vocab_size\) = \(6, 5\)"),
    ("logits", "float64", lambda a: a["logits"].double(), "TypeError",
     "logits must have the same dtype as hidden"),
    ("targets", "id V at position 4", lambda a: _targets_with(HV, at=4), "IndexError",
     "found 5 at position 4"),
]


def _head_fn(args):
    return rnnfast.lm_head_loss(**args)


def _head_op(args):
    return torch.ops.rnnfast.lm_head_loss(*(args[k] for k in HEAD_ARGS))


def head_cases() -> List[Hostile]:
    return _argument_cases(
        (("rnnfast.lm_head_loss", _head_fn), ("torch.ops.rnnfast.lm_head_loss", _head_op)),
        HEAD_MUTATIONS, HEAD_ARGS, good_head,
        lambda arg, value: f"{arg} must be a torch.Tensor, got {type(value).__name__}") + \
        [Hostile(c.name, c.call, c.raises, c.match) for c in op_calls()
         if c.op == "lm_head_loss_backward"]


# Each op's arguments in order, and a good call's (OpCall.args).
_OP_ARGS = {"elman_rnn": (FORWARD_ARGS, good_forward),
            "elman_rnn_backward": (BACKWARD_ARGS, good_backward),
            "lm_head_loss": (HEAD_ARGS, good_head),
            "lm_head_loss_backward": (HEAD_BACKWARD_ARGS, good_head_backward)}


def _leaves():
    f = good_forward()
    for k in ("emb_weight", "weight", "bias", "h0"):
        f[k].requires_grad_()
    return f


def _second_backward():
    hs, _ = rnnfast.elman_rnn(**_leaves())
    loss = hs.sum()
    loss.backward()
    loss.backward()


def _double_backward():
    args = _leaves()
    hs, _ = rnnfast.elman_rnn(**args)
    (g,) = torch.autograd.grad(hs.square().sum(), [args["weight"]], create_graph=True)
    g.sum().backward()


def _double_backward_of_backward_op():
    args = good_backward()
    args["grad_hs"].requires_grad_()
    d_emb, *_ = _backward_op(args)
    d_emb.sum().backward()


def _create_graph_first_order():
    args = _leaves()
    hs, _ = rnnfast.elman_rnn(**args)
    (g,) = torch.autograd.grad(hs.square().sum(), [args["weight"]], create_graph=True)
    assert g.shape == (H, H) and torch.isfinite(g).all()


def _modified_in_place(name):
    def call():
        args = _leaves()
        hs, h_last = rnnfast.elman_rnn(**args)
        with torch.no_grad():
            {"tokens": lambda: args["tokens"].fill_(V + 100),  # out of range, after the check
             "weight": lambda: args["weight"].mul_(2),
             "hs": lambda: hs.mul_(2),
             "h_last": lambda: h_last.zero_()}[name]()
        hs.sum().backward()
    return call


def _wrong_grad_shape():
    hs, _ = rnnfast.elman_rnn(**_leaves())
    hs.backward(torch.ones(B, T))


def _no_grad():
    with torch.no_grad():
        hs, _ = rnnfast.elman_rnn(**_leaves())
    assert hs.grad_fn is None and not hs.requires_grad


AUTOGRAD_CASES = [
    Hostile("autograd: a second backward through the same graph", _second_backward,
            "RuntimeError", "backward through the graph a second time"),
    Hostile("autograd: double backward", _double_backward, "RuntimeError",
            r"double backward \(a gradient of the gradient\) is not supported"),
    Hostile("autograd: double backward through elman_rnn_backward", _double_backward_of_backward_op,
            "RuntimeError", "double backward"),
    Hostile("documented: create_graph=True for a first-order gradient works",
            _create_graph_first_order),
    Hostile("documented: no_grad records no graph", _no_grad),
    Hostile("autograd: grad_outputs of the wrong shape", _wrong_grad_shape, "RuntimeError",
            "Mismatch in shape"),
] + [Hostile(f"autograd: {name} modified in place between forward and backward",
             _modified_in_place(name), "RuntimeError", "modified by an inplace operation")
     for name in ("tokens", "weight", "hs", "h_last")]


def _module_call(make, x_fn, h0_fn=None):
    def call():
        model = make()
        x = x_fn()
        return model(x) if h0_fn is None else model(x, h0_fn())
    return call


def _ids(shape, value=None, dtype=torch.int64):
    x = torch.randint(0, V, shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    if value is not None:  # at (0, 0): LMModel1-3 read only the first three steps
        x.view(-1)[0] = value
    return x


def module_cases() -> List[Hostile]:
    models = {"ElmanRNN": (lambda: rnnfast.ElmanRNN(V, H), 1),
              "LMModel1": (lambda: rnnfast.LMModel1(V, H), 3),
              "LMModel2": (lambda: rnnfast.LMModel2(V, H), 3),
              "LMModel3": (lambda: rnnfast.LMModel3(V, H), 3),
              "LMModel4": (lambda: rnnfast.LMModel4(V, H, seq_len=T), 1)}
    cases = []
    for name, (make, min_len) in models.items():
        L = max(min_len, T)
        shape_msg = (r"tokens must have shape \(batch, seq_len\)" if name == "ElmanRNN" else
                     rf"{name}: x must be a \(batch, seq_len\) tensor of token ids with "
                     rf"seq_len >= {min_len}")
        rows = [
            ("x float32", lambda: _ids((B, L)).float(), "TypeError", R_TOK_DTYPE + "torch.float32"),
            ("x 1-d", lambda: _ids((L,)), "ValueError", shape_msg),
            ("x 3-d", lambda: _ids((B, L, 1)), "ValueError", shape_msg),
            ("x id V", lambda: _ids((B, L), V), "IndexError", R_RANGE + r"6 at position \(0, 0\)"),
            ("x id -1", lambda: _ids((B, L), -1), "IndexError", R_RANGE + "-1"),
            ("x id int64 max", lambda: _ids((B, L), I64_MAX), "IndexError", R_RANGE + str(I64_MAX)),
            ("x id int32 min", lambda: _ids((B, L), I32_MIN, torch.int32), "IndexError",
             R_RANGE + str(I32_MIN)),
            ("x empty batch", lambda: _ids((0, L)), "ValueError",
             "tokens must hold at least one batch row and one time step"),
            ("x on another device", lambda: _ids((B, L)).to(OTHER_DEVICE), "ValueError",
             r"tokens must be on the same device as emb_weight \(cpu\), got meta"),
            ("x None", lambda: None, None, None),
        ]
        if name == "ElmanRNN":
            rows.append(("x empty sequence", lambda: _ids((B, 0)), "ValueError",
                         "tokens must hold at least one batch row and one time step"))
        else:
            rows.append(("x too short", lambda: _ids((B, min_len - 1)), "ValueError", shape_msg))
        for what, x_fn, exc, pattern in rows:
            if x_fn() is None:
                exc, pattern = ("TypeError", "tokens must be a torch.Tensor, got NoneType") \
                    if name == "ElmanRNN" else \
                    ("TypeError", rf"{name}: x must be a \(batch, seq_len\) tensor .*got NoneType")
            cases.append(Hostile(f"{name}: {what}", _module_call(make, x_fn), exc, pattern))

        def half(make=make, L=L):
            return make().half()(_ids((B, L)))
        cases.append(Hostile(
            f"{name}: module in float16", half, "TypeError",
            "emb_weight must be torch.float32 or torch.float64, got torch.float16"))

        def double(make=make, L=L, name=name):
            out = make().double()(_ids((B, L), dtype=torch.int32))
            out = out[0] if name == "ElmanRNN" else out
            assert out.dtype == torch.float64
        cases.append(Hostile(f"documented: {name} in float64 with int32 x", double))

    elman = models["ElmanRNN"][0]
    for what, h0_fn, exc, pattern in [
            ("h0 batch B+1", lambda: torch.zeros(B + 1, H), "ValueError",
             r"h0 must have shape \(batch, hidden_size\) = \(3, 5\), got \(4, 5\)"),
            ("h0 float64", lambda: torch.zeros(B, H, dtype=torch.float64), "TypeError",
             r"h0 must have the same dtype as emb_weight \(torch.float32\)"),
            ("h0 on another device", lambda: torch.zeros(B, H, device=OTHER_DEVICE), "ValueError",
             "h0 must be on the same device as emb_weight"),
            ("h0 a float", lambda: 0.5, "TypeError",
             "h0 must be a torch.Tensor or None, got float")]:
        cases.append(Hostile(f"ElmanRNN: {what}", _module_call(elman, lambda: _ids((B, T)), h0_fn),
                             exc, pattern))

    def batch_size_change():
        m = rnnfast.LMModel4(V, H, seq_len=T)
        m(_ids((B, T)))
        out = m(_ids((B + 2, T)))   # another batch size starts from zeros (documented)
        assert out.shape == (B + 2, T, V) and m.h.shape == (B + 2, H)
    cases.append(Hostile("documented: LMModel4 batch size changes between calls",
                         batch_size_change))

    for what, make, exc, pattern in [
            ("backend 'bogus'", lambda: rnnfast.LMModel4(V, H, backend="bogus"), "ValueError",
             r"backend must be one of \('fused', 'reference'\), got 'bogus'"),
            ("n_hidden -1", lambda: rnnfast.LMModel1(V, -1), "ValueError",
             "LMModel1: n_hidden must be a positive int, got -1"),
            ("vocab_sz 0", lambda: rnnfast.ElmanRNN(0, H), "ValueError",
             "ElmanRNN: vocab_sz must be a positive int, got 0"),
            ("n_hidden 0", lambda: rnnfast.LMModel4(V, 0), "ValueError",
             "LMModel4: n_hidden must be a positive int, got 0")]:
        cases.append(Hostile(f"constructor: {what}", make, exc, pattern))
    return cases


def selftest_cases() -> List[Hostile]:
    """Cases that kill the child, to prove the parent notices (enabled by an env variable)."""
    return [Hostile("selftest: the child dies of SIGSEGV",
                    lambda: os.kill(os.getpid(), signal.SIGSEGV), "SIGSEGV"),
            Hostile("selftest: the case after a crash still runs", lambda: None)]


def all_cases(selftest: Optional[bool] = None) -> List[Hostile]:
    if selftest is None:
        selftest = os.environ.get("RNNFAST_HOSTILE_SELFTEST") == "1"
    cases = forward_cases() + DOCUMENTED_FORWARD + backward_cases() + head_cases() + \
        AUTOGRAD_CASES + module_cases()
    return cases + (selftest_cases() if selftest else [])


def run(case: Hostile) -> dict:
    """What the call did: {"outcome": "returned"}, or "raised" with the exception's class names
    (its MRO) and message, as check() reads it."""
    try:
        case.call()
        return {"outcome": "returned"}
    except Exception as e:  # noqa: BLE001 - reporting every kind is the point
        return {"outcome": "raised", "types": [c.__name__ for c in type(e).__mro__],
                "message": str(e)}


def check(case: Hostile, result: dict) -> Optional[str]:
    """Why `result` breaks the contract of `case`, or None when it keeps it."""
    if case.raises is None:
        if result["outcome"] != "returned":
            return f"expected a normal return, got {result['types'][0]}: {result['message']}"
        return None
    if result["outcome"] != "raised":
        return f"expected {case.raises}, but the call returned"
    if case.raises not in result["types"]:
        return f"expected {case.raises}, got {result['types'][0]}: {result['message']}"
    if not re.search(case.match, result["message"]):
        return f"message {result['message']!r} does not match {case.match!r}"
    return None

