"""The human-numbers data set, generated locally, and the book's ways of batching it.

fastai's HUMAN_NUMBERS holds the English words for 1..7999 (train.txt) and 8001..9999
(valid.txt), one number a line, without "and" or hyphens. The book joins all lines with " . ",
splits on spaces, numbers the vocabulary in order of first appearance, and cuts the token stream
into sequences (the first 80% train, the rest valid).
"""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
from torch import Tensor

_ONES = ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_to_words(n: int) -> str:
    """English words for 1 <= n <= 9999, in the data set's style: 'two thousand one hundred five'."""
    if not 1 <= n <= 9999:
        raise ValueError(f"n must be in [1, 9999], got {n}")
    words: List[str] = []
    if n >= 1000:
        words += [_ONES[n // 1000], "thousand"]
        n %= 1000
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
    if n:
        words.append(_ONES[n])
    return " ".join(words)


def human_numbers_lines() -> List[str]:
    """The 9,998 lines of train.txt followed by valid.txt."""
    return [number_to_words(n) for n in range(1, 8000)] + \
           [number_to_words(n) for n in range(8001, 10000)]


@dataclass
class HumanNumbers:
    tokens: List[str]   # the token stream, '.' between numbers
    vocab: List[str]    # in order of first appearance
    nums: Tensor        # token ids, int64

    @classmethod
    def build(cls) -> "HumanNumbers":
        tokens = " . ".join(human_numbers_lines()).split(" ")
        vocab = list(dict.fromkeys(tokens))
        index = {w: i for i, w in enumerate(vocab)}
        return cls(tokens, vocab, torch.tensor([index[w] for w in tokens], dtype=torch.int64))

    def encode(self, text: str) -> Tensor:
        index = {w: i for i, w in enumerate(self.vocab)}
        unknown = [w for w in text.split() if w not in index]
        if unknown:
            raise ValueError(f"unknown words {unknown}; the vocabulary is {self.vocab}")
        return torch.tensor([index[w] for w in text.split()], dtype=torch.int64)

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.vocab[int(i)] for i in ids)


def three_token_starts(n_tokens: int) -> range:
    """Where the book's blocks of three start in a text of n_tokens tokens."""
    return range(0, n_tokens - 4, 3)


def shifted_starts(n_tokens: int, seq_len: int) -> range:
    """Where the book's sequences of seq_len tokens start in a text of n_tokens tokens."""
    return range(0, n_tokens - seq_len - 1, seq_len)


def _arange(r: range) -> Tensor:
    return torch.arange(len(r), dtype=torch.int64) * r.step + r.start


def three_token_sequences(nums: Tensor) -> Tuple[Tensor, Tensor]:
    """Models 1-3: (x, y) with x = nums[i:i+3], y = nums[i+3] for i in range(0, len-4, 3)."""
    starts = _arange(three_token_starts(len(nums)))
    return nums[starts[:, None] + torch.arange(3)], nums[starts + 3]


def shifted_sequences(nums: Tensor, seq_len: int) -> Tuple[Tensor, Tensor]:
    """Models 4 and 5: x = nums[i:i+sl], y = nums[i+1:i+sl+1] for i in range(0, len-sl-1, sl)."""
    starts = _arange(shifted_starts(len(nums), seq_len))
    idx = starts[:, None] + torch.arange(seq_len)
    return nums[idx], nums[idx + 1]


def cut_point(n: int, frac: float = 0.8) -> int:
    """The book's cut = int(len(seqs) * 0.8): sequences before it train, the rest validate."""
    return int(n * frac)


def split(x: Tensor, y: Tensor, frac: float = 0.8):
    """The book's cut: the first 80% of sequences train, the rest validate."""
    cut = cut_point(len(x), frac)
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def group_chunks_order(n: int, bs: int) -> Tensor:
    """The book's group_chunks as an index order: batch row j of batch i reads sequence
    i + m*j (m = n // bs), so each row continues the text where the previous batch left it.
    Sequences past m*bs are dropped, as in the book."""
    m = n // bs
    return (torch.arange(m)[:, None] + m * torch.arange(bs)[None, :]).reshape(-1)


def batch_count(n: int, bs: int, stateful: bool) -> int:
    """How many batches `batches` yields from n sequences: drop_last for stateful models."""
    return n // bs if stateful else (n + bs - 1) // bs


def batches(x: Tensor, y: Tensor, bs: int, stateful: bool):
    """Yields (x, y) batches in the book's order: group_chunks with drop_last for stateful
    models, plain order (last batch may be short) otherwise."""
    if stateful:
        order = group_chunks_order(len(x), bs)
        x, y = x[order], y[order]
    for i in range(batch_count(len(x), bs, stateful)):
        yield x[i * bs:(i + 1) * bs], y[i * bs:(i + 1) * bs]
