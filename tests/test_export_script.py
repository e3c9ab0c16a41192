"""torch.export and TorchScript: every LMModel exports, scripts, saves and loads, and the loaded
program finds the rnnfast op given only the compiled library (no `import rnnfast`), from Python
and from a C++ program without Python."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.utils import cpp_extension

import rnnfast

V, H = 30, 24
TOL = dict(rtol=1e-5, atol=1e-6)
HERE = os.path.dirname(os.path.abspath(__file__))
# TorchScript is deprecated upstream; the design card still asks for it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def make(i):
    return rnnfast.LMModel4(V, H, 16) if i == 4 else getattr(rnnfast, f"LMModel{i}")(V, H)


def tokens(i, batch):
    return torch.randint(0, V, (batch, 16 if i == 4 else 3))


def fresh_output(model, x):
    """What a model that carries no state (just reset) gives."""
    if hasattr(model, "reset"):
        model.reset()
    with torch.no_grad():
        out = model(x)
    if hasattr(model, "reset"):
        model.reset()
    return out


@pytest.mark.parametrize("i", [1, 2, 3, 4])
def test_export_runs_and_matches(seed, i, tmp_path):
    model = make(i).eval()
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (tokens(i, 8),), dynamic_shapes=({0: batch},))
    path = tmp_path / f"lm{i}.pt2"
    torch.export.save(program, path)
    loaded = torch.export.load(path).module()
    for n in (8, 3, 1):                       # the batch size is dynamic
        x = tokens(i, n)
        want = fresh_output(model, x)
        torch.testing.assert_close(program.module()(x), want, **TOL)
        # The exported program of LMModel3/4 is stateless: it starts from zeros on every call.
        torch.testing.assert_close(loaded(x), want, **TOL)
        torch.testing.assert_close(loaded(x), want, **TOL)


def script_and_expect(tmp_path):
    """Scripts and saves LMModel1-4; returns what the fresh process must reproduce: for each
    model two calls in a row (state carried by 3 and 4) and a call after reset()."""
    cases = {}
    for i in (1, 2, 3, 4):
        model = make(i).eval()
        path = str(tmp_path / f"lm{i}.pt")
        torch.jit.script(model).save(path)
        x = tokens(i, 5)
        with torch.no_grad():
            outs = [model(x), model(x)]
        outs.append(fresh_output(model, x))
        cases[i] = dict(path=path, x=x, outs=outs)
    return cases


FRESH_PROCESS = textwrap.dedent("""
    import sys, torch
    library, cases_path, out_path = sys.argv[1:]
    if library != "-":
        torch.ops.load_library(library)   # the compiled library only
    assert "rnnfast" not in sys.modules
    cases = torch.load(cases_path, weights_only=True)
    results = {}
    for i, case in cases.items():
        m = torch.jit.load(case["path"])
        with torch.no_grad():
            outs = [m(case["x"]), m(case["x"])]
            if hasattr(m, "reset"):
                m.reset()
            outs.append(m(case["x"]))
        results[i] = outs
    assert "rnnfast" not in sys.modules
    torch.save(results, out_path)
""")


def run_fresh(tmp_path, library, cases):
    torch.save({i: dict(path=c["path"], x=c["x"]) for i, c in cases.items()},
               tmp_path / "cases.pt")
    script = tmp_path / "fresh.py"
    script.write_text(FRESH_PROCESS)
    return subprocess.run([sys.executable, str(script), library, str(tmp_path / "cases.pt"),
                           str(tmp_path / "out.pt")], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)


def test_torchscript_loads_in_a_process_that_never_imports_rnnfast(seed, tmp_path):
    cases = script_and_expect(tmp_path)
    out = run_fresh(tmp_path, rnnfast.library_path(), cases)
    assert out.returncode == 0, out.stderr
    results = torch.load(tmp_path / "out.pt", weights_only=True)
    for i, case in cases.items():
        for got, want in zip(results[i], case["outs"]):
            torch.testing.assert_close(got, want, **TOL)


def test_torchscript_load_without_the_library_names_the_missing_op(seed, tmp_path):
    out = run_fresh(tmp_path, "-", script_and_expect(tmp_path))
    assert out.returncode != 0 and "rnnfast::elman_rnn" in out.stderr


def compile_cpp_runner(tmp_path):
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        pytest.skip(f"no C++ compiler ({cxx}) to build the libtorch program")
    exe = tmp_path / "run_scripted"
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    cmd = [cxx, "-std=c++20", "-O1", os.path.join(HERE, "cpp", "run_scripted.cpp"), "-o", str(exe),
           f"-D_GLIBCXX_USE_CXX11_ABI={abi}"]
    cmd += [f"-I{p}" for p in cpp_extension.include_paths()]
    for p in cpp_extension.library_paths():
        cmd += [f"-L{p}", f"-Wl,-rpath,{p}"]
    cmd += ["-ltorch", "-ltorch_cpu", "-lc10", "-ldl"]
    build = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-4000:]
    return exe


def test_libtorch_program_without_python_runs_the_scripted_model(seed, tmp_path):
    """docs/integrations.md's C++ recipe: dlopen the library, then torch::jit::load."""
    model = make(4).eval()
    path = tmp_path / "lm4.pt"
    torch.jit.script(model).save(str(path))
    exe = compile_cpp_runner(tmp_path)
    B, T = 3, 7
    out = subprocess.run([str(exe), rnnfast.library_path(), str(path), str(B), str(T), str(V)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = torch.tensor([float(v) for v in out.stdout.split()]).reshape(2, B, T, V)
    x = ((torch.arange(B * T) * 7 + 3) % V).reshape(B, T)
    with torch.no_grad():
        want = torch.stack([model(x), model(x)])     # the second call carries the state
    torch.testing.assert_close(got, want, **TOL)

    missing = subprocess.run([str(exe), "--no-library", "-", str(path), str(B), str(T), str(V)],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 3 and "rnnfast::elman_rnn" in missing.stderr
