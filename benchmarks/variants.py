"""The variants under test, at two levels, each built from the same numbers.

cell:  the recurrence alone, hs = elman_rnn(tokens, E, W, b), backward from a fixed dL/dhs.
model: a whole LMModel4 training step: forward, cross-entropy over every position, zero_grad,
       backward, fastai's Adam step. Forward-only is the same model under no_grad, with the loss.
       The fused variant takes the path `rnnfast train` takes, LMModel4.forward_loss (through
       rnnfast.train.ForwardLoss): its head and cross-entropy are one op too
       (rnnfast.lm_head_loss). Every other variant runs the model's forward, then lm_loss.

nn.RNN(relu) gets W as both weight_ih and weight_hh, b as bias_ih and zeros as bias_hh, so it
computes exactly relu(W (h + E[x_t]) + b) from the embedded inputs; its weights are two
parameters rather than one tied one, which changes the gradient bookkeeping but not the work.
"""
import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import rnnfast
from rnnfast import reference
from rnnfast.models import LMModel4
from rnnfast.train import ForwardLoss, fastai_adam, lm_loss

from .config import COMPILE, EAGER, FUSED, FWD, JIT, NN_RNN, Size
from .timing import Runner


_scripted_loop = None


def scripted_loop():
    """torch.jit.script of the eager loop, made once (scripting is per function, not per shape)."""
    global _scripted_loop
    if _scripted_loop is None:
        _scripted_loop = torch.jit.script(reference.elman_rnn)
    return _scripted_loop


def compiled_loop():
    # dynamic=False: each size gets its own static graph. Otherwise the second size seen would
    # switch torch.compile to dynamic shapes, and what is measured would depend on the order.
    return torch.compile(reference.elman_rnn, dynamic=False)


# ---------------------------------------------------------------------------------------------
# The cell

@dataclass
class CellInputs:
    tokens: Tensor     # (B, T) int64
    emb: Tensor        # (V, H), nn.Embedding's N(0, 1) init
    weight: Tensor     # (H, H), nn.Linear's U(-1/sqrt(H), 1/sqrt(H)) init
    bias: Tensor       # (H,)
    grad_hs: Tensor    # (B, T, H), the incoming gradient for fwd+bwd


def cell_inputs(s: Size, seed: int = 0) -> CellInputs:
    g = torch.Generator().manual_seed(seed)
    bound = 1 / math.sqrt(s.H)
    return CellInputs(
        tokens=torch.randint(0, s.V, (s.B, s.T), generator=g),
        emb=torch.randn(s.V, s.H, generator=g),
        weight=(torch.rand(s.H, s.H, generator=g) * 2 - 1) * bound,
        bias=(torch.rand(s.H, generator=g) * 2 - 1) * bound,
        grad_hs=torch.randn(s.B, s.T, s.H, generator=g),
    )


@dataclass
class CellVariant:
    forward: Callable[[], Tensor]      # returns hs (B, T, H)
    params: List[Tensor]               # its leaves that take gradients
    inputs: CellInputs

    def runner(self, mode: str) -> Runner:
        if mode == FWD:
            def call():
                with torch.no_grad():
                    return self.forward()
            return Runner(call)

        def prepare():
            for p in self.params:
                p.grad = None

        def call():
            self.forward().backward(self.inputs.grad_hs)
        return Runner(call, prepare)


def _leaf(t: Tensor) -> Tensor:
    return t.detach().clone().requires_grad_(True)


def build_cell(name: str, inp: CellInputs) -> CellVariant:
    """Each variant gets its own copies of the leaves, so gradients never mix."""
    tokens = inp.tokens
    if name == NN_RNN:
        H = inp.weight.shape[0]
        rnn = nn.RNN(H, H, nonlinearity="relu", batch_first=True)
        with torch.no_grad():
            rnn.weight_ih_l0.copy_(inp.weight)
            rnn.weight_hh_l0.copy_(inp.weight)
            rnn.bias_ih_l0.copy_(inp.bias)
            rnn.bias_hh_l0.zero_()
        emb = _leaf(inp.emb)
        return CellVariant(lambda: rnn(F.embedding(tokens, emb))[0],
                           [emb, *rnn.parameters()], inp)

    emb, weight, bias = _leaf(inp.emb), _leaf(inp.weight), _leaf(inp.bias)
    fn = {FUSED: lambda: rnnfast.elman_rnn,
          EAGER: lambda: reference.elman_rnn,
          COMPILE: compiled_loop,
          JIT: scripted_loop}[name]()
    return CellVariant(lambda: fn(tokens, emb, weight, bias)[0], [emb, weight, bias], inp)


# ---------------------------------------------------------------------------------------------
# The model

@dataclass
class Batch:
    x: Tensor   # (B, T) token ids
    y: Tensor   # (B, T) next tokens


def model_batch(s: Size, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed + 1)
    return Batch(torch.randint(0, s.V, (s.B, s.T), generator=g),
                 torch.randint(0, s.V, (s.B, s.T), generator=g))


class ScriptedLoopLM(LMModel4):
    """LMModel4 whose recurrence is the TorchScript-compiled eager loop.

    (Scripting LMModel4 itself fails in rnnfast 0.1.0: its input check formats
    ``tuple(x.shape)``, which TorchScript cannot type. Scripting the loop it runs is what this
    variant is about anyway; the head and loss are the same eager calls as everywhere.)
    """

    def __init__(self, vocab_sz: int, n_hidden: int, seq_len: int):
        super().__init__(vocab_sz, n_hidden, seq_len, backend="reference")
        self.loop = scripted_loop()

    def _run(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        h0: Optional[Tensor] = self.h if self.h.shape[0] == x.shape[0] else None
        hs, h = self.loop(x, self.input_to_hidden.weight, self.hidden.weight,
                          self.hidden.bias, h0)
        self.h = h.detach().contiguous()
        return hs, h


class RNNLM(nn.Module):
    """LMModel4 with nn.RNN(relu) as its recurrence, carrying its state the same way."""

    def __init__(self, model: LMModel4):
        super().__init__()
        V, H = model.input_to_hidden.weight.shape
        self.input_to_hidden = nn.Embedding(V, H)
        self.rnn = nn.RNN(H, H, nonlinearity="relu", batch_first=True)
        self.hidden_to_output = nn.Linear(H, V)
        with torch.no_grad():
            self.input_to_hidden.weight.copy_(model.input_to_hidden.weight)
            self.rnn.weight_ih_l0.copy_(model.hidden.weight)
            self.rnn.weight_hh_l0.copy_(model.hidden.weight)
            self.rnn.bias_ih_l0.copy_(model.hidden.bias)
            self.rnn.bias_hh_l0.zero_()
            self.hidden_to_output.load_state_dict(model.hidden_to_output.state_dict())
        self.h: Optional[Tensor] = None

    def forward(self, x: Tensor) -> Tensor:
        h0 = self.h if self.h is not None and self.h.shape[1] == x.shape[0] else None
        hs, h = self.rnn(self.input_to_hidden(x), h0)
        self.h = h.detach()
        return self.hidden_to_output(hs)


@dataclass
class ModelVariant:
    model: Callable[[Tensor], Tensor]   # x -> logits (the compiled wrapper for torch.compile)
    module: nn.Module                   # owns the parameters
    batch: Batch
    opt: torch.optim.Optimizer
    # (x, y) -> loss; None: lm_loss(model(x), y). The fused variant's is `rnnfast train`'s path.
    loss_fn: Optional[Callable[[Tensor, Tensor], Tensor]] = None

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        if self.loss_fn is not None:
            return self.loss_fn(x, y)
        return lm_loss(self.model(x), y)

    def runner(self, mode: str) -> Runner:
        x, y = self.batch.x, self.batch.y
        if mode == FWD:
            def call():
                with torch.no_grad():
                    return self.loss(x, y)
            return Runner(call)

        def step():
            loss = self.loss(x, y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return Runner(step)

    def forward_with_loss(self) -> Tensor:
        return self.loss(self.batch.x, self.batch.y)


def build_model(name: str, s: Size, batch: Batch, seed: int = 0) -> ModelVariant:
    """Every variant starts from the same weights (LMModel4's init under `seed`)."""
    torch.manual_seed(seed)
    book = LMModel4(s.V, s.H, s.T, backend="fused")
    state = book.state_dict()
    if name == NN_RNN:
        module = RNNLM(book)
    elif name == JIT:
        module = ScriptedLoopLM(s.V, s.H, s.T)
        module.load_state_dict(state)
    else:
        module = LMModel4(s.V, s.H, s.T, backend="fused" if name == FUSED else "reference")
        module.load_state_dict(state)
    model = module
    if name == COMPILE:
        # Give it its carried state first, so the graph compiled is the one every later batch
        # uses (h0 given), rather than a first-batch graph (h0 = None) and then a recompile.
        with torch.no_grad():
            module(batch.x)
        model = torch.compile(module, dynamic=False)
    assert name in (FUSED, EAGER, COMPILE, JIT, NN_RNN), name
    loss_fn = None
    if name == FUSED:
        forward_loss = ForwardLoss(module)   # what Task.train_step calls
        loss_fn = lambda x, y: forward_loss(x, y)[1]   # noqa: E731
    return ModelVariant(model, module, batch, fastai_adam(module, 1e-3), loss_fn)
