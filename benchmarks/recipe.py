"""The book's LMModel4 recipe trained with both backends, epoch by epoch in alternation.

Both tasks get the same data, seed and initial weights. Alternating epochs (fused, reference,
reference, fused, ...) exposes both to the same spells of load on a shared machine. An epoch's
time is train + validation, as the rnnfast CLI reports it.
"""
import statistics
import time
from typing import Optional, Sequence

from rnnfast import data
from rnnfast.train import fastai_adam, make_task


def compare_backends(epochs: Sequence[int], lrs: Sequence[float], seed: int = 42,
                     budget_s: Optional[float] = None) -> dict:
    """Trains both; stops early (and says so) once `budget_s` has passed, since a busy shared
    machine can make the book's 80 epochs take many times their usual ~20 s."""
    ds = data.HumanNumbers.build()
    tasks = {b: make_task(4, 64, 16, 64, backend=b, seed=seed, dataset=ds)
             for b in ("fused", "reference")}
    opts = {b: fastai_adam(t.model, lrs[0]) for b, t in tasks.items()}
    order = ["fused", "reference"]
    t0, done, truncated = time.perf_counter(), [], False
    for n, lr in zip(epochs, lrs):
        done.append(0)
        for _ in range(n):
            if budget_s is not None and time.perf_counter() - t0 > budget_s:
                truncated = True
                break
            for b in order:
                tasks[b].fit(1, lr, opts[b])
            order.reverse()
            done[-1] += 1
        if truncated:
            break

    out = {"epochs": list(epochs), "lrs": list(lrs), "seed": seed, "size": "B64 T16 H64 V30",
           "epochs_done": done, "truncated": truncated, "budget_s": budget_s}
    for b, t in tasks.items():
        secs = [r.seconds for r in t.history]
        out[b] = {"epoch_s_median": statistics.median(secs), "epoch_s": secs,
                  "total_s": sum(secs), "final_accuracy": t.history[-1].accuracy,
                  "final_valid_loss": t.history[-1].valid_loss}
    out["speedup"] = out["reference"]["epoch_s_median"] / out["fused"]["epoch_s_median"]
    out["accuracy_diff"] = out["fused"]["final_accuracy"] - out["reference"]["final_accuracy"]
    return out
