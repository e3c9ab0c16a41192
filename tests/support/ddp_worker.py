"""Run by tests/test_ddp.py under torchrun: a few data-parallel training steps of LMModel4.

Each rank saves the gradients DDP averaged at every step and its carried state, through the
same Task.train_step that `rnnfast train` uses, so the test can compare them with one process
training on the whole batch.
"""
import sys

import torch

from rnnfast import data, distributed, train

STEPS, HIDDEN, BS, LR = 3, 16, 8, 1e-2


def run(shard: distributed.Shard):
    """Returns the gradients of every step and the final carried state of this rank."""
    task = train.make_task(4, HIDDEN, bs=BS, seed=0)
    task.distribute(shard)
    opt = train.fastai_adam(task.model, LR)
    task.model.train()
    task.model.reset()
    grads = []
    for _, (x, y) in zip(range(STEPS), data.batches(*task.train, task.bs, stateful=True)):
        task.train_step(x, y, opt)
        grads.append({n: p.grad.clone() for n, p in task.model.named_parameters()})
    return grads, task.model.h.clone()


if __name__ == "__main__":
    shard = distributed.init_from_env()
    grads, h = run(shard)
    torch.save({"rank": shard.rank, "world_size": shard.world_size, "grads": grads, "h": h},
               f"{sys.argv[1]}/rank{shard.rank}.pt")
    distributed.shutdown()
