"""Wall-clock timing of several variants side by side, interleaved in rounds.

The machine is small and shared: a neighbour's burst lands on whichever variant happens to run
then. Running the variants in rounds (A B C, B C A, C A B, ...) spreads such bursts over all of
them, and medians with an inter-quartile range keep a few stalls from moving the result.
"""
import gc
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional


@dataclass
class Runner:
    """One variant at one size: ``call`` is timed, ``prepare`` (untimed) runs before each call."""
    call: Callable[[], object]
    prepare: Optional[Callable[[], None]] = None


@dataclass
class Stats:
    samples: List[float]                     # seconds per timed call
    warmup: List[float] = field(default_factory=list)   # seconds of each warm-up call, in order

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def quartiles(self):
        if len(self.samples) < 2:
            return self.samples[0], self.samples[0]
        q1, _, q3 = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q1, q3

    @property
    def first_call_overhead(self) -> float:
        """Warm-up time beyond what the same calls take once warm: compiling, profiling runs,
        first allocations. For torch.compile this is its compile time."""
        return max(0.0, sum(self.warmup) - len(self.warmup) * self.median)

    def as_dict(self) -> dict:
        q1, q3 = self.quartiles()
        return {"median_s": self.median, "q1_s": q1, "q3_s": q3, "iqr_s": q3 - q1,
                "min_s": min(self.samples), "n": len(self.samples),
                "warmup_s": self.warmup, "first_call_overhead_s": self.first_call_overhead}


def _timed(runner: Runner) -> float:
    if runner.prepare is not None:
        runner.prepare()
    t0 = time.perf_counter()
    runner.call()
    return time.perf_counter() - t0


def _warm_up(runner: Runner, calls: int, enough_s: float = 1.5) -> List[float]:
    """At least two calls (a first compile can be followed by a recompile, TorchScript profiles
    its first runs), then up to `calls`, but no more once `enough_s` has been spent."""
    times: List[float] = []
    while len(times) < 2 or (len(times) < calls and sum(times) < enough_s):
        times.append(_timed(runner))
    return times


def measure(runners: Dict[str, Runner], warmup_calls: int, rounds: int, budget_s: float,
            min_calls: int, max_calls: int, max_s: float = float("inf")) -> Dict[str, Stats]:
    """Warms each variant up, then times them in `rounds` interleaved rounds.

    Each variant gets about `budget_s` of timed calls in all (at least `min_calls`, at most
    `max_calls`), sized from its own warm-up: a 0.1 ms variant runs thousands of times, a
    1 s one a handful. No new round starts once `max_s` has passed (the first always runs):
    a busy machine can make every call many times slower than its warm-up promised.
    """
    stats = {name: Stats([]) for name in runners}
    for name, runner in runners.items():
        stats[name].warmup = _warm_up(runner, warmup_calls)

    calls_total = {}
    for name in runners:
        warm = stats[name].warmup
        estimate = min(warm[1:]) if len(warm) > 1 else warm[0]
        total = int(budget_s / max(estimate, 1e-7))
        total = max(min_calls, min(max_calls, total))
        calls_total[name] = total

    # Fewer rounds where a variant gets fewer calls than rounds (the ~1 s calls of the big size).
    rounds = max(1, min(rounds, min(calls_total.values())))
    calls_per_round = {name: -(-n // rounds) for name, n in calls_total.items()}   # ceil
    names = list(runners)
    # The collector would otherwise fire at random inside some variant's calls; it runs between
    # measurements instead.
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    start = time.perf_counter()
    try:
        for r in range(rounds):
            if r > 0 and time.perf_counter() - start > max_s:
                break
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                runner, samples = runners[name], stats[name].samples
                for _ in range(calls_per_round[name]):
                    samples.append(_timed(runner))
    finally:
        if gc_was_enabled:
            gc.enable()
    return stats


def side_cell(runners: Dict[str, Runner], big: bool, quick: bool, tag: str, cell: str,
              **fields) -> dict:
    """One cell of a side benchmark (rnn_bench, onednn_bench): its variants measured with the
    repetitions those use (fewer, longer calls at a big size; a smoke run at --quick), as a
    row of `fields` plus each variant's median and call count, logged to stderr as "[tag] cell: ..."
    as it ends."""
    stats = measure(runners, warmup_calls=2 if big else 3, rounds=3 if big else 6,
                    budget_s=0.05 if quick else (1.0 if big else 0.5),
                    min_calls=2 if big else 5, max_calls=1000, max_s=60)
    row = dict(fields, median_s={k: v.median for k, v in stats.items()},
               n={k: len(v.samples) for k, v in stats.items()})
    print(f"[{tag}] {cell}: " +
          ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in row["median_s"].items()),
          file=sys.stderr, flush=True)
    return row
