#!/usr/bin/env bash
# CI packaging step: `python -m build` makes the sdist and then a wheel from that sdist, in a fresh
# venv next to the pinned torch (no build isolation, as a user builds). Checks that the sdist holds
# every file git tracks and nothing else, that its metadata leaves torch open while the wheel pins
# the torch it was built against, that the library is stripped; then installs the wheel and runs
# the shipped tests against it from the unpacked sdist with its source package removed, so the
# installed rnnfast is the only one that can be imported. Exits non-zero on any failure.
#
#   .ci/sdist_check.sh                       # the smoke tests below
#   .ci/sdist_check.sh tests                 # pytest arguments instead: here, the whole suite
#
# Environment (optional): PYTHON (creates the venv; default python3), TORCH (the pin; default
# torch==2.13.0, a CPU wheel: never ask pip for an unpinned torch), MAX_JOBS (default 2),
# KEEP=1 (keep the work folder).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TORCH="${TORCH:-torch==2.13.0}"
export MAX_JOBS="${MAX_JOBS:-2}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rnnfast-sdist.XXXXXX")"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
VENV="$WORK/venv"
step() { echo "== sdist_check [${SECONDS}s]: $*"; }
quiet() {  # runs "$@" with its output in a log, shown only when it fails
  "$@" > "$WORK/step.log" 2>&1 ||
    { tail -n 60 "$WORK/step.log" >&2; echo "sdist_check: failed: $*" >&2; exit 1; }
}

step "fresh venv with $TORCH"
"${PYTHON:-python3}" -m venv "$VENV"
quiet "$VENV/bin/pip" install "$TORCH" numpy setuptools wheel ninja build pytest hypothesis

step "python -m build --no-isolation (the sdist, then a wheel built from it)"
quiet "$VENV/bin/python" -m build --no-isolation --outdir "$WORK/dist" "$ROOT"
SDIST="$(ls "$WORK"/dist/rnnfast-*.tar.gz)"
WHEEL="$(ls "$WORK"/dist/rnnfast-*.whl)"
step "built $(basename "$SDIST") ($(du -h "$SDIST" | cut -f1)), $(basename "$WHEEL") ($(du -h "$WHEEL" | cut -f1))"

git -C "$ROOT" ls-files > "$WORK/tracked.txt"
"$VENV/bin/python" "$ROOT/.ci/check_dist.py" "$SDIST" "$WHEEL" "$WORK/tracked.txt"

step "installing the wheel next to $TORCH"
quiet "$VENV/bin/pip" install "$WHEEL[plot]" "$TORCH"  # matplotlib: docs/training.md's --plot

SRC="$WORK/src"
mkdir "$SRC"
tar -xzf "$SDIST" -C "$SRC" --strip-components=1
rm -r "$SRC/rnnfast"
cd "$SRC"
"$VENV/bin/python" -c "
import sys, rnnfast
where = rnnfast.__file__
sys.exit(0 if where.startswith('$VENV/') else 'sdist_check: imported rnnfast from ' + where)"

step "shipped tests against the installed wheel, from $SRC"
if [ "$#" -eq 0 ]; then
  set -- tests/test_op.py tests/test_library_load.py tests/test_readme.py \
    tests/test_markdown_blocks.py
fi
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
step "ok"
