"""The drop-in modules against the notebook's classes, the printed book's names, and their own
reference backend."""
import copy

import pytest
import torch

import rnnfast
from rnnfast import checkpoint
from rnnfast.train import fastai_adam, lm_loss

from support import book_models, notebook_models

V, H, B = 30, 24, 8
TOL = dict(rtol=1e-4, atol=1e-5)
NOTEBOOK_KEYS = {"input_to_hidden.weight", "hidden.weight", "hidden.bias",
                 "hidden_to_output.weight", "hidden_to_output.bias"}
BOOK_KEYS = {"i_h.weight", "h_h.weight", "h_h.bias", "h_o.weight", "h_o.bias"}


def ours(i, backend="fused"):
    return rnnfast.LMModel4(V, H, 16, backend=backend) if i == 4 else \
        getattr(rnnfast, f"LMModel{i}")(V, H, backend=backend)


def notebook(i):
    return notebook_models.LMModel4(V, H, 16) if i == 4 else \
        getattr(notebook_models, f"LMModel{i}")(V, H)


def book(i):
    return getattr(book_models, f"LMModel{i}")(V, H)


def batches(i, n=3):
    T = 16 if i == 4 else 3
    return [torch.randint(0, V, (B, T)) for _ in range(n)]


def assert_same_state_dict(got, want):
    assert set(got) == set(want)
    for k, v in want.items():
        assert torch.equal(got[k], v), k


@pytest.mark.parametrize("i", [1, 2, 3, 4])
def test_state_dict_moves_both_ways_with_the_notebook(seed, i):
    theirs, mine = notebook(i), ours(i)
    assert set(mine.state_dict()) == set(theirs.state_dict()) == NOTEBOOK_KEYS
    mine.load_state_dict(theirs.state_dict(), strict=True)
    assert_same_state_dict(mine.state_dict(), theirs.state_dict())
    back = notebook(i)
    back.load_state_dict(mine.state_dict(), strict=True)
    assert_same_state_dict(back.state_dict(), theirs.state_dict())


@pytest.mark.parametrize("i", [1, 2, 3, 4])
def test_book_named_state_dict_moves_both_ways(seed, i):
    theirs, mine = book(i), ours(i)
    mine.load_state_dict(theirs.state_dict(), strict=True)
    assert set(mine.book_state_dict()) == BOOK_KEYS
    back = book(i)
    back.load_state_dict(mine.book_state_dict(), strict=True)
    assert_same_state_dict(back.state_dict(), theirs.state_dict())
    # The book's own names inside a bigger module's state_dict (prefixed) load too.
    wrapper, theirs_wrapped = torch.nn.Sequential(ours(i)), torch.nn.Sequential(theirs)
    wrapper.load_state_dict(theirs_wrapped.state_dict(), strict=True)
    assert torch.equal(wrapper[0].hidden.weight, theirs.h_h.weight)


def test_strict_still_reports_missing_and_extra_book_keys(seed):
    sd = book(4).state_dict()
    missing = {k: v for k, v in sd.items() if k != "h_h.bias"}
    with pytest.raises(RuntimeError, match=r'Missing key\(s\).*"hidden.bias"'):
        ours(4).load_state_dict(missing)
    extra = dict(sd, **{"h_x.weight": torch.zeros(1)})
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\).*"h_x.weight"'):
        ours(4).load_state_dict(extra)
    # The same layer under both spellings is one key too many, not a silent choice.
    both = dict(notebook(4).state_dict(), **{"i_h.weight": sd["i_h.weight"]})
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\).*"i_h.weight"'):
        ours(4).load_state_dict(both)
    ours(4).load_state_dict(missing, strict=False)   # non-strict loads what is there


def test_a_checkpoint_with_the_books_names_still_loads(seed):
    """Checkpoints written by `rnnfast train --save` before the rename hold book names."""
    theirs = book(4)
    ck = {"format": checkpoint.FORMAT, "state_dict": theirs.state_dict(),
          "vocab": [str(v) for v in range(V)], "config": {"model": 4, "hidden": H, "seq_len": 16}}
    mine = checkpoint.build_model(ck)
    x = batches(4, 1)[0]
    theirs.reset()
    with torch.no_grad():
        torch.testing.assert_close(mine(x), theirs(x), **TOL)


@pytest.mark.parametrize("backend", ["fused", "reference"])
@pytest.mark.parametrize("i", [1, 2, 3, 4])
def test_matches_the_notebook_over_batches(seed, i, backend):
    """Same weights, same batches in a row: same outputs, every gradient, and (3 and 4) the same
    carried state after every batch."""
    theirs = notebook(i)
    mine = ours(i, backend)
    mine.load_state_dict(theirs.state_dict())
    for x in batches(i):
        out_theirs, out_mine = theirs(x), mine(x)
        torch.testing.assert_close(out_mine, out_theirs, **TOL)
        y = torch.randint(0, V, out_mine.shape[:-1])
        g_theirs = dict(zip([n for n, _ in theirs.named_parameters()], torch.autograd.grad(
            lm_loss(out_theirs, y), list(theirs.parameters()))))
        g_mine = dict(zip([n for n, _ in mine.named_parameters()], torch.autograd.grad(
            lm_loss(out_mine, y), list(mine.parameters()))))
        assert set(g_mine) == set(g_theirs) == NOTEBOOK_KEYS
        for name, want in g_theirs.items():
            torch.testing.assert_close(g_mine[name], want, **TOL)
        if i in (3, 4):
            assert not mine.h.requires_grad
            torch.testing.assert_close(mine.h, theirs.h, **TOL)
    if i in (3, 4):
        mine.reset()
        theirs.h = 0    # the notebook's reset() (its LMModel4 has no method for it)
        x = batches(i, 1)[0]
        torch.testing.assert_close(mine(x), theirs(x), **TOL)


@pytest.mark.parametrize("i", [3, 4])
def test_book_classes_still_agree(seed, i):
    """The printed book's classes compute the same as the notebook's: one check of the
    compatibility path's arithmetic, through the book-named state_dict."""
    theirs, mine = book(i), ours(i)
    mine.load_state_dict(theirs.state_dict())
    for x in batches(i, 2):
        torch.testing.assert_close(mine(x), theirs(x), **TOL)


@pytest.mark.parametrize("backend", ["fused", "reference"])
@pytest.mark.parametrize("i", [3, 4])
def test_trains_on_after_inference_mode(seed, i, backend):
    """The notebook's class trains on from a state carried out of torch.inference_mode()."""
    theirs, mine = notebook(i), ours(i, backend)
    mine.load_state_dict(theirs.state_dict())
    x, x2 = batches(i, 2)
    with torch.inference_mode():
        theirs(x)
        mine(x)
    out_theirs, out_mine = theirs(x2), mine(x2)
    torch.testing.assert_close(out_mine, out_theirs, **TOL)
    y = torch.randint(0, V, out_mine.shape[:-1])
    lm_loss(out_theirs, y).backward()
    lm_loss(out_mine, y).backward()
    torch.testing.assert_close(mine.hidden.weight.grad, theirs.hidden.weight.grad, **TOL)


@pytest.mark.parametrize("cls,args,name", [
    (rnnfast.LMModel4, (0, 8), "vocab_sz"), (rnnfast.LMModel4, (30, 0), "n_hidden"),
    (rnnfast.LMModel4, (30, -3), "n_hidden"), (rnnfast.LMModel4, (30, 8, 0), "seq_len"),
    (rnnfast.LMModel1, (0, 8), "vocab_sz"), (rnnfast.LMModel3, (30, -1), "n_hidden"),
    (rnnfast.ElmanRNN, (30, 0), "n_hidden")])
def test_sizes_are_checked_at_construction(cls, args, name):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: {name} must be a positive int"):
        cls(*args)


@pytest.mark.parametrize("args,name", [((30.0, 8), "vocab_sz"), ((30, "8"), "n_hidden"),
                                       ((30, True), "n_hidden"), ((30, 8, 1.5), "seq_len")])
def test_size_types_are_checked_at_construction(args, name):
    with pytest.raises(TypeError, match=rf"LMModel4: {name} must be a positive int"):
        rnnfast.LMModel4(*args)


def _loss_of_params(model, x, y):
    def loss(params):
        return lm_loss(torch.func.functional_call(model, params, (x,)), y)
    return loss


@pytest.mark.parametrize("i", [1, 4])
def test_torch_func_grad_and_vjp_match_autograd(seed, i):
    model, ref = ours(i), ours(i, "reference")
    ref.load_state_dict(model.state_dict())
    x = batches(i, 1)[0]
    y = torch.randint(0, V, (B, 16) if i == 4 else (B,))
    params = {n: p.detach() for n, p in model.named_parameters()}
    got = torch.func.grad(_loss_of_params(model, x, y))(params)
    want = dict(zip(params, torch.autograd.grad(lm_loss(ref(x), y), list(ref.parameters()))))
    for name in params:
        torch.testing.assert_close(got[name], want[name], **TOL)
    _, vjp = torch.func.vjp(lambda e: rnnfast.elman_rnn(x, e, params["hidden.weight"],
                                                        params["hidden.bias"])[0],
                            params["input_to_hidden.weight"])
    g = torch.randn(B, x.shape[1], H)
    (d_emb,) = vjp(g)
    hs, _ = rnnfast.reference.elman_rnn(x, ref.input_to_hidden.weight, ref.hidden.weight,
                                        ref.hidden.bias)
    torch.testing.assert_close(d_emb, torch.autograd.grad(hs, ref.input_to_hidden.weight, g)[0],
                               **TOL)


def test_torch_func_jacrev_jvp_and_vmap(seed):
    tokens = torch.randint(0, 5, (2, 3))
    emb, w = torch.randn(5, 4, dtype=torch.float64), torch.randn(4, 4, dtype=torch.float64) / 2
    b, h0 = torch.randn(4, dtype=torch.float64) * 0.1, torch.randn(2, 4, dtype=torch.float64)

    def fused(w):
        return rnnfast.elman_rnn(tokens, emb, w, b, h0)[0]

    def loop(w):
        return rnnfast.reference.elman_rnn(tokens, emb, w, b, h0)[0]

    torch.testing.assert_close(torch.func.jacrev(fused)(w), torch.autograd.functional.jacobian(
        loop, w))
    t = torch.randn_like(w)
    _, got = torch.func.jvp(fused, (w,), (t,))
    _, want = torch.autograd.functional.jvp(loop, w, t)
    torch.testing.assert_close(got, want)
    ws = torch.randn(3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(torch.func.vmap(fused)(ws), torch.stack([loop(v) for v in ws]))


@pytest.mark.parametrize("i", [3, 4])
def test_stateful_reset_and_batch_size_change(seed, i):
    m = ours(i)
    x = batches(i, 1)[0]
    first = m(x)
    assert m.h.shape == (B, H) and not m.h.requires_grad
    second = m(x)
    assert not torch.allclose(first, second)   # the carried state changed the output
    m.reset()
    torch.testing.assert_close(m(x), first, rtol=0, atol=0)
    # A batch of another size starts from zeros instead of failing.
    small = x[:3]
    m.reset()
    fresh = m(small)
    m.reset()
    m(x)
    torch.testing.assert_close(m(small), fresh, rtol=0, atol=0)


def test_state_is_a_non_persistent_buffer_that_follows_to(seed):
    m = ours(4)
    m(batches(4, 1)[0])
    assert "h" not in m.state_dict()
    m = m.double()
    assert m.h.dtype == torch.float64
    m(batches(4, 1)[0])


def test_two_batches_of_t_equal_one_of_2t(seed):
    m = ours(4)
    x = torch.randint(0, V, (B, 32))
    whole = m(x)
    m.reset()
    halves = torch.cat([m(x[:, :16]), m(x[:, 16:])], dim=1)
    torch.testing.assert_close(halves, whole, **TOL)

    m3 = ours(3)
    rnn = rnnfast.ElmanRNN(V, H)
    rnn.load_state_dict({k: v for k, v in m3.state_dict().items()
                         if not k.startswith("hidden_to_output")})
    x = torch.randint(0, V, (B, 6))
    m3(x[:, :3])
    m3(x[:, 3:])
    _, h_last = rnn(x)
    torch.testing.assert_close(m3.h, h_last.detach(), **TOL)


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_elman_rnn_layer(seed, backend):
    layer = rnnfast.ElmanRNN(V, H, backend=backend)
    assert set(layer.state_dict()) == {"input_to_hidden.weight", "hidden.weight", "hidden.bias"}
    assert set(layer.book_state_dict()) == {"i_h.weight", "h_h.weight", "h_h.bias"}
    x = torch.randint(0, V, (B, 7))
    h0 = torch.randn(B, H).relu()
    hs, h_last = layer(x, h0)
    assert hs.shape == (B, 7, H) and h_last.shape == (B, H)
    ref, _ = rnnfast.reference.elman_rnn(x, layer.input_to_hidden.weight, layer.hidden.weight,
                                         layer.hidden.bias, h0)
    torch.testing.assert_close(hs, ref, **TOL)


@pytest.mark.parametrize("i", [1, 4])
def test_compiled_training_step_matches_eager(seed, i):
    eager = ours(i)
    compiled_model = copy.deepcopy(eager)
    compiled = torch.compile(compiled_model, fullgraph=True)
    opt_e, opt_c = fastai_adam(eager, 1e-2), fastai_adam(compiled_model, 1e-2)
    for x in batches(i, 2):
        y = torch.randint(0, V, (B, 16) if i == 4 else (B,))
        for model, opt in ((eager, opt_e), (compiled, opt_c)):
            opt.zero_grad()
            lm_loss(model(x), y).backward()
            opt.step()
    for a, r in zip(compiled_model.parameters(), eager.parameters()):
        torch.testing.assert_close(a, r, **TOL)


def test_backend_is_checked():
    with pytest.raises(ValueError, match="backend must be one of"):
        rnnfast.LMModel4(V, H, backend="cuda")


@pytest.mark.parametrize("i", [1, 3])
def test_short_input_is_a_clear_error(i):
    with pytest.raises(ValueError, match="seq_len >= 3"):
        ours(i)(torch.randint(0, V, (B, 2)))


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_lmmodel5_matches_the_book_over_batches(seed, backend):
    theirs = book_models.LMModel5(V, H, 2, bs=B)
    mine = rnnfast.LMModel5(V, H, 2, backend=backend)
    assert set(mine.state_dict()) == set(theirs.state_dict())
    mine.load_state_dict(theirs.state_dict(), strict=True)
    for x in batches(4):
        out_theirs, out_mine = theirs(x), mine(x)
        torch.testing.assert_close(out_mine, out_theirs, **TOL)
        y = torch.randint(0, V, x.shape)
        g_theirs = torch.autograd.grad(lm_loss(out_theirs, y), list(theirs.parameters()))
        g_mine = torch.autograd.grad(lm_loss(out_mine, y), list(mine.parameters()))
        for a, r in zip(g_mine, g_theirs):
            torch.testing.assert_close(a, r, **TOL)
        torch.testing.assert_close(mine.h, theirs.h, **TOL)
    logits, loss = mine.forward_loss(x, y)
    mine.reset()
    theirs.reset()
    torch.testing.assert_close(mine(x), theirs(x), **TOL)
    back = book_models.LMModel5(V, H, 2, bs=B)
    back.load_state_dict(mine.state_dict(), strict=True)


def test_lmmodel5_forward_loss_and_state(seed):
    m = rnnfast.LMModel5(V, H, 2)
    x, y = batches(4, 1)[0], torch.randint(0, V, (B, 16))
    logits, loss = m.forward_loss(x, y)
    h_after_loss = m.h.clone()
    m.reset()
    torch.testing.assert_close(logits, m(x), **TOL)
    torch.testing.assert_close(m.h, h_after_loss, rtol=0, atol=0)
    torch.testing.assert_close(loss, lm_loss(m.h_o(m.rnn(m.i_h(x))[0]), y), **TOL)
    assert m.h.shape == (2, B, H)
    with torch.inference_mode():
        m(x)
    lm_loss(m(x), y).backward()        # trains on from a state carried out of inference_mode
    assert m.rnn.weight_hh_l1.grad is not None
    with pytest.raises(ValueError, match="LMModel5: n_layers must be a positive int"):
        rnnfast.LMModel5(V, H, 0)
