"""The plain PyTorch loop that every rnnfast kernel is checked against.

Written for clarity, exactly as the fastai book writes the cell; autograd differentiates it.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def elman_rnn(tokens: Tensor, emb_weight: Tensor, weight: Tensor, bias: Tensor,
              h0: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Same contract as :func:`rnnfast.elman_rnn`, one eager step at a time."""
    B, T = tokens.shape
    if h0 is None:
        h = torch.zeros(B, emb_weight.shape[1], dtype=emb_weight.dtype, device=emb_weight.device)
    else:
        h = h0
    states: List[Tensor] = []
    for t in range(T):
        h = F.relu(F.linear(h + F.embedding(tokens[:, t], emb_weight), weight, bias))
        states.append(h)
    return torch.stack(states, dim=1), h
