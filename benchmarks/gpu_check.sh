#!/usr/bin/env bash
# Every check that needs a GPU, in one prepared run of a few minutes (written for an H200 with
# the machine's own torch, no network):
#   1. build the extension in place from source with that torch (TORCH_CUDA_ARCH_LIST=9.0)
#   2. pytest tests/test_cuda.py
#   3. compute-sanitizer memcheck, racecheck and synccheck on a tiny workload
#      (benchmarks/sanitizer_case.py)
#   4. the benchmark (benchmarks/gpu_bench.py), whose markdown table is printed last
# Steps go on after a failure; the exit status is non-zero if any failed. Full logs go to
# $LOG_DIR (default: $OUT/gpu_check when $OUT is set, else a temp folder).
#
#   bash benchmarks/gpu_check.sh            # PYTHON=python3 by default
#   SKIP_BENCH=1 bash benchmarks/gpu_check.sh
#   SANITIZER_TOOLS="memcheck" BENCH_ARGS="--compile-max-T 64" bash benchmarks/gpu_check.sh
set -uo pipefail

cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
LOG_DIR="${LOG_DIR:-${OUT:+$OUT/gpu_check}}"
LOG_DIR="${LOG_DIR:-$(mktemp -d)}"
mkdir -p "$LOG_DIR"
export TMPDIR="$(mktemp -d)"  # inductor's cache, private to this run
FAILED=()
T0=$(date +%s)

step() { echo; echo "=== gpu_check: $* ($(( $(date +%s) - T0 )) s)"; }
fail() { FAILED+=("$1"); echo "=== gpu_check: FAILED: $1"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PY" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| GPU', torch.cuda.is_available() and torch.cuda.get_device_name())"
"$CUDA_HOME/bin/nvcc" --version | tail -n 1 || true

# cuBLAS headers: from the toolkit if it has them, else from the pip wheels torch came with.
if [ ! -f "$CUDA_HOME/include/cublas_v2.h" ]; then
  NV_INC="$("$PY" - <<'PY'
import os
try:
    import nvidia
except ImportError:
    raise SystemExit
for root in nvidia.__path__:
    for sub in ("cu13/include", "cublas/include"):
        if os.path.exists(os.path.join(root, sub, "cublas_v2.h")):
            print(os.path.join(root, sub))
            raise SystemExit
PY
)"
  [ -n "$NV_INC" ] && export CPATH="$NV_INC${CPATH:+:$CPATH}"
fi
command -v ninja >/dev/null || echo "gpu_check: no ninja on PATH: the build runs serially (slower)"

step "1. build (archs $TORCH_CUDA_ARCH_LIST, $MAX_JOBS jobs)"
if timeout 900 "$PY" setup.py build_ext --inplace > "$LOG_DIR/build.log" 2>&1; then
  grep -E "rnnfast:|warning" "$LOG_DIR/build.log" | grep -v "^\[" | head -n 20
  "$PY" -c "import torch, rnnfast; assert torch._C._dispatch_has_kernel_for_dispatch_key('rnnfast::elman_rnn', 'CUDA'), 'built without CUDA kernels'; print('rnnfast built with CUDA kernels')" \
    || fail "build has no CUDA kernels"
else
  tail -n 40 "$LOG_DIR/build.log"
  fail "build"
fi

step "2. tests/test_cuda.py"
if ! "$PY" -c "import pytest" 2>/dev/null; then
  fail "tests (pytest is not installed)"
elif ! timeout 900 "$PY" -m pytest -q --maxfail=25 -p no:cacheprovider tests/test_cuda.py \
    > "$LOG_DIR/pytest.log" 2>&1; then
  tail -n 60 "$LOG_DIR/pytest.log"
  fail "tests"
else
  tail -n 3 "$LOG_DIR/pytest.log"
fi

step "3. compute-sanitizer"
SANITIZER="$CUDA_HOME/bin/compute-sanitizer"
[ -x "$SANITIZER" ] || SANITIZER="$(command -v compute-sanitizer || true)"
if [ -z "$SANITIZER" ]; then
  fail "compute-sanitizer not found"
else
  for tool in ${SANITIZER_TOOLS:-memcheck racecheck synccheck}; do
    # memcheck checks every kernel (cuBLAS's too) with torch's caching allocator off, so that
    # a read past a tensor is a read past an allocation; the others check only rnnfast's.
    filter=()
    [ "$tool" = memcheck ] || filter=(--kernel-name kns=rnnfast)
    t=$(date +%s)
    if PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 600 "$SANITIZER" --tool "$tool" \
        --error-exitcode 1 "${filter[@]}" "$PY" benchmarks/sanitizer_case.py \
        > "$LOG_DIR/sanitizer_$tool.log" 2>&1; then
      echo "$tool: clean ($(( $(date +%s) - t )) s): $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$LOG_DIR/sanitizer_$tool.log" | tail -n 1)"
    else
      grep -m 40 -E "=====|Error|error" "$LOG_DIR/sanitizer_$tool.log"
      fail "compute-sanitizer $tool"
    fi
  done
fi

step "summary of the checks"
if [ ${#FAILED[@]} -eq 0 ]; then echo "all checks passed"; else printf 'FAILED: %s\n' "${FAILED[@]}"; fi
echo "logs in $LOG_DIR"

if [ -z "${SKIP_BENCH:-}" ]; then
  step "4. benchmark"
  # BENCH_ARGS passes options on, e.g. BENCH_ARGS="--compile-max-T 64" to save compile time.
  timeout 600 "$PY" benchmarks/gpu_bench.py ${BENCH_ARGS:-} 2>&1 | tee "$LOG_DIR/bench.log" \
    | grep -v "^gpu_bench: ("
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "benchmark"
fi
[ ${#FAILED[@]} -eq 0 ]
