"""Python glue for the rnnfast ops: the public functions.

Schemas live in csrc/ops.cpp, kernels in csrc/ (CPU, and Meta for torch.compile and
torch.export) and csrc/cuda/ (CUDA), autograd in csrc/autograd.cpp, and the ops' argument checks
in csrc/checks.cpp, which every kernel (the Meta ones included) calls: a compiled or exported
graph refuses a bad shape with the eager message. What is here is what only Python can provide:
the friendly signature, and naming an argument that is not a tensor at all (which the schema
would report as an undefined tensor, naming no argument).
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from . import reference
from ._library import load

_C = load()  # loading the library registers the ops

_PREFIX = "rnnfast.elman_rnn: "
_HEAD_PREFIX = "rnnfast.lm_head_loss: "


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
