"""rnnfast.RNN: a drop-in for torch.nn.RNN (tanh or relu, layers, directions, packed sequences),
each layer one fused op (rnnfast::rnn_layer) with a hand-written backward.

Same constructor, parameters (names, shapes, order, initialisation), forward and results as
nn.RNN, so replacing the class is the whole migration. It is not a subclass of nn.RNN on purpose:
torch.compile's Dynamo graph-breaks on nn.RNN and anything derived from it, and runs this one in
a single graph.
"""
import math
import numbers
import warnings
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, _VF, nn
from torch.nn.utils.rnn import PackedSequence

from . import ops  # noqa: F401  (loads the library, which registers rnnfast::rnn_layer)

_NONLINEARITIES = ("tanh", "relu")


# rnnfast::rnn_layer has CPU and Meta kernels always, CUDA ones where the library was built
# with them (setup.py builds only the CPU extension without nvcc, on a CPU-only torch, or with
# RNNFAST_FORCE_CPU=1). RNN carries the flag as one of its constants, since TorchScript reads no
# global variables; a scripted model keeps the value it was scripted with.
_CUDA_KERNELS: bool = torch._C._dispatch_has_kernel_for_dispatch_key("rnnfast::rnn_layer", "CUDA")


def _runs_on_torch_kernels(x: Tensor, cuda_kernels: bool) -> bool:
    """On a device rnn_layer has no kernel for (CUDA in a CPU-only build, or any other) the
    module runs torch's own fused RNN kernels, as nn.RNN does, so that the drop-in still works
    there."""
    device = x.device.type
    return not (device == "cpu" or device == "meta" or (device == "cuda" and cuda_kernels))


class RNN(nn.Module):
    """``torch.nn.RNN`` with every layer's recurrence fused into one op.

    ``RNN(input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None)``;
    ``forward(input, hx=None) -> (output, h_n)`` exactly as nn.RNN's: input (L, N, H_in),
    (N, L, H_in) with batch_first, (L, H_in) unbatched, or a PackedSequence; hx and h_n
    (num_layers * D, N, H) indexed ``layer * D + direction``.

    Of nn.RNN's internals, ``all_weights``, ``_flat_weights``, ``_flat_weights_names`` and
    ``_all_weights`` are provided (the parameters themselves, in nn.RNN's order);
    ``flatten_parameters()`` does nothing (nn.RNN packs its weights for cuDNN there; rnnfast
    reads them as they are).
    """

    __constants__ = ["mode", "input_size", "hidden_size", "num_layers", "bias", "batch_first",
                     "dropout", "bidirectional", "proj_size", "nonlinearity", "_cuda_kernels"]
    _cuda_kernels = _CUDA_KERNELS
    __jit_unused_properties__ = ["all_weights"]

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None,
                 **kwargs) -> None:
        super().__init__()
        # nn.RNN's checks, with its messages and exception types.
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if kwargs:
            raise TypeError(f"RNN.__init__() got an unexpected keyword argument "
                            f"{next(iter(kwargs))!r}")
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             f"'relu'.")
        if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) \
                or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             "probability of an element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                          "non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", stacklevel=2)
        for name, value in (("bias", bias), ("batch_first", batch_first)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int):
                raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{name} must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")

        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        self.nonlinearity = nonlinearity
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = 0
        D = 2 if bidirectional else 1
        factory = {"device": device, "dtype": dtype}
        self._flat_weights_names: List[str] = []
        self._all_weights: List[List[str]] = []
        for layer in range(num_layers):
            for direction in range(D):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                layer_input = input_size if layer == 0 else hidden_size * D
                shapes = [("weight_ih", (hidden_size, layer_input)),
                          ("weight_hh", (hidden_size, hidden_size))]
                if bias:
                    shapes += [("bias_ih", (hidden_size,)), ("bias_hh", (hidden_size,))]
                names = [name + suffix for name, _ in shapes]
                for name, (_, shape) in zip(names, shapes):
                    self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self._init_flat_weights()
        self.reset_parameters()

    # _flat_weights is a list of the parameters themselves, kept current as nn.RNN keeps its own:
    # on assignment of a parameter and after .to() / .double() etc. (which replace them). A plain
    # list, not a property, so that TorchScript can read it.
    def _init_flat_weights(self) -> None:
        self._flat_weights = [getattr(self, name) for name in self._flat_weights_names]

    def __setattr__(self, attr, value):
        if hasattr(self, "_flat_weights_names") and attr in self._flat_weights_names:
            self._flat_weights[self._flat_weights_names.index(attr)] = value
        super().__setattr__(attr, value)

    def _apply(self, fn, recurse=True):
        result = super()._apply(fn, recurse)
        self._init_flat_weights()
        return result

    def reset_parameters(self) -> None:
        """nn.RNN's initialisation, drawing in its order: every parameter ~ U(-1/sqrt(H),
        1/sqrt(H)), so that the same seed gives nn.RNN's weights."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -stdv, stdv)

    @property
    def all_weights(self) -> List[List[nn.Parameter]]:
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def flatten_parameters(self) -> None:
        """Nothing to do: nn.RNN packs its weights for cuDNN here; rnnfast reads them as they are."""

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.nonlinearity != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    def _layers(self, x: Tensor, hx: Optional[Tensor], batch_sizes: Optional[Tensor],
                batch: int, batch_first: bool) -> Tuple[Tensor, Tensor]:
        """Runs every layer: (output, h_n), output time-major (or packed)."""
        if _runs_on_torch_kernels(x, self._cuda_kernels):
            return self._torch_layers(x, hx, batch_sizes, batch, batch_first)
        D = 2 if self.bidirectional else 1
        per_layer = len(self._flat_weights_names) // self.num_layers
        weights = self._flat_weights
        states: List[Tensor] = []
        for layer in range(self.num_layers):
            h0 = None if hx is None else hx[layer * D:(layer + 1) * D]
            x, h_n = torch.ops.rnnfast.rnn_layer(
                x, weights[layer * per_layer:(layer + 1) * per_layer], h0, batch_sizes, batch,
                self.nonlinearity, batch_first, self.bidirectional)
            states.append(h_n)
            batch_first = False   # every layer's output is time-major
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        return x, (states[0] if len(states) == 1 else torch.cat(states, 0))

    def _torch_layers(self, x: Tensor, hx: Optional[Tensor], batch_sizes: Optional[Tensor],
                      batch: int, batch_first: bool) -> Tuple[Tensor, Tensor]:
        """_layers on torch's kernels (what nn.RNN.forward calls), for devices rnn_layer lacks."""
        if hx is None:
            D = 2 if self.bidirectional else 1
            hx = torch.zeros(self.num_layers * D, batch, self.hidden_size, dtype=x.dtype,
                             device=x.device)
        tanh = self.nonlinearity == "tanh"
        if batch_sizes is not None:
            args = (x, batch_sizes, hx, self._flat_weights, self.bias, self.num_layers,
                    float(self.dropout), self.training, self.bidirectional)
            out, h_n = _VF.rnn_tanh(*args) if tanh else _VF.rnn_relu(*args)
            return out, h_n
        if tanh:
            out, h_n = _VF.rnn_tanh(x, hx, self._flat_weights, self.bias, self.num_layers,
                                    float(self.dropout), self.training, self.bidirectional,
                                    batch_first)
        else:
            out, h_n = _VF.rnn_relu(x, hx, self._flat_weights, self.bias, self.num_layers,
                                    float(self.dropout), self.training, self.bidirectional,
                                    batch_first)
        return (out.transpose(0, 1) if batch_first else out), h_n

    def _check_hx(self, hx: Tensor, batch: int) -> None:
        """nn.RNN's check of the whole hx (each layer's op sees only its own slice)."""
        expected = [self.num_layers * (2 if self.bidirectional else 1), batch, self.hidden_size]
        if list(hx.shape) != expected:
            shape = ", ".join([str(d) for d in expected])
            raise RuntimeError(f"Expected hidden size ({shape}), got {list(hx.shape)}")

    @torch.jit.unused
    def _forward_packed(self, input: PackedSequence,
                        hx: Optional[Tensor]) -> Tuple[PackedSequence, Tensor]:
        data, batch_sizes, sorted_indices, unsorted_indices = input
        batch = int(batch_sizes[0])
        if hx is not None:
            self._check_hx(hx, batch)
            if sorted_indices is not None:
                hx = hx.index_select(1, sorted_indices)   # nn.RNN's permute_hidden
        output, h_n = self._layers(data, hx, batch_sizes, batch, False)
        if unsorted_indices is not None:
            h_n = h_n.index_select(1, unsorted_indices)
        return PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices), h_n

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        if not torch.jit.is_scripting():
            if isinstance(input, PackedSequence):
                return self._forward_packed(input, hx)
            if not isinstance(input, Tensor):
                raise TypeError(f"rnnfast.RNN: input must be a Tensor or a PackedSequence, got "
                                f"{type(input).__name__}")
            if hx is not None and not isinstance(hx, Tensor):
                raise TypeError(f"rnnfast.RNN: hx must be a Tensor or None, got "
                                f"{type(hx).__name__}")
        if input.dim() not in (2, 3):
            raise ValueError(f"RNN: Expected input to be 2D or 3D, got {input.dim()}D tensor "
                             f"instead")
        batched = input.dim() == 3
        batch_dim = 0 if self.batch_first else 1
        if hx is not None and hx.dim() != (3 if batched else 2):
            raise RuntimeError(f"For {'batched 3-D' if batched else 'unbatched 2-D'} input, hx "
                               f"should also be {3 if batched else 2}-D but got {hx.dim()}-D "
                               f"tensor")
        if not batched:
            input = input.unsqueeze(batch_dim)
            if hx is not None:
                hx = hx.unsqueeze(1)
        if hx is not None:
            self._check_hx(hx, input.shape[batch_dim])
        output, h_n = self._layers(input, hx, None, input.shape[batch_dim], self.batch_first)
        if self.batch_first:
            output = output.transpose(0, 1)
        if not batched:
            output, h_n = output.squeeze(batch_dim), h_n.squeeze(1)
        return output, h_n
