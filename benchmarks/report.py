"""The markdown report (stdout, README) and the JSON file."""
import argparse
import json
from typing import Dict, List

from .config import CELL, MODEL, VARIANT_TITLES, VARIANTS

NOTES = """\
How to read this:
- Each timing cell: median time per call ±half the inter-quartile range ("(n=3)": over only
  that many calls) · speed-up over the eager loop (higher is better) · achieved GFLOP/s as a
  share of the matmul ceiling. "floor" is the FLOP floor: the size's FLOPs at the ceiling's
  speed. A share above 100% means the ceiling's median was caught by more load than that call.
- FLOPs are the mathematical ones, the same for every variant: recurrence 2·B·T·H² forward and
  4·B·T·H² backward, LMModel4's head 2·B·T·H·V forward and 4·B·T·H·V backward; element-wise work,
  the embedding, the loss and the optimizer are not counted, nor the fused op's own P = E·Wᵀ.
- Ceiling: a float32 n×n·n×n matmul (torch.mm), sampled in the same run at the start of each
  thread count's block and again after every size; the median of all samples.
- fwd: forward only, under torch.no_grad (for the model: forward and loss). fwd+bwd: for the
  cell, forward and backward from a fixed dL/dhs with every weight taking gradients; for the
  model, one whole training step: forward, cross-entropy, zero_grad, backward, fastai's Adam.
  The fused model runs the path `rnnfast train` runs, LMModel4.forward_loss, whose head and
  cross-entropy are one op too (rnnfast.lm_head_loss); the others, forward then cross-entropy.
- Timing: time.perf_counter around each call, after warm-up; all variants of one size and mode
  run interleaved in rounds (ABC, BCA, CAB, ...); Python's garbage collector runs between
  measurements, not inside them. The machine may be shared: medians, not means. On a busy
  machine a measurement stops starting new rounds after a time cap; the JSON's "n" says how
  many calls each median is over.
- torch.compile's compile time is its warm-up time beyond what the same calls take once warm.
- Kept for backward: storages saved by autograd during one forward (saved_tensors_hooks),
  each counted once; "activations" leaves out inputs and parameters, which stay alive anyway.
  Peak of one step: the highest point of torch's CPU allocator during one warm fwd+bwd call
  (for the model: one training step) above where it stood at the start, from
  torch.profiler(profile_memory=True); memory outside torch's allocator is not seen.
"""


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def _cell(r: dict) -> str:
    spread = (r["q3_s"] - r["q1_s"]) / 2
    speed = "" if r["speedup_vs_eager"] is None else f" · {r['speedup_vs_eager']:.2f}×"
    few = f" (n={r['n']})" if r["n"] < 5 else ""   # a median of very few calls says so
    return f"{fmt_time(r['median_s'])} ±{fmt_time(spread)}{few}{speed} · " \
           f"{100 * r['ceiling_fraction']:.0f}%"


def _timing_table(rows: List[dict], level: str, threads: int) -> List[str]:
    mine = [r for r in rows if r["level"] == level and r["threads"] == threads]
    if not mine:
        return []
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in mine)]
    head = ["size (B T H)", "mode", "floor"] + [v for v in variants]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    keys = list(dict.fromkeys((r["label"], r["mode"]) for r in mine))
    for label, mode in keys:
        by_v = {r["variant"]: r for r in mine if (r["label"], r["mode"]) == (label, mode)}
        any_r = next(iter(by_v.values()))
        cells = [label, mode, fmt_time(any_r["floor_s"])]
        cells += [_cell(by_v[v]) if v in by_v else "—" for v in variants]
        out.append("| " + " | ".join(cells) + " |")
    return out


def markdown(res: Dict) -> str:
    meta = res["meta"]
    L = [f"# rnnfast benchmarks ({meta['mode']} mode)", "",
         f"{meta['cpu']}, {meta['cores']} cores; torch {meta['torch']}, Python {meta['python']}; "
         f"default threads {meta['default_threads']}; {meta['date']}; whole run "
         f"{meta['wall_s']:.0f} s. Vocabulary V = 30 throughout.", ""]
    shares = {k: v for k, v in meta["others_cpu_share"].items() if v is not None}
    if shares:
        busy = max(shares.values())
        L += ["Other processes took " + ", ".join(
            f"{100 * v:.0f}% ({k if not k.isdigit() else k + ' thread(s)'})"
            for k, v in shares.items()) + " of the machine's CPU time while this ran"
            + (": **a busy machine**; at more than one thread every parallel region waits for "
               "its slowest thread, so those figures suffer most." if busy > 0.25 else "."), ""]
    ceil = ", ".join(f"{t} thread(s) {c['gflops']:.1f} GFLOP/s (samples from {c['gflops_worst']:.1f} "
                     f"to {c['gflops_best']:.1f})" for t, c in res["ceiling"].items())
    n = next(iter(res["ceiling"].values()))["n"]
    L += [f"Matmul ceiling (float32 {n}×{n}·{n}×{n}): {ceil}.", ""]

    L += ["## Targets (issue #3)", "", "| target | measured | required | status | note |",
          "|---|---|---|---|---|"]
    for t in res["targets"]:
        L.append(f"| {t['target']} | {t['measured_text']} | {t['required_text']} | "
                 f"**{t['status']}** | {t['note']} |")
    L.append("")

    legend = ("Each cell: median ±half IQR · speed-up over eager · share of the matmul ceiling. "
              "Variants: " + "; ".join(f"{k} = {v}" for k, v in VARIANT_TITLES.items()) + ".")
    threads = sorted({r["threads"] for r in res["timings"]}, reverse=True)
    for t in threads:
        for level, title in ((CELL, "The recurrence alone"),
                             (MODEL, "A whole LMModel4 step (head, cross-entropy, Adam)")):
            table = _timing_table(res["timings"], level, t)
            if table:
                L += [f"## {title}, {t} thread(s)", "", legend, ""] + table + [""]

    if res["compile"]:
        L += ["## torch.compile: compile time", "", "| level | size | graph | threads | compile |",
              "|---|---|---|---|---|"]
        for c in res["compile"]:
            L.append(f"| {c['level']} | {c['label']} | {c['graph']} | {c['threads']} | "
                     f"{c['compile_s']:.1f} s |")
        L.append("")

    L += ["## Memory", "",
          "| level | size | variant | kept for backward | of which activations | peak of one "
          "fwd+bwd / training step |", "|---|---|---|---|---|---|"]
    for m in res["memory"]:
        L.append(f"| {m['level']} | {m['label']} | {m['variant']} | {fmt_bytes(m['saved_bytes'])} "
                 f"| {fmt_bytes(m['saved_activation_bytes'])} | {fmt_bytes(m['step_peak_bytes'])} |")
    L.append("")

    rec = res["recipe"]
    if rec:
        L += ["## LMModel4 with the book's recipe, both backends", "",
              f"fit {' + '.join(f'{e} epochs at {lr:g}' for e, lr in zip(rec['epochs'], rec['lrs']))}"
              f", seed {rec['seed']}, {rec['size']}, default threads; epochs alternate between "
              "the backends. Epoch = train + validation.", "",
              "| backend | median epoch | whole recipe | final accuracy | final valid loss |",
              "|---|---|---|---|---|"]
        for b in ("fused", "reference"):
            r = rec[b]
            L.append(f"| {b} | {fmt_time(r['epoch_s_median'])} | {fmt_time(r['total_s'])} | "
                     f"{r['final_accuracy']:.4f} | {r['final_valid_loss']:.4f} |")
        cut = (f" Stopped early, after {sum(rec['epochs_done'])} of {sum(rec['epochs'])} epochs: "
               f"the run's {rec['budget_s']:.0f} s budget for it was spent (a busy machine)."
               if rec["truncated"] else "")
        L += ["", f"Speed-up {rec['speedup']:.2f}×, accuracy difference "
                  f"{rec['accuracy_diff']:+.4f}.{cut}", ""]

    if res["checks"]:
        worst = max(res["checks"], key=lambda c: c["max_abs_diff_vs_eager"] /
                    max(c["max_abs_eager"], 1e-30))
        L += [f"Every cell variant's forward matches the eager loop's: worst max |Δ| "
              f"{worst['max_abs_diff_vs_eager']:.2e} ({worst['variant']}, {worst['label']}, "
              f"outputs up to {worst['max_abs_eager']:.3g}).", ""]

    if res["skipped"]:
        L += ["## Not measured", ""]
        reasons: Dict[str, List[str]] = {}
        for s in res["skipped"]:
            reasons.setdefault(s["reason"], []).append(
                f"{s['variant']} {s['level']} {s['label']} ({s['threads']}T)")
        for reason, where in reasons.items():
            shown = ", ".join(sorted(set(where))[:6]) + (" …" if len(set(where)) > 6 else "")
            L.append(f"- {reason}: {shown}")
        L.append("")
    L += ["## Notes", "", NOTES]
    return "\n".join(L)


def write_json(res: Dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(res, f, indent=1, default=float)
        f.write("\n")


def side_parser(module: str, doc: str, quick: str) -> argparse.ArgumentParser:
    """The command line a side benchmark takes: --quick (what it then measures), --md, --json."""
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{module}", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--md", help="also write the markdown table here")
    p.add_argument("--json", help="write the results as JSON here")
    return p


def publish(md: str, results: Dict, md_path=None, json_path=None) -> None:
    """A side benchmark's (rnn_bench, onednn_bench) report: printed, and written where asked."""
    print(md)
    if md_path:
        with open(md_path, "w") as f:
            f.write(md)
    if json_path:
        write_json(results, json_path)

