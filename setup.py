"""Builds rnnfast._C: the CPU kernels always, the CUDA kernels when torch and nvcc allow.

Set RNNFAST_FORCE_CPU=1 to build the CPU-only extension with a CUDA torch.
"""
import glob
import os
import sys

from setuptools import find_packages, setup

import torch
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))


def cuda_build_possible():
    if os.environ.get("RNNFAST_FORCE_CPU", "0") == "1":
        return False, "RNNFAST_FORCE_CPU=1"
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} is a CPU-only build"
    if cpp_extension.CUDA_HOME is None:
        return False, "no CUDA toolkit found (set CUDA_HOME to the folder holding bin/nvcc)"
    if not glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cu")):
        return False, "no CUDA sources in csrc/cuda"
    return True, ""


def extension():
    sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")))
    cxx_flags = ["-O3", "-fopenmp", "-std=c++20"]
    with_cuda, why_not = cuda_build_possible()
    if not with_cuda:
        print(f"rnnfast: building the CPU-only extension ({why_not})", file=sys.stderr)
        return cpp_extension.CppExtension(
            "rnnfast._C", sources,
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=["-fopenmp"],
        )
    print("rnnfast: building the CPU and CUDA extension", file=sys.stderr)
    sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
    sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cpp")))
    return cpp_extension.CUDAExtension(
        "rnnfast._C", sources,
        define_macros=[("RNNFAST_WITH_CUDA", "1")],
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "-std=c++20"]},
        extra_link_args=["-fopenmp"],
    )


setup(
    name="rnnfast",
    version="0.1.0",
    description="A fused Elman-ReLU recurrence (the fastai book's LMModel1-4) as a PyTorch custom op",
    packages=find_packages(include=["rnnfast", "rnnfast.*"]),
    python_requires=">=3.10",
    install_requires=["torch>=2.11", "tqdm"],
    # Install extras with the torch you build against pinned in the same pip call, e.g.
    # pip install --no-build-isolation -e '.[fastai]' torch==2.13.0, so pip never swaps torch.
    # fastai 2.8 (tested: 2.8.12) works with torch 2.13; fastai.text imports, fastai.vision may not.
    # matplotlib draws the training curves (--plot) and the benchmark chart.
    extras_require={
        "fastai": ["fastai>=2.8,<2.9"],
        "plot": ["matplotlib"],
        "bench": ["matplotlib"],
        "test": ["pytest", "hypothesis", "fastai>=2.8,<2.9", "matplotlib"],
    },
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
    entry_points={"console_scripts": ["rnnfast=rnnfast.cli:main"]},
    zip_safe=False,
)
