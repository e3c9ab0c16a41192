"""Loading the compiled library: the torch it was built for is recorded and checked, and each way
loading can fail ends in one sentence that says what to do.

Each case imports a copy of the installed package from a temporary folder in a fresh process,
with its record of the build (or its library) changed.
"""
import os
import shutil
import subprocess
import sys

import pytest
import torch

import rnnfast

PACKAGE = os.path.dirname(os.path.abspath(rnnfast.__file__))


def test_the_build_records_the_torch_it_was_built_against():
    from rnnfast import _build_info
    assert _build_info.TORCH_VERSION == torch.__version__


def copy_package(tmp_path, in_source_tree, keep_library=True):
    ignore = ["__pycache__"] + ([] if keep_library else ["_C*.so"])
    shutil.copytree(PACKAGE, tmp_path / "rnnfast", ignore=shutil.ignore_patterns(*ignore))
    if in_source_tree:
        (tmp_path / "setup.py").write_text("")  # what makes it look like a checkout
    return tmp_path / "rnnfast"


# An editable install's import hook finds rnnfast._C by name in the checkout when the copy has
# none; the copy must be all there is.
IMPORT = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path "
          "if not getattr(f, '__module__', '').startswith('__editable__')]; import rnnfast")


def import_error(folder):
    """The last line a fresh `import rnnfast` from `folder` prints (it must fail)."""
    proc = subprocess.run([sys.executable, "-c", IMPORT], cwd=folder,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(folder)))
    assert proc.returncode != 0, proc.stdout
    return proc.stderr.strip().splitlines()[-1]


def rebuild_advice(folder, in_source_tree):
    if in_source_tree:
        return f"rebuild it with `pip install --no-build-isolation -e {folder}`"
    return ("rebuild it against this torch with `pip install --no-build-isolation --no-deps "
            "--force-reinstall <the rnnfast sdist or source folder>`")


@pytest.mark.parametrize("in_source_tree", [True, False], ids=["checkout", "installed"])
def test_a_library_built_for_another_torch_is_refused_in_one_sentence(tmp_path, in_source_tree):
    package = copy_package(tmp_path, in_source_tree)
    (package / "_build_info.py").write_text('TORCH_VERSION = "2.99.0+cpu"\n')
    assert import_error(tmp_path) == (
        "ImportError: rnnfast's compiled library was built for torch 2.99.0+cpu, but torch "
        f"{torch.__version__} is installed: install torch==2.99.* or "
        f"{rebuild_advice(tmp_path, in_source_tree)}")


def test_another_patch_release_of_the_same_torch_is_accepted(tmp_path):
    # The wheel's requirement is torch==X.Y.*, so the check must let every X.Y.Z through.
    package = copy_package(tmp_path, in_source_tree=False)
    major, minor = torch.__version__.split(".")[:2]
    (package / "_build_info.py").write_text(f'TORCH_VERSION = "{major}.{minor}.99"\n')
    proc = subprocess.run([sys.executable, "-c", "import rnnfast; print(rnnfast.__file__)"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(package / "__init__.py")


@pytest.mark.parametrize("in_source_tree", [True, False], ids=["checkout", "installed"])
def test_a_missing_library_says_where_and_what_to_do(tmp_path, in_source_tree):
    package = copy_package(tmp_path, in_source_tree, keep_library=False)
    where = f"rnnfast's compiled library (_C*.so) is missing from {package}"
    advice = rebuild_advice(tmp_path, in_source_tree)
    if in_source_tree:
        want = (f"{where}, a source tree that was never built: {advice}, or run from outside "
                "it to use an installed rnnfast")
    else:
        want = f"{where}: {advice}"
    assert import_error(tmp_path) == f"ImportError: {want}"


def test_a_library_that_fails_to_load_names_both_torches(tmp_path):
    package = copy_package(tmp_path, in_source_tree=False, keep_library=False)
    (package / os.path.basename(rnnfast.library_path())).write_bytes(b"not a shared library")
    from rnnfast._build_info import TORCH_VERSION as built_for
    line = import_error(tmp_path)
    assert line.startswith("ImportError: rnnfast's compiled library failed to load ("), line
    assert line.endswith(f"); it was built for torch {built_for} and torch {torch.__version__} "
                         f"is installed: {rebuild_advice(tmp_path, False)}"), line
