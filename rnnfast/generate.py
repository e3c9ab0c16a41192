"""Continuing a text with a trained LMModel (``rnnfast generate``), and checking that it counts.

The human-numbers text is the numbers in order, so a model that learned it continues
"one thousand two hundred" with "one . one thousand two hundred two . ..."; reading the numbers
back and checking each is one more than the last shows how well it learned to count.
"""
from functools import lru_cache
from typing import Dict, List, Optional

import torch
from torch import Tensor, nn

from .data import number_to_words


def pick(logits: Tensor, temperature: float, generator: torch.Generator) -> int:
    """Greedy (temperature 0) or a sample from softmax(logits / temperature)."""
    if temperature <= 0:
        return int(logits.argmax())
    # In float64 and from the largest logit down: a tiny temperature (1e-40) then gives the
    # argmax's one-hot instead of overflowing to inf - inf = NaN.
    scaled = (logits.double() - logits.double().max()) / temperature
    probs = torch.softmax(scaled, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def _logits_three_token_model(model: nn.Module, model_id: int, ids: List[int]) -> Tensor:
    """LMModel1-3 predict the token after a block of three. LMModel1/2 see the last three
    tokens. LMModel3 was trained carrying its state over consecutive blocks, so it reads the
    whole text again in blocks of three that end at the last token."""
    if model_id in (1, 2):
        return model(torch.tensor([ids[-3:]]))[0]
    model.reset()
    logits = torch.empty(0)
    for start in range(len(ids) % 3, len(ids), 3):
        logits = model(torch.tensor([ids[start:start + 3]]))[0]
    return logits


@torch.no_grad()
def generate(model: nn.Module, model_id: int, prompt: Tensor, n_tokens: int,
             temperature: float = 0.0, seed: int = 0) -> List[int]:
    """The ids of n_tokens tokens that follow the 1-d tensor of ids ``prompt``.

    LMModel4 and LMModel5 read the prompt once and then each new token alone, from the state
    they carried.
    """
    reads_sequences = model_id in (4, 5)
    if not reads_sequences and len(prompt) < 3:
        raise ValueError(f"LMModel{model_id} reads three tokens at a time: give a prompt of at "
                         f"least three words, got {len(prompt)}")
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    ids, out = prompt.tolist(), []
    if reads_sequences:
        model.reset()
        logits = model(prompt[None])[0, -1]
        for i in range(n_tokens):
            out.append(pick(logits, temperature, generator))
            if i + 1 < n_tokens:
                logits = model(torch.tensor([[out[-1]]]))[0, -1]
        model.reset()
        return out
    for _ in range(n_tokens):
        out.append(pick(_logits_three_token_model(model, model_id, ids + out), temperature,
                        generator))
    return out


@lru_cache(maxsize=1)
def _numbers_by_words() -> Dict[str, int]:
    return {number_to_words(n): n for n in range(1, 10000)}


def read_numbers(text: str) -> List[Optional[int]]:
    """The numbers of a '.'-separated text, None where the words are no number. A last piece
    with no '.' after it may be cut short, so it is left out."""
    pieces = text.split(" . ") if not text.startswith(". ") else text[2:].split(" . ")
    if not text.rstrip().endswith("."):
        pieces = pieces[:-1]
    words = _numbers_by_words()
    return [words.get(p.strip(" .")) for p in pieces if p.strip(" .")]


def counting_steps(numbers: List[Optional[int]]) -> tuple:
    """(steps that add exactly one, steps) over consecutive numbers."""
    steps = list(zip(numbers, numbers[1:]))
    good = sum(1 for a, b in steps if a is not None and b is not None and b == a + 1)
    return good, len(steps)
