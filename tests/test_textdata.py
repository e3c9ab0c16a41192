"""Your own text (`--text`, `--valid`) and fastai's HUMAN_NUMBERS folder (`--data-dir`),
tokenized and batched as the book does, then trained, saved, resumed and generated from."""
import io
import os
import signal

import pytest
import torch

from rnnfast import cli, data, specs, textdata, train
from rnnfast.atomic_file import PAUSE_ENV
from rnnfast.data import HumanNumbers, human_numbers_lines

from support import cli_runs

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


OWN = ["--hidden", "8", "--bs", "8", "--seq-len", "8", "--epochs", "3", "--lr", "3e-3",
       "--threads", "1"]


def test_train_save_resume_and_generate_on_your_own_text(tmp_path):
    text = write_text(tmp_path / "days.txt")
    full, run = tmp_path / "full.pt", tmp_path / "run.pt"
    out = cli_runs.run("train", "--text", text, *OWN, "--save", full)
    assert out.returncode == 0, out.stderr
    assert f"data: --text {text} (8 words," in out.stdout.splitlines()[0]
    assert len(cli_runs.epoch_rows(out.stdout)) == 3
    assert torch.load(full, weights_only=True)["vocab"] == DAYS_VOCAB

    # An epoch here takes milliseconds: each save pauses mid-write, so the first checkpoint
    # stays the newest complete one long enough for the poll to see it before the kill.
    proc = cli_runs.start("train", "--text", text, *OWN, "--save", run, **{PAUSE_ENV: 0.6})
    cli_runs.wait_for(lambda: cli_runs.epochs_done(run) == 1, proc, what="the first checkpoint")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert cli_runs.epochs_done(run) == 1
    resumed = cli_runs.run("train", "--resume", run)       # the text is found from the record
    assert resumed.returncode == 0, resumed.stderr
    a, b = (torch.load(p, weights_only=True) for p in (full, run))
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])

    gen = cli_runs.run("generate", "--load", run, "--prompt", "monday tuesday", "--tokens", "6")
    assert gen.returncode == 0, gen.stderr
    header, line = gen.stdout.strip().splitlines()          # no counting: not human numbers
    assert header.startswith("LMModel4") and "greedy" in header
    prompt, continuation = line.split(" | ")
    assert prompt == "monday tuesday" and len(continuation.split()) == 6
    assert set(continuation.split()) <= set(DAYS_VOCAB)


def test_resume_refuses_a_text_that_changed(tmp_path, capsys):
    text = write_text(tmp_path / "days.txt")
    ck = tmp_path / "run.pt"
    assert cli.main(["train", "--text", str(text), *OWN[:-4], "--epochs", "1", "--lr", "1e-3",
                     "--save", str(ck)]) == 0
    assert cli.main(["train", "--resume", str(ck)]) == 0          # finished: nothing to do
    write_text(text, lines=200)
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(ck)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"rnnfast train: error: --resume {ck}: the data (--text {text}) is not the "
                   f"text the run was trained on: its tokens differ")
    os.remove(text)
    assert cli.main(["train", "--resume", str(ck)]) == 2
    assert f"--resume {ck}: the run's data: --text {text}: no such file; give its new " \
           f"place with --text or --data-dir" in capsys.readouterr().err
