"""rnnfast.RNN beside what an nn.RNN user has: torch.nn.RNN itself and torch.compile of a plain
loop of the same cell, side by side in one run.

    python -m benchmarks.rnn_bench [--quick] [--md out.md] [--json out.json]

Every size runs tanh and relu, inference (forward under no_grad) and a training step (forward,
backward from a fixed gradient of the output and h_n into the input and every weight), at the
default thread count and at 1 thread; plus a packed batch against the padded batch of the same
longest length. Times are medians of interleaved rounds (benchmarks/timing.py).
"""
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from typing import Dict, List

if __package__ in (None, ""):   # run as a file
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "benchmarks"

import torch  # noqa: E402
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence  # noqa: E402

import rnnfast  # noqa: E402

from . import machine, report, timing  # noqa: E402

OURS, NN, COMPILED = "rnnfast.RNN", "nn.RNN", "torch.compile(loop)"
INFER, TRAIN = "inference", "training step"


@dataclass(frozen=True)
class Shape:
    B: int
    T: int
    H: int
    layers: int = 1
    packed: bool = False

    @property
    def label(self) -> str:
        return f"({self.B},{self.T},{self.H})" + (f" x{self.layers} layers" if self.layers > 1
                                                   else "") + (" packed" if self.packed else "")


FULL = [Shape(64, 16, 64), Shape(64, 64, 256, 2), Shape(256, 128, 1024),
        Shape(64, 64, 256, 2, packed=True)]
QUICK = [Shape(64, 16, 64), Shape(16, 16, 128, 2, packed=True)]
# torch.compile unrolls the loop: minutes per graph past the book's size.
COMPILE_AT = {Shape(64, 16, 64)}


def loop_rnn(x, hx, w_ih, w_hh, b_ih, b_hh, tanh: bool):
    """One layer of the cell as a plain loop (what torch.compile is given)."""
    h, outs = hx, []
    for t in range(x.shape[0]):
        a = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        h = torch.tanh(a) if tanh else torch.relu(a)
        outs.append(h)
    return torch.stack(outs), h


def lengths_for(s: Shape, seed: int = 0) -> torch.Tensor:
    """Lengths spread over [T/4, T], the longest T, sorted longest first."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(max(1, s.T // 4), s.T + 1, (s.B,), generator=g)
    lengths[0] = s.T
    return lengths.sort(descending=True).values


def runners(s: Shape, nonlinearity: str, mode: str, with_compile: bool) -> Dict[str, timing.Runner]:
    torch.manual_seed(0)
    ref = torch.nn.RNN(s.H, s.H, s.layers, nonlinearity=nonlinearity)
    ours = rnnfast.RNN(s.H, s.H, s.layers, nonlinearity=nonlinearity)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(s.T, s.B, s.H)
    if s.packed:   # a packed leaf, so that every call's backward ends at it
        pk = pack_padded_sequence(x, lengths_for(s))
        x = pk.data
        inp = PackedSequence(x, pk.batch_sizes, pk.sorted_indices, pk.unsorted_indices)
    else:
        inp = x
    x.requires_grad_(mode == TRAIN)
    models = {OURS: ours, NN: ref}
    if with_compile and s.layers == 1 and not s.packed:
        w = [p for p in ref.parameters()]
        fn = torch.compile(loop_rnn, dynamic=False)
        h0 = torch.zeros(s.B, s.H)
        models[COMPILED] = lambda inp: fn(inp, h0, *w, nonlinearity == "tanh")

    def run(model):
        out, h = model(inp)
        return (out.data if s.packed else out), h

    result = {}
    for name, model in models.items():
        if mode == INFER:
            def call(model=model):
                with torch.no_grad():
                    run(model)
            result[name] = timing.Runner(call)
        else:
            params = list(ref.parameters() if name == COMPILED else model.parameters())
            out, h = run(model)
            g_out, g_h = torch.randn_like(out), torch.randn_like(h)

            def prepare(params=params):
                x.grad = None
                for p in params:
                    p.grad = None

            def call(model=model, g_out=g_out, g_h=g_h):
                out, h = run(model)
                torch.autograd.backward([out, h], [g_out, g_h])
            result[name] = timing.Runner(call, prepare)
    return result


def measure(shapes: List[Shape], quick: bool) -> List[dict]:
    rows = []
    default = torch.get_num_threads()
    for threads in dict.fromkeys([default, 1]):
        torch.set_num_threads(threads)
        for s in shapes:
            for nonlinearity in ("tanh", "relu"):
                for mode in (INFER, TRAIN):
                    big = s.B * s.T * s.H * s.H > 1e9
                    rows.append(timing.side_cell(
                        runners(s, nonlinearity, mode, s in COMPILE_AT and threads == default
                                and not quick),
                        big, quick, "rnn_bench", f"{threads}T {s.label} {nonlinearity} {mode}",
                        threads=threads, shape=asdict(s), label=s.label,
                        nonlinearity=nonlinearity, mode=mode))
    torch.set_num_threads(default)
    return rows


def packed_vs_padded(shapes: List[Shape], rows: List[dict]) -> List[str]:
    lines = []
    for r in rows:
        s = Shape(**r["shape"])
        if not s.packed:
            continue
        padded = next((p for p in rows if p["threads"] == r["threads"] and
                       p["nonlinearity"] == r["nonlinearity"] and p["mode"] == r["mode"] and
                       p["shape"] == asdict(Shape(s.B, s.T, s.H, s.layers))), None)
        if padded is not None:
            ratio = padded["median_s"][OURS] / r["median_s"][OURS]
            lines.append(f"| {r['threads']} | {s.label} | {r['nonlinearity']} | {r['mode']} | "
                         f"{r['median_s'][OURS] * 1e3:.3f} ms | "
                         f"{padded['median_s'][OURS] * 1e3:.3f} ms | {ratio:.2f}× |")
    if not lines:
        return []
    return ["", "Packed against padded (rnnfast.RNN, the padded batch of the same longest "
            "length; above 1× the packed one is faster):", "",
            "| threads | size | act | mode | packed | padded | padded / packed |",
            "|---|---|---|---|---|---|---|"] + lines


def markdown(rows: List[dict], meta: dict) -> str:
    out = [f"rnnfast.RNN against torch.nn.RNN, {meta['cpu']}, torch {meta['torch']}, "
           f"{meta['date']}; medians, interleaved rounds; ratio = their time / rnnfast's "
           f"(above 1×: rnnfast is faster).", "",
           "| threads | size | act | mode | rnnfast.RNN | nn.RNN | vs nn.RNN | "
           "torch.compile(loop) | vs compile |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["median_s"]
        comp = m.get(COMPILED)
        out.append(f"| {r['threads']} | {r['label']} | {r['nonlinearity']} | {r['mode']} | "
                   f"{m[OURS] * 1e3:.3f} ms | {m[NN] * 1e3:.3f} ms | {m[NN] / m[OURS]:.2f}× | "
                   + (f"{comp * 1e3:.3f} ms | {comp / m[OURS]:.2f}× |" if comp else "— | — |"))
    out += packed_vs_padded([], rows)
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = report.side_parser("rnn_bench", __doc__, "two small sizes, few calls (smoke)")
    args = p.parse_args(argv)
    os.environ["TMPDIR"] = tempfile.mkdtemp(prefix="rnnfast-rnn-bench-")  # inductor's headers
    tempfile.tempdir = None
    busy_from = machine.snapshot()
    rows = measure(QUICK if args.quick else FULL, args.quick)
    meta = machine.run_meta(busy_from)
    report.publish(markdown(rows, meta), {"meta": meta, "rows": rows}, args.md, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
