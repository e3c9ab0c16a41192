"""What a user of the trainer expects: checkpoints (--save/--load), curves (--plot) and
`rnnfast generate`."""
import os
import re
import subprocess
import sys

import pytest
import torch

import rnnfast
from rnnfast import checkpoint, generate
from rnnfast.data import HumanNumbers, number_to_words

from support import notebook_models

HIDDEN = 16


def rnnfast_cli(*args):
    out = subprocess.run([sys.executable, "-m", "rnnfast", *args], capture_output=True,
                         text=True, timeout=300)
    return out


def epoch_rows(stdout):
    return [l.split() for l in stdout.splitlines() if l.split() and l.split()[0].isdigit()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short training run, saved: (checkpoint path, its stdout)."""
    path = tmp_path_factory.mktemp("ck") / "model.pt"
    out = rnnfast_cli("train", "--epochs", "2", "--lr", "3e-3", "--hidden", str(HIDDEN),
                      "--save", str(path))
    assert out.returncode == 0, out.stderr
    assert f"saved {path}" in out.stdout
    return path, out.stdout


def test_checkpoint_holds_weights_vocab_config_and_loads_safely(trained):
    path, stdout = trained
    ck = torch.load(path, weights_only=True)     # plain data only: no pickled code
    assert ck["vocab"] == HumanNumbers.build().vocab
    assert ck["config"]["model"] == 4 and ck["config"]["hidden"] == HIDDEN
    assert ck["config"]["seq_len"] == 16 and ck["config"]["epochs"] == [2]
    assert set(ck["state_dict"]) == {"input_to_hidden.weight", "hidden.weight", "hidden.bias",
                                     "hidden_to_output.weight", "hidden_to_output.bias"}
    last = epoch_rows(stdout)[-1]
    assert ck["history"][-1]["valid_loss"] == pytest.approx(float(last[2]), abs=1e-4)


def test_checkpoint_loads_into_the_books_own_class(trained, seed):
    ck = torch.load(trained[0], weights_only=True)
    theirs = notebook_models.LMModel4(len(ck["vocab"]), ck["config"]["hidden"], 16)
    theirs.load_state_dict(ck["state_dict"])
    mine = checkpoint.build_model(ck)
    x = torch.randint(0, len(ck["vocab"]), (4, 16))
    with torch.no_grad():
        torch.testing.assert_close(mine(x), theirs(x), rtol=1e-4, atol=1e-5)


def test_train_load_continues_from_the_checkpoint(trained, tmp_path):
    path, _ = trained
    ck = torch.load(path, weights_only=True)
    # A learning rate too small to move the weights: the first epoch validates the loaded ones.
    out = rnnfast_cli("train", "--load", str(path), "--epochs", "1", "--lr", "1e-12")
    assert out.returncode == 0, out.stderr
    assert f"hidden={HIDDEN}" in out.stdout and f"from {path}" in out.stdout
    valid_loss = float(epoch_rows(out.stdout)[0][2])
    assert valid_loss == pytest.approx(ck["history"][-1]["valid_loss"], abs=1e-3)

    clash = rnnfast_cli("train", "--load", str(path), "--hidden", "32", "--epochs", "1")
    assert clash.returncode == 2 and "contradicts the checkpoint" in clash.stderr


def test_checkpoint_is_rewritten_after_every_epoch_and_resumable(trained):
    """--save keeps the weights-only format (above) and adds what --resume needs."""
    ck = torch.load(trained[0], weights_only=True)
    assert ck["resume"]["epochs_done"] == len(ck["history"]) == 2
    assert ck["config"]["data"] == {"data": "human-numbers"}
    assert not os.path.exists(str(trained[0]) + ".partial")


def test_plot_writes_loss_and_accuracy_curves(tmp_path):
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib (the test extra has it)")
    import matplotlib.image
    png = tmp_path / "curves.png"
    out = rnnfast_cli("train", "--epochs", "2", "--lr", "3e-3", "--hidden", "8",
                      "--plot", str(png))
    assert out.returncode == 0, out.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(png)
    assert pixels.shape[:2] == (400, 1000)                 # two panels of 5 x 4 inches
    assert pixels[..., :3].std() > 0.05                    # something is drawn


def test_generate_command(trained):
    path, _ = trained
    out = rnnfast_cli("generate", "--load", str(path), "--prompt", "one thousand two hundred",
                      "--tokens", "40")
    assert out.returncode == 0, out.stderr
    header, text, numbers, counting = out.stdout.strip().splitlines()
    assert header.startswith("LMModel4") and "greedy" in header
    prompt, continuation = text.split(" | ")
    assert prompt == "one thousand two hundred" and len(continuation.split()) == 40
    assert numbers.startswith("numbers:")
    assert re.fullmatch(r"counting: \d+ of \d+ steps add one", counting)

    sampled = [rnnfast_cli("generate", "--load", str(path), "--tokens", "20",
                           "--temperature", "1.0", "--seed", "3").stdout for _ in range(2)]
    assert sampled[0] == sampled[1] and "temperature 1" in sampled[0]

    bad = rnnfast_cli("generate", "--load", str(path), "--prompt", "one million")
    assert bad.returncode == 2 and "unknown words ['million']" in bad.stderr

    # A temperature far below any logit gap samples the argmax, not NaN probabilities.
    cold = rnnfast_cli("generate", "--load", str(path), "--tokens", "20", "--temperature",
                       "1e-40")
    assert cold.returncode == 0, cold.stderr
    greedy = out.stdout.splitlines()[1].split(" | ")[1].split()
    assert cold.stdout.splitlines()[1].split(" | ")[1].split() == greedy[:20]


def test_generation_uses_the_carried_state(seed):
    """Feeding one token at a time from the carried state must predict what a fresh model
    predicts over the whole text at once."""
    model = rnnfast.LMModel4(30, 24)
    prompt = torch.randint(0, 30, (5,))
    ids = generate.generate(model, 4, prompt, 12)
    assert len(ids) == 12
    whole = torch.cat([prompt, torch.tensor(ids[:-1])])
    model.reset()
    with torch.no_grad():
        predicted = model(whole[None])[0, len(prompt) - 1:].argmax(-1)
    assert predicted.tolist() == ids


@pytest.mark.parametrize("i", [1, 2, 3])
def test_generation_with_three_token_models(seed, i):
    model = getattr(rnnfast, f"LMModel{i}")(30, 8)
    ids = generate.generate(model, i, torch.randint(0, 30, (4,)), 5, temperature=0.7, seed=1)
    assert len(ids) == 5 and all(0 <= t < 30 for t in ids)
    with pytest.raises(ValueError, match="at least three words"):
        generate.generate(model, i, torch.tensor([1, 2]), 5)


def test_reading_numbers_back():
    text = " . ".join(number_to_words(n) for n in range(1198, 1204)) + " . one thousand"
    numbers = generate.read_numbers(text)
    assert numbers == list(range(1198, 1204))      # the cut-off last piece is left out
    assert generate.counting_steps(numbers) == (5, 5)
    assert generate.counting_steps(generate.read_numbers("one . three . two . seven seven .")) \
        == (0, 3)
