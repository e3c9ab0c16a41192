"""One ``rnnfast train`` run that loses no work: checkpoints after epochs, a clean stop on
Ctrl-C or SIGTERM, and the state to continue it exactly (``--resume``).

The run is continued at an epoch boundary: the checkpoint holds the weights, the optimizer's
state, torch's RNG state, the models' carried state and the history after its last epoch. The
schedule's position (one-cycle included) follows from the number of epochs done, so a resumed
run computes every later step as the uninterrupted run does; at the same thread count its
weights end bitwise equal. An epoch cut short is run again from its start.
"""
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import torch
from torch import nn

from . import checkpoint, train
from .distributed import Shard
from .stopping import StopRequests
from .textdata import Corpus


@dataclass
class Settings:
    """Everything a run is, as its checkpoint's "config" records it, plus where its outputs go."""
    model: int
    hidden: int
    seq_len: int
    recipe: train.Recipe
    bs: int
    backend: str
    seed: int
    threads: int
    layers: Optional[int] = None     # LMModel5's recurrent layers; None for the others
    save: Optional[str] = None
    save_every: int = 1
    plot: Optional[str] = None
    load: Optional[str] = None       # start from this checkpoint's weights (a new run) ...
    resume: Optional[str] = None     # ... or continue the run this one recorded
    start: Optional[Dict[str, Any]] = None   # the checkpoint read from --load or --resume
    data: Dict[str, Any] = field(default_factory=dict)   # the corpus's source

    def config(self) -> Dict[str, Any]:
        return {"model": self.model, "hidden": self.hidden, "seq_len": self.seq_len,
                "layers": self.layers,
                "bs": self.bs, "backend": self.backend, "seed": self.seed,
                "epochs": list(self.recipe.epochs), "lr": list(self.recipe.lrs),
                "schedule": self.recipe.schedule, "data": dict(self.data)}


def carried_state(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The buffers outside the state_dict: the state LMModel3-5 carry from batch to batch.
    (At an epoch boundary it is the reset state: every epoch starts with reset(). So every
    rank under torchrun can resume from rank 0's.)"""
    persistent = set(model.state_dict())
    return {n: b.detach().clone() for n, b in model.named_buffers() if n not in persistent}


def restore_carried_state(model: nn.Module, state: Dict[str, torch.Tensor]) -> None:
    known = dict(model.named_buffers())
    for name, value in state.items():
        if name not in known:
            raise checkpoint.CheckpointError(f"its carried state {name!r} is no buffer of "
                                             f"{type(model).__name__}")
        owner, _, attr = name.rpartition(".")
        setattr(model.get_submodule(owner), attr, value.to(known[name].device))


def resume_checkpoint(s: Settings, task: train.Task, opt: torch.optim.Optimizer,
                      corpus: Corpus) -> Dict[str, Any]:
    """A checkpoint of the run after its last finished epoch, detached from the live tensors."""
    ck = checkpoint.weights(task.model, corpus.vocab, s.config(), task.history)
    ck["resume"] = {"epochs_done": len(task.history),
                    "optimizer": checkpoint.cpu_copy(opt.state_dict()),
                    "rng": torch.get_rng_state(),
                    "carried": checkpoint.cpu_copy(carried_state(task.model)),
                    "data": corpus.fingerprint,
                    "threads": torch.get_num_threads()}
    return ck


def restore(task: train.Task, opt: torch.optim.Optimizer, ck: Dict[str, Any]) -> None:
    """Puts the run recorded in ``ck`` back: weights, carried state, optimizer, RNG, history."""
    state = checkpoint.resume_state(ck)
    checkpoint.load_weights(task.model, ck)
    restore_carried_state(task.model, state["carried"])
    try:
        opt.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, TypeError) as e:
        raise checkpoint.CheckpointError(f"its optimizer state does not fit the model: "
                                         f"{e}") from None
    torch.set_rng_state(state["rng"])
    task.history = checkpoint.history(ck)


class _Saver:
    """Rank 0's checkpoints: a snapshot after every epoch, written every save_every epochs and
    after the last, and on a stop if the last one is not yet on disk."""

    def __init__(self, s: Settings, corpus: Corpus, enabled: bool):
        self.s, self.corpus, self.enabled = s, corpus, enabled and bool(s.save)
        self.snapshot: Optional[Dict[str, Any]] = None
        # Epochs done in the checkpoint on disk (-1: none yet); a resumed run saving over the
        # file it resumed from starts with that file's.
        self.written = -1
        if s.resume and os.path.abspath(s.save) == os.path.abspath(s.resume):
            self.written = s.start["resume"]["epochs_done"]

    def after_epoch(self, task: train.Task, opt: torch.optim.Optimizer) -> None:
        if not self.enabled:
            return
        self.snapshot = resume_checkpoint(self.s, task, opt, self.corpus)
        done = len(task.history)
        if done % self.s.save_every == 0 or done == self.s.recipe.total_epochs:
            self.flush()

    def flush(self) -> None:
        if self.snapshot is not None and self.snapshot["resume"]["epochs_done"] != self.written:
            checkpoint.write(self.s.save, self.snapshot)
            self.written = self.snapshot["resume"]["epochs_done"]


def _summary(history: List[train.EpochResult], new_epochs: int, wall: float) -> str:
    last = history[-1]
    this_run = (f" ({new_epochs} of them in this run)"
                if new_epochs != len(history) else "")
    per_epoch = statistics.median(r.seconds for r in history)
    return (f"reached valid accuracy {last.accuracy:.4f} (valid loss {last.valid_loss:.4f}) "
            f"after {len(history)} epochs{this_run} in {wall:.1f} s: {per_epoch * 1000:.0f} ms "
            f"per epoch (median, train + valid)")


def run(s: Settings, corpus: Corpus, shard: Shard,
        prepare: Callable[[train.Task], None] = lambda task: None) -> int:
    """Trains as ``s`` says and returns the exit status (0, or 128 + signal when stopped).
    ``prepare(task)`` runs before training (the command line's data-parallel setup)."""
    with StopRequests() as stop:
        return _run(s, corpus, shard, prepare, stop)


def _run(s: Settings, corpus: Corpus, shard: Shard, prepare: Callable[[train.Task], None],
         stop: StopRequests) -> int:
    task = train.make_task(s.model, s.hidden, s.seq_len, s.bs, s.backend, s.seed,
                           corpus=corpus, layers=s.layers)
    task.track_train_accuracy = bool(s.plot)   # the curves show it; it costs time
    opt = train.fastai_adam(task.model, s.recipe.lrs[0])
    if s.resume:
        restore(task, opt, s.start)
    elif s.load:
        checkpoint.load_weights(task.model, s.start)
    prepare(task)
    say = print if shard.is_main else (lambda *a, **k: None)   # rank 0 speaks for all
    say(_header(s, corpus, shard, len(task.history)))
    total = s.recipe.total_epochs
    if len(task.history) >= total:
        say(f"{s.resume} already holds all {total} epochs of its recipe: nothing left to train")
        say(_summary(task.history, 0, 0.0))
        return 0
    say(f"{'epoch':>5}  {'train_loss':>10}  {'valid_loss':>10}  {'accuracy':>8}  {'time':>7}")

    saver = _Saver(s, corpus, shard.is_main)
    from tqdm import tqdm  # a progress bar on a terminal, silent in logs and CI
    bar = tqdm(total=total, initial=len(task.history), unit="epoch", leave=False,
               file=sys.stderr, disable=None if shard.is_main else True)
    first_new = len(task.history)
    # One process stops before its next batch. Ranks under torchrun agree at the end of an
    # epoch (one all_reduce), so that none waits for the others in a collective.
    single = shard.world_size == 1

    def on_epoch(r: train.EpochResult) -> None:
        if shard.is_main:
            bar.write(f"{r.epoch:>5}  {r.train_loss:>10.4f}  {r.valid_loss:>10.4f}  "
                      f"{r.accuracy:>8.4f}  {r.seconds:>6.2f}s", file=sys.stdout)
        bar.update(1)
        saver.after_epoch(task, opt)
        stopping = stop.requested if single else shard.all_sum([float(stop.requested)])[0]
        if stopping and len(task.history) < total:
            raise train.StopTraining

    t0 = time.perf_counter()
    try:
        try:
            train.run_recipe(task, s.recipe.epochs, s.recipe.lrs, s.recipe.schedule, on_epoch,
                             opt=opt, should_stop=lambda: single and stop.requested)
        except train.StopTraining:
            bar.close()
            saver.flush()
            if shard.is_main:
                print(_stopped_line(s, stop.name, len(task.history), total, saver),
                      file=sys.stderr)
            return stop.exit_status
    except KeyboardInterrupt:   # a second Ctrl-C, maybe during the stop's save: stop at once
        bar.close()
        if shard.is_main:
            print(_stopped_line(s, "a second " + stop.name, saver.written, total, saver,
                                at_once=True), file=sys.stderr)
        return stop.exit_status
    bar.close()
    wall = time.perf_counter() - t0
    say(_summary(task.history, len(task.history) - first_new, wall))
    if shard.is_main:
        _outputs(s, task, saver)
    return 0


def _header(s: Settings, corpus: Corpus, shard: Shard, done: int) -> str:
    ranks = f", ranks={shard.world_size}" if shard.world_size > 1 else ""
    line = (f"LMModel{s.model} (backend={s.backend}, hidden={s.hidden}, bs={s.bs}, "
            f"seed={s.seed}, threads={torch.get_num_threads()}{ranks}): {s.recipe.describe()}")
    if s.load:
        line += f", from {s.load}"
    if s.resume:
        line += f", resumed from {s.resume} after epoch {done}"
    if corpus.source.get("data") != "human-numbers":
        tokens = len(corpus.train_nums) + (0 if corpus.valid_nums is None
                                           else len(corpus.valid_nums))
        line += f"; data: {corpus.describe()} ({len(corpus.vocab)} words, {tokens} tokens)"
    return line


def _stopped_line(s: Settings, why: str, done: int, total: int, saver: _Saver,
                  at_once: bool = False) -> str:
    head = f"rnnfast train: stopped by {why} after {max(done, 0)} of {total} epochs"
    if at_once:
        head = f"rnnfast train: stopped at once by {why}"
    if not s.save:
        return head + "; nothing saved (give --save PATH to be able to resume)"
    if saver.written < 0 and at_once:
        return head + f"; no checkpoint had been written to {s.save} yet"
    if saver.written < 0:
        return head + "; the first epoch had not ended, so there was nothing to save"
    return (head + f"; {s.save} holds the run after epoch {saver.written}: continue it with "
            f"`rnnfast train --resume {s.save}`")


def _outputs(s: Settings, task: train.Task, saver: _Saver) -> None:
    if s.save:
        saver.flush()
        print(f"saved {s.save}")
    if s.plot:
        from .plot import save_curves
        save_curves(s.plot, task.history,
                    f"LMModel{s.model}, hidden {s.hidden}: {s.recipe.describe()}")
        print(f"plotted {s.plot}")
