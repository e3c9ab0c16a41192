"""torch.autocast: rnnfast.elman_rnn casts lower-precision inputs up and runs in float32.

The policy (csrc/autocast.cpp) is autocast's own "float32 list": bfloat16/float16 inputs are
cast to float32, float64 stays float64, the output is float32; the layers around the op still
run in the autocast dtype.
"""
import pytest
import torch

import rnnfast
from rnnfast.train import lm_loss

from support.helpers import make_inputs

B, T, H, V = 6, 9, 16, 30


def has_kernel(key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key("rnnfast::elman_rnn", key)


def test_registered_for_autocast_cpu():
    assert has_kernel("AutocastCPU")


def test_bfloat16_inputs_are_cast_up_to_float32(seed):
    tokens, emb, weight, bias, h0 = make_inputs(B, T, H, V, torch.float32, requires_grad=False)
    low = [t.bfloat16() for t in (emb, weight, bias, h0)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hs, h_last = rnnfast.elman_rnn(tokens, *low)
    assert hs.dtype == h_last.dtype == torch.float32
    # Exactly the float32 op on the same (bf16-rounded) values: nothing ran in bf16.
    want, _ = rnnfast.elman_rnn(tokens, *[t.float() for t in low])
    torch.testing.assert_close(hs, want, rtol=0, atol=0)
    # Outside autocast bf16 is refused, as documented, rather than silently cast.
    with pytest.raises(TypeError, match="emb_weight must be torch.float32 or torch.float64"):
        rnnfast.elman_rnn(tokens, *low)


def test_float32_and_float64_are_left_alone(seed):
    for dtype in (torch.float32, torch.float64):
        args = make_inputs(B, T, H, V, dtype, requires_grad=False)
        want, _ = rnnfast.elman_rnn(*args)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got, _ = rnnfast.elman_rnn(*args)
        assert got.dtype == dtype
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_gradients_reach_bfloat16_leaves_through_the_cast(seed):
    tokens, emb, weight, bias, h0 = make_inputs(B, T, H, V, torch.float32, requires_grad=False)
    low = [t.bfloat16().requires_grad_() for t in (emb, weight, bias, h0)]
    high = [t.detach().float().requires_grad_() for t in low]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hs, _ = rnnfast.elman_rnn(tokens, *low)
    g = torch.randn_like(hs)
    hs.backward(g)
    ref, _ = rnnfast.elman_rnn(tokens, *high)
    ref.backward(g)
    for a, r in zip(low, high):
        assert a.grad.dtype == torch.bfloat16
        torch.testing.assert_close(a.grad, r.grad.bfloat16(), rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_model_training_step_under_autocast(seed, backend):
    model = rnnfast.LMModel4(V, H, backend=backend)
    x, y = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))
    full = lm_loss(model(x), y)
    model.reset()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
        loss = lm_loss(logits, y)
    assert logits.dtype == torch.bfloat16                 # h_o ran in bf16
    if backend == "fused":
        assert model.h.dtype == torch.float32             # the carried state did not
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())
    torch.testing.assert_close(loss.float(), full, rtol=2e-2, atol=2e-2)


def test_fused_matches_reference_under_autocast(seed):
    """The fused op (float32 recurrence) agrees with the reference loop, whose linear autocast
    runs in bf16, to bf16 precision."""
    fused = rnnfast.LMModel4(V, H)
    ref = rnnfast.LMModel4(V, H, backend="reference")
    ref.load_state_dict(fused.state_dict())
    x = torch.randint(0, V, (B, T))
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        torch.testing.assert_close(fused(x).float(), ref(x).float(), rtol=5e-2, atol=5e-2)


def test_compiled_under_autocast(seed):
    tokens, emb, weight, bias, h0 = make_inputs(B, T, H, V, torch.float32, requires_grad=False)

    def f(tokens, emb, weight, bias, h0):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return rnnfast.elman_rnn(tokens, emb.bfloat16(), weight, bias, h0)[0]

    got = torch.compile(f, fullgraph=True, backend="aot_eager")(tokens, emb, weight, bias, h0)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, f(tokens, emb, weight, bias, h0), rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast(seed, dtype):
    if not has_kernel("AutocastCUDA") or not has_kernel("CUDA"):
        pytest.skip("rnnfast was built without its CUDA kernels")
    args = [t.cuda() for t in make_inputs(B, T, H, V, torch.float32, requires_grad=False)]
    with torch.autocast("cuda", dtype=dtype):
        got, _ = rnnfast.elman_rnn(args[0], *[t.to(dtype) for t in args[1:]])
    assert got.dtype == torch.float32
    want, _ = rnnfast.elman_rnn(args[0], *[t.to(dtype).float() for t in args[1:]])
    torch.testing.assert_close(got, want)
