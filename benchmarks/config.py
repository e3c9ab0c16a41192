"""What each mode measures: sizes, variants, repetitions. Everything tunable lives here.

Sizes are (B, T, H, V) = (batch, sequence length, hidden size, vocabulary). V is the book's 30
throughout: it only enters through the head and the (V, H) embedding table.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Tuple


@dataclass(frozen=True)
class Size:
    B: int
    T: int
    H: int
    V: int = 30

    @property
    def label(self) -> str:
        return f"B{self.B} T{self.T} H{self.H}"

    def as_dict(self) -> Dict[str, int]:
        return {"B": self.B, "T": self.T, "H": self.H, "V": self.V}


BOOK = Size(64, 16, 64)
MEDIUM = Size(64, 64, 256)
BIG = Size(256, 128, 1024)

# Variant names, in the order tables and charts show them. "eager" is the baseline of every
# speed-up.
FUSED, EAGER, COMPILE, JIT, NN_RNN = "fused", "eager", "compile", "jit", "nn.RNN"
VARIANTS = (FUSED, EAGER, COMPILE, JIT, NN_RNN)
VARIANT_TITLES = {
    FUSED: "rnnfast fused op",
    EAGER: "eager loop (rnnfast.reference)",
    COMPILE: "torch.compile(eager loop)",
    JIT: "torch.jit.script(eager loop)",
    NN_RNN: "nn.RNN(relu) on embeddings",
}

CELL, MODEL = "cell", "model"       # the recurrence alone / a whole LMModel4 training step
FWD, FWDBWD = "fwd", "fwd+bwd"      # forward only (no_grad) / forward + backward (+ optimizer)


@dataclass
class Mode:
    name: str
    main_sizes: List[Size]
    hidden_sweep: List[Size]
    seq_sweep: List[Size]
    model_sizes: List[Size]
    # (level, size) pairs where torch.compile runs; it costs 10-60 s of compiling per graph, and
    # is only measured at the default thread count (see bench.py for why).
    compile_at: List[Tuple[str, Size]]
    # Sizes where the slow-to-warm or redundant variants are left out, with the reason.
    skip: Dict[Tuple[Size, str], str] = field(default_factory=dict)
    warmup_calls: int = 3
    rounds: int = 8                 # interleaved rounds (ABCABC...) per measurement
    budget_s: float = 0.6           # timed seconds per variant per measurement (spread on rounds)
    min_calls: int = 8              # at least this many timed calls per variant...
    big_min_calls: int = 4          # ...except where one call takes about a second
    max_calls: int = 2000
    group_max_s: float = 20.0       # stop starting rounds past this, per size and mode
    ceiling_n: int = 2048           # the matmul ceiling's square size
    ceiling_reps: int = 5           # at the start of each thread count's block...
    ceiling_probe_reps: int = 2     # ...and again after every size
    recipe_epochs: Tuple[int, ...] = (30, 50)   # the book's LMModel4 recipe
    recipe_lrs: Tuple[float, ...] = (1e-3, 1e-4)
    recipe_budget_s: float = 300.0  # stop the recipe early past this (a busy machine); reported

    def cell_sizes(self) -> List[Size]:
        """Every size the cell is measured at: the named sizes, then both sweeps, deduplicated."""
        return list(dict.fromkeys(self.main_sizes + self.hidden_sweep + self.seq_sweep))


_BIG_SKIP = "about 1 s per call: at this size the loop's Python overhead is negligible, so " \
            "TorchScript and torch.compile would only repeat the eager loop's time at minutes of cost"

FULL = Mode(
    name="full",
    main_sizes=[BOOK, MEDIUM, BIG],
    hidden_sweep=[Size(64, 16, h) for h in (16, 32, 64, 128, 256, 512, 1024)],
    seq_sweep=[Size(64, t, 64) for t in (4, 8, 16, 32, 64, 128, 256)],
    model_sizes=[BOOK, MEDIUM, BIG],
    compile_at=[(CELL, BOOK), (MODEL, BOOK)],
    skip={(BIG, JIT): _BIG_SKIP, (BIG, COMPILE): _BIG_SKIP},
)

QUICK = Mode(
    name="quick",
    main_sizes=[BOOK, MEDIUM],
    hidden_sweep=[],
    seq_sweep=[],
    model_sizes=[BOOK],
    compile_at=[],                  # ~30 s per graph: not for a CI smoke run
    warmup_calls=2,
    rounds=3,
    budget_s=0.04,
    min_calls=3,
    big_min_calls=2,
    max_calls=200,
    group_max_s=5.0,
    ceiling_n=1024,
    ceiling_reps=3,
    ceiling_probe_reps=2,
    recipe_epochs=(1,),
    recipe_lrs=(1e-3,),
)

MODES = {"quick": QUICK, "full": FULL}
