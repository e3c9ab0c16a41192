"""The rnnfast modules inside a fastai Learner, exactly as the book trains LMModel4.

Needs the optional extra: pip install -e '.[fastai]' (the test extra includes it, so CI runs it).
"""
import warnings

import pytest
import torch
import torch.nn.functional as F

fastai_text = pytest.importorskip(
    "fastai.text.all", reason="fastai is not installed: pip install -e '.[fastai]' to run these")
from fastai.text.all import (  # noqa: E402
    CancelFitException, Callback, CrossEntropyLossFlat, DataLoaders, Learner, ModelResetter,
    accuracy)

import rnnfast  # noqa: E402
from rnnfast import data  # noqa: E402

BS, SEQ_LEN, HIDDEN = 64, 16, 32
# fastai's learn.load touches numpy.core, which numpy 2 deprecates: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:numpy.core is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def dls():
    """The book's DataLoaders: group_chunks'd sequences, drop_last, no shuffling."""
    ds = data.HumanNumbers.build()
    x, y = data.shifted_sequences(ds.nums, SEQ_LEN)
    (xt, yt), (xv, yv) = data.split(x, y)

    def group_chunks(xs, ys):
        order = data.group_chunks_order(len(xs), BS)
        return list(zip(xs[order], ys[order]))

    # num_workers=0 (not in the book): worker processes only compete for this 2-core machine.
    loaders = DataLoaders.from_dsets(group_chunks(xt, yt), group_chunks(xv, yv), bs=BS,
                                     drop_last=True, shuffle=False, num_workers=0)
    loaders.vocab = ds.vocab
    return loaders


def loss_func(inp, targ):
    """The book's loss_func for LMModel4."""
    return F.cross_entropy(inp.view(-1, inp.shape[-1]), targ.view(-1))


def learner(dls, backend="fused", seed=0, path=None, cbs=()):
    """The book's Learner(dls, LMModel4(len(vocab), 64, 16), loss_func=loss_func,
    metrics=accuracy, cbs=ModelResetter), smaller."""
    torch.manual_seed(seed)
    model = rnnfast.LMModel4(len(dls.vocab), HIDDEN, SEQ_LEN, backend=backend)
    learn = Learner(dls, model, loss_func=loss_func, metrics=accuracy,
                    cbs=[ModelResetter, *cbs], path=path or ".")
    learn.recorder.silent = True
    return learn


def fit(learn, *args, one_cycle=False):
    with learn.no_bar():
        (learn.fit_one_cycle if one_cycle else learn.fit)(*args)
    return learn.recorder.values     # per epoch: [train_loss, valid_loss, accuracy]


def test_learner_trains_lmmodel4_with_fit_and_fit_one_cycle(dls):
    learn = learner(dls)
    with learn.no_bar():
        start_loss, start_acc = learn.validate()
    values = fit(learn, 2, 3e-3)
    assert len(values) == 2
    assert values[-1][0] < values[0][0]                 # training loss falls
    assert values[-1][1] < start_loss                   # and validation loss with it
    assert values[-1][2] > max(0.3, start_acc)          # the majority class scores about 0.15
    values = fit(learn, 1, 3e-3, one_cycle=True)
    assert len(values) == 1 and values[-1][1] < start_loss
    # ModelResetter leaves the model reset after fitting.
    assert learn.model.h.shape[0] == 0


class FirstBatch(Callback):
    """Takes fastai's own loss and gradients of the first training batch, then stops."""

    def after_backward(self):
        self.first_loss = self.learn.loss.detach().clone()
        self.first_grads = {n: p.grad.detach().clone()
                            for n, p in self.learn.model.named_parameters()}
        raise CancelFitException()


def test_fused_and_reference_give_the_same_first_batch(dls):
    got = {}
    for backend in ("fused", "reference"):
        first = FirstBatch()
        learn = learner(dls, backend, seed=3, cbs=[first])
        fit(learn, 1, 1e-3)
        got[backend] = first
    torch.testing.assert_close(got["fused"].first_loss, got["reference"].first_loss,
                               rtol=1e-5, atol=1e-6)
    for name, grad in got["reference"].first_grads.items():
        torch.testing.assert_close(got["fused"].first_grads[name], grad, rtol=1e-4, atol=1e-6)


def test_learn_save_and_load(dls, tmp_path):
    learn = learner(dls, path=tmp_path)
    fit(learn, 1, 3e-3)
    learn.save("lm4")
    with learn.no_bar():
        trained = [float(v) for v in learn.validate()]
    other = learner(dls, seed=7, path=tmp_path).load("lm4")
    for k, v in learn.model.state_dict().items():
        assert torch.equal(other.model.state_dict()[k], v)
    with other.no_bar():
        assert [float(v) for v in other.validate()] == pytest.approx(trained, abs=1e-6)


def test_fastai_mixed_precision(dls):
    """fastai's own to_bf16(): real bf16 autocast on a CUDA device; on a CPU-only machine
    fastai's MixedPrecision (autocast('cuda')) turns itself off with a warning, and training
    must still work."""
    learn = learner(dls).to_bf16()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*CUDA is not available.*")
        values = fit(learn, 1, 3e-3)
    assert torch.isfinite(torch.tensor(values[-1][:2])).all() and values[-1][2] > 0.2


class CPUAutocast(Callback):
    """bf16 autocast on the CPU for the forward and the loss (fastai's MixedPrecision is
    CUDA-only), to run the op under CPU autocast inside fastai's loop."""

    order = 10

    def before_batch(self):
        self.ctx = torch.autocast("cpu", dtype=torch.bfloat16)
        self.ctx.__enter__()

    def after_pred(self):
        assert self.learn.pred.dtype == torch.bfloat16      # h_o ran in bf16
        self.learn.pred = self.learn.pred.float()

    def after_loss(self):
        self.ctx.__exit__(None, None, None)


def test_learner_under_cpu_autocast(dls):
    learn = learner(dls, cbs=[CPUAutocast()])
    with learn.no_bar():
        start_loss, _ = learn.validate()
    values = fit(learn, 1, 3e-3)
    assert values[-1][1] < start_loss and values[-1][2] > 0.3


@pytest.fixture(scope="module")
def notebook_data():
    """The notebook's own pipeline, cell for cell (lines, ' . '-joined tokens, set vocabulary,
    nums, group_chunks, DataLoaders), on the locally built human-numbers lines."""
    from fastai.text.all import L, tensor

    lines = L(f"{line} \n" for line in data.human_numbers_lines())
    hn_text = ' . '.join([l.strip() for l in lines])
    tokens = hn_text.split(' ')
    vocab = set(tokens)
    word2idx = {w: i for i, w in enumerate(vocab)}
    nums = L(word2idx[i] for i in tokens)

    def group_chunks(ds, bs):
        m = len(ds) // bs
        new_ds = L()
        for i in range(m):
            new_ds += L(ds[i + m * j] for j in range(bs))
        return new_ds

    def dls_of(seqs, batch_size=64):
        cut = int(len(seqs) * 0.8)
        return DataLoaders.from_dsets(group_chunks(seqs[:cut], batch_size),
                                      group_chunks(seqs[cut:], batch_size),
                                      bs=batch_size, drop_last=True, shuffle=False,
                                      num_workers=0)  # (not in the notebook: 2 cores here)

    three = L((tensor(nums[i:i + 3]), nums[i + 3]) for i in range(0, len(nums) - 4, 3))
    sl = 16
    shifted = L((tensor(nums[i:i + sl]), tensor(nums[i + 1:i + sl + 1]))
                for i in range(0, len(nums) - sl - 1, sl))
    return vocab, dls_of(three), dls_of(shifted)


def test_the_notebooks_own_learner_calls(notebook_data):
    """The notebook's cells with rnnfast's classes swapped in, and nothing else changed (no
    ModelResetter: the notebook has none); fewer epochs."""
    from rnnfast import LMModel3, LMModel4
    vocab, dls3, dls4 = notebook_data

    def loss_func(inp, targ):
        return F.cross_entropy(inp.view(-1, len(vocab)), targ.view(-1))

    torch.manual_seed(0)
    learn = Learner(dls3, LMModel3(len(vocab), 64), loss_func=F.cross_entropy, metrics=accuracy)
    learn.recorder.silent = True
    values = fit(learn, 3, 3e-3, one_cycle=True)
    # Train and valid loss fall; accuracy is well above the majority class's 0.15 (the set
    # vocabulary's order, and so the run, changes with each process's hash seed).
    assert values[-1][0] < values[0][0] and values[-1][1] < values[0][1]
    assert values[-1][2] > 0.35

    learn = Learner(dls4, LMModel4(len(vocab), 64, 16), loss_func=loss_func, metrics=accuracy)
    learn.recorder.silent = True
    values = fit(learn, 3, 1e-3)
    assert values[-1][0] < values[0][0] and values[-1][1] < values[0][1]
    assert values[-1][2] > 0.3
    assert learn.model.hidden.weight.grad is not None


def test_learner_trains_lmmodel5_as_the_book_does(dls):
    """The book's LMModel5 cell: Learner(dls, LMModel5(len(vocab), 64, 2), loss_func=CrossEntropyLossFlat(),
    metrics=accuracy, cbs=ModelResetter).fit_one_cycle(15, 3e-3), fewer epochs; the fused model
    against the same model on torch.nn.RNN from the same weights."""
    values = {}
    for backend in ("fused", "reference"):
        torch.manual_seed(0)
        model = rnnfast.LMModel5(len(dls.vocab), HIDDEN, 2, backend=backend)
        learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=accuracy,
                        cbs=ModelResetter)
        learn.recorder.silent = True
        with learn.no_bar():
            start_loss, _ = learn.validate()
        values[backend] = fit(learn, 2, 3e-3, one_cycle=True)
        assert learn.model.rnn.weight_hh_l1.grad is not None
    fused = values["fused"]
    # (The book's LMModel5 is the unstable one: its validation loss may rise between epochs.)
    assert fused[-1][0] < fused[0][0] and fused[-1][1] < start_loss
    assert fused[-1][2] > 0.3                           # the majority class scores about 0.15
    # Same data order and initial weights: the two backends agree to float32 rounding.
    torch.testing.assert_close(torch.tensor(fused), torch.tensor(values["reference"]),
                               rtol=2e-3, atol=2e-3)
