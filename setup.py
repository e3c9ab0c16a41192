"""Builds rnnfast._C: the CPU kernels always, the CUDA kernels when torch and nvcc allow.

Set RNNFAST_FORCE_CPU=1 to build the CPU-only extension with a CUDA torch. TORCH_CUDA_ARCH_LIST
(e.g. "9.0") picks the GPU archs; unset, it defaults to the archs torch itself was built for.
RNNFAST_DEBUG=1 keeps debug info (same optimisation); a release build has none and is stripped.

The build uses the torch already installed (pip install --no-build-isolation ...); an sdist can
be made without torch, a wheel cannot.
"""
import glob
import os
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

try:
    import torch
    from torch.utils import cpp_extension
except ImportError:  # making an sdist needs no torch; building the library does
    torch = None

ROOT = os.path.dirname(os.path.abspath(__file__))
DEBUG = os.environ.get("RNNFAST_DEBUG", "0") == "1"
# Python's own CFLAGS carry -g (a 14 MB library with debug info); the flags below come after
# them on the command line, so they decide.
DEBUG_CXX = ["-g"] if DEBUG else ["-g0"]
DEBUG_LINK = [] if DEBUG else ["-s"]
SDIST_TORCH = "torch>=2.11"


def cuda_build_possible():
    if os.environ.get("RNNFAST_FORCE_CPU", "0") == "1":
        return False, "RNNFAST_FORCE_CPU=1"
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} is a CPU-only build"
    if cpp_extension.CUDA_HOME is None:
        return False, "no CUDA toolkit found (set CUDA_HOME to the folder holding bin/nvcc)"
    if not os.path.exists(os.path.join(cpp_extension.CUDA_HOME, "bin", "nvcc")):
        return False, f"no nvcc in {cpp_extension.CUDA_HOME}/bin"
    if not glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cu")):
        return False, "no CUDA sources in csrc/cuda"
    return True, ""


def default_cuda_arch_list():
    """TORCH_CUDA_ARCH_LIST for the archs this torch was built for, e.g. "8.0;9.0+PTX".

    torch's own default is the archs of the visible GPUs, which fails on a build machine without
    one; the archs torch ships kernels for are what its users can run.
    """
    flags = torch.cuda.get_arch_list() or (torch._C._cuda_getArchFlags() or "").split()
    archs = sorted({f"{a[3:-1]}.{a[-1]}" for a in flags if a.startswith("sm_") and a[3:].isdigit()},
                   key=lambda v: tuple(int(x) for x in v.split(".")))
    if not archs:
        return None
    return ";".join(archs[:-1] + [archs[-1] + "+PTX"])


def cublas_link_args():
    """Linker flags for cuBLAS, which the CUDA kernels call directly.

    torch links libcublas itself, so at run time the library is already loaded; at link time it
    is found in the toolkit or, for pip-installed torch, in the nvidia wheels (which ship only the
    versioned file, hence -l:NAME).
    """
    dirs = [os.path.join(cpp_extension.CUDA_HOME, d) for d in ("lib64", "lib")]
    dirs += glob.glob(os.path.join(cpp_extension.CUDA_HOME, "targets", "*", "lib"))
    try:
        import nvidia  # the pip wheels' namespace package
        for root in nvidia.__path__:
            dirs += [os.path.join(root, "cu13", "lib"), os.path.join(root, "cublas", "lib")]
    except ImportError:
        pass
    for d in dirs:
        names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(d, "libcublas.so*")))
        if names:
            return [f"-L{d}", f"-l:{names[0]}"]
    print("rnnfast: libcublas not found at build time; relying on the copy torch loads",
          file=sys.stderr)
    return []


def extension():
    sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")))
    if torch is None:
        # For the sdist's file list and BuildLibrary's error only: nothing builds this.
        return Extension("rnnfast._C", sources)
    # -fno-trapping-math lets GCC compute both sides of a select (tanh's two branches, exp's
    # underflow test) and keep the element-wise loops vectorised; no result changes, since
    # rnnfast never enables floating-point traps.
    cxx_flags = ["-O3", "-fno-trapping-math", "-fopenmp", "-std=c++20"] + DEBUG_CXX
    with_cuda, why_not = cuda_build_possible()
    if not with_cuda:
        print(f"rnnfast: building the CPU-only extension ({why_not})", file=sys.stderr)
        return cpp_extension.CppExtension(
            "rnnfast._C", sources,
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=["-fopenmp"] + DEBUG_LINK,
        )
    if not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        archs = default_cuda_arch_list()
        if archs:
            os.environ["TORCH_CUDA_ARCH_LIST"] = archs
    print("rnnfast: building the CPU and CUDA extension for CUDA archs "
          f"{os.environ.get('TORCH_CUDA_ARCH_LIST', '(torch default)')}", file=sys.stderr)
    sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
    sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cpp")))
    return cpp_extension.CUDAExtension(
        "rnnfast._C", sources,
        define_macros=[("RNNFAST_WITH_CUDA", "1")],
        # -lineinfo: compute-sanitizer and profilers map reports to source lines; no run-time cost.
        extra_compile_args={"cxx": cxx_flags,
                            "nvcc": ["-O3", "-std=c++20", "-lineinfo"] + (["-g"] if DEBUG else [])},
        extra_link_args=["-fopenmp"] + DEBUG_LINK + cublas_link_args(),
    )


def torch_requirement():
    """What the package needs of torch: any supported one for the sdist, which builds against
    the torch it finds, but the torch it was built against for anything holding the compiled
    library (torch's C++ ABI changes between minor releases), as torchvision's wheels do."""
    if torch is None or "sdist" in sys.argv[1:]:
        return SDIST_TORCH
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return f"torch=={major}.{minor}.*"


if torch is None:
    class BuildLibrary(build_ext):
        """build_ext without torch: one clear error instead of a wheel without its library."""

        def run(self):
            raise SystemExit(
                "rnnfast: building the library needs torch installed in this environment, and "
                "an isolated build has none: pip install torch (e.g. torch==2.13.0), then build "
                "with pip install --no-build-isolation ... or python -m build --no-isolation")
else:
    class BuildLibrary(cpp_extension.BuildExtension):
        """torch's BuildExtension, which also records the torch it built against next to the
        library (rnnfast/_build_info.py, which rnnfast/_library.py reads before loading it)."""

        def run(self):
            super().run()
            for ext in self.extensions:
                folder = os.path.dirname(self.get_ext_fullpath(ext.name))
                with open(os.path.join(folder, "_build_info.py"), "w") as f:
                    f.write("# Written by setup.py when it built rnnfast._C; not in git.\n"
                            f"TORCH_VERSION = {torch.__version__!r}\n")


with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
    README = f.read()

setup(
    name="rnnfast",
    version="0.1.0",
    description="A fused Elman-ReLU recurrence (the fastai book's LMModel1-4) as a PyTorch custom op",
    long_description=README,
    long_description_content_type="text/markdown",
    author="rnnfast developers",
    license="BSD-3-Clause",
    license_files=["LICENSE"],
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Developers",
        "Intended Audience :: Science/Research",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: C++",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    packages=find_packages(include=["rnnfast", "rnnfast.*"]),
    python_requires=">=3.10",
    install_requires=[torch_requirement(), "tqdm"],
    # Install extras with the torch you build against pinned in the same pip call, e.g.
    # pip install --no-build-isolation -e '.[fastai]' torch==2.13.0, so pip never swaps torch.
    # fastai 2.8 (tested: 2.8.12) works with torch 2.13; fastai.text imports, fastai.vision may not.
    # matplotlib draws the training curves (--plot) and the benchmark chart.
    extras_require={
        "fastai": ["fastai>=2.8,<2.9"],
        "plot": ["matplotlib"],
        "bench": ["matplotlib"],
        # benchmarks/onednn_bench.py only: oneDNN 3.2 on GNU OpenMP, the libgomp torch loads.
        "onednn": ["onednn-cpu-gomp==2023.2.0", "onednn-devel-cpu-gomp==2023.2.0"],
        "test": ["pytest", "hypothesis", "fastai>=2.8,<2.9", "matplotlib"],
    },
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildLibrary},
    entry_points={"console_scripts": ["rnnfast=rnnfast.cli:main"]},
    zip_safe=False,
)
