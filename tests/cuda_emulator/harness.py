"""The emulated CUDA op: the real kernels (through the emulator's library, entry_points.h) on
torch CPU tensors, orchestrated as the CUDA op's host code does.

`forward_persistent`/`backward_persistent` mirror csrc/cuda/persistent.cpp and
`forward_stepwise`/`backward_stepwise` mirror csrc/cuda/stepwise.cpp, step for step: the same
buffers in the same dtypes, zeroed where the host code zeroes them, and torch doing the GEMMs
that cuBLAS does there (in float32, float64 for float64 inputs, as cuBLAS accumulates). Buffers
the host code leaves uninitialised (at::empty) are filled with NaN here, so an element a kernel
fails to write shows up.
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


@dataclass
class TokenError:
    """The record a kernel left (csrc/cuda/token_error.h), decoded as the host decodes it."""
    position: Optional[Tuple[int, int]]   # (b, t), None when saturated (past 2^31 elements)
    id: int                               # saturated to int32
    seq_len: int
    vocab_size: int


def acc_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _ptr(t):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


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
        self.lib.rnnfast_emu_plan.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_int,
                                              ctypes.c_int, ctypes.c_uint64,
                                              ctypes.POINTER(ctypes.c_int), ctypes.c_void_p]
        self.lib.rnnfast_emu_step_forward.argtypes = [ctypes.c_int, ctypes.c_void_p,
                                                      ctypes.c_int64] + [ctypes.c_void_p] * 3
        self.lib.rnnfast_emu_step_backward.argtypes = [ctypes.c_int, ctypes.c_void_p,
                                                       ctypes.c_int64] + [ctypes.c_void_p] * 4

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

    # ---- the op's two paths -----------------------------------------------------------------

    @staticmethod
    def _problem(tokens, emb, weight, bias=None, h0=None, grad_hs=None, hs=None):
        _check_inputs(tokens, emb, weight, bias, h0, grad_hs, hs)
        assert tokens.dtype in (torch.int64, torch.int32)
        B, T = tokens.shape
        V, H = emb.shape
        return Problem(tokens.data_ptr(), int(tokens.dtype == torch.int64), _ptr(emb),
                       _ptr(weight), _ptr(bias), _ptr(h0), _ptr(grad_hs), _ptr(hs), B, T, V, H)

    def forward_persistent(self, plan, tokens, emb, weight, bias, h0=None):
        B, T = tokens.shape
        hs = torch.full((B, T, emb.shape[1]), float("nan"), dtype=emb.dtype)
        p = self._problem(tokens, emb, weight, bias, h0)
        self._call("rnnfast_emu_forward_persistent", DTYPE_CODES[emb.dtype], ctypes.byref(plan),
                   ctypes.byref(p), _ptr(hs))
        return hs

    def backward_persistent(self, plan, grad_hs, tokens, emb, weight, hs, h0=None):
        """(d_emb, d_weight, d_bias, d_h0) as csrc/cuda/persistent.cpp computes them."""
        B, T = tokens.shape
        V, H = emb.shape
        dtype, acc = emb.dtype, acc_dtype(emb.dtype)
        da = torch.full((B, T, H), float("nan"), dtype=acc)
        u = torch.full((B, T, H), float("nan"), dtype=acc)
        d_emb = torch.zeros(V, H, dtype=acc)      # cudaMemsetAsync: the kernel adds into them
        d_b = torch.zeros(H, dtype=acc)
        grad_h0 = torch.full((B, H), float("nan"), dtype=dtype)
        p = self._problem(tokens, emb, weight, h0=h0, grad_hs=grad_hs, hs=hs)
        self._call("rnnfast_emu_backward_persistent", DTYPE_CODES[dtype], ctypes.byref(plan),
                   ctypes.byref(p), _ptr(da), _ptr(u), _ptr(d_emb), _ptr(d_b), _ptr(grad_h0))
        # dW = da^T u over all B*T positions: one GEMM in the accumulation dtype.
        d_w = da.reshape(B * T, H).t() @ u.reshape(B * T, H)
        if dtype not in (torch.float16, torch.bfloat16):
            return d_emb, d_w, d_b, grad_h0
        return (*self.narrow(dtype, d_emb, d_w, d_b), grad_h0)

    def narrow(self, dtype, *sources):
        """launch_narrow: up to three float32 buffers to 16-bit copies, in one launch."""
        assert 1 <= len(sources) <= 3 and all(s.dtype == torch.float32 for s in sources)
        _check_inputs(*sources)
        outs = [torch.full(s.shape, float("nan"), dtype=dtype) for s in sources]
        src = (ctypes.c_void_p * 3)(*[s.data_ptr() for s in sources])
        dst = (ctypes.c_void_p * 3)(*[o.data_ptr() for o in outs])
        n = (ctypes.c_int64 * 3)(*[s.numel() for s in sources])
        self._call("rnnfast_emu_narrow", DTYPE_CODES[dtype], src, dst, n)
        return outs

    def forward_stepwise(self, tokens, emb, weight, bias, h0=None):
        """hs as csrc/cuda/stepwise.cpp computes it: pe = emb W^T once, then per step the GEMM
        c = h_{t-1} W^T and the pointwise kernel."""
        B, T = tokens.shape
        V, H = emb.shape
        dtype, acc = emb.dtype, acc_dtype(emb.dtype)
        hs = torch.full((B, T, H), float("nan"), dtype=dtype)
        w = weight.to(acc)
        pe = (emb.to(acc) @ w.t()).contiguous()
        p = self._problem(tokens, emb, weight, bias, h0)
        for t in range(T):
            prev = hs[:, t - 1] if t > 0 else h0
            c = None if prev is None else (prev.to(acc) @ w.t()).contiguous()
            self._call("rnnfast_emu_step_forward", DTYPE_CODES[dtype], ctypes.byref(p), t,
                       _ptr(c), _ptr(pe), _ptr(hs))
        return hs

    def backward_stepwise(self, grad_hs, tokens, emb, weight, hs, h0=None):
        """(d_emb, d_weight, d_bias, d_h0) as csrc/cuda/stepwise.cpp computes them: da and u
        in the input dtype, the carry and d_emb in the accumulation dtype."""
        B, T = tokens.shape
        V, H = emb.shape
        dtype, acc = emb.dtype, acc_dtype(emb.dtype)
        da = torch.full((B, T, H), float("nan"), dtype=dtype)
        u = torch.full((B, T, H), float("nan"), dtype=dtype)
        carry = torch.full((B, H), float("nan"), dtype=acc)
        d_emb = torch.zeros(V, H, dtype=acc)
        grad_h0 = torch.full((B, H), float("nan"), dtype=dtype)
        w = weight.to(acc)
        code = DTYPE_CODES[dtype]
        p = self._problem(tokens, emb, weight, h0=h0, grad_hs=grad_hs, hs=hs)
        for t in range(T - 1, -1, -1):
            self._call("rnnfast_emu_step_backward", code, ctypes.byref(p), t,
                       None if t == T - 1 else _ptr(carry), _ptr(da), _ptr(u), _ptr(d_emb))
            carry = (da[:, t].to(acc) @ w).contiguous()
        self._call("rnnfast_emu_backward_finish", code, ctypes.byref(p), _ptr(carry),
                   _ptr(d_emb), _ptr(grad_h0))
        # dW = da^T u (16-bit operands, float32 accumulation, stored in the input dtype).
        d_w = (da.reshape(B * T, H).t().to(acc) @ u.reshape(B * T, H).to(acc)).to(dtype)
        d_b = da.reshape(B * T, H).sum(0)  # torch's sum accumulates 16-bit in float32 too
        return d_emb.to(dtype), d_w, d_b, grad_h0
