"""Checkpoints of ``rnnfast train --save``: the weights with what it takes to use them again.

A checkpoint is a plain dict saved with ``torch.save``:

    {"format": 1, "state_dict": {...}, "vocab": ["one", ".", ...],
     "config": {"model": 4, "hidden": 64, "seq_len": 16, "bs": 64, ...},
     "history": [{"epoch": 0, "train_loss": ..., ...}, ...]}

Only tensors, strings and numbers, so ``torch.load(path, weights_only=True)`` reads it, and the
state_dict uses the notebook's layer names, so it also loads into the notebook's own classes:
``LMModel4(len(ck["vocab"]), ck["config"]["hidden"], 16).load_state_dict(ck["state_dict"])``
(checkpoints written with the book's names, before the rename, load into rnnfast's models).
"""
import dataclasses
from typing import Any, Dict, List, Sequence

import torch
from torch import nn

from .models import MODELS

FORMAT = 1


def save(path: str, model: nn.Module, vocab: Sequence[str], config: Dict[str, Any],
         history: Sequence[Any] = ()) -> None:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"format": FORMAT, "state_dict": state, "vocab": list(vocab),
                "config": dict(config), "history": [dataclasses.asdict(r) for r in history]},
               path)


def load(path: str) -> Dict[str, Any]:
    """Reads a checkpoint (weights_only: loading runs no code from the file)."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise ValueError(f"{path} is not an rnnfast checkpoint (format {FORMAT}); "
                         f"write one with `rnnfast train --save {path}`")
    return ck


def build_model(ck: Dict[str, Any], backend: str = "fused") -> nn.Module:
    """The checkpoint's LMModel with its weights loaded."""
    cfg = ck["config"]
    cls, vocab_sz = MODELS[cfg["model"]], len(ck["vocab"])
    if cfg["model"] == 4:
        model = cls(vocab_sz, cfg["hidden"], cfg["seq_len"], backend=backend)
    else:
        model = cls(vocab_sz, cfg["hidden"], backend=backend)
    model.load_state_dict(ck["state_dict"])
    return model


def check_vocab(ck: Dict[str, Any], vocab: List[str], path: str) -> None:
    if list(ck["vocab"]) != list(vocab):
        raise ValueError(f"{path} was trained on another vocabulary than the human-numbers "
                         f"data's: {ck['vocab']} != {vocab}")
