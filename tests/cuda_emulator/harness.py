"""The emulated CUDA ops on torch CPU tensors: the real host code (csrc/cuda/time_loops.cpp,
layer_loops.cpp) and kernels, through the emulator's library (entry_points.h), with host loops
standing in for cuBLAS. Outputs, and the workspace the host code carves, start as NaN, so an
element that is never written shows up.
"""
import ctypes
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}

# The emulated GPU for planning: an H200 (as in csrc/cuda/plan.cpp's estimates).
H200_SMS = 132
H200_SMEM_PER_BLOCK_OPTIN = 232448


class PersistentPlan(ctypes.Structure):
    """csrc/cuda/launch.h's PersistentPlan, field for field."""
    _fields_ = [("rows_per_cta", ctypes.c_int), ("threads", ctypes.c_int),
                ("group", ctypes.c_int), ("outputs_per_group", ctypes.c_int),
                ("ldw", ctypes.c_int), ("state_offset", ctypes.c_size_t),
                ("smem_bytes", ctypes.c_size_t), ("ctas", ctypes.c_int64)]

    def __repr__(self):
        return ("PersistentPlan(" + ", ".join(f"{name}={getattr(self, name)}"
                                              for name, _ in self._fields_) + ")")


class Problem(ctypes.Structure):
    """RnnfastEmuProblem of entry_points.h."""
    _fields_ = [("tokens", ctypes.c_void_p), ("tokens_int64", ctypes.c_int),
                ("emb", ctypes.c_void_p), ("weight", ctypes.c_void_p),
                ("bias", ctypes.c_void_p), ("h0", ctypes.c_void_p),
                ("grad_hs", ctypes.c_void_p), ("hs", ctypes.c_void_p),
                ("B", ctypes.c_int64), ("T", ctypes.c_int64), ("V", ctypes.c_int64),
                ("H", ctypes.c_int64)]


class LayerProblem(ctypes.Structure):
    """RnnfastEmuLayerProblem of entry_points.h (csrc/cuda/layer_loops.h's LayerProblem)."""
    _fields_ = [("x", ctypes.c_void_p), ("w_ih", ctypes.c_void_p), ("bias", ctypes.c_void_p),
                ("w_hh", ctypes.c_void_p * 2), ("h0", ctypes.c_void_p),
                ("batch_sizes", ctypes.c_void_p), ("T", ctypes.c_int64), ("B", ctypes.c_int64),
                ("N", ctypes.c_int64), ("I", ctypes.c_int64), ("H", ctypes.c_int64),
                ("D", ctypes.c_int64), ("batch_first", ctypes.c_int), ("tanh", ctypes.c_int)]


class LayerGradients(ctypes.Structure):
    """RnnfastEmuLayerGradients of entry_points.h."""
    _fields_ = [("out", ctypes.c_void_p), ("grad_out", ctypes.c_void_p),
                ("grad_h_n", ctypes.c_void_p), ("grad_x", ctypes.c_void_p),
                ("w_ih", ctypes.c_void_p * 2), ("w_hh", ctypes.c_void_p * 2),
                ("b_ih", ctypes.c_void_p * 2), ("b_hh", ctypes.c_void_p * 2),
                ("grad_hx", ctypes.c_void_p)]


@dataclass
class TokenError:
    """The record a kernel left (csrc/cuda/token_error.h), decoded as the host decodes it."""
    position: Optional[Tuple[int, int]]   # (b, t), None when saturated (past 2^31 elements)
    id: int                               # saturated to int32
    seq_len: int
    vocab_size: int


def _ptr(t):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def _plan_ref(plan):
    return None if plan is None else ctypes.byref(plan)


def _check_inputs(*tensors):
    for t in tensors:
        assert t is None or (t.is_contiguous() and t.device.type == "cpu"), \
            "the kernels take contiguous host tensors"


class EmulatedCuda:
    def __init__(self, library_path):
        self.lib = ctypes.CDLL(str(library_path))
        self.lib.rnnfast_emu_last_error.restype = ctypes.c_char_p
        self.lib.rnnfast_emu_sizeof_plan.restype = ctypes.c_size_t
        self.lib.rnnfast_emu_sizeof_problem.restype = ctypes.c_size_t
        assert self.lib.rnnfast_emu_sizeof_plan() == ctypes.sizeof(PersistentPlan)
        assert self.lib.rnnfast_emu_sizeof_problem() == ctypes.sizeof(Problem)
        for name, struct in (("layer_problem", LayerProblem),
                             ("layer_gradients", LayerGradients)):
            size = getattr(self.lib, f"rnnfast_emu_sizeof_{name}")
            size.restype = ctypes.c_size_t
            assert size() == ctypes.sizeof(struct), name
        self.lib.rnnfast_emu_plan.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_int,
                                              ctypes.c_int, ctypes.c_uint64,
                                              ctypes.POINTER(ctypes.c_int), ctypes.c_void_p]

    def _call(self, name, *args):
        if getattr(self.lib, name)(*args) != 0:
            raise RuntimeError(f"{name}: {self.lib.rnnfast_emu_last_error().decode()}")

    # ---- planning, configuration, the token-error record ---------------------------------

    def plan(self, B, H, dtype, sms=H200_SMS, smem_limit=H200_SMEM_PER_BLOCK_OPTIN):
        """The persistent kernels' launch plan (csrc/cuda/persistent_plan.cpp), or None."""
        plan, found = PersistentPlan(), ctypes.c_int(0)
        self._call("rnnfast_emu_plan", B, H, DTYPE_CODES[dtype], sms, smem_limit,
                   ctypes.byref(found), ctypes.byref(plan))
        return plan if found.value else None

    def set_ctas_at_once(self, n):
        self.lib.rnnfast_emu_set_ctas_at_once(n)

    def token_error(self) -> Optional[TokenError]:
        word, seq_len, vocab = ctypes.c_uint64(), ctypes.c_int64(), ctypes.c_int64()
        self.lib.rnnfast_emu_token_error(ctypes.byref(word), ctypes.byref(seq_len),
                                         ctypes.byref(vocab))
        w = word.value
        if w == 0:
            return None
        assert w >> 63 == 1, f"a set record has bit 63 set, got {w:#x}"
        pos = (w >> 32) & 0x7fffffff
        position = None if pos == 0x7fffffff else divmod(pos, seq_len.value)
        ident = ctypes.c_int32(w & 0xffffffff).value
        return TokenError(position, ident, seq_len.value, vocab.value)

    def clear_token_error(self):
        self.lib.rnnfast_emu_clear_token_error()

    # ---- the op, on either path -----------------------------------------------------------

    @staticmethod
    def _problem(tokens, emb, weight, bias=None, h0=None, grad_hs=None, hs=None):
        _check_inputs(tokens, emb, weight, bias, h0, grad_hs, hs)
        assert tokens.dtype in (torch.int64, torch.int32)
        B, T = tokens.shape
        V, H = emb.shape
        return Problem(tokens.data_ptr(), int(tokens.dtype == torch.int64), _ptr(emb),
                       _ptr(weight), _ptr(bias), _ptr(h0), _ptr(grad_hs), _ptr(hs), B, T, V, H)

    def forward(self, plan, tokens, emb, weight, bias, h0=None):
        """hs; `plan` a PersistentPlan for the persistent path, None for the step-wise one."""
        B, T = tokens.shape
        hs = torch.full((B, T, emb.shape[1]), float("nan"), dtype=emb.dtype)
        p = self._problem(tokens, emb, weight, bias, h0)
        self._call("rnnfast_emu_forward", DTYPE_CODES[emb.dtype], _plan_ref(plan),
                   ctypes.byref(p), _ptr(hs))
        return hs

    def backward(self, plan, grad_hs, tokens, emb, weight, hs, h0=None):
        """(d_emb, d_weight, d_bias, d_h0) on the path of `plan` (as in forward)."""
        B, T = tokens.shape
        V, H = emb.shape
        d_emb, d_w, d_b, grad_h0 = (torch.full(shape, float("nan"), dtype=emb.dtype)
                                    for shape in ((V, H), (H, H), (H,), (B, H)))
        p = self._problem(tokens, emb, weight, h0=h0, grad_hs=grad_hs, hs=hs)
        self._call("rnnfast_emu_backward", DTYPE_CODES[emb.dtype], _plan_ref(plan),
                   ctypes.byref(p), _ptr(d_emb), _ptr(d_w), _ptr(d_b), _ptr(grad_h0))
        return d_emb, d_w, d_b, grad_h0

    # ---- rnn_layer (csrc/cuda/layer_loops.h), called as torch.ops.rnnfast.rnn_layer is --------

    @staticmethod
    def _layer_problem(keep, input, weights, hx, batch_sizes, batch_size, nonlinearity,
                       batch_first, bidirectional):
        """The LayerProblem that csrc/cuda/rnn_layer_cuda.cpp makes of the op's arguments (each
        direction's W_ih stacked, its biases summed); `keep` holds the tensors it points into."""
        D = 2 if bidirectional else 1
        per = len(weights) // D
        x = input.contiguous()
        w_ih = torch.cat([weights[per * d] for d in range(D)]).contiguous()
        w_hh = [weights[per * d + 1].contiguous() for d in range(D)]
        bias = (torch.cat([weights[per * d + 2] + weights[per * d + 3] for d in range(D)])
                if per == 4 else None)
        h0 = None if hx is None else hx.contiguous()
        sizes = None if batch_sizes is None else batch_sizes.contiguous()
        _check_inputs(x, w_ih, bias, h0, *w_hh)
        keep += [x, w_ih, bias, h0, sizes, *w_hh]
        H, I = w_hh[0].shape[0], x.shape[-1]
        if sizes is not None:
            T, N = sizes.numel(), x.shape[0]
        else:
            T = x.shape[1] if batch_first else x.shape[0]
            N = x.numel() // I
        return LayerProblem(_ptr(x), _ptr(w_ih), _ptr(bias),
                            (ctypes.c_void_p * 2)(*[w.data_ptr() for w in w_hh]), _ptr(h0),
                            _ptr(sizes), T, batch_size, N, I, H, D,
                            int(batch_first and sizes is None), int(nonlinearity == "tanh"))

    def rnn_layer(self, input, weights, hx, batch_sizes, batch_size, nonlinearity, batch_first,
                  bidirectional):
        """(output, h_n) as torch.ops.rnnfast.rnn_layer returns them."""
        keep = []
        p = self._layer_problem(keep, input, weights, hx, batch_sizes, batch_size, nonlinearity,
                                batch_first, bidirectional)
        DH = p.D * p.H
        shape = (p.N, DH) if batch_sizes is not None else (p.T, p.B, DH)
        out = torch.full(shape, float("nan"), dtype=input.dtype)
        h_n = torch.full((p.D, p.B, p.H), float("nan"), dtype=input.dtype)
        self._call("rnnfast_emu_layer_forward", DTYPE_CODES[input.dtype], ctypes.byref(p),
                   _ptr(out), _ptr(h_n))
        return out, h_n

    def rnn_layer_backward(self, grad_output, grad_h_n, input, weights, hx, batch_sizes,
                           batch_size, output, nonlinearity, batch_first, bidirectional,
                           need_grad_input):
        """(grad_input, [weight gradients], grad_hx) as torch.ops.rnnfast.rnn_layer_backward."""
        keep = []
        p = self._layer_problem(keep, input, weights, hx, batch_sizes, batch_size, nonlinearity,
                                batch_first, bidirectional)
        per = len(weights) // p.D
        nan = float("nan")
        grads = [torch.full(w.shape, nan, dtype=w.dtype) for w in weights]
        grad_input = (torch.full(input.shape, nan, dtype=input.dtype) if need_grad_input
                      else torch.empty(0, dtype=input.dtype))
        grad_hx = torch.full((p.D, p.B, p.H), nan, dtype=input.dtype)
        out, g_out, g_h = (None if t is None else t.contiguous()
                           for t in (output, grad_output, grad_h_n))
        _check_inputs(out, g_out, g_h)
        keep += [out, g_out, g_h]

        def per_direction(k):
            return (ctypes.c_void_p * 2)(*[grads[per * d + k].data_ptr() if k < per else None
                                           for d in range(p.D)])
        g = LayerGradients(_ptr(out), _ptr(g_out), _ptr(g_h),
                           _ptr(grad_input) if need_grad_input else None, per_direction(0),
                           per_direction(1), per_direction(2), per_direction(3), _ptr(grad_hx))
        self._call("rnnfast_emu_layer_backward", DTYPE_CODES[input.dtype], ctypes.byref(p),
                   ctypes.byref(g))
        return grad_input, grads, grad_hx
