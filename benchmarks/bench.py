"""rnnfast's benchmark suite: every variant side by side, in one process and one run.

    python -m benchmarks.bench --quick --json out.json --png chart.png     # CI smoke, seconds
    python -m benchmarks.bench --full --json benchmarks/results/full.json \\
        --png benchmarks/results/full.png --md benchmarks/results/full.md    # ~10-15 min, 2 cores

The markdown report goes to stdout (and to --md), progress to stderr. What is measured, and
how, is written out in the report's notes (report.py) and the modules beside this one.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

if __package__ in (None, ""):   # run as a file: python benchmarks/bench.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "benchmarks"

import torch  # noqa: E402

import rnnfast  # noqa: E402

from . import flops as flop_counts  # noqa: E402
from . import machine, memory, recipe, report, targets, timing  # noqa: E402
from .config import (CELL, COMPILE, EAGER, FWD, FWDBWD, MODEL, MODES, VARIANTS, Mode,  # noqa: E402
                     Size)
from .variants import build_cell, build_model, cell_inputs, model_batch  # noqa: E402

COMPILE_WHERE = "torch.compile is measured only at {where}: each graph costs 10-70 s to compile " \
                "(141 s for fwd+bwd at B64 T64 H256 on this machine), for a number that only " \
                "tells the same story at the other sizes"
COMPILE_THREADS = "torch.compile only at the default thread count: inductor's CPU kernels fix " \
                  "their thread count when compiled, so another count means compiling again"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, mode: Mode):
        self.mode = mode
        self.default_threads = torch.get_num_threads()
        self.timings = []      # one dict per (threads, level, mode, size, variant)
        self.compile = []      # torch.compile's compile time per graph
        self.memory = []       # one dict per (level, size, variant), at the default thread count
        self.checks = []       # forward agreement of each cell variant with the eager loop
        self.skipped = []      # (threads, level, size, variant, reason)
        self.ceilings = {}     # threads -> matmul ceiling
        self.others_busy = {}   # thread count -> CPU share other processes took meanwhile
        self._memory_todo = []   # (level, size, variants, tokens) built at the default threads

    # -- which variants run where ---------------------------------------------------------------
    def variants(self, level: str, size: Size, threads: int):
        names = []
        for v in VARIANTS:
            reason = self.mode.skip.get((size, v))
            if reason is None and v == COMPILE:
                if (level, size) not in self.mode.compile_at:
                    where = ", ".join(f"{lv} {s.label}" for lv, s in self.mode.compile_at) \
                        or "no size in this mode"
                    reason = COMPILE_WHERE.format(where=where)
                elif threads != self.default_threads:
                    reason = COMPILE_THREADS
            if reason is None:
                names.append(v)
            else:
                self.skipped.append({"threads": threads, "level": level, "label": size.label,
                                     "variant": v, "reason": reason})
        return names

    # -- timing -----------------------------------------------------------------------------------
    def _time(self, level: str, size: Size, mode: str, runners: dict, threads: int) -> None:
        m = self.mode
        big = flop_counts.recurrence_flops(size, FWDBWD) > 2e10
        stats = timing.measure(runners, m.warmup_calls, m.rounds, m.budget_s,
                               m.big_min_calls if big else m.min_calls, m.max_calls,
                               m.group_max_s)
        for name, st in stats.items():
            rec = {"threads": threads, "level": level, "mode": mode, "label": size.label,
                   "size": size.as_dict(), "variant": name,
                   "flops": flop_counts.flops(level, size, mode), **st.as_dict()}
            self.timings.append(rec)
            if name == COMPILE:
                self.compile.append({"level": level, "label": size.label, "mode": mode,
                                     "threads": threads,
                                     "graph": "no_grad" if mode == FWD else "training",
                                     "compile_s": st.first_call_overhead})
        summary = ", ".join(f"{n} {s.median * 1e3:.3f} ms" for n, s in stats.items())
        log(f"{threads}T {level} {size.label} {mode}: {summary}")

    def run_cell(self, size: Size, threads: int) -> None:
        inp = cell_inputs(size)
        built = {v: build_cell(v, inp) for v in self.variants(CELL, size, threads)}
        for mode in (FWD, FWDBWD):
            self._time(CELL, size, mode, {v: b.runner(mode) for v, b in built.items()}, threads)
        if threads != self.default_threads:
            return
        with torch.no_grad():
            want = built[EAGER].forward()
            for v, b in built.items():
                err = float((b.forward() - want).abs().max())
                self.checks.append({"label": size.label, "variant": v,
                                    "max_abs_diff_vs_eager": err,
                                    "max_abs_eager": float(want.abs().max())})
        self._memory_todo.append((CELL, size, built, inp.tokens))

    def run_model(self, size: Size, threads: int) -> None:
        batch = model_batch(size)
        built = {v: build_model(v, size, batch) for v in self.variants(MODEL, size, threads)}
        for mode in (FWD, FWDBWD):
            self._time(MODEL, size, mode, {v: b.runner(mode) for v, b in built.items()}, threads)
        if threads != self.default_threads:
            return
        self._memory_todo.append((MODEL, size, built, None))

    def measure_memory(self) -> None:
        """Memory of every variant built at the default thread count. Run last: a
        torch.profiler session slows the calls after it for a while (seen here: a 1.5 ms
        training step took 9.6 ms for the next 200 calls), so no timing may follow it."""
        steps = {}
        for level, size, built, tokens in self._memory_todo:
            for v, b in built.items():
                if level == CELL:
                    saved = memory.saved_bytes(b.forward, b.params + [tokens])
                    steps[(level, size.label, v)] = self._prepared(b.runner(FWDBWD))
                else:
                    keep = list(b.module.parameters()) + [b.batch.x, b.batch.y]
                    saved = memory.saved_bytes(b.forward_with_loss, keep)
                    steps[(level, size.label, v)] = b.runner(FWDBWD).call
                self.memory.append({"level": level, "label": size.label, "variant": v, **saved})
        peaks = memory.step_peak_bytes({"|".join(k): call for k, call in steps.items()})
        for m in self.memory:
            m["step_peak_bytes"] = peaks["|".join((m["level"], m["label"], m["variant"]))]
        self._memory_todo.clear()

    @staticmethod
    def _prepared(runner: timing.Runner):
        def call():
            if runner.prepare is not None:
                runner.prepare()
            runner.call()
        return call

    # -- the whole run ----------------------------------------------------------------------------
    def run(self) -> None:
        m = self.mode
        thread_counts = list(dict.fromkeys([self.default_threads, 1]))
        for threads in thread_counts:
            torch.set_num_threads(threads)
            log(f"--- {threads} thread(s)")
            busy_from = machine.snapshot()
            # The ceiling is sampled at the start and again after every size, so that it sees
            # the same spells of load as the variants do, spread over the whole block.
            probes = [flop_counts.matmul_ceiling(m.ceiling_n, m.ceiling_reps)]
            for level, size in [(CELL, s) for s in m.cell_sizes()] + \
                               [(MODEL, s) for s in m.model_sizes]:
                (self.run_cell if level == CELL else self.run_model)(size, threads)
                probes.append(flop_counts.matmul_ceiling(m.ceiling_n, m.ceiling_probe_reps,
                                                         warmup=0))
            self.ceilings[threads] = self._ceiling(probes)
            self.others_busy[str(threads)] = machine.others_share(busy_from, machine.snapshot())
            log(f"{threads} thread(s): matmul ceiling {self.ceilings[threads]['gflops']:.1f} "
                f"GFLOP/s (median of {len(self.ceilings[threads]['samples_s'])} samples)")
        torch.set_num_threads(self.default_threads)
        self._derive()

    @staticmethod
    def _ceiling(probes: list) -> dict:
        # The median over every probe is the ceiling: the variants' times are medians taken
        # under the same load, so a best-case ceiling would understate their share of it.
        samples = [t for p in probes for t in p["samples_s"]]
        work = 2 * probes[0]["n"] ** 3
        return {"n": probes[0]["n"], "gflops": work / statistics.median(samples) / 1e9,
                "gflops_best": work / min(samples) / 1e9,
                "gflops_worst": work / max(samples) / 1e9, "samples_s": samples}

    def _derive(self) -> None:
        """GFLOP/s, share of the ceiling, FLOP floor and speed-up over the eager loop."""
        eager = {(r["threads"], r["level"], r["mode"], r["label"]): r["median_s"]
                 for r in self.timings if r["variant"] == EAGER}
        for r in self.timings:
            ceiling = self.ceilings[r["threads"]]["gflops"]
            r["gflops"] = r["flops"] / r["median_s"] / 1e9
            r["ceiling_fraction"] = r["gflops"] / ceiling
            r["floor_s"] = r["flops"] / (ceiling * 1e9)
            r["floor_ratio"] = r["median_s"] / r["floor_s"]
            base = eager.get((r["threads"], r["level"], r["mode"], r["label"]))
            r["speedup_vs_eager"] = None if base is None else base / r["median_s"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="mode", action="store_const", const="quick",
                   help="CI smoke run: two sizes, few repetitions, no torch.compile (default)")
    g.add_argument("--full", dest="mode", action="store_const", const="full",
                   help="every size, sweep, variant and the full training recipe (README)")
    p.add_argument("--json", help="write the results as JSON here")
    p.add_argument("--png", help="write the speed-up chart here")
    p.add_argument("--md", help="also write the markdown report here")
    p.add_argument("--from-json", metavar="PATH",
                   help="measure nothing: re-render the report and chart of an earlier run's JSON "
                        "(the targets are evaluated again)")
    args = p.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            results = json.load(f)
        results["targets"] = targets.evaluate(results["timings"],
                                              results["meta"]["default_threads"],
                                              results["recipe"])
        return _write(results, args)
    mode = MODES[args.mode or "quick"]

    # Inductor keeps precompiled headers in the system temp folder, where another process may
    # clean them away mid-compile; a private one per run avoids that.
    private_tmp = tempfile.mkdtemp(prefix="rnnfast-bench-")
    os.environ["TMPDIR"] = private_tmp
    tempfile.tempdir = None
    t0 = time.perf_counter()
    busy_from = machine.snapshot()
    try:
        bench = Bench(mode)
        log(f"{mode.name} mode, torch {torch.__version__}, {bench.default_threads} default threads, "
            f"rnnfast from {os.path.dirname(rnnfast.__file__)}")
        bench.run()
        log("LMModel4 recipe, both backends")
        recipe_from = machine.snapshot()
        rec = recipe.compare_backends(mode.recipe_epochs, mode.recipe_lrs,
                                      budget_s=mode.recipe_budget_s)
        bench.others_busy["recipe"] = machine.others_share(recipe_from, machine.snapshot())
        log(f"recipe: fused {rec['fused']['epoch_s_median'] * 1e3:.0f} ms/epoch, reference "
            f"{rec['reference']['epoch_s_median'] * 1e3:.0f} ms/epoch")
        log("memory (last: the profiler it uses slows what runs after it)")
        bench.measure_memory()
    finally:
        shutil.rmtree(private_tmp, ignore_errors=True)
    wall = time.perf_counter() - t0

    results = {
        "meta": {"mode": mode.name, "torch": torch.__version__, "python": platform.python_version(),
                 "cpu": machine.cpu_name(), "cores": os.cpu_count(),
                 "default_threads": bench.default_threads,
                 "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "wall_s": wall,
                 # Share of all cores' CPU time that other processes took: per thread count's
                 # block, during the recipe, and over the whole run.
                 "others_cpu_share": {**bench.others_busy,
                                      "whole run": machine.others_share(busy_from,
                                                                        machine.snapshot())},
                 "rnnfast": rnnfast.__version__},
        "sizes": {"main": [s.as_dict() for s in mode.main_sizes],
                  "hidden_sweep": [s.as_dict() for s in mode.hidden_sweep],
                  "seq_sweep": [s.as_dict() for s in mode.seq_sweep],
                  "model": [s.as_dict() for s in mode.model_sizes]},
        "ceiling": {str(k): v for k, v in bench.ceilings.items()},
        "timings": bench.timings,
        "compile": bench.compile,
        "memory": bench.memory,
        "checks": bench.checks,
        "recipe": rec,
        "targets": targets.evaluate(bench.timings, bench.default_threads, rec),
        "skipped": bench.skipped,
    }
    log(f"measured in {wall:.0f} s")
    return _write(results, args)


def _write(results: dict, args: argparse.Namespace) -> int:
    md = report.markdown(results)
    print(md)
    if args.md:
        with open(args.md, "w") as f:
            f.write(md)
    if args.json:
        report.write_json(results, args.json)
    if args.png:
        from . import chart   # matplotlib is only needed for the chart
        chart.speedup_chart(results, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
