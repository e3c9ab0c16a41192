"""The emulated CUDA op on torch CPU tensors: the real host code (csrc/cuda/time_loops.cpp) and
kernels, through the emulator's library (entry_points.h), with host loops standing in for
cuBLAS. Outputs, and the workspace the host code carves, start as NaN, so an element that is
never written shows up.
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
