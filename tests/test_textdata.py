"""Your own text and fastai's HUMAN_NUMBERS folder, tokenized and batched as the book does."""
import io

import pytest
import torch

from rnnfast import data, specs, textdata, train
from rnnfast.data import HumanNumbers, human_numbers_lines

DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
# The vocabulary of write_text's text, in order of first appearance: the first line, the
# separator, then the days the next lines bring.
DAYS_VOCAB = DAYS[:4] + ["."] + DAYS[4:]


def write_text(path, lines=300):
    """A small made-up text: each line names four days in order, from a day that moves on."""
    path.write_text("".join(" ".join(DAYS[(i + k) % 7] for k in range(4)) + "\n"
                            for i in range(lines)), encoding="utf-8")
    return path


def write_human_numbers(folder):
    """fastai's HUMAN_NUMBERS files as untar_data gives them: one number a line, a trailing
    space before the newline."""
    lines = human_numbers_lines()
    (folder / "train.txt").write_text("".join(f"{l} \n" for l in lines[:7999]))
    (folder / "valid.txt").write_text("".join(f"{l} \n" for l in lines[7999:]))


def test_tokens_are_the_books_on_clean_lines_and_skip_blank_ones():
    lines = ["one two", "three", "four five six"]
    book = " . ".join(l.strip() for l in lines).split(" ")
    assert list(textdata.tokens(lines)) == book
    messy = ["  one\ttwo \n", "\n", "   \n", "three\r\n", "four  five six"]
    assert list(textdata.tokens(messy)) == book


def test_data_dir_reproduces_the_built_in_data_token_for_token(tmp_path):
    write_human_numbers(tmp_path)
    corpus = textdata.read_data_dir(str(tmp_path))
    built_in = HumanNumbers.build()
    assert corpus.vocab == built_in.vocab
    assert torch.equal(corpus.train_nums, built_in.nums) and corpus.valid_nums is None
    for model_id in (1, 4):   # the book's sequences and its 80/20 cut, for both kinds of model
        (tx, ty), (vx, vy) = train.sequences(corpus, specs.spec(model_id), 16)
        want = train.make_task(model_id, 8)
        assert torch.equal(tx, want.train[0]) and torch.equal(ty, want.train[1])
        assert torch.equal(vx, want.valid[0]) and torch.equal(vy, want.valid[1])


def test_text_without_valid_is_cut_80_20_and_with_valid_keeps_one_vocabulary(tmp_path):
    text = write_text(tmp_path / "days.txt")
    corpus = textdata.read_text(str(text))
    assert corpus.vocab == DAYS_VOCAB
    (tx, _), (vx, _) = train.sequences(corpus, specs.spec(4), 8)
    n = len(data.shifted_starts(len(corpus.train_nums), 8))
    assert len(tx) == int(n * 0.8) and len(tx) + len(vx) == n
    (tmp_path / "valid.txt").write_text("sunday funday\n")
    both = textdata.read_text(str(text), str(tmp_path / "valid.txt"))
    assert both.vocab == DAYS_VOCAB + ["funday"]
    assert [both.vocab[i] for i in both.valid_nums] == ["sunday", "funday"]
    assert torch.equal(both.train_nums, corpus.train_nums)


def test_a_large_file_shows_a_progress_bar_on_a_terminal(tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    monkeypatch.setattr(textdata, "PROGRESS_BAR_BYTES", 1)
    corpus = textdata.read_text(str(write_text(tmp_path / "days.txt")))
    assert "reading days.txt" in screen.getvalue() and len(corpus.vocab) == 8
    quiet = Terminal()
    monkeypatch.setattr("sys.stderr", quiet)
    textdata.read_text(str(tmp_path / "days.txt"), progress=False)   # other ranks: no bar
    assert quiet.getvalue() == ""
