"""Every bad option or file: one line on stderr that names the option and what it accepts,
exit status 2, nothing trained, no traceback. The ones issue #12 lists run through the real
command; the others through rnnfast.cli.main in this process (each start of Python and torch
costs seconds)."""
import json
import os
import shlex
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import rnnfast
from rnnfast import checkpoint, cli
from rnnfast.data import HumanNumbers

from support import cli_runs

HN_VOCAB = HumanNumbers.build().vocab
CONFIG = {"model": 4, "hidden": 8, "seq_len": 16, "bs": 64, "backend": "fused", "seed": 0,
          "epochs": [1], "lr": [1e-3], "schedule": "constant"}

# (name, command line, what stderr's one line says). {d} is a folder of prepared files.
CASES = [
    ("hidden 0", "train --hidden 0", "argument --hidden: expected a positive integer, got '0'"),
    ("hidden -3", "train --hidden -3", "argument --hidden: expected a positive integer"),
    ("epochs 0", "train --epochs 0", "argument --epochs: expected a positive integer, got '0'"),
    ("epochs -1", "train --epochs -1", "argument --epochs: expected a positive integer"),
    ("epochs without lr", "train --epochs 1",
     "--epochs 1 gives 1 phase(s), but model 4's default learning rates (0.001 0.0001) are "
     "for 2: give one learning rate per phase"),
    ("lr without epochs", "train --lr 1e-3", "give one learning rate per phase"),
    ("lr -1", "train --lr -1", "argument --lr: expected a positive finite number, got '-1'"),
    ("lr nan", "train --lr nan", "argument --lr: expected a positive finite number, got 'nan'"),
    ("lr inf", "train --lr inf", "argument --lr: expected a positive finite number"),
    ("bs 0", "train --bs 0", "argument --bs: expected a positive integer, got '0'"),
    ("bs -5", "train --bs -5", "argument --bs: expected a positive integer"),
    ("bs 100000", "train --bs 100000",
     "--bs 100000: too large for the data: the built-in human-numbers data makes 3154 "
     "training and 789 validation sequences of 16 tokens, and a batch takes 100000 of each; "
     "give --bs 789 or less"),
    ("threads -2", "train --threads -2",
     "argument --threads: expected 0 or a positive integer, got '-2'"),
    ("seq-len 0", "train --seq-len 0", "argument --seq-len: expected a positive integer"),
    ("seq-len 100000", "train --seq-len 100000",
     "--seq-len 100000: too long for the data: the built-in human-numbers data makes 0 "
     "training and 0 validation sequences of 100000 tokens, and a batch takes 64 of each; "
     "give --seq-len 199 or less"),
    ("seq-len for model 3", "train --model 3 --seq-len 8",
     "--seq-len: LMModel3 reads blocks of three tokens; --seq-len applies to models that read "
     "sequences (--model 4 or 5)"),
    ("layers for model 4", "train --model 4 --layers 3",
     "--layers: LMModel4 has one recurrent cell; --layers applies to the multi-layer model "
     "(--model 5)"),
    ("layers 0", "train --model 5 --layers 0", "argument --layers: expected a positive integer"),
    ("model 7", "train --model 7",
     "argument --model: invalid choice: 7 (choose from 1, 2, 3, 4, 5)"),
    ("load missing", "train --load {d}/missing.pt", "--load {d}/missing.pt: no such file"),
    ("load folder", "train --load {d}", "--load {d}: is a folder, not a checkpoint file"),
    ("load random bytes", "train --load {d}/random.bin",
     "--load {d}/random.bin: is not a checkpoint (not a file written by torch.save)"),
    ("load JSON", "train --load {d}/ck.json", "--load {d}/ck.json: is not a checkpoint"),
    ("load empty", "train --load {d}/empty.pt", "--load {d}/empty.pt: is empty (0 bytes)"),
    ("load truncated", "train --load {d}/truncated.pt",
     "--load {d}/truncated.pt: is truncated or damaged"),
    ("load format only", "train --load {d}/format1.pt",
     "--load {d}/format1.pt: is not a complete rnnfast checkpoint: it lacks 'state_dict', "
     "'vocab', 'config'"),
    ("load python objects", "train --load {d}/pickled.pt",
     "--load {d}/pickled.pt: holds Python objects that a weights-only load refuses"),
    ("load another vocabulary", "train --load {d}/other_vocab.pt",
     "--load {d}/other_vocab.pt: was trained on another vocabulary (5 words) than the "
     "built-in human-numbers data's (30 words)"),
    ("load contradicted", "train --load {d}/weights.pt --hidden 32",
     "--hidden 32 contradicts the checkpoint {d}/weights.pt (hidden 8)"),
    ("resume weights only", "train --resume {d}/weights.pt",
     "--resume {d}/weights.pt: holds weights only"),
    ("resume missing", "train --resume {d}/missing.pt", "--resume {d}/missing.pt: no such file"),
    ("load and resume", "train --load {d}/weights.pt --resume {d}/weights.pt",
     "--load and --resume: give one"),
    ("save into a missing folder", "train --save {d}/no/such/folder/x.pt",
     "--save {d}/no/such/folder/x.pt: the folder {d}/no/such/folder does not exist"),
    ("save onto a folder", "train --save {d}", "--save {d}: is a folder; give a file name"),
    ("save-every without save", "train --save-every 2", "--save-every needs --save PATH"),
    ("save-every 0", "train --save x.pt --save-every 0",
     "argument --save-every: expected a positive integer"),
    ("plot into a missing folder", "train --plot {d}/no/curves.png",
     "--plot {d}/no/curves.png: the folder {d}/no does not exist"),
    ("plot without matplotlib", "train --plot {d}/curves.png",
     "--plot {d}/curves.png: needs matplotlib, which is not installed: pip install matplotlib"),
    ("plot to an unknown format", "train --plot {d}/curves.xyz",
     "--plot {d}/curves.xyz: give a file name ending in .png"),
    ("text missing", "train --text {d}/missing.txt", "--text {d}/missing.txt: no such file"),
    ("text folder", "train --text {d}", "--text {d}: is a folder; give a UTF-8 text file"),
    ("text empty", "train --text {d}/blank.txt", "--text {d}/blank.txt: the file holds no words"),
    ("text not UTF-8", "train --text {d}/latin1.txt",
     "--text {d}/latin1.txt: not UTF-8 text: byte 0xe9 on line 2, column 4; save the file as "
     "UTF-8"),
    ("text too short", "train --text {d}/short.txt",
     "--text {d}/short.txt: too short to train on: it makes 0 training and 0 validation "
     "sequences of 16 tokens"),
    ("text too short for the batch", "train --text {d}/short.txt --seq-len 2",
     "--bs 64: too large for the data: --text {d}/short.txt makes 1 training and 1 validation "
     "sequences of 2 tokens, and a batch takes 64 of each; give --bs 1 or less or a longer "
     "text"),
    ("valid not UTF-8", "train --text {d}/short.txt --valid {d}/latin1.txt",
     "--valid {d}/latin1.txt: not UTF-8 text"),
    ("valid without text", "train --valid {d}/short.txt", "--valid needs --text"),
    ("text and data-dir", "train --text {d}/short.txt --data-dir {d}",
     "--text and --data-dir: give one of them"),
    ("data-dir missing", "train --data-dir {d}/nowhere", "--data-dir {d}/nowhere: no such folder"),
    ("data-dir without the files", "train --data-dir {d}",
     "--data-dir {d}: no train.txt in it"),
    ("generate tokens -1", "generate --load {d}/weights.pt --tokens -1",
     "argument --tokens: expected a positive integer, got '-1'"),
    ("generate temperature -1", "generate --load {d}/weights.pt --temperature -1",
     "argument --temperature: expected 0 or a positive finite number, got '-1'"),
    ("generate temperature nan", "generate --load {d}/weights.pt --temperature nan",
     "argument --temperature: expected 0 or a positive finite number, got 'nan'"),
    ("generate missing", "generate --load {d}/missing.pt", "--load {d}/missing.pt: no such file"),
    ("generate truncated", "generate --load {d}/truncated.pt",
     "--load {d}/truncated.pt: is truncated or damaged"),
    ("generate one word for LMModel1", "generate --load {d}/model1.pt --prompt one",
     "--prompt: LMModel1 reads three words at a time: give at least three words, got 1"),
    ("generate unknown words", "generate --load {d}/weights.pt --prompt 'one million'",
     "--prompt: unknown words ['million']: not in the checkpoint's vocabulary"),
    ("generate own text without a prompt", "generate --load {d}/other_vocab.pt",
     "--prompt: the checkpoint {d}/other_vocab.pt was not trained on the human numbers, so "
     "there is no default prompt"),
]


# Listed in issue #12: these go through the real command.
IN_THE_ISSUE = {'hidden 0',
                'hidden -3',
                'epochs 0',
                'epochs -1',
                'epochs without lr',
                'lr -1',
                'lr nan',
                'bs 0',
                'bs -5',
                'bs 100000',
                'threads -2',
                'seq-len 0',
                'seq-len 100000',
                'seq-len for model 3',
                'load missing',
                'load folder',
                'load random bytes',
                'load JSON',
                'load truncated',
                'load format only',
                'load another vocabulary',
                'plot into a missing folder',
                'plot without matplotlib',
                'save into a missing folder',
                'text empty',
                'text not UTF-8',
                'text too short',
                'generate tokens -1',
                'generate temperature -1',
                'generate temperature nan',
                'generate one word for LMModel1'}
assert IN_THE_ISSUE <= {c[0] for c in CASES}


def _prepare(d):
    """The files the cases name."""
    torch.manual_seed(0)
    checkpoint.save(str(d / "weights.pt"), rnnfast.LMModel4(len(HN_VOCAB), 8), HN_VOCAB, CONFIG)
    checkpoint.save(str(d / "model1.pt"), rnnfast.LMModel1(len(HN_VOCAB), 8), HN_VOCAB,
                    dict(CONFIG, model=1))
    checkpoint.save(str(d / "other_vocab.pt"), rnnfast.LMModel4(5, 8), list("abcde"), CONFIG)
    whole = (d / "weights.pt").read_bytes()
    (d / "truncated.pt").write_bytes(whole[:len(whole) // 2])
    (d / "random.bin").write_bytes(os.urandom(4096))
    (d / "ck.json").write_text(json.dumps({"format": 1, "state_dict": {}}))
    (d / "empty.pt").write_bytes(b"")
    torch.save({"format": 1}, d / "format1.pt")
    torch.save({"format": 1, "state_dict": torch.nn.Linear(2, 2)}, d / "pickled.pt")
    (d / "blank.txt").write_text("\n  \n\t\n")
    (d / "latin1.txt").write_bytes("first line\ncaf\u00e9 au lait\n".encode("latin-1"))
    (d / "short.txt").write_text("one two three\nfour five six\n")
    fake = d / "no_matplotlib" / "matplotlib"    # an import of matplotlib that fails
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    _prepare(d)
    return d


@pytest.fixture(scope="module")
def real_runs(prepared):
    """The issue's cases through the real command, a few at a time."""
    d = prepared

    def one(case):
        name, line, _ = case
        paths = [d / "no_matplotlib"] if name == "plot without matplotlib" else []
        return name, cli_runs.run(*shlex.split(line.format(d=d)), paths=paths)

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(pool.map(one, [c for c in CASES if c[0] in IN_THE_ISSUE]))


def run_in_process(line, capsys):
    try:
        returncode = cli.main(shlex.split(line))
    except SystemExit as e:       # argparse's errors
        returncode = e.code
    out, err = capsys.readouterr()
    return returncode, out, err


@pytest.mark.parametrize("name,line,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_option_is_one_line_and_exit_2(prepared, request, capsys, name, line, expected):
    d = prepared
    if name in IN_THE_ISSUE:
        out = request.getfixturevalue("real_runs")[name]
        returncode, stdout, stderr = out.returncode, out.stdout, out.stderr
    else:
        returncode, stdout, stderr = run_in_process(line.format(d=d), capsys)
    command = line.split()[0]
    assert returncode == 2, (returncode, stdout, stderr)
    assert stdout == ""                       # nothing trained, nothing generated
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"rnnfast {command}: error: "), lines[0]
    assert expected.format(d=d) in lines[0]
