"""Python glue for the rnnfast ops: the public functions and the fake (meta) kernels.

Schemas live in csrc/ops.cpp, kernels in csrc/ (CPU) and csrc/cuda/ (CUDA), autograd in
csrc/autograd.cpp. What is here is what only Python can provide: shape propagation for
torch.compile / torch.export (fake kernels) and the friendly signature.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from . import reference
from ._library import load

_C = load()  # loading the library registers the ops

_PREFIX = "rnnfast.elman_rnn: "
_FLOAT_DTYPES = (torch.float32, torch.float64)
_CUDA_ONLY_FLOAT_DTYPES = (torch.float16, torch.bfloat16)  # float32 accumulation on CUDA
_TOKEN_DTYPES = (torch.int64, torch.int32)


def _shape(t: Tensor) -> str:
    return str(tuple(t.shape))


def _check_same_dtype_device(prefix: str, t: Tensor, name: str, ref: Tensor,
                             ref_name: str) -> None:
    if t.dtype != ref.dtype:
        raise TypeError(f"{prefix}{name} must have the same dtype as {ref_name} "
                        f"({ref.dtype}), got {t.dtype}")
    if t.device != ref.device:
        raise ValueError(f"{prefix}{name} must be on the same device as {ref_name} "
                         f"({ref.device}), got {t.device}")


def _check_shape(prefix: str, t: Tensor, name: str, shape: tuple, meaning: str,
                 note: str = "") -> None:
    # The message of check_shape in csrc/checks.cpp.
    if tuple(t.shape) != shape:
        raise ValueError(f"{prefix}{name} must have shape {meaning} = {shape}{note}, "
                         f"got {_shape(t)}")


def _check_float_like(t: Tensor, name: str, emb_weight: Tensor, shape: tuple, meaning: str,
                      note: str = "") -> None:
    _check_same_dtype_device(_PREFIX, t, name, emb_weight, "emb_weight")
    _check_shape(_PREFIX, t, name, shape, meaning, note)


def _check_args(tokens: Tensor, emb_weight: Tensor, weight: Tensor,
                h0: Optional[Tensor]) -> None:
    # Mirrors csrc/checks.cpp, so a compiled graph refuses bad shapes with the same message the
    # eager kernel gives. Token values are checked by the real kernels only (they read data).
    if tokens.dtype not in _TOKEN_DTYPES:
        raise TypeError(f"{_PREFIX}tokens must be an integer tensor of dtype torch.int64 or "
                        f"torch.int32, got {tokens.dtype}")
    if tokens.dim() != 2:
        raise ValueError(f"{_PREFIX}tokens must have shape (batch, seq_len), got {_shape(tokens)}")
    torch._check_value(tokens.shape[0] >= 1 and tokens.shape[1] >= 1, lambda: (
        f"{_PREFIX}tokens must hold at least one batch row and one time step, "
        f"got shape {_shape(tokens)}"))
    if emb_weight.device.type == "cuda":
        if emb_weight.dtype not in _FLOAT_DTYPES + _CUDA_ONLY_FLOAT_DTYPES:
            raise TypeError(f"{_PREFIX}emb_weight must be torch.float32, torch.float64, "
                            f"torch.float16 or torch.bfloat16 on CUDA, got {emb_weight.dtype}")
    elif emb_weight.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{_PREFIX}emb_weight must be torch.float32 or torch.float64, "
                        f"got {emb_weight.dtype}")
    if emb_weight.dim() != 2 or emb_weight.shape[0] < 1 or emb_weight.shape[1] < 1:
        raise ValueError(f"{_PREFIX}emb_weight must have shape (vocab_size, hidden_size) with "
                         f"both >= 1, got {_shape(emb_weight)}")
    if tokens.device != emb_weight.device:
        raise ValueError(f"{_PREFIX}tokens must be on the same device as emb_weight "
                         f"({emb_weight.device}), got {tokens.device}")
    B, H = tokens.shape[0], emb_weight.shape[1]
    _check_float_like(weight, "weight", emb_weight, (H, H), "(hidden_size, hidden_size)",
                      " to match emb_weight")
    if h0 is not None:
        _check_float_like(h0, "h0", emb_weight, (B, H), "(batch, hidden_size)")


@torch.library.register_fake("rnnfast::elman_rnn")
def _elman_rnn_fake(tokens, emb_weight, weight, bias, h0):
    _check_args(tokens, emb_weight, weight, h0)
    H = emb_weight.shape[1]
    _check_float_like(bias, "bias", emb_weight, (H,), "(hidden_size,)")
    return emb_weight.new_empty((tokens.shape[0], tokens.shape[1], H))


@torch.library.register_fake("rnnfast::elman_rnn_backward")
def _elman_rnn_backward_fake(grad_hs, tokens, emb_weight, weight, hs, h0):
    _check_args(tokens, emb_weight, weight, h0)
    B, T, H = tokens.shape[0], tokens.shape[1], emb_weight.shape[1]
    _check_float_like(hs, "hs", emb_weight, (B, T, H), "(batch, seq_len, hidden_size)")
    _check_float_like(grad_hs, "grad_hs", emb_weight, (B, T, H), "(batch, seq_len, hidden_size)")
    return (torch.empty_like(emb_weight), torch.empty_like(weight),
            weight.new_empty((H,)), emb_weight.new_empty((B, H)))


def _check_types(tokens, emb_weight, weight, bias, h0) -> None:
    # Without this, None for a tensor reaches the dispatcher as an undefined tensor and fails
    # with "tensor does not have a device", which names no argument.
    for name, value in (("tokens", tokens), ("emb_weight", emb_weight), ("weight", weight),
                        ("bias", bias)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{_PREFIX}{name} must be a torch.Tensor, got {type(value).__name__}")
    if h0 is not None and not isinstance(h0, Tensor):
        raise TypeError(f"{_PREFIX}h0 must be a torch.Tensor or None, got {type(h0).__name__}")


def _under_torch_func(*tensors: Optional[Tensor]) -> bool:
    """Whether a torch.func transform (grad, vjp, jacrev, jvp, vmap) holds any of the inputs.
    The op's autograd is a C++ autograd::Function, which functorch refuses; the reference loop
    computes the same function in plain torch ops, which every transform supports."""
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    return any(t is not None and wrapped(t) for t in tensors)


def elman_rnn(tokens: Tensor, emb_weight: Tensor, weight: Tensor, bias: Tensor,
              h0: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Runs the Elman-ReLU cell over a whole token sequence in one fused op.

    ``h_t = relu((h_{t-1} + emb_weight[tokens[:, t]]) @ weight.T + bias)`` with ``h_{-1} = h0``
    (zeros when ``h0`` is None).

    Args:
        tokens: (B, T) int64 or int32 token ids in ``[0, V)``.
        emb_weight: (V, H) embedding table, float32 or float64 (on CUDA also float16 or
            bfloat16, accumulated in float32).
        weight: (H, H) recurrent weight (``nn.Linear(H, H).weight``).
        bias: (H,) recurrent bias.
        h0: optional (B, H) initial state.

    Returns:
        ``(hs, h_last)``: hs (B, T, H) holds the state after every step; h_last (B, H) is
        ``hs[:, -1]`` (a view).

    Under ``torch.func`` transforms (grad, vjp, jacrev, jvp, vmap) this runs the reference loop
    (rnnfast.reference): the same function and gradients at eager-loop speed, since the fused
    op's C++ autograd cannot run inside functorch.
    """
    if not torch.jit.is_scripting():  # TorchScript has already type-checked the arguments
        _check_types(tokens, emb_weight, weight, bias, h0)
        if not torch.compiler.is_compiling() and _under_torch_func(
                tokens, emb_weight, weight, bias, h0):
            return reference.elman_rnn(tokens, emb_weight, weight, bias, h0)
    hs = torch.ops.rnnfast.elman_rnn(tokens, emb_weight, weight, bias, h0)
    return hs, hs[:, -1]


# --- lm_head_loss: the LM head (a Linear) and its cross-entropy in one op ---------------------

_HEAD_PREFIX = "rnnfast.lm_head_loss: "


def _head_float_like(t: Tensor, name: str, hidden: Tensor) -> None:
    _check_same_dtype_device(_HEAD_PREFIX, t, name, hidden, "hidden")


def _head_shape(t: Tensor, name: str, shape: tuple, meaning: str, note: str = "") -> None:
    _check_shape(_HEAD_PREFIX, t, name, shape, meaning, note)


def _check_head_args(hidden: Tensor, weight: Tensor, targets: Tensor) -> None:
    # Mirrors check_head_common_args in csrc/checks.cpp; target values are checked by the real
    # kernels only (they read data).
    if hidden.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{_HEAD_PREFIX}hidden must be torch.float32 or torch.float64, got "
                        f"{hidden.dtype} (for other dtypes use F.linear and F.cross_entropy)")
    if hidden.device.type != "cpu":
        raise ValueError(f"{_HEAD_PREFIX}hidden must be a CPU tensor, got one on "
                         f"{hidden.device} (the op has no kernel there: use F.linear and "
                         f"F.cross_entropy, as the models' forward_loss does)")
    if hidden.dim() != 2 or hidden.shape[0] < 1 or hidden.shape[1] < 1:
        raise ValueError(f"{_HEAD_PREFIX}hidden must have shape (rows, hidden_size) with both "
                         f">= 1, got {_shape(hidden)}")
    N, H = hidden.shape
    _head_float_like(weight, "weight", hidden)
    if weight.dim() != 2 or weight.shape[0] < 1 or weight.shape[1] != H:
        raise ValueError(f"{_HEAD_PREFIX}weight must have shape (vocab_size, hidden_size) with "
                         f"vocab_size >= 1 and hidden_size = {H} to match hidden, got "
                         f"{_shape(weight)}")
    if targets.dtype not in _TOKEN_DTYPES:
        raise TypeError(f"{_HEAD_PREFIX}targets must be an integer tensor of dtype torch.int64 "
                        f"or torch.int32, got {targets.dtype}")
    if targets.device != hidden.device:
        raise ValueError(f"{_HEAD_PREFIX}targets must be on the same device as hidden "
                         f"({hidden.device}), got {targets.device}")
    _head_shape(targets, "targets", (N,), "(rows,)", " to match hidden")


@torch.library.register_fake("rnnfast::lm_head_loss")
def _lm_head_loss_fake(hidden, weight, bias, targets):
    _check_head_args(hidden, weight, targets)
    _head_float_like(bias, "bias", hidden)
    N, V = hidden.shape[0], weight.shape[0]
    _head_shape(bias, "bias", (V,), "(vocab_size,)", " to match weight")
    # The kernel's layout: logits.t() is contiguous (see csrc/lm_head_loss_cpu.cpp).
    return hidden.new_empty(()), hidden.new_empty_strided((N, V), (1, N))


@torch.library.register_fake("rnnfast::lm_head_loss_backward")
def _lm_head_loss_backward_fake(grad_loss, hidden, weight, logits, targets):
    _check_head_args(hidden, weight, targets)
    _head_float_like(grad_loss, "grad_loss", hidden)
    if grad_loss.dim() != 0:
        raise ValueError(f"{_HEAD_PREFIX}grad_loss must be a 0-dim tensor (the loss's "
                         f"gradient), got shape {_shape(grad_loss)}")
    _head_float_like(logits, "logits", hidden)
    N, V = hidden.shape[0], weight.shape[0]
    _head_shape(logits, "logits", (N, V), "(rows, vocab_size)")
    return (hidden.new_empty(tuple(hidden.shape)), weight.new_empty(tuple(weight.shape)),
            weight.new_empty((V,)))


def lm_head_loss(hidden: Tensor, weight: Tensor, bias: Tensor,
                 targets: Tensor) -> Tuple[Tensor, Tensor]:
    """A language model's head and its loss in one fused CPU op.

    Computes ``logits = hidden @ weight.T + bias`` (``F.linear``, i.e. an ``nn.Linear(H, V)``'s
    weight and bias) and ``loss = F.cross_entropy(logits, targets)`` (mean over rows), with a
    hand-written backward that recomputes the softmax from the logits.

    Args:
        hidden: (N, H) float32 or float64 CPU tensor, the rows to classify.
        weight: (V, H) head weight, same dtype.
        bias: (V,) head bias, same dtype.
        targets: (N,) int64 or int32 class ids in ``[0, V)``; others raise ``IndexError``
            (there is no ``ignore_index``).

    Returns:
        ``(loss, logits)``: loss is 0-dim and takes gradients w.r.t. hidden, weight and bias;
        logits (N, V) are for metrics and take none. They are laid out column-major
        (``logits.t()`` is contiguous), so ``logits.view(B, T, V)`` works where N = B * T but
        ``logits.view(-1)`` needs ``.contiguous()`` first.

    NaN and Inf give what ``F.cross_entropy`` gives: a row holding NaN or +Inf, or only -Inf,
    has a NaN loss and NaN gradients; a target logit of -Inf gives an infinite loss. CUDA
    tensors and 16-bit dtypes are refused (use ``F.linear`` and ``F.cross_entropy`` there).
    """
    if not torch.jit.is_scripting():
        for name, value in (("hidden", hidden), ("weight", weight), ("bias", bias),
                            ("targets", targets)):
            if not isinstance(value, Tensor):
                raise TypeError(f"{_HEAD_PREFIX}{name} must be a torch.Tensor, got "
                                f"{type(value).__name__}")
    loss, logits = torch.ops.rnnfast.lm_head_loss(hidden, weight, bias, targets)
    return loss, logits
