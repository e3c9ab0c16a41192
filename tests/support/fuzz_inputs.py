"""Hypothesis strategies for the fused op's inputs: sizes, dtypes, memory layouts, values.

A drawn `Case` is plain data (so hypothesis can shrink and print it); `build` turns it into
tensors. Every float input is a view of a leaf tensor in one of several layouts (contiguous,
transposed, strided slice, stride-0 expand), and gradients are taken with respect to the leaves,
so autograd also has to route the op's gradients back through those views.

Values come from a seed (fast to draw; hypothesis shrinks the sizes, layouts and injected
specials, not the individual numbers) in one of two kinds:
  gaussian  weights scaled so the states stay O(1); compared within a tolerance.
  integer   small integers and a sparse {-1, 0, 1} weight: every sum is exact in both
            associations, so results can be compared bitwise and pre-activations that are
            exactly 0 (ReLU ties) are frequent and land identically on both sides.
On top of either, up to a few NaN or +-Inf values may be written into the leaves.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import torch
from hypothesis import strategies as st

FLOAT_NAMES = ("emb_weight", "weight", "bias", "h0", "grad_hs")
LAYOUTS = ("contiguous", "transposed", "sliced", "expanded")
SPECIALS = {"none": (), "nan": (float("nan"),),
            "inf": (float("inf"), float("-inf"), float("nan"))}


@dataclass
class Case:
    B: int
    T: int
    H: int
    V: int
    dtype: torch.dtype
    token_dtype: torch.dtype
    with_h0: bool
    values: str                     # "gaussian" or "integer"
    specials: str                   # "none", "nan" or "inf" (inf also injects NaN)
    layouts: Dict[str, str]         # argument name -> layout
    injections: List[Tuple[str, int, float]] = field(default_factory=list)
    seed: int = 0


# Sizes: mostly tiny (1 included, odd sizes common), sometimes a little wider. Integer values
# grow with every step through W, so their T and H stay small enough for sums to stay exact.
_size = st.one_of(st.integers(1, 5), st.integers(1, 9), st.sampled_from([1, 2, 16, 31]))
_small = st.integers(1, 6)


@st.composite
def cases(draw) -> Case:
    specials = draw(st.sampled_from(["none", "none", "nan", "inf"]))
    injections = []
    if specials != "none":
        injections = draw(st.lists(
            st.tuples(st.sampled_from(FLOAT_NAMES), st.integers(0, 10**6),
                      st.sampled_from(SPECIALS[specials])), min_size=1, max_size=3))
    values = draw(st.sampled_from(["gaussian", "integer"]))
    growing = _small if values == "integer" else _size
    return Case(
        B=draw(_size), T=draw(growing), H=draw(growing), V=draw(_size),
        dtype=draw(st.sampled_from([torch.float32, torch.float64])),
        token_dtype=draw(st.sampled_from([torch.int64, torch.int32])),
        with_h0=draw(st.booleans()),
        values=values,
        specials=specials,
        layouts={name: draw(st.sampled_from(LAYOUTS)) for name in ("tokens",) + FLOAT_NAMES},
        injections=injections,
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def _leaf_shape(shape: Tuple[int, ...], layout: str) -> Tuple[int, ...]:
    if layout == "transposed":
        return tuple(reversed(shape))
    if layout == "sliced":
        return shape[:-1] + (2 * shape[-1],)
    if layout == "expanded":
        return (1,) + shape[1:]
    return shape


def _view(leaf: torch.Tensor, shape: Tuple[int, ...], layout: str) -> torch.Tensor:
    """The argument the op sees: `leaf` read through `layout`, with shape `shape`."""
    if layout == "transposed":
        return leaf.permute(*reversed(range(leaf.dim())))
    if layout == "sliced":
        return leaf[..., 1::2]  # odd offset and stride 2
    if layout == "expanded":
        return leaf.expand(shape)
    return leaf


def _values(name: str, shape, case: Case, gen: torch.Generator) -> torch.Tensor:
    dtype, H = case.dtype, case.H
    if case.values == "integer":
        if name == "weight":  # sparse {-1, 0, 1}: keeps the integers small over time
            w = torch.randint(-1, 2, shape, generator=gen)
            return (w * (torch.rand(shape, generator=gen) < 0.4)).to(dtype)
        lo, hi = {"emb_weight": (-3, 4), "bias": (-2, 3), "h0": (-1, 4), "grad_hs": (-2, 3)}[name]
        return torch.randint(lo, hi, shape, generator=gen).to(dtype)
    x = torch.randn(shape, generator=gen, dtype=dtype)
    return {"weight": x / H ** 0.5, "bias": x * 0.1}.get(name, x)


@dataclass
class Inputs:
    tokens: torch.Tensor
    leaves: Dict[str, torch.Tensor]             # what gradients are taken with respect to
    views: Dict[str, Tuple[tuple, str]]         # name -> (argument shape, layout)
    grad_hs: torch.Tensor

    def fresh(self):
        """New leaves (requiring grad) and the argument views of them, for one run."""
        leaves = {k: v.detach().clone().requires_grad_() for k, v in self.leaves.items()}
        return leaves, self.args_for(leaves)

    def args_for(self, leaves: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The op's arguments: each leaf read through its layout."""
        return {k: _view(leaves[k], *self.views[k]) for k in leaves}


def build(case: Case) -> Inputs:
    gen = torch.Generator().manual_seed(case.seed)
    B, T, H, V = case.B, case.T, case.H, case.V
    shapes = {"emb_weight": (V, H), "weight": (H, H), "bias": (H,), "h0": (B, H),
              "grad_hs": (B, T, H)}
    if not case.with_h0:
        del shapes["h0"]
    leaves, views, grad_hs = {}, {}, None
    for name, shape in shapes.items():
        layout = case.layouts[name]
        if len(shape) == 1 and layout == "transposed":
            layout = "contiguous"  # a 1-d tensor has nothing to transpose
        leaf = _values(name, _leaf_shape(shape, layout), case, gen)
        for target, index, value in case.injections:
            if target == name:
                leaf.view(-1)[index % leaf.numel()] = value
        if name == "grad_hs":
            grad_hs = _view(leaf, shape, layout)
        else:
            leaves[name], views[name] = leaf, (shape, layout)

    tlayout = case.layouts["tokens"]
    tok_leaf = torch.randint(0, V, _leaf_shape((B, T), tlayout), generator=gen,
                             dtype=case.token_dtype)
    tokens = _view(tok_leaf, (B, T), tlayout)
    return Inputs(tokens, leaves, views, grad_hs)

