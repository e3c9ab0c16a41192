"""Drop-in versions of the course notebook's LMModel1-4, the book's LMModel5, and a general
ElmanRNN layer.

Layers are named as in the notebook (``input_to_hidden``, ``hidden``, ``hidden_to_output``), so a
``state_dict`` moves between these classes and the notebook's in both directions. The printed
fastai book names the same layers ``i_h``, ``h_h``, ``h_o``: ``load_state_dict`` accepts those
keys too, and ``book_state_dict()`` gives them back (see BOOK_NAMES). Every module takes
``backend="fused"`` (the rnnfast op) or ``backend="reference"`` (the plain PyTorch loop) so it
can be checked against its own reference.

Besides ``forward(x) -> logits`` (what fastai, TorchScript and export call), LMModel1-5 have
``forward_loss(x, targets) -> (logits, loss)`` for training loops that own the loss, as
``rnnfast train`` does: with the fused backend it also fuses the head and the loss
(rnnfast.lm_head_loss).
"""
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import ops, reference
from .rnn import RNN

BACKENDS = ("fused", "reference")

# The printed book's name of each layer -> the notebook's (rnnfast's own).
BOOK_NAMES = {"i_h": "input_to_hidden", "h_h": "hidden", "h_o": "hidden_to_output"}


def _check_size(value, name: str, who: str) -> int:
    # bool is an int subclass, but LMModel4(30, True) is a mistake, not a hidden size of 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{who}: {name} must be a positive int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{who}: {name} must be a positive int, got {value}")
    return value


def _rename_prefix(key: str, prefix: str, names: Dict[str, str]) -> str:
    """key with its layer name (the part after prefix) renamed by names, if it has one."""
    layer, dot, rest = key[len(prefix):].partition(".")
    if key.startswith(prefix) and dot and layer in names:
        return prefix + names[layer] + "." + rest
    return key


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def _check_tokens(x: Tensor, min_len: int, who: str) -> None:
    if not torch.jit.is_scripting():  # TorchScript has already type-checked x
        if not isinstance(x, Tensor):
            raise TypeError(f"{who}: x must be a (batch, seq_len) tensor of token ids, "
                            f"got {type(x).__name__}")
    if x.dim() != 2 or x.shape[1] < min_len:
        # Spelled out rather than tuple(x.shape), which TorchScript cannot compile.
        shape = ", ".join([str(d) for d in x.shape])
        raise ValueError(f"{who}: x must be a (batch, seq_len) tensor of token ids with "
                         f"seq_len >= {min_len}, got shape ({shape})")


def lm_loss(logits: Tensor, y: Tensor) -> Tensor:
    """The book's loss_func: cross-entropy over every predicted position."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def _check_targets(targets: Tensor, shape: Sequence[int], meaning: str, who: str) -> None:
    if not isinstance(targets, Tensor):
        raise TypeError(f"{who}: targets must be a tensor of token ids, got "
                        f"{type(targets).__name__}")
    if tuple(targets.shape) != tuple(shape):
        raise ValueError(f"{who}: targets must have shape {meaning} = {tuple(shape)}, got "
                         f"{tuple(targets.shape)}")


def _recurrence(backend: str, x: Tensor, input_to_hidden: nn.Embedding, hidden: nn.Linear,
                h0: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    args = (x, input_to_hidden.weight, hidden.weight, hidden.bias, h0)
    return ops.elman_rnn(*args) if backend == "fused" else reference.elman_rnn(*args)


class ElmanRNN(nn.Module):
    """The Elman-ReLU cell over a token sequence: returns every state and the last one.

    ``forward(x, h0=None) -> (hs, h_last)`` with x (B, T) token ids, hs (B, T, H), h_last (B, H).
    """

    def __init__(self, vocab_sz: int, n_hidden: int, backend: str = "fused"):
        super().__init__()
        _BookNames.setup(self, vocab_sz, n_hidden, "ElmanRNN")
        self.input_to_hidden = nn.Embedding(vocab_sz, n_hidden)
        self.hidden = nn.Linear(n_hidden, n_hidden)
        self.backend = _check_backend(backend)

    def forward(self, x: Tensor, h0: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        return _recurrence(self.backend, x, self.input_to_hidden, self.hidden, h0)

    def book_state_dict(self) -> "OrderedDict[str, Tensor]":
        """``state_dict()`` under the printed book's layer names (``i_h``, ``h_h``)."""
        return _BookNames.book_state_dict(self)


class _BookNames:
    """The printed book's layer names as a compatibility path: a state_dict with them loads
    (renamed before loading, so strict still reports a truly missing or extra key), and
    book_state_dict() gives them."""

    @staticmethod
    def setup(module: nn.Module, vocab_sz: int, n_hidden: int, who: str) -> None:
        _check_size(vocab_sz, "vocab_sz", who)
        _check_size(n_hidden, "n_hidden", who)
        module.register_load_state_dict_pre_hook(_BookNames._from_book_names)

    @staticmethod
    def _from_book_names(module, state_dict, prefix, local_metadata, strict, missing_keys,
                         unexpected_keys, error_msgs) -> None:
        for key in [k for k in state_dict if k.startswith(prefix)]:
            new = _rename_prefix(key, prefix, BOOK_NAMES)
            # Both spellings given: keep both, so that strict reports the extra one.
            if new != key and new not in state_dict:
                state_dict[new] = state_dict.pop(key)

    @staticmethod
    def book_state_dict(module: nn.Module) -> "OrderedDict[str, Tensor]":
        to_book = {v: k for k, v in BOOK_NAMES.items()}
        return OrderedDict((_rename_prefix(k, "", to_book), v)
                           for k, v in module.state_dict().items())


class _BookModel(nn.Module):
    """The three layers every notebook model has, under the notebook's names."""

    def __init__(self, vocab_sz: int, n_hidden: int, backend: str):
        super().__init__()
        _BookNames.setup(self, vocab_sz, n_hidden, type(self).__name__)
        self.input_to_hidden = nn.Embedding(vocab_sz, n_hidden)
        self.hidden = nn.Linear(n_hidden, n_hidden)
        self.hidden_to_output = nn.Linear(n_hidden, vocab_sz)
        self.backend = _check_backend(backend)

    def book_state_dict(self) -> "OrderedDict[str, Tensor]":
        """``state_dict()`` under the printed book's layer names (``i_h``, ``h_h``, ``h_o``),
        for the book's own classes: ``book_model.load_state_dict(model.book_state_dict())``."""
        return _BookNames.book_state_dict(self)

    # forward_loss's two paths. (Not TorchScript methods: forward never calls them.)

    def _fuses_head(self) -> bool:
        return _fuses_head(self.backend, self.input_to_hidden, self.hidden_to_output)

    def _head_loss(self, hidden: Tensor, targets: Tensor) -> Tuple[Tensor, Tensor]:
        return _head_loss(self.hidden_to_output, hidden, targets)

    def _forward_then_loss(self, x: Tensor, targets: Tensor) -> Tuple[Tensor, Tensor]:
        logits = self(x)
        return logits, lm_loss(logits, targets)


def _fuses_head(backend: str, embedding: nn.Embedding, head: nn.Linear) -> bool:
    """Whether forward_loss runs the head and the loss as one rnnfast op: the fused backend on
    the CPU in float32/float64 (the op's kernels), outside autocast (whose low-precision head the
    op would not reproduce)."""
    w = head.weight
    return (backend == "fused" and w.device.type == "cpu"
            and w.dtype in (torch.float32, torch.float64) and embedding.weight.dtype == w.dtype
            and not torch.is_autocast_enabled("cpu"))


def _head_loss(head: nn.Linear, hidden: Tensor, targets: Tensor) -> Tuple[Tensor, Tensor]:
    """(logits, loss) of the head over hidden (..., H) against targets (...)."""
    loss, logits = ops.lm_head_loss(hidden.reshape(-1, hidden.shape[-1]), head.weight, head.bias,
                                    targets.reshape(-1))
    return logits.view(hidden.shape[:-1] + logits.shape[-1:]), loss


def _exporting() -> bool:
    """Under torch.export the stateful models are stateless: each call starts from zeros."""
    if not torch.jit.is_scripting():
        return torch.compiler.is_exporting()
    return False


def _trainable(h0: Tensor) -> Tensor:
    """The carried state as the next batch may use it. A state carried out of
    torch.inference_mode() is an inference tensor, which autograd may not save (the fused ops
    save h0); the notebook's class, which never saves it, trains on from it, and so does a copy.
    (Compiled graphs are not inference-mode aware, and TorchScript cannot ask.)"""
    if not torch.jit.is_scripting():
        if not torch.compiler.is_compiling() and h0.is_inference() \
                and not torch.is_inference_mode_enabled():
            return h0.clone()
    return h0


class LMModel1(_BookModel):
    """Three tokens in, the next one out; the book's unrolled model (uses x[:, :3])."""

    def __init__(self, vocab_sz: int, n_hidden: int, backend: str = "fused"):
        super().__init__(vocab_sz, n_hidden, backend)

    def forward(self, x: Tensor) -> Tensor:
        _check_tokens(x, 3, "LMModel1")
        _, h = _recurrence(self.backend, x[:, :3], self.input_to_hidden, self.hidden, None)
        return self.hidden_to_output(h)

    def forward_loss(self, x: Tensor, targets: Tensor) -> Tuple[Tensor, Tensor]:
        """``(logits, loss)``: ``forward(x)`` and the book's loss against targets (batch,).

        With the fused backend on the CPU in float32/float64 the head and the loss run as one
        op (rnnfast.lm_head_loss); then logits take no gradient. Elsewhere this is ``self(x)``
        and F.cross_entropy.
        """
        who = type(self).__name__
        _check_tokens(x, 3, who)
        _check_targets(targets, x.shape[:1], "(batch,)", who)
        if not self._fuses_head():
            return self._forward_then_loss(x, targets)
        _, h = _recurrence(self.backend, x[:, :3], self.input_to_hidden, self.hidden, None)
        return self._head_loss(h, targets)


class LMModel2(LMModel1):
    """The book's looped version of LMModel1: the same function, the same parameters."""

    def forward(self, x: Tensor) -> Tensor:
        _check_tokens(x, 3, "LMModel2")
        _, h = _recurrence(self.backend, x[:, :3], self.input_to_hidden, self.hidden, None)
        return self.hidden_to_output(h)


class _StatefulModel(_BookModel):
    """Carries the detached state from one batch to the next, as the book's ``self.h`` does.

    The state is a non-persistent buffer: it moves with ``.to()`` but stays out of
    ``state_dict``, so the book's weights load both ways. A batch whose size differs from the
    carried state's (or the first batch after ``reset()``) starts from zeros. Under
    ``torch.export`` the model is stateless: it always starts from zeros.
    """

    def __init__(self, vocab_sz: int, n_hidden: int, backend: str):
        super().__init__(vocab_sz, n_hidden, backend)
        self.register_buffer("h", torch.zeros(0, n_hidden), persistent=False)

    @torch.jit.export
    def reset(self) -> None:
        self.h = torch.zeros(0, self.hidden.in_features, dtype=self.h.dtype, device=self.h.device)

    def _run(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        exporting = _exporting()
        h0: Optional[Tensor] = None
        if not exporting and self.h.shape[0] == x.shape[0]:
            h0 = _trainable(self.h)
        hs, h = _recurrence(self.backend, x, self.input_to_hidden, self.hidden, h0)
        if not exporting:
            # contiguous(): keep only (B, H) alive between batches, not all of hs.
            self.h = h.detach().contiguous()
        return hs, h


class LMModel3(_StatefulModel):
    """LMModel2 that carries its state across batches (uses x[:, :3])."""

    def __init__(self, vocab_sz: int, n_hidden: int, backend: str = "fused"):
        super().__init__(vocab_sz, n_hidden, backend)

    def forward(self, x: Tensor) -> Tensor:
        _check_tokens(x, 3, "LMModel3")
        _, h = self._run(x[:, :3])
        return self.hidden_to_output(h)

    def forward_loss(self, x: Tensor, targets: Tensor) -> Tuple[Tensor, Tensor]:
        """``(logits, loss)``: ``forward(x)`` and the book's loss against targets (batch,),
        carrying the state as forward does. Fused as in LMModel1.forward_loss."""
        _check_tokens(x, 3, "LMModel3")
        _check_targets(targets, x.shape[:1], "(batch,)", "LMModel3")
        if not self._fuses_head():
            return self._forward_then_loss(x, targets)
        _, h = self._run(x[:, :3])
        return self._head_loss(h, targets)


class LMModel4(_StatefulModel):
    """Predicts the next token after every input token, carrying state across batches.

    ``seq_len`` is the training sequence length (the book's ``sl``). Where the notebook's
    forward reads the first ``seq_len`` tokens (and fails on a shorter input), this one runs
    over the whole input, whatever its length, and returns (batch, length, vocab) logits: the
    same wherever the input has ``seq_len`` tokens, as in training.
    """

    def __init__(self, vocab_sz: int, n_hidden: int, seq_len: int = 16, backend: str = "fused"):
        super().__init__(vocab_sz, n_hidden, backend)
        self.seq_len = _check_size(seq_len, "seq_len", "LMModel4")

    def forward(self, x: Tensor) -> Tensor:
        _check_tokens(x, 1, "LMModel4")
        hs, _ = self._run(x)
        return self.hidden_to_output(hs)

    def forward_loss(self, x: Tensor, targets: Tensor) -> Tuple[Tensor, Tensor]:
        """``(logits, loss)``: ``forward(x)`` and the book's loss over every position against
        targets (batch, seq_len), carrying the state as forward does. Fused as in
        LMModel1.forward_loss."""
        _check_tokens(x, 1, "LMModel4")
        _check_targets(targets, x.shape, "(batch, seq_len)", "LMModel4")
        if not self._fuses_head():
            return self._forward_then_loss(x, targets)
        hs, _ = self._run(x)
        return self._head_loss(hs, targets)


class LMModel5(nn.Module):
    """The book's multi-layer model (chapter 12): an embedding, ``rnnfast.RNN(n_hidden, n_hidden,
    n_layers, batch_first=True)`` and a head, carrying the detached state ``h`` (n_layers, bs,
    n_hidden) across batches, with ``reset()``. Layer names are the book's (``i_h``, ``rnn``,
    ``h_o``: the notebook stops at LMModel4), so its state_dict loads both ways.

    ``backend="fused"`` runs rnnfast.RNN, ``backend="reference"`` torch.nn.RNN (the same
    parameters). As in LMModel3/4, the state is a non-persistent buffer, a batch of another size
    starts from zeros, and an exported model is stateless.
    """

    def __init__(self, vocab_sz: int, n_hidden: int, n_layers: int, backend: str = "fused"):
        super().__init__()
        _check_size(vocab_sz, "vocab_sz", "LMModel5")
        _check_size(n_hidden, "n_hidden", "LMModel5")
        _check_size(n_layers, "n_layers", "LMModel5")
        self.backend = _check_backend(backend)
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        rnn = RNN if backend == "fused" else nn.RNN
        self.rnn = rnn(n_hidden, n_hidden, n_layers, batch_first=True)
        self.h_o = nn.Linear(n_hidden, vocab_sz)
        self.register_buffer("h", torch.zeros(n_layers, 0, n_hidden), persistent=False)

    @torch.jit.export
    def reset(self) -> None:
        self.h = torch.zeros(self.h.shape[0], 0, self.h.shape[2], dtype=self.h.dtype,
                             device=self.h.device)

    def _run(self, x: Tensor) -> Tensor:
        exporting = _exporting()
        h0: Optional[Tensor] = None
        if not exporting and self.h.shape[1] == x.shape[0]:
            h0 = _trainable(self.h)
        res, h = self.rnn(self.i_h(x), h0)
        if not exporting:
            self.h = h.detach()
        return res

    def forward(self, x: Tensor) -> Tensor:
        _check_tokens(x, 1, "LMModel5")
        return self.h_o(self._run(x))

    def forward_loss(self, x: Tensor, targets: Tensor) -> Tuple[Tensor, Tensor]:
        """``(logits, loss)``: ``forward(x)`` and the book's loss over every position against
        targets (batch, seq_len), carrying the state as forward does; the head and the loss
        fused as in LMModel1.forward_loss."""
        _check_tokens(x, 1, "LMModel5")
        _check_targets(targets, x.shape, "(batch, seq_len)", "LMModel5")
        if not _fuses_head(self.backend, self.i_h, self.h_o):
            logits = self(x)
            return logits, lm_loss(logits, targets)
        return _head_loss(self.h_o, self._run(x), targets)


MODELS = {1: LMModel1, 2: LMModel2, 3: LMModel3, 4: LMModel4, 5: LMModel5}
