"""The book's training recipe in plain PyTorch: fastai's Adam settings, fit and fit_one_cycle,
ModelResetter's resets, and fastai's loss and accuracy for each model."""
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, List, Optional, Tuple

import torch
from torch import Tensor, nn

from . import data, distributed, specs, textdata
from .distributed import Shard
from .models import lm_loss  # defined with the models; also public as train.lm_loss

# The book's recipes (model -> phases of (epochs, lr), schedule), from rnnfast.specs.
DEFAULT_RECIPES = {m: (list(s.epochs), list(s.lrs), s.schedule) for m, s in specs.SPECS.items()}


class StopTraining(Exception):
    """Raised by a stop hook (``run_recipe(should_stop=...)`` or ``on_epoch``) to end the run
    early: the epochs finished so far stay in ``task.history``, an epoch cut short does not."""


@dataclass(frozen=True)
class Recipe:
    """Phases of (epochs, lr) under one schedule. The run's position, the one-cycle schedule's
    included, follows from the number of epochs done: that is all a resume needs to know."""
    epochs: Tuple[int, ...]
    lrs: Tuple[float, ...]
    schedule: str

    def __post_init__(self) -> None:
        if len(self.epochs) != len(self.lrs):
            raise ValueError(f"give one learning rate per phase: epochs {list(self.epochs)}, "
                             f"lrs {list(self.lrs)}")
        if self.schedule not in specs.SCHEDULES:
            raise ValueError(f"schedule must be 'constant' or 'one-cycle', got "
                             f"{self.schedule!r}")

    @property
    def total_epochs(self) -> int:
        return sum(self.epochs)

    def position(self, epoch: int) -> Tuple[int, int]:
        """(phase, epoch within the phase) of the run's epoch number ``epoch``."""
        for phase, n in enumerate(self.epochs):
            if epoch < n:
                return phase, epoch
            epoch -= n
        raise ValueError("the recipe has no such epoch")

    def describe(self) -> str:
        fit = "fit_one_cycle" if self.schedule == "one-cycle" else "fit"
        return " + ".join(f"{fit}({e}, {lr:g})" for e, lr in zip(self.epochs, self.lrs))


def fastai_adam(model: nn.Module, lr: float) -> torch.optim.AdamW:
    """fastai's default optimizer: Adam with betas (0.9, 0.99), eps 1e-5 and decoupled weight
    decay 0.01, none of it on biases (fastai's wd_bn_bias=False)."""
    decay = [p for n, p in model.named_parameters() if not n.endswith("bias")]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias")]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.99), eps=1e-5, fused=True)


def _cos(start: float, end: float, pos: float) -> float:
    return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


def one_cycle(lr_max: float, pos: float, div: float = 25.0, div_final: float = 1e5,
              pct_start: float = 0.25) -> Tuple[float, float]:
    """fastai's fit_one_cycle at training progress pos in [0, 1]: (lr, beta1)."""
    if pos < pct_start:
        p = pos / pct_start
        return _cos(lr_max / div, lr_max, p), _cos(0.95, 0.85, p)
    p = (pos - pct_start) / (1 - pct_start)
    return _cos(lr_max, lr_max / div_final, p), _cos(0.85, 0.95, p)


def correct(logits: Tensor, y: Tensor) -> int:
    return int((logits.argmax(-1) == y).sum())


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    valid_loss: float
    accuracy: float
    seconds: float
    train_accuracy: float = float("nan")


class ForwardLoss(nn.Module):
    """``forward(x, y) -> (logits, loss)``: the model's ``forward_loss`` where it has one
    (LMModel1-5: with the fused backend, the head and the loss in one op), else its forward and
    lm_loss.

    The training step calls this module rather than the model, and DistributedDataParallel
    wraps it: DDP averages gradients only for calls through its own forward, and forward_loss is
    not the model's forward. Its one child is the model (same parameters and buffers, so the
    state_dict gains a "model." prefix: checkpoints save the bare model).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, y: Tensor) -> Tuple[Tensor, Tensor]:
        forward_loss = getattr(self.model, "forward_loss", None)
        if forward_loss is not None:
            return forward_loss(x, y)
        logits = self.model(x)
        return logits, lm_loss(logits, y)


@dataclass
class Task:
    """A model with its data, ready to train the book's way.

    With ``distribute(shard)`` (under torchrun) every rank walks the same batches and takes its
    block of rows of each (see rnnfast.distributed); reported losses and accuracies are summed
    over all ranks, so every rank reports the numbers of the whole batch.
    """
    model: nn.Module
    train: Tuple[Tensor, Tensor]
    valid: Tuple[Tensor, Tensor]
    bs: int
    stateful: bool
    history: List[EpochResult] = field(default_factory=list)
    shard: Shard = field(default_factory=Shard)
    # What the training step calls, (x, y) -> (logits, loss): ForwardLoss(model), or DDP around
    # it under torchrun. Validation calls the plain ForwardLoss (forward_loss_module).
    net: Optional[nn.Module] = None
    # Training-set accuracy per epoch (for curves). Off by default, as in fastai, whose metrics
    # are computed on the validation set: an argmax over every batch's logits costs about a
    # tenth of a training step at the book's size.
    track_train_accuracy: bool = False

    def __post_init__(self) -> None:
        self.forward_loss_module = ForwardLoss(self.model)
        if self.net is None:
            self.net = self.forward_loss_module

    def distribute(self, shard: Shard) -> None:
        """Trains data-parallel as ``shard`` says: DistributedDataParallel averages gradients."""
        if self.bs % shard.world_size:
            raise ValueError(f"the batch size ({self.bs}) must be a multiple of the number of "
                             f"processes ({shard.world_size}), so that every rank gets as many "
                             f"rows of each batch")
        self.shard = shard
        self.net = distributed.wrap(self.forward_loss_module, shard)

    def _reset(self) -> None:
        if self.stateful:
            self.model.reset()

    def train_step(self, x: Tensor, y: Tensor,
                   opt: torch.optim.Optimizer) -> Tuple[float, int, int, int]:
        """One optimizer step on the batch (x, y), of which this rank takes its rows.

        Returns this rank's (loss * rows, rows, correct predictions, predictions); the last
        two are 0 unless track_train_accuracy.
        """
        rows = self.shard.rows(len(x))
        xs, ys = x[rows], y[rows]
        logits, loss = self.net(xs, ys)
        # DDP averages the ranks' gradients. Weighting each rank's mean loss by its share of the
        # rows makes that average the gradient of the whole batch's mean loss, also when the rows
        # do not split evenly (a short last batch of LMModel1/2).
        scale = len(xs) * self.shard.world_size / len(x)
        opt.zero_grad(set_to_none=True)
        (loss * scale if scale != 1.0 else loss).backward()
        opt.step()
        if not self.track_train_accuracy:
            return float(loss.detach()) * len(xs), len(xs), 0, 0
        return float(loss.detach()) * len(xs), len(xs), correct(logits, ys), ys.numel()

    def train_epoch(self, opt: torch.optim.Optimizer,
                    schedule: Optional[Callable[[int], Tuple[float, float]]],
                    step0: int, should_stop: Callable[[], bool] = lambda: False
                    ) -> Tuple[float, float]:
        """Returns the epoch's (train loss, train accuracy: NaN unless track_train_accuracy).
        Raises StopTraining before a batch when ``should_stop()`` says so."""
        self.model.train()
        self._reset()
        total, n, hits, count = 0.0, 0, 0, 0
        for i, (x, y) in enumerate(data.batches(*self.train, self.bs, self.stateful)):
            if should_stop():
                raise StopTraining
            if len(x) < self.shard.world_size:
                # A short last batch (LMModel1/2) with too few rows to give every rank one:
                # skipped on every rank alike, as every rank sees the same len(x).
                continue
            if schedule is not None:
                lr, beta1 = schedule(step0 + i)
                for g in opt.param_groups:
                    g["lr"], g["betas"] = lr, (beta1, g["betas"][1])
            loss_rows, rows, ok, preds = self.train_step(x, y, opt)
            total, n, hits, count = total + loss_rows, n + rows, hits + ok, count + preds
        total, n, hits, count = self.shard.all_sum([total, n, hits, count])
        return total / n, (hits / count if count else float("nan"))

    @torch.no_grad()
    def validate(self) -> Tuple[float, float]:
        self.model.eval()
        self._reset()
        loss_sum, hits, count, rows = 0.0, 0, 0, 0
        for x, y in data.batches(*self.valid, self.bs, self.stateful):
            share = self.shard.rows(len(x))
            xs, ys = x[share], y[share]
            if len(xs) == 0:
                continue
            logits, loss = self.forward_loss_module(xs, ys)
            loss_sum += float(loss) * len(xs)
            rows += len(xs)
            hits += correct(logits, ys)
            count += ys.numel()
        self._reset()
        loss_sum, hits, count, rows = self.shard.all_sum([loss_sum, hits, count, rows])
        return loss_sum / rows, hits / count

    def batches_per_epoch(self) -> int:
        return data.batch_count(len(self.train[0]), self.bs, self.stateful)

    def run_epoch(self, recipe: Recipe, opt: torch.optim.Optimizer,
                  should_stop: Callable[[], bool] = lambda: False) -> EpochResult:
        """The recipe's next epoch, number len(history), at its place in its phase."""
        phase, epoch_in_phase = recipe.position(len(self.history))
        return self._phase_epoch(opt, recipe.lrs[phase], recipe.schedule == "one-cycle",
                                 recipe.epochs[phase], epoch_in_phase, should_stop)

    def _phase_epoch(self, opt: torch.optim.Optimizer, lr: float, one_cycle_lr: bool,
                     phase_epochs: int, epoch_in_phase: int,
                     should_stop: Callable[[], bool] = lambda: False) -> EpochResult:
        """One epoch of a phase of fastai's fit (the lr constant, the optimizer's state kept
        across phases) or fit_one_cycle (lr and beta1 follow the step within the phase):
        train, validate, record in history."""
        for g in opt.param_groups:
            g["lr"] = lr
        per_epoch = self.batches_per_epoch()
        total = phase_epochs * per_epoch
        schedule = (lambda step: one_cycle(lr, step / total)) if one_cycle_lr else None
        t0 = time.perf_counter()
        train_loss, train_acc = self.train_epoch(opt, schedule, epoch_in_phase * per_epoch,
                                                 should_stop)
        valid_loss, acc = self.validate()
        r = EpochResult(len(self.history), train_loss, valid_loss, acc,
                        time.perf_counter() - t0, train_acc)
        self.history.append(r)
        return r

    def fit(self, epochs: int, lr: float, opt: torch.optim.Optimizer, one_cycle_lr: bool = False,
            on_epoch: Callable[[EpochResult], None] = lambda r: None) -> List[EpochResult]:
        """fastai's fit (constant lr, the optimizer's state kept across calls) or fit_one_cycle."""
        results = []
        for e in range(epochs):
            results.append(self._phase_epoch(opt, lr, one_cycle_lr, epochs, e))
            on_epoch(results[-1])
        return results


def make_task(model_id: int = 4, n_hidden: int = 64, seq_len: int = 16, bs: int = 64,
              backend: str = "fused", seed: int = 42,
              dataset: Optional[data.HumanNumbers] = None,
              corpus: Optional[textdata.Corpus] = None, layers: Optional[int] = None) -> Task:
    """The book's data pipeline and model for LMModel{model_id}, on the human numbers (or the
    ``dataset`` given) or on a textdata.Corpus; ``layers`` for LMModel5 (default: the book's)."""
    spec = specs.spec(model_id)
    if corpus is None:
        ds = dataset or data.HumanNumbers.build()
        corpus = textdata.Corpus(ds.vocab, ds.nums, None)
    train, valid = sequences(corpus, spec, seq_len)
    torch.manual_seed(seed)
    model = specs.build_model(model_id, len(corpus.vocab), n_hidden, seq_len, backend, layers)
    return Task(model, train, valid, bs, stateful=spec.stateful)


def sequences(corpus: textdata.Corpus, spec: specs.ModelSpec, seq_len: int):
    """(train, valid) pairs of (x, y) as the book makes them: the first 80% of the sequences
    train, the rest validate, unless the corpus has a validation text of its own."""
    def make(nums: Tensor) -> Tuple[Tensor, Tensor]:
        if spec.reads_sequences:
            return data.shifted_sequences(nums, seq_len)
        return data.three_token_sequences(nums)

    if corpus.valid_nums is None:
        return data.split(*make(corpus.train_nums))
    return make(corpus.train_nums), make(corpus.valid_nums)


def run_recipe(task: Task, epochs: Iterable[int], lrs: Iterable[float], schedule: str,
               on_epoch: Callable[[EpochResult], None] = lambda r: None,
               opt: Optional[torch.optim.Optimizer] = None,
               should_stop: Callable[[], bool] = lambda: False) -> List[EpochResult]:
    """Runs the recipe's epochs from where task.history ends (0 for a new run; a resumed run
    brings its history and its optimizer). ``should_stop`` is asked before every batch and
    ``on_epoch`` after every epoch; either may end the run with StopTraining."""
    recipe = Recipe(tuple(epochs), tuple(lrs), schedule)
    if opt is None:
        opt = fastai_adam(task.model, recipe.lrs[0])
    while len(task.history) < recipe.total_epochs:
        on_epoch(task.run_epoch(recipe, opt, should_stop))
    return task.history
