"""rnnfast beside Intel oneDNN's vanilla RNN primitive, side by side in one run.

    python -m benchmarks.onednn_bench [--quick] [--md out.md] [--json out.json]

Needs the optional `onednn` extra (pip install -e '.[onednn]'); without it, one line and exit 2.
Two comparisons, each at 2 threads (the default) and 1, inference and a training step:

- rnnfast.RNN (one layer, tanh and relu, dense input) against oneDNN given the same weights
  (W_ihᵀ, W_hhᵀ, b_ih + b_hh); the training step takes every gradient, the input's included.
- The notebook's token cell, rnnfast.elman_rnn (relu, tied weight W), against oneDNN fed two
  ways: the embedded tokens `x_t = E[x_t]` with W as both weights (then dE is an index_add of
  oneDNN's input gradient and dW the sum of its two weight gradients), and one-hot tokens with
  `W_x = W Eᵀ` (then dE and dW come back from dW_x through two small products).

Before timing a cell, each oneDNN variant's output and gradients are checked against rnnfast's.
oneDNN's weights are reordered into its own layout once for inference, and on every training
step (they change between steps); what the primitives picked (brgemm or ref) is reported.
"""
import os
import sys
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Tuple

if __package__ in (None, ""):   # run as a file
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "benchmarks"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import rnnfast  # noqa: E402

from . import machine, onednn, report, timing  # noqa: E402

OURS_RNN, OURS_TOKEN = "rnnfast.RNN", "rnnfast.elman_rnn"
DNNL, DNNL_EMB, DNNL_ONEHOT = "oneDNN", "oneDNN x=E[x]", "oneDNN one-hot"
INFER, TRAIN = "inference", "training step"
DENSE, TOKEN = "rnnfast.RNN (dense input)", "token cell (LMModel4)"
V = 30   # the book's vocabulary


@dataclass(frozen=True)
class Shape:
    B: int
    T: int
    H: int

    @property
    def label(self) -> str:
        return f"({self.B},{self.T},{self.H})"


FULL = [Shape(64, 16, 64), Shape(64, 16, 512), Shape(64, 64, 256), Shape(256, 128, 1024)]
QUICK = [Shape(8, 5, 16)]


class Check(AssertionError):
    """oneDNN and rnnfast disagree: the mapping between them is wrong."""


def _close(name: str, got: torch.Tensor, want: torch.Tensor, rel: float) -> None:
    """Relative to the whole tensor's size: a ReLU pre-activation within rounding of 0 can
    land on the other side of 0 in one of the two and move a few gradient entries; a wrong
    mapping moves all of them."""
    err = (got - want).norm() / want.norm().clamp_min(1e-30)
    if not err <= rel:
        raise Check(f"{name}: relative error {err.item():.2e} > {rel:.0e}")


# A variant at one cell: the timed call, what runs untimed before it, and what it computed
# (output first, then gradients in a fixed order) for the check.
@dataclass
class Variant:
    call: Callable[[], None]
    result: Callable[[], List[torch.Tensor]]
    prepare: Optional[Callable[[], None]] = None

    def runner(self) -> timing.Runner:
        return timing.Runner(self.call, self.prepare)


def dense_variants(mod, s: Shape, tanh: bool, mode: str) -> Dict[str, Variant]:
    torch.manual_seed(0)
    rnn = rnnfast.RNN(s.H, s.H, nonlinearity="tanh" if tanh else "relu")
    x = torch.randn(s.T, s.B, s.H, requires_grad=mode == TRAIN)
    g_out, g_h = torch.randn(s.T, s.B, s.H), torch.randn(1, s.B, s.H)
    params = [rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0]
    ours = {}

    if mode == INFER:
        def ours_call():
            with torch.no_grad():
                ours["out"], ours["h"] = rnn(x)
        ours_result = lambda: [ours["out"], ours["h"][0]]   # noqa: E731
        prepare = None
    else:
        def prepare():
            for t in (x, *params):
                t.grad = None

        def ours_call():
            ours["out"], ours["h"] = rnn(x)
            torch.autograd.backward([ours["out"], ours["h"]], [g_out, g_h])
        ours_result = lambda: [ours["out"], ours["h"][0], x.grad, params[0].grad,   # noqa: E731
                               params[1].grad, params[2].grad]

    # oneDNN's user holds the weights in its (in, out) layout: the transposes are not timed.
    w_layer, w_iter = (p.detach().t().contiguous() for p in params[:2])
    b_ih, b_hh = params[2].detach(), params[3].detach()
    h0 = torch.zeros(s.B, s.H)
    cell = mod.VanillaRnn(s.T, s.B, s.H, s.H, tanh, mode == TRAIN, False)
    if mode == INFER:
        cell.set_weights(w_layer, w_iter, b_ih + b_hh)
    theirs = {}

    def dnnl_call():
        xd = x.detach()
        out, h_n = torch.empty(s.T, s.B, s.H), torch.empty(s.B, s.H)
        if mode == TRAIN:
            cell.set_weights(w_layer, w_iter, b_ih + b_hh)
        cell.forward(xd, h0, out, h_n)
        theirs.update(out=out, h=h_n)
        if mode == TRAIN:
            dx, dh0 = torch.empty_like(xd), torch.empty(s.B, s.H)
            dwl, dwi, db = torch.empty(s.H, s.H), torch.empty(s.H, s.H), torch.empty(s.H)
            cell.backward(xd, h0, out, h_n, g_out, g_h[0], dx, dh0, dwl, dwi, db)
            theirs.update(dx=dx, dwl=dwl, dwi=dwi, db=db)

    def dnnl_result():
        r = [theirs["out"], theirs["h"]]
        if mode == TRAIN:
            r += [theirs["dx"], theirs["dwl"].t(), theirs["dwi"].t(), theirs["db"]]
        return r

    return {OURS_RNN: Variant(ours_call, ours_result, prepare),
            DNNL: Variant(dnnl_call, dnnl_result)}


def token_variants(mod, s: Shape, mode: str) -> Dict[str, Variant]:
    g = torch.Generator().manual_seed(0)
    bound = s.H ** -0.5
    tokens = torch.randint(0, V, (s.B, s.T), generator=g)
    emb = torch.randn(V, s.H, generator=g).requires_grad_(mode == TRAIN)
    weight = ((torch.rand(s.H, s.H, generator=g) * 2 - 1) * bound).requires_grad_(mode == TRAIN)
    bias = ((torch.rand(s.H, generator=g) * 2 - 1) * bound).requires_grad_(mode == TRAIN)
    grad_hs = torch.randn(s.B, s.T, s.H, generator=g)
    ours = {}

    if mode == INFER:
        def ours_call():
            with torch.no_grad():
                ours["hs"] = rnnfast.elman_rnn(tokens, emb, weight, bias)[0]
        ours_result = lambda: [ours["hs"]]   # noqa: E731
        prepare = None
    else:
        def prepare():
            for t in (emb, weight, bias):
                t.grad = None

        def ours_call():
            ours["hs"] = rnnfast.elman_rnn(tokens, emb, weight, bias)[0]
            ours["hs"].backward(grad_hs)
        ours_result = lambda: [ours["hs"], emb.grad, weight.grad, bias.grad]   # noqa: E731

    E, b = emb.detach(), bias.detach()
    w_t = weight.detach().t().contiguous()   # oneDNN's (in, out) layout, held by its user
    h0 = torch.zeros(s.B, s.H)

    def dnnl_variant(one_hot: bool) -> Variant:
        C = V if one_hot else s.H
        cell = mod.VanillaRnn(s.T, s.B, C, s.H, False, mode == TRAIN, True)
        if mode == INFER:
            cell.set_weights(E @ w_t if one_hot else w_t, w_t, b)
        theirs = {}

        def call():
            x = F.one_hot(tokens, V).float() if one_hot else F.embedding(tokens, E)
            w_x = E @ w_t if one_hot else w_t      # one-hot: row v of W_xᵀ is W E[v]
            hs, h_n = torch.empty(s.B, s.T, s.H), torch.empty(s.B, s.H)
            if mode == TRAIN:
                cell.set_weights(w_x, w_t, b)
            cell.forward(x, h0, hs, h_n)
            theirs["hs"] = hs
            if mode == INFER:
                return
            dx, dh0 = torch.empty_like(x), torch.empty(s.B, s.H)
            dwx, dwi, db = torch.empty(C, s.H), torch.empty(s.H, s.H), torch.empty(s.H)
            cell.backward(x, h0, hs, h_n, grad_hs, torch.zeros(s.B, s.H), dx, dh0, dwx, dwi,
                          db)
            if one_hot:   # W_x = E Wᵀ: dE = dW_x W, dWᵀ = Eᵀ dW_x + dW_h
                theirs.update(dE=dwx @ w_t.t(), dW=torch.addmm(dwi, E.t(), dwx).t(), db=db)
            else:
                dE = torch.zeros(V, s.H).index_add_(0, tokens.reshape(-1),
                                                    dx.reshape(-1, s.H))
                theirs.update(dE=dE, dW=(dwx + dwi).t(), db=db)

        def result():
            r = [theirs["hs"]]
            if mode == TRAIN:
                r += [theirs["dE"], theirs["dW"], theirs["db"]]
            return r
        return Variant(call, result)

    return {OURS_TOKEN: Variant(ours_call, ours_result, prepare),
            DNNL_EMB: dnnl_variant(False), DNNL_ONEHOT: dnnl_variant(True)}


def check(variants: Dict[str, Variant]) -> None:
    """Every variant against the first (rnnfast): same output, same gradients."""
    (_, ref), *others = variants.items()
    if ref.prepare:
        ref.prepare()
    ref.call()
    want = [t.detach().clone() for t in ref.result()]
    for name, v in others:
        v.call()
        for i, (got, w) in enumerate(zip(v.result(), want)):
            _close(f"{name}, {'output' if i == 0 else f'result {i}'}", got, w,
                   1e-5 if i == 0 else 5e-3)


def cells(shapes: List[Shape]) -> List[Tuple[str, Shape, str, str]]:
    """(comparison, shape, activation, mode) in the order the table shows them."""
    out = []
    for s in shapes:
        for mode in (INFER, TRAIN):
            out += [(DENSE, s, "tanh", mode), (DENSE, s, "relu", mode), (TOKEN, s, "relu", mode)]
    return out


def measure(mod, shapes: List[Shape], quick: bool) -> List[dict]:
    rows = []
    default = torch.get_num_threads()
    for threads in dict.fromkeys([default, 1]):
        torch.set_num_threads(threads)
        for kind, s, act, mode in cells(shapes):
            variants = (dense_variants(mod, s, act == "tanh", mode) if kind == DENSE
                        else token_variants(mod, s, mode))
            check(variants)
            big = s.B * s.T * s.H * s.H > 1e9
            rows.append(timing.side_cell(
                {k: v.runner() for k, v in variants.items()}, big, quick,
                "onednn_bench", f"{threads}T {kind} {s.label} {act} {mode}", threads=threads,
                comparison=kind, shape=asdict(s), label=s.label, nonlinearity=act, mode=mode))
    torch.set_num_threads(default)
    return rows


def implementations(mod) -> Dict[str, str]:
    """What oneDNN picks for inference and training, at the smallest and largest size."""
    out = {}
    for s in (FULL[0], FULL[-1]):
        for mode in (INFER, TRAIN):
            cell = mod.VanillaRnn(s.T, s.B, s.H, s.H, True, mode == TRAIN, False)
            out[f"{s.label} {mode}"] = cell.implementation()
    return out


def markdown(rows: List[dict], meta: dict) -> str:
    out = [f"rnnfast against oneDNN {meta['onednn']}'s vanilla RNN primitive, {meta['cpu']}, "
           f"torch {meta['torch']}, {meta['date']}; medians, interleaved rounds; ratio = "
           f"oneDNN's time / rnnfast's (above 1×: rnnfast is faster). oneDNN's implementations: "
           + "; ".join(f"{k}: {v}" for k, v in meta["implementations"].items()) + "."]
    for kind, theirs in ((DENSE, [DNNL]), (TOKEN, [DNNL_EMB, DNNL_ONEHOT])):
        ours = OURS_RNN if kind == DENSE else OURS_TOKEN
        out += ["", f"{kind}:", "",
                "| threads | size | act | mode | " + ours + " | " +
                " | ".join(f"{t} | ratio" for t in theirs) + " |",
                "|---|---|---|---|---|" + "---|---|" * len(theirs)]
        for r in (r for r in rows if r["comparison"] == kind):
            m = r["median_s"]
            out.append(f"| {r['threads']} | {r['label']} | {r['nonlinearity']} | {r['mode']} | "
                       f"{m[ours] * 1e3:.3f} ms | " +
                       " | ".join(f"{m[t] * 1e3:.3f} ms | {m[t] / m[ours]:.2f}×"
                                  for t in theirs) + " |")
    ratios = [r["median_s"][t] / r["median_s"][OURS_RNN if r["comparison"] == DENSE
                                                else OURS_TOKEN]
              for r in rows for t in r["median_s"] if t.startswith(DNNL)]
    out += ["", f"rnnfast is ahead in {sum(x > 1 for x in ratios)} of {len(ratios)} cells; "
            f"its lowest ratio is {min(ratios):.2f}×."]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = report.side_parser("onednn_bench", __doc__, "one tiny size, few calls (smoke)")
    args = p.parse_args(argv)
    try:
        mod = onednn.load()
    except onednn.Missing as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    busy_from = machine.snapshot()
    rows = measure(mod, QUICK if args.quick else FULL, args.quick)
    meta = dict(machine.run_meta(busy_from), onednn=mod.version(),
                implementations=implementations(mod))
    report.publish(markdown(rows, meta), {"meta": meta, "rows": rows}, args.md, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
