"""Random configurations of rnnfast.RNN and torch.nn.RNN side by side, and how to compare them.

A Case fixes every constructor argument and the shape of the call (padded, batch_first,
unbatched or packed, with or without hx); `build` makes both modules with the same weights and
the inputs, drawn fresh from the test's seed.
"""
import copy
import random
from dataclasses import dataclass
from typing import List, Optional

import torch
from torch.nn.utils.rnn import pack_padded_sequence

import rnnfast

INPUTS = ("padded", "batch_first", "unbatched", "packed_sorted", "packed_unsorted")


@dataclass(frozen=True)
class Case:
    input_size: int
    hidden_size: int
    num_layers: int
    nonlinearity: str
    bias: bool
    bidirectional: bool
    dropout: float
    inputs: str
    with_hx: bool
    T: int
    B: int

    @property
    def batch_first(self) -> bool:
        return self.inputs == "batch_first"

    def kwargs(self) -> dict:
        return dict(num_layers=self.num_layers, nonlinearity=self.nonlinearity, bias=self.bias,
                    batch_first=self.batch_first, dropout=self.dropout,
                    bidirectional=self.bidirectional)

    def __str__(self) -> str:
        return (f"I{self.input_size}-H{self.hidden_size}-L{self.num_layers}-{self.nonlinearity}"
                f"{'-nobias' if not self.bias else ''}{'-bi' if self.bidirectional else ''}"
                f"{f'-drop{self.dropout}' if self.dropout else ''}-{self.inputs}"
                f"{'-hx' if self.with_hx else ''}-T{self.T}-B{self.B}")


def random_cases(n: int, seed: int = 0) -> List[Case]:
    """n configurations covering every argument (drawn once, so test ids are stable)."""
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        layers = rng.choice([1, 1, 2, 3])
        cases.append(Case(
            input_size=rng.choice([1, 3, 8, 17]), hidden_size=rng.choice([1, 2, 5, 16, 33]),
            num_layers=layers, nonlinearity=("tanh", "relu")[i % 2], bias=rng.random() < 0.8,
            bidirectional=rng.random() < 0.4,
            dropout=rng.choice([0.0, 0.0, 0.5]) if layers > 1 else 0.0,
            inputs=INPUTS[i % len(INPUTS)], with_hx=rng.random() < 0.6,
            T=rng.choice([1, 2, 7, 16]), B=rng.choice([1, 3, 9, 20])))
    return cases


@dataclass
class Built:
    ours: rnnfast.RNN
    theirs: torch.nn.RNN
    input: object          # a Tensor or a PackedSequence
    leaf: torch.Tensor     # the tensor whose gradient is the input's
    hx: Optional[torch.Tensor]


def build(case: Case, dtype=torch.float64) -> Built:
    theirs = torch.nn.RNN(case.input_size, case.hidden_size, **case.kwargs()).to(dtype)
    ours = rnnfast.RNN(case.input_size, case.hidden_size, **case.kwargs()).to(dtype)
    ours.load_state_dict(theirs.state_dict())
    D = 2 if case.bidirectional else 1
    packed = case.inputs.startswith("packed")
    if case.inputs == "unbatched":
        leaf = torch.randn(case.T, case.input_size, dtype=dtype)
        hx = torch.randn(case.num_layers * D, case.hidden_size, dtype=dtype)
    else:
        shape = (case.B, case.T) if case.batch_first else (case.T, case.B)
        leaf = torch.randn(*shape, case.input_size, dtype=dtype)
        hx = torch.randn(case.num_layers * D, case.B, case.hidden_size, dtype=dtype)
    leaf.requires_grad_()
    hx = hx.requires_grad_() if case.with_hx else None
    inp = leaf
    if packed:
        lengths = torch.randint(1, case.T + 1, (case.B,))
        lengths[torch.randint(0, case.B, ())] = case.T   # the longest is T
        if case.inputs == "packed_sorted":
            lengths = lengths.sort(descending=True).values
        inp = pack_padded_sequence(leaf, lengths, enforce_sorted=case.inputs == "packed_sorted")
    return Built(ours, theirs, inp, leaf, hx)


def outputs(module, built: Built, seed: int):
    """(output as a tensor, h_n) of one call, with the dropout masks drawn from `seed`."""
    torch.manual_seed(seed)
    out, h_n = module(built.input, built.hx)
    return (out.data if isinstance(out, torch.nn.utils.rnn.PackedSequence) else out), h_n


def gradients(built: Built, module, out, h_n, g_out, g_h):
    """Gradients of <out, g_out> + <h_n, g_h> w.r.t. the input, hx and every parameter."""
    wrt = [built.leaf] + ([built.hx] if built.hx is not None else []) + list(module.parameters())
    return torch.autograd.grad((out * g_out).sum() + (h_n * g_h).sum(), wrt, retain_graph=True,
                               allow_unused=True)


def near_relu_kink(built) -> bool:
    """Whether some ReLU pre-activation of nn.RNN's forward lies within 1e-4 of 0 (float64)."""
    theirs = copy.deepcopy(built.theirs).double()
    if theirs.nonlinearity != "relu":
        return False
    found = []   # nn.RNN has no per-step hook: replay each layer's steps
    x = built.input
    if isinstance(x, torch.nn.utils.rnn.PackedSequence):
        x, _ = torch.nn.utils.rnn.pad_packed_sequence(x)
    x = x.detach().double()
    if x.dim() == 2:
        x = x.unsqueeze(1)
    elif theirs.batch_first:
        x = x.transpose(0, 1)
    D = 2 if theirs.bidirectional else 1
    for layer in range(theirs.num_layers):
        outs = []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = getattr(theirs, "weight_ih" + sfx), getattr(theirs, "weight_hh" + sfx)
            b = (getattr(theirs, "bias_ih" + sfx) + getattr(theirs, "bias_hh" + sfx)
                 if theirs.bias else 0)
            h = torch.zeros(x.shape[1], theirs.hidden_size, dtype=torch.float64)
            if built.hx is not None:
                hx = built.hx.detach().double()
                h = (hx if hx.dim() == 3 else hx.unsqueeze(1))[layer * D + d]
            steps = range(x.shape[0] - 1, -1, -1) if d else range(x.shape[0])
            hs = [None] * x.shape[0]
            for t in steps:
                a = x[t] @ w_ih.T + h @ w_hh.T + b
                found.append(float(a.detach().abs().min()))
                h = hs[t] = a.relu()
            outs.append(torch.stack(hs))
        x = torch.cat(outs, -1).detach()
    return min(found) < 1e-4
