"""The book's training recipe in plain PyTorch: fastai's Adam settings, fit and fit_one_cycle,
ModelResetter's resets, and fastai's loss and accuracy for each model."""
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, List, Optional, Tuple

import torch
from torch import Tensor, nn

from . import data, distributed
from .distributed import Shard
from .models import MODELS, lm_loss  # lm_loss lives with the models; public here as before

# The book's recipes (model -> phases of (epochs, lr)) and schedules.
DEFAULT_RECIPES = {
    1: ([10], [1e-3], "constant"),
    2: ([10], [1e-3], "constant"),
    3: ([10], [3e-3], "one-cycle"),
    4: ([30, 50], [1e-3, 1e-4], "constant"),
}


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
    """``forward(x, y) -> (logits, loss)``: the model's ``forward_loss`` where it has one (LMModel1-4:
    with the fused backend, the head and the loss in one op), else its forward and lm_loss.

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
                    step0: int) -> Tuple[float, float]:
        """Returns the epoch's (train loss, train accuracy: NaN unless track_train_accuracy)."""
        self.model.train()
        self._reset()
        total, n, hits, count = 0.0, 0, 0, 0
        for i, (x, y) in enumerate(data.batches(*self.train, self.bs, self.stateful)):
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

    def fit(self, epochs: int, lr: float, opt: torch.optim.Optimizer, one_cycle_lr: bool = False,
            on_epoch: Callable[[EpochResult], None] = lambda r: None) -> List[EpochResult]:
        """fastai's fit (constant lr, the optimizer's state kept across calls) or fit_one_cycle."""
        for g in opt.param_groups:
            g["lr"] = lr
        per_epoch = self.batches_per_epoch()
        total = epochs * per_epoch
        schedule = (lambda step: one_cycle(lr, step / total)) if one_cycle_lr else None
        results = []
        for e in range(epochs):
            t0 = time.perf_counter()
            train_loss, train_acc = self.train_epoch(opt, schedule, e * per_epoch)
            valid_loss, acc = self.validate()
            r = EpochResult(len(self.history), train_loss, valid_loss, acc,
                            time.perf_counter() - t0, train_acc)
            self.history.append(r)
            results.append(r)
            on_epoch(r)
        return results


def make_task(model_id: int = 4, n_hidden: int = 64, seq_len: int = 16, bs: int = 64,
              backend: str = "fused", seed: int = 42,
              dataset: Optional[data.HumanNumbers] = None) -> Task:
    """The book's data pipeline and model for LMModel{model_id}."""
    if model_id not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {model_id}")
    ds = dataset or data.HumanNumbers.build()
    if model_id == 4:
        x, y = data.shifted_sequences(ds.nums, seq_len)
    else:
        x, y = data.three_token_sequences(ds.nums)
    train, valid = data.split(x, y)
    torch.manual_seed(seed)
    cls = MODELS[model_id]
    if model_id == 4:
        model = cls(len(ds.vocab), n_hidden, seq_len, backend=backend)
    else:
        model = cls(len(ds.vocab), n_hidden, backend=backend)
    return Task(model, train, valid, bs, stateful=model_id in (3, 4))


def run_recipe(task: Task, epochs: Iterable[int], lrs: Iterable[float], schedule: str,
               on_epoch: Callable[[EpochResult], None] = lambda r: None) -> List[EpochResult]:
    epochs, lrs = list(epochs), list(lrs)
    if len(epochs) != len(lrs):
        raise ValueError(f"give one learning rate per phase: epochs {epochs}, lrs {lrs}")
    if schedule not in ("constant", "one-cycle"):
        raise ValueError(f"schedule must be 'constant' or 'one-cycle', got {schedule!r}")
    opt = fastai_adam(task.model, lrs[0])
    for n, lr in zip(epochs, lrs):
        task.fit(n, lr, opt, one_cycle_lr=schedule == "one-cycle", on_epoch=on_epoch)
    return task.history
