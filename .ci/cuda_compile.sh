#!/usr/bin/env bash
# CI compile step for the CUDA kernels, on a machine WITHOUT a GPU: builds the full CPU+CUDA
# extension against a CUDA build of torch in a separate venv, into a throwaway folder (the
# checkout's own rnnfast/_C*.so, from the CPU build, is never touched), and checks that the
# library loads and registers CUDA kernels for every op. Exits non-zero on any failure.
#
# Environment (all optional):
#   RNNFAST_CUDA_VENV     the venv, created if missing and reused if present
#                         (default: $HOME/.cache/rnnfast-cuda-venv)
#   CUDA_HOME             the toolkit holding bin/nvcc (default: /usr/local/cuda)
#   TORCH_CUDA_ARCH_LIST  GPU archs to compile for (default: 9.0, the H100/H200)
#   MAX_JOBS              parallel compile jobs (default: 2)
#   PYTHON                interpreter that creates the venv (default: python3.11)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${RNNFAST_CUDA_VENV:-$HOME/.cache/rnnfast-cuda-venv}"
# A CUDA 13.0 build; never ask pip for an unpinned torch. RNNFAST_CUDA_TORCH_VERSION=2.11.0
# (with a venv that already holds it) checks the sources against the GPU machine's own torch.
export TORCH_VERSION="${RNNFAST_CUDA_TORCH_VERSION:-2.14.1}"
TORCH_PIN="torch==$TORCH_VERSION"
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export MAX_JOBS="${MAX_JOBS:-2}"

step() { echo "== cuda_compile: $*"; }

if [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
  echo "cuda_compile: no nvcc at $CUDA_HOME/bin/nvcc (set CUDA_HOME)" >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV"
  "${PYTHON:-python3.11}" -m venv "$VENV"
fi
if ! "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.util, os, sys
import torch
ok = torch.__version__.split("+")[0] == os.environ["TORCH_VERSION"] and torch.version.cuda is not None
ok = ok and all(importlib.util.find_spec(m) for m in ("setuptools", "wheel", "ninja"))
sys.exit(0 if ok else 1)
PY
then
  step "installing $TORCH_PIN setuptools wheel ninja into $VENV"
  "$VENV/bin/pip" install -q "$TORCH_PIN" setuptools wheel ninja
fi

# ninja from the venv (else torch falls back to a serial build); the CUDA headers that the
# pip wheels ship (cuBLAS and friends) for a toolkit that only has the compiler.
export PATH="$VENV/bin:$PATH"
export PYTHONWARNINGS="ignore:Failed to initialize NumPy"  # the venv has no numpy; nothing needs it
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
export CPATH="$SITE/nvidia/cu13/include${CPATH:+:$CPATH}"

OUT="$(mktemp -d "${TMPDIR:-/tmp}/rnnfast-cuda-build.XXXXXX")"
trap 'rm -rf "$OUT"' EXIT

step "building with $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'), nvcc $("$CUDA_HOME/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), archs $TORCH_CUDA_ARCH_LIST"
cd "$ROOT"
if ! "$VENV/bin/python" setup.py build_ext --build-temp "$OUT/temp" --build-lib "$OUT/lib" \
    > "$OUT/build.log" 2>&1; then
  tail -n 60 "$OUT/build.log" >&2
  echo "cuda_compile: the build failed (last lines above)" >&2
  exit 1
fi
grep -iE "warning|rnnfast:" "$OUT/build.log" | grep -v "^\[" || true

SO="$(ls "$OUT"/lib/rnnfast/_C*.so)"
step "built $(basename "$SO") ($(du -h "$SO" | cut -f1))"
if ! readelf -SW "$SO" | grep -c nv_fatbin > /dev/null; then  # not -q: SIGPIPE + pipefail
  echo "cuda_compile: $SO holds no device code (.nv_fatbin section)" >&2
  exit 1
fi
"$VENV/bin/python" - "$SO" <<'PY'
import sys
import torch
torch.ops.load_library(sys.argv[1])  # resolves every symbol (cuBLAS included) now
# lm_head_loss's CUDA kernel only refuses CUDA tensors with a clear message (no CUDA kernel).
for op in ("rnnfast::elman_rnn", "rnnfast::elman_rnn_backward", "rnnfast::rnn_layer",
           "rnnfast::rnn_layer_backward", "rnnfast::lm_head_loss",
           "rnnfast::lm_head_loss_backward"):
    for key in ("CPU", "CUDA"):
        if not torch._C._dispatch_has_kernel_for_dispatch_key(op, key):
            sys.exit(f"cuda_compile: {op} has no {key} kernel")
    # The autograd kernel is registered once for all devices (the Autograd alias key).
    if not torch._C._dispatch_has_computed_kernel_for_dispatch_key(op, "AutogradCUDA"):
        sys.exit(f"cuda_compile: {op} has no autograd kernel for CUDA")
print("== cuda_compile: ok: every op has CPU, CUDA and autograd kernels")
PY
