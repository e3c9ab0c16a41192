"""The PNG chart: speed-up over the eager loop, per size and variant (log scale, eager = 1).

One row per thread count. Columns: the named sizes (cell fwd+bwd), a whole training step at the
model sizes, then the hidden-size and sequence-length sweeps (cell fwd+bwd) as lines. Panels
with nothing measured (the sweeps in quick mode) are left out.
"""
import matplotlib

matplotlib.use("Agg")   # no display: CI and headless machines
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter  # noqa: E402

from .config import CELL, EAGER, FWDBWD, MODEL, VARIANTS, Size  # noqa: E402

# Speed-up ticks a reader can read at a glance (a log axis would otherwise say 10^0).
TICKS = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]

COLORS = {"fused": "#d62728", "eager": "#7f7f7f", "compile": "#1f77b4", "jit": "#2ca02c",
          "nn.RNN": "#9467bd"}


def _label(d: dict) -> str:
    return Size(**d).label


def _lookup(timings, threads, level, label):
    return {r["variant"]: r["speedup_vs_eager"] for r in timings
            if (r["threads"], r["level"], r["mode"], r["label"]) == (threads, level, FWDBWD, label)}


def _bars(ax, timings, threads, level, labels, title):
    variants = [v for v in VARIANTS if any(_lookup(timings, threads, level, lb).get(v)
                                           for lb in labels)]
    width = 0.8 / max(1, len(variants))
    for i, v in enumerate(variants):
        xs, ys = [], []
        for j, lb in enumerate(labels):
            y = _lookup(timings, threads, level, lb).get(v)
            if y:
                xs.append(j + (i - (len(variants) - 1) / 2) * width)
                ys.append(y)
        ax.bar(xs, ys, width, label=v, color=COLORS[v])
        for x, y in zip(xs, ys):
            ax.text(x, y, f"{y:.1f}", ha="center", va="bottom", fontsize=6)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([lb.replace(" ", "\n") for lb in labels], fontsize=7)
    ax.set_title(title, fontsize=9)


def _lines(ax, timings, threads, sizes, key, title):
    for v in VARIANTS:
        pts = [(s[key], _lookup(timings, threads, CELL, _label(s)).get(v)) for s in sizes]
        pts = [(x, y) for x, y in pts if y]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=v, color=COLORS[v])
    ax.set_xscale("log", base=2)
    ax.set_xticks([s[key] for s in sizes])
    ax.set_xticklabels([str(s[key]) for s in sizes], fontsize=7)
    fixed = "B64 T16" if key == "H" else "B64 H64"
    ax.set_xlabel(f"{key} ({fixed})", fontsize=8)
    ax.set_title(title, fontsize=9)


def speedup_chart(res: dict, path: str) -> None:
    timings, sizes = res["timings"], res["sizes"]
    threads = sorted({r["threads"] for r in timings}, reverse=True)
    panels = [("bars", CELL, [_label(s) for s in sizes["main"]], "recurrence, fwd+bwd")]
    if sizes["model"]:
        panels.append(("bars", MODEL, [_label(s) for s in sizes["model"]],
                       "LMModel4 training step"))
    if sizes["hidden_sweep"]:
        panels.append(("lines", "H", sizes["hidden_sweep"], "recurrence fwd+bwd vs hidden size"))
    if sizes["seq_sweep"]:
        panels.append(("lines", "T", sizes["seq_sweep"], "recurrence fwd+bwd vs seq. length"))

    fig, axes = plt.subplots(len(threads), len(panels), squeeze=False,
                             figsize=(4.2 * len(panels), 3.4 * len(threads)))
    for row, t in enumerate(threads):
        for col, (kind, what, xs, title) in enumerate(panels):
            ax = axes[row][col]
            if kind == "bars":
                _bars(ax, timings, t, what, xs, f"{title}, {t} thread(s)")
            else:
                _lines(ax, timings, t, xs, what, f"{title}, {t} thread(s)")
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(FixedLocator(TICKS))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}×"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.axhline(1.0, color=COLORS[EAGER], lw=0.8, ls="--")
            ax.grid(axis="y", which="both", alpha=0.3)
            if col == 0:
                ax.set_ylabel("speed-up over the eager loop")
    handles = {}
    for ax in axes.flat:
        for h, lb in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lb, h)
    fig.legend(list(handles.values()), list(handles.keys()), loc="upper center",
               ncol=len(handles), fontsize=8, frameon=False)
    meta = res["meta"]
    fig.suptitle(f"rnnfast vs the alternatives ({meta['mode']} run, {meta['cpu']}, "
                 f"torch {meta['torch']})", fontsize=9, y=0.005, va="bottom")
    fig.tight_layout(rect=(0, 0.03, 1, 0.94))
    fig.savefig(path, dpi=110)
    plt.close(fig)
