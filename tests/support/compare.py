"""Comparing results that may hold NaN and Inf.

Three strengths of agreement, strongest first:
  "full"        NaN, +Inf and -Inf in exactly the same places, finite values close.
  "finiteness"  non-finite (NaN or Inf, either) in the same places, finite values close.
  "superset"    got is NaN wherever want is NaN and non-finite wherever want is non-finite;
                where both are finite, close.
The weaker ones are for sums whose terms the two sides group differently (see
test_fuzz_reference): there the same terms can meet as 0 * Inf = NaN on one side and
x * Inf = Inf on the other.
"""
import torch


def assert_agree(got: torch.Tensor, want: torch.Tensor, what: str, pattern: str = "full",
                 exact: bool = False, rtol: float = 0.0, atol: float = 0.0) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, \
        f"{what}: got {got.dtype}{tuple(got.shape)}, want {want.dtype}{tuple(want.shape)}"
    if pattern == "full":
        masks = {"NaN": torch.isnan, "+Inf": torch.isposinf, "-Inf": torch.isneginf}
    elif pattern in ("finiteness", "superset"):
        masks = {"non-finite": lambda t: ~torch.isfinite(t)}
    else:
        raise ValueError(pattern)
    if pattern == "superset":
        masks["NaN"] = torch.isnan
    for label, mask in masks.items():
        g, w = mask(got), mask(want)
        if pattern == "superset":
            g = g | ~w  # only where want has it must got have it too
            w = torch.ones_like(w)
        if not torch.equal(g, w):
            where = (g != w).nonzero()[:5].tolist()
            raise AssertionError(
                f"{what}: {label} placement differs at {where} (first 5): "
                f"got {got[tuple(torch.tensor(where).t())].tolist()}, "
                f"want {want[tuple(torch.tensor(where).t())].tolist()}")
    finite = torch.isfinite(want) & torch.isfinite(got)
    if exact:
        rtol = atol = 0.0
    torch.testing.assert_close(got[finite], want[finite], rtol=rtol, atol=atol,
                               msg=lambda m: f"{what}: {m}")
