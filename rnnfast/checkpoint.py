"""Checkpoints of ``rnnfast train --save``: the weights with what it takes to use them again,
and to continue the run (``--resume``).

A checkpoint is a plain dict saved with ``torch.save``:

    {"format": 1, "state_dict": {...}, "vocab": ["one", ".", ...],
     "config": {"model": 4, "hidden": 64, "seq_len": 16, "bs": 64, ...},
     "history": [{"epoch": 0, "train_loss": ..., ...}, ...],
     "resume": {"epochs_done": 3, "optimizer": {...}, "rng": tensor, ...}}

Only tensors, strings, numbers, None and containers of them, so ``torch.load(path,
weights_only=True)`` reads it. The state_dict is the model's own, under the notebook's layer
names, so it also loads into the notebook's classes: ``LMModel4(len(ck["vocab"]),
ck["config"]["hidden"], 16).load_state_dict(ck["state_dict"])``; one under the printed book's
names (``i_h``, ``h_h``, ``h_o``) loads into rnnfast's models too. "resume" is what only
``--resume`` needs (written by ``rnnfast train --save``); readers of the weights ignore it.

Files are written atomically (rnnfast.atomic_file): a crash leaves the previous checkpoint.
"""
import dataclasses
import os
import zipfile
from typing import Any, Dict, List, Sequence

import torch
from torch import nn

from . import specs
from .atomic_file import atomic_write
from .train import EpochResult

FORMAT = 1
RESUME_KEYS = ("epochs_done", "optimizer", "rng", "carried", "data", "threads")


class CheckpointError(ValueError):
    """A file that is no usable checkpoint; the message says why, without the file's name."""


def cpu_copy(value: Any) -> Any:
    """A deep copy with every tensor detached, cloned and on the CPU: a snapshot that later
    training steps cannot change."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: cpu_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cpu_copy(v) for v in value)
    return value


def weights(model: nn.Module, vocab: Sequence[str], config: Dict[str, Any],
            history: Sequence[Any] = ()) -> Dict[str, Any]:
    """The weights-only checkpoint of ``model`` (what generate, --load and the notebook read)."""
    return {"format": FORMAT, "state_dict": cpu_copy(model.state_dict()), "vocab": list(vocab),
            "config": dict(config), "history": [dataclasses.asdict(r) for r in history]}


def write(path: str, ck: Dict[str, Any]) -> None:
    """torch.save, atomically: PATH is the old checkpoint or the new one, never a part."""
    with atomic_write(path) as f:
        torch.save(ck, f)


def save(path: str, model: nn.Module, vocab: Sequence[str], config: Dict[str, Any],
         history: Sequence[Any] = ()) -> None:
    write(path, weights(model, vocab, config, history))


def _load_file(path: str) -> Any:
    if not os.path.exists(path):
        raise CheckpointError("no such file")
    if os.path.isdir(path):
        raise CheckpointError("is a folder, not a checkpoint file")
    if os.path.getsize(path) == 0:
        raise CheckpointError("is empty (0 bytes), not a checkpoint")
    with open(path, "rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"
    if zipped and not zipfile.is_zipfile(path):
        raise CheckpointError("is truncated or damaged (an incomplete torch.save archive)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds; each means "unreadable"
        if not zipped:
            raise CheckpointError("is not a checkpoint (not a file written by torch.save)") \
                from None
        if "Weights only load failed" in str(e):
            raise CheckpointError("holds Python objects that a weights-only load refuses; it "
                                  "is not an rnnfast checkpoint") from None
        raise CheckpointError(f"is damaged: torch.load failed ({type(e).__name__})") from None


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise CheckpointError(f"is not a complete rnnfast checkpoint: {what}")


def _check_config(cfg: Any) -> None:
    _require(isinstance(cfg, dict), "'config' is missing")
    model = cfg.get("model")
    _require(model in specs.SPECS, f"config 'model' is {model!r}, not one of "
                                   f"{sorted(specs.SPECS)}")
    for key in ("hidden", "seq_len"):
        value = cfg.get(key)
        _require(isinstance(value, int) and value > 0,
                 f"config {key!r} is {value!r}, not a positive integer")
    layers = cfg.get("layers")   # LMModel5's; None or absent: the model's default
    _require(layers is None or (isinstance(layers, int) and layers > 0),
             f"config 'layers' is {layers!r}, not a positive integer")


def read(path: str) -> Dict[str, Any]:
    """Reads and checks a checkpoint (weights_only: loading runs no code from the file).
    Raises CheckpointError saying what is wrong with it."""
    ck = _load_file(path)
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"is not an rnnfast checkpoint (no 'format': {FORMAT}); write "
                              f"one with `rnnfast train --save`")
    missing = [k for k in ("state_dict", "vocab", "config") if k not in ck]
    _require(not missing, "it lacks " + ", ".join(repr(k) for k in missing))
    sd, vocab = ck["state_dict"], ck["vocab"]
    _require(isinstance(sd, dict) and sd and
             all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()),
             "'state_dict' is not a dict of tensors")
    _require(isinstance(vocab, list) and vocab and all(isinstance(w, str) for w in vocab)
             and len(set(vocab)) == len(vocab), "'vocab' is not a list of distinct words")
    _check_config(ck["config"])
    history = ck.setdefault("history", [])
    fields = dataclasses.fields(EpochResult)
    known = {f.name for f in fields}
    needed = {f.name for f in fields if f.default is dataclasses.MISSING}
    _require(isinstance(history, list) and
             all(isinstance(r, dict) and needed <= set(r) <= known for r in history),
             "'history' is not a list of epochs")
    return ck


def history(ck: Dict[str, Any]) -> List[Any]:
    return [EpochResult(**r) for r in ck.get("history", [])]


def resume_state(ck: Dict[str, Any]) -> Dict[str, Any]:
    """The part only --resume needs; CheckpointError if the file has none (weights only)."""
    state = ck.get("resume")
    if state is None:
        raise CheckpointError("holds weights only (no optimizer, schedule position or RNG "
                              "state to continue from); start from its weights with --load")
    _require(isinstance(state, dict) and all(k in state for k in RESUME_KEYS),
             "its 'resume' state lacks " +
             ", ".join(k for k in RESUME_KEYS if not isinstance(state, dict) or k not in state))
    done = state["epochs_done"]
    _require(isinstance(done, int) and done == len(ck["history"]),
             f"'epochs_done' ({done!r}) does not match its history of "
             f"{len(ck['history'])} epochs")
    _require(isinstance(state["rng"], torch.Tensor) and state["rng"].dtype == torch.uint8,
             "'rng' is not torch's RNG state")
    return state


def build_model(ck: Dict[str, Any], backend: str = "fused") -> nn.Module:
    """The checkpoint's LMModel with its weights loaded (CheckpointError if they do not fit)."""
    cfg = ck["config"]
    model = specs.build_model(cfg["model"], len(ck["vocab"]), cfg["hidden"], cfg["seq_len"],
                              backend, cfg.get("layers"))
    load_weights(model, ck)
    return model


def load_weights(model: nn.Module, ck: Dict[str, Any]) -> None:
    try:
        model.load_state_dict(ck["state_dict"])
    except (RuntimeError, KeyError, ValueError) as e:
        cfg = ck["config"]
        first = str(e).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0] if first else type(e).__name__
        raise CheckpointError(f"its weights do not fit LMModel{cfg['model']} with hidden "
                              f"{cfg['hidden']} and {len(ck['vocab'])} words: {detail}") \
            from None


def check_vocab(ck: Dict[str, Any], vocab: List[str], data: str) -> None:
    """CheckpointError unless ck was trained on ``vocab`` (of the data described by ``data``)."""
    saved = list(ck["vocab"])
    if saved != list(vocab):
        same_words = sorted(saved) == sorted(vocab)
        raise CheckpointError(
            f"was trained on another vocabulary ({len(saved)} words) than {data}'s "
            f"({len(vocab)} words)" + (": the same words, numbered differently" if same_words
                                       else "") +
            "; train on the checkpoint's data, or leave the checkpoint out")
