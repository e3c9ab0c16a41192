"""Compiles the CUDA kernels' real sources (csrc/cuda/*.cu) with g++ as host C++ against the
SIMT emulator, in three flavours:

  library  the shared library that harness.py loads with ctypes (-O2);
  tsan     the sanitizer driver under ThreadSanitizer (-O1 -g), for shared-memory races;
  asan     the sanitizer driver under AddressSanitizer + UBSan, for out-of-bounds accesses.

Each build goes into `cache_dir/<flavour>-<hash>`, the hash covering the compiler, the flags
and every source and header, so that a test session reuses what an earlier one built from the
same sources and rebuilds when any of them changes. Usable by hand too:

    python tests/cuda_emulator/build.py tsan /tmp/emu     # prints the path of the driver
"""
import concurrent.futures
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EMULATOR = Path(__file__).resolve().parent
ROOT = EMULATOR.parents[1]
CUDA_SOURCES = ROOT / "csrc" / "cuda"

# The kernels, the ATen-free launch planner and time loops, exactly as the CUDA build compiles them.
KERNEL_SOURCES = [CUDA_SOURCES / name for name in (
    "persistent_forward.cu", "persistent_backward.cu", "stepwise_kernels.cu", "narrow.cu",
    "layer_kernels.cu", "persistent_plan.cpp", "time_loops.cpp", "layer_loops.cpp")]
RUNTIME_SOURCES = [EMULATOR / "simt_runtime.cpp", EMULATOR / "entry_points.cpp"]
DRIVER_SOURCES = [EMULATOR / "sanitizer_driver.cpp", EMULATOR / "sanitizer_controls.cpp"]

COMMON_FLAGS = ["-std=c++20", "-pthread", "-Wall", "-Wextra", "-Werror",
                # `#pragma unroll` is nvcc's; g++ ignores it.
                "-Wno-unknown-pragmas"]
# DWARF 4: GCC 12's sanitizer runtimes symbolise it (file:line, inlined frames) more reliably.
SANITIZED = ["-gdwarf-4", "-fno-omit-frame-pointer"]
FLAVOURS = {
    "library": dict(flags=["-O2", "-fPIC"], link=["-shared"], output="librnnfast_emulated.so",
                    sources=KERNEL_SOURCES + RUNTIME_SOURCES),
    # GCC warns that ThreadSanitizer does not model atomic_thread_fence (__threadfence_system,
    # and the warp barrier's fences, which it must indeed not see: simt.h).
    "tsan": dict(flags=SANITIZED + ["-O1", "-fsanitize=thread", "-Wno-tsan"],
                 link=["-fsanitize=thread"], output="sanitizer_driver_tsan",
                 sources=KERNEL_SOURCES + RUNTIME_SOURCES + DRIVER_SOURCES),
    # -O0: half the compile time of -O1 under UBSan, and the run takes seconds either way.
    # _GLIBCXX_ASSERTIONS bounds-checks the driver's std::vector indexing too.
    "asan": dict(flags=SANITIZED + ["-O0", "-fsanitize=address,undefined",
                                    "-fno-sanitize-recover=all",
                                    "-D_GLIBCXX_ASSERTIONS"],
                 link=["-fsanitize=address,undefined"], output="sanitizer_driver_asan",
                 sources=KERNEL_SOURCES + RUNTIME_SOURCES + DRIVER_SOURCES),
}
SANITIZER_RUNTIMES = {"tsan": ["libtsan.so"], "asan": ["libasan.so", "libubsan.so"]}


class Unavailable(Exception):
    """The toolchain cannot build this flavour here (the reason says why)."""


def compiler():
    return os.environ.get("CXX", "g++")


def torch_include():
    from torch.utils import cpp_extension  # c10/util/Half.h and BFloat16.h are host-usable
    return cpp_extension.include_paths()[0]


def check_toolchain(flavour):
    """Raises Unavailable when g++ or the flavour's sanitizer runtime is missing."""
    cxx = compiler()
    if shutil.which(cxx) is None:
        raise Unavailable(f"no C++ compiler '{cxx}' on PATH (set CXX)")
    for runtime in SANITIZER_RUNTIMES.get(flavour, []):
        found = subprocess.run([cxx, f"-print-file-name={runtime}"], capture_output=True,
                               text=True).stdout.strip()
        if not os.path.isabs(found) or not os.path.exists(found):
            raise Unavailable(f"{cxx} has no {runtime} (the sanitizer runtime is not installed)")


def _inputs_digest(flavour, include):
    spec = FLAVOURS[flavour]
    h = hashlib.sha256()
    version = subprocess.run([compiler(), "--version"], capture_output=True, text=True).stdout
    h.update(f"{version}\n{spec}\n{include}\n{COMMON_FLAGS}\n".encode())
    headers = sorted(CUDA_SOURCES.glob("*.h")) + sorted(CUDA_SOURCES.glob("*.cuh")) + \
        sorted(EMULATOR.rglob("*.h"))
    for path in sorted(set(spec["sources"])) + headers:
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def build(flavour, cache_dir, jobs=2):
    """The path of the flavour's library or executable, built unless cached."""
    check_toolchain(flavour)
    spec = FLAVOURS[flavour]
    include = torch_include()
    cache_dir = Path(cache_dir)
    target = cache_dir / f"{flavour}-{_inputs_digest(flavour, include)}"
    product = target / spec["output"]
    if product.exists():
        return product
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".building-{flavour}-", dir=cache_dir))
    flags = COMMON_FLAGS + spec["flags"] + [f"-I{EMULATOR / 'include'}", "-isystem", include]

    def compile_one(source):
        obj = work / (source.name + ".o")
        cmd = [compiler(), *flags, "-x", "c++", "-c", str(source), "-o", str(obj)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"compiling {source.relative_to(ROOT)} failed:\n"
                               f"{' '.join(cmd)}\n{result.stderr}")
        return obj

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            objects = list(pool.map(compile_one, spec["sources"]))
        cmd = [compiler(), *COMMON_FLAGS, *spec["link"], *map(str, objects), "-o",
               str(work / spec["output"])]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"linking failed:\n{' '.join(cmd)}\n{result.stderr}")
        for obj in objects:
            obj.unlink()
        # Publish whole: a concurrent or interrupted build never leaves a half-built target.
        try:
            work.rename(target)
        except OSError:
            if not product.exists():
                raise
        # Older builds of this flavour are stale now.
        for old in cache_dir.glob(f"{flavour}-*"):
            if old != target and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return product


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in FLAVOURS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(FLAVOURS)}}} CACHE_DIR")
    print(build(sys.argv[1], sys.argv[2]))
