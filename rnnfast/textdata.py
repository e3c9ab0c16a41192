"""Text for ``rnnfast train``: the built-in human numbers, fastai's HUMAN_NUMBERS folder
(``--data-dir``) or your own UTF-8 text (``--text FILE [--valid FILE]``), tokenized as the book
does.

The book joins the lines with " . " and splits on spaces: every line's words, with a "." token
between lines. Here words are split on any whitespace and blank lines are skipped (the book's
split(' ') would make empty tokens of both); on the human numbers this is the same stream. The
vocabulary is the words seen, numbered in order of first appearance (the book's set() order
changes from run to run; a checkpoint records the vocabulary either way).
"""
import functools
import hashlib
import os
import sys
from array import array
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional

import torch
from torch import Tensor

from .data import HumanNumbers

LINE_SEPARATOR = "."
# Files at least this large get a progress bar while they are read (on a terminal only).
PROGRESS_BAR_BYTES = 8 << 20


class DataError(ValueError):
    """Data that cannot be trained on; the message starts with the option that named it."""


@dataclass
class Corpus:
    vocab: List[str]
    train_nums: Tensor              # token ids (int64) of the training text ...
    valid_nums: Optional[Tensor]    # ... and of the --valid text; None: the book's 80/20 cut
    # How it was read, as recorded in checkpoints: {"data": "human-numbers"}, {"data-dir": DIR}
    # or {"text": FILE, "valid": FILE or None}, paths absolute.
    source: Dict[str, Optional[str]] = field(default_factory=lambda: {"data": "human-numbers"})

    @functools.cached_property
    def fingerprint(self) -> str:
        """A hash of the vocabulary and the token ids: --resume checks the text is unchanged.
        (Computed once: every checkpoint records it.)"""
        h = hashlib.sha256("\n".join(self.vocab).encode())
        for nums in (self.train_nums, self.valid_nums):
            h.update(b"|" if nums is None else nums.numpy().tobytes())
        return h.hexdigest()

    def describe(self) -> str:
        if "text" in self.source:
            valid = self.source.get("valid")
            return f"--text {self.source['text']}" + (f" --valid {valid}" if valid else "")
        if "data-dir" in self.source:
            return f"--data-dir {self.source['data-dir']}"
        return "the built-in human-numbers data"


def tokens(lines: Iterable[str]) -> Iterator[str]:
    """The words of every non-blank line, with LINE_SEPARATOR between lines."""
    first = True
    for line in lines:
        words = line.split()
        if not words:
            continue
        if not first:
            yield LINE_SEPARATOR
        first = False
        yield from words


class _Numericalizer:
    """Token ids in order of first appearance, one vocabulary over several texts."""

    def __init__(self) -> None:
        self.index: Dict[str, int] = {}

    def __call__(self, words: Iterable[str]) -> Tensor:
        ids, index = array("q"), self.index
        for w in words:
            i = index.get(w)
            if i is None:
                i = index[w] = len(index)
            ids.append(i)
        return torch.tensor(ids, dtype=torch.int64) if ids else torch.empty(0, dtype=torch.int64)

    @property
    def vocab(self) -> List[str]:
        return list(self.index)


def _check_file(path: str, option: str) -> None:
    if not os.path.exists(path):
        raise DataError(f"{option} {path}: no such file")
    if os.path.isdir(path):
        raise DataError(f"{option} {path}: is a folder; give a UTF-8 text file")
    if not os.access(path, os.R_OK):
        raise DataError(f"{option} {path}: not readable (permission denied)")


def read_lines(path: str, option: str, progress: bool = True) -> Iterator[str]:
    """The file's lines as text, with a progress bar for a large file on a terminal, and a
    DataError naming the line of the first byte that is not UTF-8."""
    _check_file(path, option)
    size = os.path.getsize(path)
    from tqdm import tqdm
    with open(path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, leave=False,
                                     desc=f"reading {os.path.basename(path)}", file=sys.stderr,
                                     disable=None if progress and size >= PROGRESS_BAR_BYTES
                                     else True) as bar:
        # Lines split on b"\n", which never occurs inside a UTF-8 multi-byte character.
        for number, raw in enumerate(f, 1):
            bar.update(len(raw))
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{option} {path}: not UTF-8 text: byte {raw[e.start]:#04x} on "
                                f"line {number}, column {e.start + 1}; save the file as "
                                f"UTF-8") from None
            yield line.lstrip("\ufeff") if number == 1 else line   # a byte-order mark


def _numbered(numericalize: _Numericalizer, path: str, option: str, progress: bool) -> Tensor:
    nums = numericalize(tokens(read_lines(path, option, progress)))
    if len(nums) == 0:
        raise DataError(f"{option} {path}: the file holds no words")
    return nums


def human_numbers() -> Corpus:
    ds = HumanNumbers.build()
    return Corpus(ds.vocab, ds.nums, None)


def read_text(path: str, valid_path: Optional[str] = None, progress: bool = True) -> Corpus:
    """--text FILE: train on it, validate on the --valid FILE, or without one on the book's
    last 20% of sequences. One vocabulary: the training text's words, then the new ones of
    the validation text."""
    numericalize = _Numericalizer()
    train = _numbered(numericalize, path, "--text", progress)
    valid = _numbered(numericalize, valid_path, "--valid", progress) if valid_path else None
    return Corpus(numericalize.vocab, train, valid,
                  {"text": os.path.abspath(path),
                   "valid": os.path.abspath(valid_path) if valid_path else None})


HUMAN_NUMBERS_FILES = ("train.txt", "valid.txt")


def read_data_dir(folder: str, progress: bool = True) -> Corpus:
    """--data-dir DIR: fastai's HUMAN_NUMBERS layout, read as the book does: the lines of
    train.txt and then valid.txt as one text, cut 80/20 into training and validation."""
    if not os.path.isdir(folder):
        raise DataError(f"--data-dir {folder}: " +
                        ("not a folder" if os.path.exists(folder) else "no such folder"))
    paths = [os.path.join(folder, name) for name in HUMAN_NUMBERS_FILES]
    for p in paths:
        if not os.path.isfile(p):
            raise DataError(f"--data-dir {folder}: no {os.path.basename(p)} in it (the folder "
                            f"untar_data(URLs.HUMAN_NUMBERS) gives holds train.txt and "
                            f"valid.txt)")

    def lines() -> Iterator[str]:
        for p in paths:
            yield from read_lines(p, "--data-dir", progress)

    numericalize = _Numericalizer()
    nums = numericalize(tokens(lines()))
    if len(nums) == 0:
        raise DataError(f"--data-dir {folder}: train.txt and valid.txt hold no words")
    return Corpus(numericalize.vocab, nums, None, {"data-dir": os.path.abspath(folder)})


def read_source(source: Dict[str, Optional[str]], progress: bool = True) -> Corpus:
    """The corpus a checkpoint's recorded source names (for --resume)."""
    if "text" in source:
        return read_text(source["text"], source.get("valid"), progress)
    if "data-dir" in source:
        return read_data_dir(source["data-dir"], progress)
    return human_numbers()
