"""Checkpoint files: written atomically, read with clear reasons for what is wrong."""
import os

import pytest
import torch

import rnnfast
from rnnfast import atomic_file, checkpoint
from rnnfast.data import HumanNumbers

VOCAB = HumanNumbers.build().vocab
CONFIG = {"model": 4, "hidden": 8, "seq_len": 16}


def test_a_failed_write_leaves_the_previous_file_and_no_partial(tmp_path):
    path = str(tmp_path / "ck.pt")
    checkpoint.save(path, rnnfast.LMModel4(30, 8), VOCAB, CONFIG)
    before = open(path, "rb").read()
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_file.atomic_write(path) as f:
            f.write(b"half a checkpoint")
            raise RuntimeError("disk full")
    assert open(path, "rb").read() == before
    assert not os.path.exists(atomic_file.partial_path(path))


def test_writable_check_names_the_problem(tmp_path):
    assert atomic_file.check_writable(str(tmp_path / "new.pt")) == ""
    assert not os.path.exists(tmp_path / "new.pt.partial")      # the probe is cleaned up
    assert atomic_file.check_writable(str(tmp_path)) == "is a folder; give a file name"
    assert "does not exist" in atomic_file.check_writable(str(tmp_path / "no" / "x.pt"))


def test_weights_only_checkpoint_still_reads_and_builds(tmp_path):
    path = str(tmp_path / "ck.pt")
    model = rnnfast.LMModel4(30, 8)
    checkpoint.save(path, model, VOCAB, CONFIG)
    ck = checkpoint.read(path)
    rebuilt = checkpoint.build_model(ck)
    for (name, a), b in zip(model.state_dict().items(), rebuilt.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(checkpoint.CheckpointError, match="holds weights only"):
        checkpoint.resume_state(ck)


def test_weights_that_do_not_fit_are_a_clear_error(tmp_path):
    path = str(tmp_path / "ck.pt")
    checkpoint.save(path, rnnfast.LMModel4(30, 8), VOCAB, dict(CONFIG, hidden=16))
    with pytest.raises(checkpoint.CheckpointError,
                       match="its weights do not fit LMModel4 with hidden 16 and 30 words"):
        checkpoint.build_model(checkpoint.read(path))
