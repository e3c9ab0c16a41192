"""Loads the compiled library, rnnfast._C, or says in one sentence why it cannot.

torch's C++ ABI changes between minor releases, so a library built against one torch fails to
load under another with an undefined symbol that names neither. setup.py records the torch each
build used next to the library (_build_info.py, generated, not in git); it is checked first.
"""
import importlib
import os

import torch

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_CHECKOUT = os.path.dirname(_PACKAGE)
_IN_SOURCE_TREE = os.path.exists(os.path.join(_CHECKOUT, "setup.py"))  # e.g. an editable install


def _minor(version: str) -> str:
    return ".".join(version.split("+")[0].split(".")[:2])


def _rebuild() -> str:
    if _IN_SOURCE_TREE:
        return f"rebuild it with `pip install --no-build-isolation -e {_CHECKOUT}`"
    return ("rebuild it against this torch with `pip install --no-build-isolation --no-deps "
            "--force-reinstall <the rnnfast sdist or source folder>`")


def mismatch_message(built_for: str, running: str) -> str:
    return (f"rnnfast's compiled library was built for torch {built_for}, but torch {running} "
            f"is installed: install torch=={_minor(built_for)}.* or {_rebuild()}")


def _missing_message() -> str:
    where = f"rnnfast's compiled library (_C*.so) is missing from {_PACKAGE}"
    if _IN_SOURCE_TREE:
        return (f"{where}, a source tree that was never built: {_rebuild()}, or run from "
                "outside it to use an installed rnnfast")
    return f"{where}: {_rebuild()}"


def _built_for():
    try:
        from ._build_info import TORCH_VERSION
    except ImportError:  # built by something other than setup.py's build_ext: nothing to check
        return None
    return TORCH_VERSION


def load():
    """Imports rnnfast._C (which registers the ops) and returns it."""
    built_for = _built_for()
    if built_for is not None and _minor(built_for) != _minor(torch.__version__):
        raise ImportError(mismatch_message(built_for, torch.__version__))
    name = f"{__package__}._C"
    try:
        # Not `from . import _C`: inside the package's own import, a missing module would raise
        # a plain ImportError ("partially initialized module") instead of ModuleNotFoundError.
        library = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise
        raise ImportError(_missing_message()) from None
    except ImportError as e:  # e.g. an undefined symbol: the same torch minor, still another ABI
        running = torch.__version__
        raise ImportError(f"rnnfast's compiled library failed to load ({e}); it was built for "
                          f"torch {built_for or '(unrecorded)'} and torch {running} is "
                          f"installed: {_rebuild()}") from e
    return library
