#!/usr/bin/env bash
# Every check that needs a GPU, in one prepared run that fits one 10-minute device call (written
# for an H200 with the machine's own torch, no network):
#   build      the extension in place from source with that torch (TORCH_CUDA_ARCH_LIST=9.0)
#   tests      pytest tests/test_cuda.py tests/test_backends.py tests/test_rnn_layer_backends.py
#              and test_rnn.py's CUDA cases (with their CPU cases: the emulated ones are left out)
#   bench      benchmarks/gpu_bench.py (its table is saved, and printed again last)
#   sanitizer  compute-sanitizer memcheck, racecheck and synccheck on a tiny workload
#              (benchmarks/sanitizer_case.py)
# Steps go on after a failure; the exit status is non-zero if any failed. Each step has a time
# cap, and all of them share one deadline (DEADLINE_S, default 540 s after the start): a step
# that would start past it is skipped and reported, so the summary and the table always print.
# Full logs go to $LOG_DIR (default: $OUT/gpu_check when $OUT is set, else a temp folder),
# written as the steps run, so a run cut short still leaves them.
#
#   bash benchmarks/gpu_check.sh                  # PYTHON=python3 by default
#   STEPS="build tests" bash benchmarks/gpu_check.sh    # a subset, e.g. over two device calls
#   SANITIZER_TOOLS="memcheck" BENCH_ARGS="--no-compile" bash benchmarks/gpu_check.sh
set -uo pipefail

cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
STEPS="${STEPS:-build tests bench sanitizer}"
# torch.compile unrolls the loop, so its compile time grows with T (minutes at T = 128); no
# target uses that column, so by default it is measured at the book's T = 16 only.
BENCH_ARGS="${BENCH_ARGS:---compile-max-T 16}"
LOG_DIR="${LOG_DIR:-${OUT:+$OUT/gpu_check}}"
LOG_DIR="${LOG_DIR:-$(mktemp -d)}"
mkdir -p "$LOG_DIR"
export TMPDIR="$(mktemp -d)"  # inductor's cache, private to this run
FAILED=()
T0=$(date +%s)
DEADLINE=$((T0 + ${DEADLINE_S:-540}))

step() { echo; echo "=== gpu_check: $* ($(( $(date +%s) - T0 )) s)"; }
fail() { FAILED+=("$1"); echo "=== gpu_check: FAILED: $1"; }
wanted() { [[ " $STEPS " == *" $1 "* ]]; }
# Seconds a step may take: its cap, or what is left before the deadline if that is less.
budget() {
  local left=$((DEADLINE - $(date +%s)))
  echo $(( left < $1 ? left : $1 ))
}
# Runs "$@" under a time limit of `budget CAP` seconds; skips (and reports) when under 20 s are
# left. Usage: capped CAP NAME command...
capped() {
  local cap=$1 name=$2; shift 2
  local s; s=$(budget "$cap")
  if [ "$s" -lt 20 ]; then
    echo "gpu_check: $name skipped: the run's deadline is near"
    return 1
  fi
  timeout "$s" "$@"
  local rc=$?
  [ $rc -eq 124 ] && echo "gpu_check: $name stopped after its $s s"
  return $rc
}

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PY" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| GPU', torch.cuda.is_available() and torch.cuda.get_device_name())"
"$CUDA_HOME/bin/nvcc" --version | tail -n 1 || true
"$PY" -c "import os, sysconfig; p = os.path.join(sysconfig.get_paths()['include'], 'Python.h'); assert os.path.exists(p), p" \
  || echo "gpu_check: no Python.h for $PY: the build will fail"

# torch's CUDA headers include cuBLAS, cuBLASLt, cuSPARSE and cuSOLVER's. A toolkit may lack
# some of them; the pip wheels torch came with have them all, so their include folders go on
# CPATH after the toolkit's own.
NV_INC="$("$PY" - <<'PY'
import os
try:
    import nvidia
except ImportError:
    raise SystemExit
dirs = []
for root in nvidia.__path__:
    for sub in ("cu13/include", "cublas/include", "cusparse/include", "cusolver/include",
                "cuda_runtime/include"):
        d = os.path.join(root, sub)
        if os.path.isdir(d) and d not in dirs:
            dirs.append(d)
print(":".join(dirs))
PY
)"
[ -n "$NV_INC" ] && export CPATH="${CPATH:+$CPATH:}$NV_INC"
for h in cublas_v2.h cublasLt.h cusparse.h cusolverDn.h; do
  found=""
  for d in "$CUDA_HOME/include" ${CPATH:+${CPATH//:/ }}; do [ -f "$d/$h" ] && found="$d" && break; done
  [ -n "$found" ] || echo "gpu_check: $h not found in the toolkit or the nvidia wheels: the build may fail"
done
command -v ninja >/dev/null || echo "gpu_check: no ninja on PATH: the build runs serially (slower)"

if wanted build; then
  step "build (archs $TORCH_CUDA_ARCH_LIST, $MAX_JOBS jobs)"
  if capped 300 build "$PY" setup.py build_ext --inplace > "$LOG_DIR/build.log" 2>&1; then
    grep -E "rnnfast:|warning" "$LOG_DIR/build.log" | grep -v "^\[" | head -n 20
    "$PY" -c "import torch, rnnfast; assert torch._C._dispatch_has_kernel_for_dispatch_key('rnnfast::elman_rnn', 'CUDA'), 'built without CUDA kernels'; print('rnnfast built with CUDA kernels')" \
      || fail "build has no CUDA kernels"
  else
    tail -n 40 "$LOG_DIR/build.log"
    fail "build"
  fi
fi

if wanted tests; then
  step "tests/test_cuda.py tests/test_backends.py tests/test_rnn_layer_backends.py, rnnfast.RNN on CUDA"
  if ! "$PY" -c "import pytest" 2>/dev/null; then
    fail "tests (pytest is not installed)"
  elif ! capped 240 tests "$PY" -m pytest -q --maxfail=25 -p no:cacheprovider \
      -m "not slow and not emulated" tests/test_cuda.py tests/test_backends.py \
      tests/test_rnn_layer_backends.py tests/test_rnn.py::test_matches_nn_rnn_on_cuda \
      > "$LOG_DIR/pytest.log" 2>&1; then
    tail -n 60 "$LOG_DIR/pytest.log"
    fail "tests"
  else
    tail -n 3 "$LOG_DIR/pytest.log"
  fi
fi

if wanted bench; then
  step "benchmark (table saved; printed again last)"
  # The per-call lines go to the log only; the targets and the table come at the end.
  capped 180 bench "$PY" benchmarks/gpu_bench.py $BENCH_ARGS --md "$LOG_DIR/bench.md" \
    > "$LOG_DIR/bench.log" 2>&1
  rc=$?
  grep -E "^gpu_bench: [^(]|WARNING|failed" "$LOG_DIR/bench.log" | head -n 20
  [ $rc -eq 0 ] || { tail -n 20 "$LOG_DIR/bench.log"; fail "benchmark"; }
fi

if wanted sanitizer; then
  step "compute-sanitizer"
  SANITIZER="$CUDA_HOME/bin/compute-sanitizer"
  [ -x "$SANITIZER" ] || SANITIZER="$(command -v compute-sanitizer || true)"
  if [ -z "$SANITIZER" ]; then
    fail "compute-sanitizer not found"
  else
    for tool in ${SANITIZER_TOOLS:-memcheck racecheck synccheck}; do
      # memcheck checks every kernel (cuBLAS's too) with torch's caching allocator off, so that
      # a read past a tensor is a read past an allocation; the others check only rnnfast's.
      # CUDA API errors that torch itself provokes and handles are not the kernels' faults.
      filter=()
      [ "$tool" = memcheck ] || filter=(--kernel-name kns=rnnfast)
      t=$(date +%s)
      if PYTORCH_NO_CUDA_MEMORY_CACHING=1 capped 120 "compute-sanitizer $tool" "$SANITIZER" \
          --tool "$tool" --report-api-errors no --error-exitcode 1 "${filter[@]}" \
          "$PY" benchmarks/sanitizer_case.py > "$LOG_DIR/sanitizer_$tool.log" 2>&1; then
        echo "$tool: clean ($(( $(date +%s) - t )) s): $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$LOG_DIR/sanitizer_$tool.log" | tail -n 1)"
      else
        grep -m 40 -E "=====|Error|error" "$LOG_DIR/sanitizer_$tool.log"
        fail "compute-sanitizer $tool"
      fi
    done
  fi
fi

step "summary"
if [ ${#FAILED[@]} -eq 0 ]; then echo "all checks passed"; else printf 'FAILED: %s\n' "${FAILED[@]}"; fi
echo "logs in $LOG_DIR"
if wanted bench; then
  echo
  if [ -s "$LOG_DIR/bench.md" ]; then cat "$LOG_DIR/bench.md"; else echo "(no benchmark table)"; fi
fi
[ ${#FAILED[@]} -eq 0 ]
