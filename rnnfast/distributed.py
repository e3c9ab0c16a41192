"""Data-parallel training with torch.distributed, as launched by ``torchrun``.

Every rank runs the same batches in the same order and takes one contiguous block of each
batch's rows. With the book's ``group_chunks`` batching, batch row j continues the text of row j
of the previous batch, so a rank that always holds the same rows also holds the right carried
state for them: the stateful models (LMModel3-5) keep their row continuity with no exchange of
state. DistributedDataParallel averages the gradients.
"""
import inspect
import os
from dataclasses import dataclass
from typing import List, Sequence

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Shard:
    """This process's place among ``world_size`` data-parallel ranks (1 rank: everything)."""
    rank: int = 0
    world_size: int = 1

    def rows(self, n: int) -> slice:
        """This rank's contiguous block of an n-row batch; blocks differ by at most one row.
        The same n always gives the same block, which is what keeps row continuity."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))

    @property
    def is_main(self) -> bool:
        """Rank 0 prints, plots and saves."""
        return self.rank == 0

    def all_sum(self, values: Sequence[float]) -> List[float]:
        """Sums the numbers over all ranks (one all_reduce), e.g. loss sums and counts."""
        if self.world_size == 1:
            return list(values)
        t = torch.tensor(list(values), dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()


def launched_by_torchrun() -> bool:
    """torchrun (and torch.distributed.launch) put WORLD_SIZE in every process's environment."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device = torch.device("cpu")) -> Shard:
    """Joins the process group torchrun set up: gloo for CPU tensors, nccl for CUDA ones."""
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Shard(dist.get_rank(), dist.get_world_size())


def wrap(model: nn.Module, shard: Shard) -> nn.Module:
    """DistributedDataParallel around the module the training step calls (the trainer passes
    train.ForwardLoss, whose forward returns the loss too), for its forward and backward.

    Turning off DDP's buffer sync matters: DDP would otherwise copy rank 0's buffers to every
    rank before each forward, and the carried state ``h`` of LMModel3-5 is a buffer that holds
    different rows on every rank. (The sync at construction is harmless: every epoch starts
    with reset().)
    """
    if shard.world_size == 1:
        return model
    ddp = nn.parallel.DistributedDataParallel
    # torch 2.13 renamed broadcast_buffers (now deprecated, with a warning) to
    # forward_sync_buffers; older torch only knows the first.
    if "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters:
        return ddp(model, forward_sync_buffers=False)
    return ddp(model, broadcast_buffers=False)


def barrier(shard: Shard) -> None:
    """Waits for every rank, before the process group is torn down after a run that ended
    alike on all of them. Without it, rank 0 (still writing its checkpoint) once aborted in
    gloo's teardown ("terminate called without an active exception") after rank 1 had
    destroyed its group."""
    if shard.world_size > 1:
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
