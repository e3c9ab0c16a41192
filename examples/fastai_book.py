"""The book's LMModel4 in a fastai Learner, with rnnfast's drop-in module (needs the [fastai]
extra). Run: python examples/fastai_book.py [--epochs 30] [--bf16]"""
import argparse

import torch.nn.functional as F
from fastai.text.all import DataLoaders, Learner, ModelResetter, accuracy

from rnnfast import LMModel4, data

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=30)
p.add_argument("--bf16", action="store_true", help="fastai's to_bf16() (used on CUDA devices)")
args = p.parse_args()

bs, sl = 64, 16
ds = data.HumanNumbers.build()                      # the HUMAN_NUMBERS text, made locally
x, y = data.shifted_sequences(ds.nums, sl)          # the book's seqs
(xt, yt), (xv, yv) = data.split(x, y)               # cut = int(len(seqs) * 0.8)


def group_chunks(xs, ys):
    order = data.group_chunks_order(len(xs), bs)
    return list(zip(xs[order], ys[order]))


dls = DataLoaders.from_dsets(group_chunks(xt, yt), group_chunks(xv, yv), bs=bs, drop_last=True,
                             shuffle=False)


def loss_func(inp, targ):
    return F.cross_entropy(inp.view(-1, len(ds.vocab)), targ.view(-1))


learn = Learner(dls, LMModel4(len(ds.vocab), 64, sl), loss_func=loss_func, metrics=accuracy,
                cbs=ModelResetter)
if args.bf16:
    learn = learn.to_bf16()
learn.fit(args.epochs, 1e-3)
