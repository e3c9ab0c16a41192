"""The two libraries that multiply large float32 matrices on the CPU (csrc/blas.h: BLAS, or
libtorch's oneDNN where MKL would leave AVX-512 unused), each held to nn.RNN and the reference
loop, and RNNFAST_CPU_GEMM's errors. The choice is made once per process, so each runs in a
fresh one."""
import ctypes
import os
import subprocess
import sys

import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def run_check(choice):
    """The check's result, with oneDNN's verbose log (one line per product it runs) on stdout."""
    paths = [HERE, os.path.dirname(HERE)] + ([os.environ["PYTHONPATH"]]
                                             if os.environ.get("PYTHONPATH") else [])
    env = dict(os.environ, RNNFAST_CPU_GEMM=choice, ONEDNN_VERBOSE="1",
               PYTHONPATH=os.pathsep.join(paths))
    return subprocess.run([sys.executable, os.path.join(HERE, "support", "large_gemm_check.py")],
                          capture_output=True, text=True, timeout=600, env=env)


def onednn_products(stdout):
    return sum(",exec,cpu,matmul," in line for line in stdout.splitlines())


def avx512_cpu():
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((l for l in f if l.startswith("flags")), "").split()
    except OSError:
        return False
    return {"avx512bw", "avx512vl", "avx512dq"} <= set(flags)


ONEDNN_REASON = ("libtorch's oneDNN float32 matmul needs AVX-512 BW, VL and DQ, which this CPU "
                 "lacks" if not avx512_cpu() else "this torch is built without oneDNN")


@pytest.mark.parametrize("choice", [
    "blas", "auto",
    pytest.param("onednn", marks=pytest.mark.skipif(
        not (avx512_cpu() and torch.backends.mkldnn.is_available()), reason=ONEDNN_REASON))])
def test_large_products_agree_with_nn_rnn_and_the_loop(choice):
    out = run_check(choice)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "ok", \
        out.stdout[-2000:] + out.stderr
    if choice == "blas":
        assert onednn_products(out.stdout) == 0
    elif choice == "onednn":
        assert onednn_products(out.stdout) > 10   # the products did go to oneDNN


def mkl_packs():
    """Whether this torch's libtorch exports MKL's packing functions (csrc/blas.h)."""
    lib = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        return hasattr(ctypes.CDLL(lib), "cblas_sgemm_compute")
    except OSError:
        return False


PACKED_WALKS = """
import torch, rnnfast
torch.manual_seed(0)
x = torch.randn(9, 16, 8, requires_grad=True)
out, h = rnnfast.RNN(8, 512)(x)
(out.sum() + h.sum()).backward()
print("ok")
"""


@pytest.mark.skipif(not mkl_packs(), reason="this torch's libtorch exports no MKL packing "
                                             "functions (cblas_sgemm_pack/compute)")
def test_walks_over_blas_multiply_by_a_packed_weight():
    # MKL_VERBOSE logs every MKL call: the walk's step products must be packed ones.
    env = dict(os.environ, RNNFAST_CPU_GEMM="blas", MKL_VERBOSE="1")
    out = subprocess.run([sys.executable, "-c", PACKED_WALKS], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0 and "ok" in out.stdout, out.stdout[-2000:] + out.stderr
    log = out.stdout + out.stderr
    assert "SGEMM_PACK(" in log and log.count("SGEMM_COMPUTE(") >= 2 * 9, log[-2000:]


def test_a_bad_choice_is_named_with_what_is_expected():
    out = run_check("mkl")
    assert out.returncode != 0
    assert "RNNFAST_CPU_GEMM=mkl: expected auto, blas or onednn" in out.stderr
