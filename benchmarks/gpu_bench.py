"""Times rnnfast's CUDA op against the eager reference loop, torch.compile of that loop, and
cuDNN's nn.RNN(nonlinearity="relu"), forward and forward+backward, on one GPU.

All four compute the same function: nn.RNN gets W_ih = W_hh = weight, b_ih = bias, b_hh = 0
and the embedded tokens as input, so relu(x W^T + b + h W^T) = relu((h + x) W^T + b); the
embedding lookup is part of every contender's time. float32 with TF32 off for everyone by
default (cuDNN would otherwise use TF32 while torch's matmuls do not); --tf32 turns it on for
everyone.

Times are medians over a few repetitions of back-to-back iterations between CUDA events, i.e.
the wall time per iteration of a training loop, host overhead included. "fwd" runs with
autograd recording (as in training); "fwd+bwd" adds torch.autograd.grad w.r.t. every
parameter. The last thing printed is a markdown table.

    python benchmarks/gpu_bench.py                      # the three sizes of issue #4
    python benchmarks/gpu_bench.py --cases 64,64,256,30 --kernel stepwise
    python benchmarks/gpu_bench.py --device cpu --cases 4,3,8,5 --no-compile --budget 0.01

--device cpu is a smoke run of this script itself (the test suite runs it, so that a broken
script never reaches a GPU session): the same steps on the CPU op, with nn.RNN on the CPU in
the cuDNN column and wall-clock timing. Its numbers mean nothing for issue #4.
"""
import argparse
import os
import statistics
import sys
import time

# Run as a script from anywhere: use this checkout's rnnfast (built in place).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
import torch.nn.functional as F
from torch import nn

import rnnfast
from rnnfast import reference

CASES = [(64, 16, 64, 30), (64, 64, 256, 30), (256, 128, 1024, 30)]
# (case, pass) -> (contender, minimum speed-up of rnnfast over it): issue #4's targets.
TARGETS = {((64, 16, 64, 30), "fwd+bwd"): [("eager", 20.0), ("cuDNN", 3.0)],
           ((256, 128, 1024, 30), "fwd+bwd"): [("cuDNN", 1.2)]}


def make_inputs(B, T, H, V, dtype, device):
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, V, (B, T), generator=g).to(device)
    emb = torch.randn(V, H, generator=g).to(device, dtype).requires_grad_()
    w = (torch.randn(H, H, generator=g) / H ** 0.5).to(device, dtype).requires_grad_()
    b = (torch.randn(H, generator=g) * 0.1).to(device, dtype).requires_grad_()
    grad_hs = torch.randn(B, T, H, generator=g).to(device, dtype)
    return tokens, emb, w, b, grad_hs


def cudnn_rnn(emb, w, b):
    H = w.shape[0]
    rnn = nn.RNN(H, H, nonlinearity="relu", batch_first=True).to(w.device, w.dtype)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(w)
        rnn.weight_hh_l0.copy_(w)
        rnn.bias_ih_l0.copy_(b)
        rnn.bias_hh_l0.zero_()
    rnn.flatten_parameters()
    emb_c = emb.detach().clone().requires_grad_()
    return rnn, emb_c


def contenders(tokens, emb, w, b, with_compile):
    """name -> (forward returning hs, the tensors to differentiate w.r.t.)"""
    out = {
        "rnnfast": (lambda: rnnfast.elman_rnn(tokens, emb, w, b)[0], (emb, w, b)),
        "eager": (lambda: reference.elman_rnn(tokens, emb, w, b)[0], (emb, w, b)),
    }
    if with_compile:
        torch._dynamo.reset()
        compiled = torch.compile(reference.elman_rnn, dynamic=False)
        out["compile"] = (lambda: compiled(tokens, emb, w, b)[0], (emb, w, b))
    rnn, emb_c = cudnn_rnn(emb, w, b)
    out["cuDNN"] = (lambda: rnn(F.embedding(tokens, emb_c))[0],
                    (emb_c, *rnn.parameters()))
    return out


def time_ms(fn, budget_s, device):
    """Median milliseconds per call of fn over 5 repetitions of n back-to-back calls."""
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    fn()  # warm-up (and compilation)
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    once = time.perf_counter() - t0
    n = max(1, min(500, int(budget_s / 5 / max(once, 1e-6))))
    times = []
    for _ in range(5):
        if cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
        else:
            t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if cuda:
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / n)
        else:
            times.append((time.perf_counter() - t0) * 1e3 / n)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="*", default=None, metavar="B,T,H,V")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--kernel", default="auto", choices=["auto", "persistent", "stepwise"],
                        help="rnnfast's CUDA path (sets RNNFAST_CUDA_KERNEL)")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 in cuBLAS and cuDNN")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    parser.add_argument("--compile-max-T", type=int, default=1 << 30, metavar="T",
                        help="skip torch.compile for longer sequences (its compile time grows "
                             "with T: the loop is unrolled)")
    parser.add_argument("--budget", type=float, default=0.5,
                        help="seconds of timed runs per contender and pass (default 0.5)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="cpu: a smoke run of this script (see above), not a benchmark")
    parser.add_argument("--md", metavar="PATH",
                        help="also write the targets and the table there (rewritten after "
                             "every case, so a run cut short still leaves what it measured)")
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_bench: no CUDA GPU")
    os.environ["RNNFAST_CUDA_KERNEL"] = args.kernel
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cudnn.benchmark = False
    dtype = getattr(torch, args.dtype)
    cases = [tuple(int(x) for x in c.split(",")) for c in args.cases] if args.cases else CASES

    where = torch.cuda.get_device_name() if device.type == "cuda" else "CPU smoke run"
    print(f"gpu_bench: {where}, torch {torch.__version__}, "
          f"cuDNN {torch.backends.cudnn.version()}, {args.dtype}, TF32 {'on' if args.tf32 else 'off'}, "
          f"rnnfast kernel {args.kernel}", flush=True)
    rows = []
    try:
        for case in cases:
            try:
                run_case(case, args, dtype, device, rows)
            except Exception as e:  # one case failing must not hide the others
                print(f"gpu_bench: {case} failed: {type(e).__name__}: {e}", flush=True)
            if args.md:
                with open(args.md, "w") as f:
                    f.write(report(rows) + "\n")
    finally:
        print()
        print(report(rows))


def run_case(case, args, dtype, device, rows):
    """Times every contender at one size, forward and forward+backward, appending to rows."""
    tokens, emb, w, b, grad_hs = make_inputs(*case, dtype, device)
    runs = contenders(tokens, emb, w, b,
                      with_compile=not args.no_compile and case[1] <= args.compile_max_T)
    # Same function everywhere: a wrong comparison would make every ratio meaningless.
    want = runs["rnnfast"][0]().detach().float()
    for name, (fwd, _) in list(runs.items()):
        try:
            err = (fwd().detach().float() - want).abs().max().item()
        except Exception as e:
            print(f"gpu_bench: {name} {case} failed: {type(e).__name__}: {e}; left out")
            del runs[name]
            continue
        scale = want.abs().max().item()
        if err > 1e-3 * max(1.0, scale) * (1 if dtype == torch.float32 else 30):
            print(f"gpu_bench: WARNING {name} differs from rnnfast by {err:.3g} at {case}")
    for pass_name in ("fwd", "fwd+bwd"):
        times = {}
        for name, (fwd, params) in runs.items():
            if pass_name == "fwd":
                fn = fwd
            else:
                def fn(fwd=fwd, params=params):
                    torch.autograd.grad(fwd(), params, grad_hs)
            t0 = time.perf_counter()
            try:
                times[name] = time_ms(fn, args.budget, device)
            except Exception as e:  # report and go on: one failure must not hide the rest
                print(f"gpu_bench: {name} {pass_name} {case} failed: {type(e).__name__}: {e}")
                times[name] = float("nan")
            print(f"gpu_bench: {case} {pass_name:8s} {name:8s} {times[name]:9.3f} ms "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
        rows.append((case, pass_name, times))
    del runs
    if device.type == "cuda":
        torch.cuda.empty_cache()


def report(rows):
    """The targets met or missed, then the markdown table, for the cases measured so far."""
    lines = []
    for (case, pass_name), targets in TARGETS.items():
        for case_r, pass_r, times in rows:
            if (case_r, pass_r) != (case, pass_name):
                continue
            for other, need in targets:
                ratio = times.get(other, float("nan")) / times["rnnfast"]
                verdict = "met" if ratio >= need else "MISSED"
                lines.append(f"target {case} {pass_name}: rnnfast {ratio:.2f}x faster than "
                             f"{other} (need {need}x): {verdict}")
    others = [n for n in ("eager", "compile", "cuDNN") if any(n in r[2] for r in rows)]
    lines += ["", "| B,T,H,V | pass | rnnfast ms | " + " | ".join(f"{n} ms" for n in others)
              + " | " + " | ".join(f"{n}/rnnfast" for n in others) + " |",
              "|" + "---|" * (3 + 2 * len(others))]
    for case, pass_name, times in rows:
        base = times["rnnfast"]
        cells = ([f"{times[n]:.3f}" if n in times else "-" for n in others]
                 + [f"{times[n] / base:.1f}x" if n in times else "-" for n in others])
        lines.append(f"| {','.join(map(str, case))} | {pass_name} | {base:.3f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
