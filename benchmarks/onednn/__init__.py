"""Builds and loads vanilla_rnn.cpp, oneDNN's vanilla RNN primitive as a torch extension.

oneDNN comes from the optional `onednn` extra (pip install -e '.[onednn]'): the
onednn-cpu-gomp and onednn-devel-cpu-gomp 2023.2.0 wheels, oneDNN 3.2 built with GNU OpenMP.
libdnnl then loads the libgomp torch has already loaded (same soname), so torch.set_num_threads
sets oneDNN's thread count too. The newer `onednn` wheel is a SYCL build that finds no CPU
engine on a plain CPU machine. The extension is compiled on first use (about 30 s) into
torch's extension cache.
"""
import importlib.metadata
import os

RUNTIME, DEVEL = "onednn-cpu-gomp", "onednn-devel-cpu-gomp"
INSTALL = "pip install -e '.[onednn]' (the onednn-cpu-gomp and onednn-devel-cpu-gomp wheels)"


class Missing(RuntimeError):
    """The extra is not installed; the message says how to install it."""


def _missing() -> list:
    out = []
    for dist in (RUNTIME, DEVEL):
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            out.append(dist)
    return out


def installed() -> bool:
    return not _missing()


def _prefix() -> str:
    """The folder holding include/oneapi/dnnl and lib/libdnnl.so (the wheels' data files)."""
    if _missing():
        raise Missing(f"oneDNN is not installed ({' and '.join(_missing())} missing): {INSTALL}")
    header = next(f for f in importlib.metadata.distribution(DEVEL).files
                  if str(f).endswith(os.path.join("oneapi", "dnnl", "dnnl.hpp")))
    include = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(importlib.metadata.distribution(DEVEL).locate_file(header)))))
    prefix = os.path.dirname(include)
    if not os.path.exists(os.path.join(prefix, "lib", "libdnnl.so")):
        raise Missing(f"oneDNN's library is not in {prefix}/lib: {INSTALL}")
    return prefix


def load():
    """The compiled module: ``VanillaRnn(T, N, C, H, tanh, training, batch_first)`` and
    ``version()``. Raises Missing when the extra is not installed."""
    prefix = _prefix()
    from torch.utils import cpp_extension
    here = os.path.dirname(os.path.abspath(__file__))
    lib = os.path.join(prefix, "lib")
    return cpp_extension.load(
        name="rnnfast_onednn_bench", sources=[os.path.join(here, "vanilla_rnn.cpp")],
        extra_include_paths=[os.path.join(prefix, "include")],
        extra_cflags=["-O2"], extra_ldflags=[f"-L{lib}", "-ldnnl", f"-Wl,-rpath,{lib}"],
        verbose=False)

