#!/usr/bin/env bash
# Builds the C++ extension with AddressSanitizer and UndefinedBehaviorSanitizer and runs the
# op (both ops), bad-input, hostile-input, NaN/Inf and property tests against it. Any sanitizer
# report fails the script.
#
#   .ci/sanitize.sh                 # uses .venv/bin/python (what `make test` sets up)
#   PYTHON=/path/to/python .ci/sanitize.sh [extra pytest args]
#
# The build goes into a copy of the tree in a temporary folder, so the checkout's own
# rnnfast/_C*.so is never replaced by the instrumented one. Python and torch are not
# instrumented: the sanitizer runtime is preloaded (LD_PRELOAD) and checks our code, plus every
# malloc/free and memcpy in the process. libstdc++ is preloaded too, or ASan's __cxa_throw
# interceptor finds no real __cxa_throw (python does not link libstdc++) and the first C++
# exception aborts the process.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
CXX_FOR_RUNTIME="${CXX:-g++}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rnnfast-sanitize.XXXXXX")"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT

cp -r "$ROOT/setup.py" "$ROOT/pyproject.toml" "$ROOT/README.md" "$ROOT/LICENSE" "$ROOT/csrc" \
  "$ROOT/rnnfast" "$ROOT/tests" "$WORK/"
rm -f "$WORK"/rnnfast/_C*.so

# CFLAGS replaces Python's default flags (-DNDEBUG -fwrapv ...): asserts stay on, and signed
# overflow is undefined again, so UBSan reports any index arithmetic that overflows.
# -fno-sanitize-recover makes every UBSan finding fatal; _GLIBCXX_ASSERTIONS bounds-checks
# std::vector (ABI-compatible, unlike _GLIBCXX_DEBUG).
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
# RNNFAST_DEBUG=1: setup.py keeps the -g below (a release build adds -g0 and strips the library),
# so sanitizer reports name source lines.
echo "sanitize: building in $WORK" >&2
(cd "$WORK" && RNNFAST_DEBUG=1 CFLAGS="$SAN -fno-omit-frame-pointer -g -D_GLIBCXX_ASSERTIONS" \
  LDFLAGS="$SAN" MAX_JOBS="${MAX_JOBS:-2}" "$PYTHON" setup.py build_ext --inplace \
  >"$WORK/build.log" 2>&1) || { tail -50 "$WORK/build.log"; exit 1; }

LOGS="$WORK/sanitizer-logs"
mkdir -p "$LOGS"
LIBASAN="$("$CXX_FOR_RUNTIME" -print-file-name=libasan.so)"
LIBSTDCXX="$("$CXX_FOR_RUNTIME" -print-file-name=libstdc++.so)"
export LD_PRELOAD="$LIBASAN $LIBSTDCXX"
# detect_leaks=0: CPython leaks by design at exit. allocator_may_return_null=1: the hostile
# cases ask for petabytes and expect torch's "can't allocate memory" error, as with glibc.
# log_path: a report written by a dying process would otherwise vanish in pytest's capture.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:allocator_may_return_null=1:log_path=$LOGS/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$LOGS/ubsan"
export PYTHONPATH="$WORK"

cd "$WORK"
"$PYTHON" -c "import rnnfast, sys; sys.exit(0 if rnnfast.__file__.startswith('$WORK') else
    'sanitize: imported rnnfast from ' + rnnfast.__file__ + ', not from the instrumented copy')"

# --capture=sys: pytest captures Python's sys.stdout/err only, so a report that UBSan writes to
# file descriptor 2 (it ignores log_path here) reaches pytest.log even when it kills pytest.
# The harness self-test kills a child on purpose; ASan would (rightly) report that SEGV.
# test_backends.py's emulated cases are left out: they compile the CUDA emulator, which this
# build does not instrument (test_cuda_emulated_sanitizers.py runs it under the sanitizers).
set +e
"$PYTHON" -m pytest -q -p no:cacheprovider --capture=sys -m "not slow and not emulated" \
  tests/test_op.py tests/test_backends.py tests/test_bad_input.py tests/test_hostile.py \
  tests/test_nonfinite.py tests/test_fuzz_reference.py tests/test_threads.py \
  tests/test_lm_head_loss.py \
  --deselect tests/test_hostile.py::test_a_crashing_case_is_caught_and_the_next_one_still_runs \
  "$@" 2>&1 | tee "$LOGS/pytest.log"
status=${PIPESTATUS[0]}
set -e

# Warnings (e.g. "failed to allocate" for the petabyte cases) are expected; reports are not.
REPORT="ERROR: AddressSanitizer|runtime error:|SUMMARY: [A-Za-z]*Sanitizer|CHECK failed"
reports=$(grep -l -E "$REPORT" "$LOGS"/* 2>/dev/null || true)
if [ -n "$reports" ]; then
  for f in $reports; do  # pytest.log was shown above already
    [ "$(basename "$f")" = pytest.log ] || { echo "=== $f" >&2; cat "$f" >&2; }
  done
  echo "sanitize: FAILED, sanitizer reports above" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "sanitize: FAILED, pytest exited with status $status (no sanitizer report)" >&2
  exit "$status"
fi
echo "sanitize: passed, no sanitizer reports" >&2
