"""Property-based check: the fused op against the reference loop on random inputs.

Random B, T, H, V (1 and odd sizes included), float32/float64, int64/int32 tokens, h0 given or
not, every argument in one of four memory layouts, and values that are gaussian or small
integers with NaN and +-Inf written in at random places (see fuzz_inputs.py).

What must agree, and why (the fused op computes a_t = h_{t-1} W^T + P[x_t] with P = E W^T + b
once per call, the reference (h_{t-1} + E[x_t]) W^T + b step by step):

* Forward values, and the gradients of bias and h0: NaN, +Inf and -Inf in exactly the same
  places. Each entry is a sum over the same set of terms on both sides, only grouped
  differently, and an IEEE sum is NaN iff a term is NaN or both infinities occur, whatever the
  order. ReLU keeps NaN (as torch.relu does); its backward masks where the output is <= 0, so a
  NaN state passes its gradient (torch's threshold_backward) and a masked NaN gradient is dropped.
* Gradients of emb_weight and weight: the same when no Inf is involved. With Inf they agree on
  where the result is non-finite, but may disagree on NaN versus Inf: the reference multiplies
  per position, da_t * (h_{t-1} + e_t), the fused op sums da over the positions of a token
  first, dP[v] * E[v]. A position whose da is exactly 0 gives 0 * Inf = NaN on the reference's
  side only, and h = +Inf, e = -Inf meet inside one factor on one side but in two terms on the
  other. Neither grouping is more right: 0 * Inf has no value.
* An infinite weight breaks the distributive law the fused op relies on: (h + e) * Inf = Inf
  for h = 2, e = -1, but h * Inf + e * Inf = NaN. There the fused op may turn a reference
  value into NaN (and a reference -Inf, which ReLU makes 0, into NaN), never the reverse:
  wherever the reference is NaN or non-finite the fused op is too, and where both are finite
  they agree. Its gradients then follow different ReLU masks and are only checked for shape;
  an infinite recurrent weight means training has already diverged.
* Integer values: every sum is exact on both sides (checked by a magnitude bound), so results
  must be bitwise equal, including ReLU ties at exactly 0. Gaussian float32 values: rounding
  can leave a pre-activation a few ulps above 0 on one side and at or below it on the other,
  which flips that position's ReLU gradient; such examples are discarded (`assume`), the exact
  tie behaviour being what the integer examples test.

Profiles (tests/conftest.py): HYPOTHESIS_PROFILE=ci (default, a few seconds) or =long.
"""
import torch
from hypothesis import assume, event, given, note

import rnnfast
from rnnfast import reference

from support.compare import assert_agree
from support.fuzz_inputs import Case, build, cases
from support.helpers import TOLERANCES

EXACT_BELOW = {torch.float32: 2.0 ** 24, torch.float64: 2.0 ** 53}


def run(fn, inputs):
    """hs and the gradients of every leaf for grad_outputs = inputs.grad_hs."""
    leaves, args = inputs.fresh()
    hs = fn(inputs.tokens, args["emb_weight"], args["weight"], args["bias"], args.get("h0"))
    grads = torch.autograd.grad(hs, list(leaves.values()), inputs.grad_hs)
    return hs.detach(), dict(zip(leaves, grads))


def fused(tokens, emb, w, b, h0):
    return rnnfast.elman_rnn(tokens, emb, w, b, h0)[0]


def reference_hs(tokens, emb, w, b, h0):
    return reference.elman_rnn(tokens, emb, w, b, h0)[0]


def exact_bound(inputs) -> float:
    """An upper bound on |every partial sum| either side computes: the reference in float64 on
    the absolute values (NaN as 0), where no ReLU masks and no term cancels. (The fused op's
    partial sums are sums of the same terms, e.g. |dP[v]| <= sum of |da|.)"""
    leaves = {k: v.detach().double().nan_to_num(0.0).abs().requires_grad_()
              for k, v in inputs.leaves.items()}
    a = inputs.args_for(leaves)
    hs = reference_hs(inputs.tokens, a["emb_weight"], a["weight"], a["bias"], a.get("h0"))
    g = inputs.grad_hs.detach().double().nan_to_num(0.0).abs()
    grads = torch.autograd.grad(hs, list(leaves.values()), g)
    return max(float(t.detach().max()) for t in (hs, *grads))


def relu_decided_by_rounding(hs, ref_hs, tiny=1e-4) -> bool:
    """Whether the two sides disagree on which states are > 0 only where both are tiny."""
    flips = (hs > 0) != (ref_hs > 0)
    return bool(flips.any()) and bool((hs[flips].abs() < tiny).all()) \
        and bool((ref_hs[flips].abs() < tiny).all())


@given(case=cases())
def test_fused_matches_reference(case: Case):
    note(repr(case))
    inputs = build(case)
    hs, grads = run(fused, inputs)
    ref_hs, ref_grads = run(reference_hs, inputs)

    all_inputs = (*inputs.leaves.values(), inputs.grad_hs)
    with_inf = any(bool(torch.isinf(t).any()) for t in all_inputs)
    inf_weight = bool(torch.isinf(inputs.leaves["weight"]).any())
    exact = case.values == "integer" and case.specials != "inf"
    if exact:  # rare worst cases (a dense W) can still outgrow the mantissa
        assume(exact_bound(inputs) < EXACT_BELOW[case.dtype])
    tol = TOLERANCES[case.dtype]
    if not exact and case.dtype == torch.float32:
        # A ReLU decided by rounding (see the module docstring) flips one gradient entry.
        assume(not relu_decided_by_rounding(hs, ref_hs))
    note(f"exact={exact} with_inf={with_inf} inf_weight={inf_weight}")
    event("exact" if exact else "within tolerance")
    event("inf weight" if inf_weight else "inf" if with_inf else case.specials)

    assert_agree(hs, ref_hs, "hs", "superset" if inf_weight else "full", exact, **tol)
    for name in grads:
        if inf_weight:
            assert grads[name].shape == ref_grads[name].shape
            continue
        pattern = "finiteness" if with_inf and name in ("emb_weight", "weight") else "full"
        assert_agree(grads[name], ref_grads[name], f"grad of {name}", pattern, exact, **tol)
