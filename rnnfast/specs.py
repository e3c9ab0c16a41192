"""What the trainer knows of each model: its book recipe, what it reads, whether it carries
state, and how to build it. A new model is one more entry in SPECS (and models.MODELS)."""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from torch import nn

from .models import MODELS


@dataclass(frozen=True)
class ModelSpec:
    epochs: Tuple[int, ...]     # the book's recipe: epochs per phase ...
    lrs: Tuple[float, ...]      # ... and the learning rate of each phase
    schedule: str               # "constant" (fastai's fit) or "one-cycle" (fit_one_cycle)
    # True: trained on sequences of --seq-len tokens, a target after every token (LMModels 4-5).
    # False: blocks of three tokens and the one after them (LMModel1-3); --seq-len means nothing.
    reads_sequences: bool
    # Carries its state from batch to batch: batches in group_chunks order with drop_last.
    stateful: bool
    # The book's number of recurrent layers for a multi-layer model (LMModel5); None: the model
    # has one cell and takes no --layers.
    layers: Optional[int] = None


SPECS: Dict[int, ModelSpec] = {
    1: ModelSpec((10,), (1e-3,), "constant", reads_sequences=False, stateful=False),
    2: ModelSpec((10,), (1e-3,), "constant", reads_sequences=False, stateful=False),
    3: ModelSpec((10,), (3e-3,), "one-cycle", reads_sequences=False, stateful=True),
    4: ModelSpec((30, 50), (1e-3, 1e-4), "constant", reads_sequences=True, stateful=True),
    # The book: LMModel5(len(vocab), 64, 2) with fit_one_cycle(15, 3e-3) on sequences of 16.
    5: ModelSpec((15,), (3e-3,), "one-cycle", reads_sequences=True, stateful=True, layers=2),
}

SCHEDULES = ("constant", "one-cycle")


def spec(model_id: int) -> ModelSpec:
    if model_id not in SPECS or model_id not in MODELS:
        raise ValueError(f"model must be one of {sorted(SPECS)}, got {model_id}")
    return SPECS[model_id]


def build_model(model_id: int, vocab_sz: int, hidden: int, seq_len: int,
                backend: str = "fused", layers: Optional[int] = None) -> nn.Module:
    """LMModel{model_id}, freshly initialised from torch's current RNG state (layers: None for
    the model's default)."""
    cls, s = MODELS[model_id], spec(model_id)
    if s.layers is not None:
        return cls(vocab_sz, hidden, layers or s.layers, backend=backend)
    if s.reads_sequences:
        return cls(vocab_sz, hidden, seq_len, backend=backend)
    return cls(vocab_sz, hidden, backend=backend)
