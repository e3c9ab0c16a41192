"""The course notebook's LMModel1-4 (../shared/seed/), transcribed as written: its layer names,
its comments dropped, its bodies unchanged. They are the yardstick rnnfast's models are held to.

The notebook's classes derive from fastai's Module, which runs nn.Module.__init__ before the
subclass's own __init__ (so theirs never call super().__init__()); the Module below does the
same without needing fastai.
"""
import torch
import torch.nn.functional as F
from torch import nn


class Module(nn.Module):
    """fastcore's Module: the nn.Module is set up before the subclass's __init__ runs."""

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        nn.Module.__init__(self)
        return self


class LMModel1(Module):
    def __init__(self, vocab_sz, n_hidden):
        self.input_to_hidden = nn.Embedding(vocab_sz, n_hidden)
        self.hidden = nn.Linear(n_hidden, n_hidden)
        self.hidden_to_output = nn.Linear(n_hidden, vocab_sz)

    def forward(self, x):
        first_tokens = x[:, 0]
        second_tokens = x[:, 1]
        third_tokens = x[:, 2]

        h = self.input_to_hidden(first_tokens)
        h = self.hidden(h)
        h = F.relu(h)

        h = h + self.input_to_hidden(second_tokens)
        h = self.hidden(h)
        h = F.relu(h)

        h = h + self.input_to_hidden(third_tokens)
        h = self.hidden(h)
        h = F.relu(h)

        return self.hidden_to_output(h)


class LMModel2(Module):
    def __init__(self, vocab_sz, n_hidden):
        self.input_to_hidden = nn.Embedding(vocab_sz, n_hidden)
        self.hidden = nn.Linear(n_hidden, n_hidden)
        self.hidden_to_output = nn.Linear(n_hidden, vocab_sz)

    def forward(self, x):
        h = 0
        for i in range(3):
            h = h + self.input_to_hidden(x[:, i])
            h = F.relu(self.hidden(h))
        return self.hidden_to_output(h)


class LMModel3(Module):
    def __init__(self, vocab_sz, n_hidden):
        self.input_to_hidden = nn.Embedding(vocab_sz, n_hidden)
        self.hidden = nn.Linear(n_hidden, n_hidden)
        self.hidden_to_output = nn.Linear(n_hidden, vocab_sz)
        self.h = 0

    def forward(self, x):
        for i in range(3):
            self.h = self.h + self.input_to_hidden(x[:, i])
            self.h = F.relu(self.hidden(self.h))
        out = self.hidden_to_output(self.h)
        self.h = self.h.detach()
        return out

    def reset(self):
        self.h = 0


class LMModel4(Module):
    def __init__(self, vocab_sz, n_hidden, seq_len):
        self.input_to_hidden = nn.Embedding(vocab_sz, n_hidden)
        self.hidden = nn.Linear(n_hidden, n_hidden)
        self.hidden_to_output = nn.Linear(n_hidden, vocab_sz)
        self.h = 0
        self.seq_len = seq_len

    def forward(self, x):
        outs = []
        for i in range(self.seq_len):
            self.h = self.h + self.input_to_hidden(x[:, i])
            self.h = F.relu(self.hidden(self.h))
            outs.append(self.hidden_to_output(self.h))
        self.h = self.h.detach()
        return torch.stack(outs, dim=1)
