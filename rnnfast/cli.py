"""Command line: ``rnnfast train`` and ``rnnfast generate`` (also ``python -m rnnfast ...``).

``rnnfast train`` also runs data-parallel when launched by torchrun, e.g.
``torchrun --standalone --nproc_per_node=2 -m rnnfast train``.
"""
import argparse
import sys
from typing import Optional

import torch

from . import cli_generate, cli_train, distributed, specs, training_run
from .checkpoint import CheckpointError
from .cli_args import (USAGE_ERROR, OneLineParser, UsageError, non_negative_int,
                       non_negative_number, positive_int, positive_number, report, say_error)


def _first_failing_rank(shard: distributed.Shard, failed: bool) -> Optional[int]:
    """The lowest rank that failed its checks (None: none did), known to every rank."""
    flags = shard.all_sum([float(failed and r == shard.rank) for r in range(shard.world_size)])
    return next((r for r, f in enumerate(flags) if f), None)


def _train(args) -> int:
    shard = distributed.init_from_env() if distributed.launched_by_torchrun() else \
        distributed.Shard()
    try:
        error = None
        try:
            s, corpus = cli_train.resolve(args, progress=shard.is_main)
            cli_train.check_batches(s, corpus, shard.world_size)
            if shard.is_main:
                cli_train.check_outputs(s)
        except UsageError as e:
            error = str(e)
        # Every rank checks (the data and options are the same on each) and all agree, so all
        # stop together, and one of them says why.
        failing = _first_failing_rank(shard, error is not None)
        if failing is not None:
            if failing == shard.rank:
                say_error("rnnfast train", error)
            return USAGE_ERROR
        if s.threads:
            torch.set_num_threads(s.threads)
        try:
            code = training_run.run(s, corpus, shard,
                                    prepare=lambda task: task.distribute(shard))
        except CheckpointError as e:   # a resume state that does not fit (every rank alike)
            raise UsageError(f"--resume {s.resume}: {e}") from None
        distributed.barrier(shard)
        return code
    finally:
        distributed.shutdown()


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="rnnfast", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train an LMModel the book's way, on the human numbers "
                                     "or your own text")
    t.add_argument("--model", type=int, choices=sorted(specs.SPECS),
                   help="LMModel number (default 4)")
    t.add_argument("--hidden", type=positive_int, help="hidden size (default 64)")
    t.add_argument("--epochs", type=positive_int, nargs="+",
                   help="epochs per phase (default: the book's recipe; model 4: 30 50)")
    t.add_argument("--lr", type=positive_number, nargs="+",
                   help="learning rate per phase (default: the book's; model 4: 1e-3 1e-4)")
    t.add_argument("--schedule", choices=list(specs.SCHEDULES),
                   help="fit (constant) or fit_one_cycle (default: the book's for the model)")
    t.add_argument("--backend", choices=["fused", "reference"], help="default fused")
    t.add_argument("--seed", type=int, help="default 42")
    t.add_argument("--bs", type=positive_int,
                   help="batch size (default 64); under torchrun, split among the processes")
    t.add_argument("--seq-len", type=positive_int,
                   help="sequence length of the models that read sequences (models 4 and 5; "
                        "default 16)")
    t.add_argument("--layers", type=positive_int,
                   help="recurrent layers of the multi-layer model (model 5; default 2)")
    t.add_argument("--threads", type=non_negative_int,
                   help="torch threads (default 1, or OMP_NUM_THREADS; a resumed run: its "
                        "own; 0: torch's default, one per core)")
    data = t.add_argument_group("data (default: the built-in human numbers)")
    data.add_argument("--text", metavar="FILE",
                      help="train on your own UTF-8 text (words split on whitespace, '.' "
                           "between lines); the last 20%% of it validates unless --valid")
    data.add_argument("--valid", metavar="FILE", help="validation text for --text")
    data.add_argument("--data-dir", metavar="DIR",
                      help="fastai's HUMAN_NUMBERS folder (train.txt, valid.txt), read as "
                           "the book does")
    ck = t.add_argument_group("checkpoints")
    ck.add_argument("--save", metavar="PATH",
                    help="keep a checkpoint at PATH, rewritten atomically after every epoch "
                         "(see --save-every) and at the end")
    ck.add_argument("--save-every", metavar="N", type=positive_int,
                    help="write the checkpoint every N epochs (default 1) and at the end")
    ck.add_argument("--resume", metavar="PATH",
                    help="continue the run recorded in PATH exactly where it stopped (saving "
                         "to PATH unless --save says otherwise)")
    ck.add_argument("--load", metavar="PATH",
                    help="start a new run from a checkpoint's weights (its model, hidden "
                         "size, seq-len)")
    t.add_argument("--plot", metavar="PNG",
                   help="plot loss and accuracy per epoch to a PNG (needs matplotlib)")
    t.set_defaults(func=_train)

    g = sub.add_parser("generate", help="continue a text with a trained model (from --save)")
    g.add_argument("--load", metavar="PATH", required=True, help="checkpoint from train --save")
    g.add_argument("--prompt",
                   help="words of the checkpoint's vocabulary (default, for the human "
                        f"numbers: {cli_generate.BOOK_PROMPT!r})")
    g.add_argument("--tokens", type=positive_int, default=40,
                   help="tokens to generate (default 40)")
    g.add_argument("--temperature", type=non_negative_number, default=0.0,
                   help="0 (default): greedy; above 0: sample from softmax(logits / T)")
    g.add_argument("--seed", type=int, default=0, help="sampling seed (with --temperature)")
    g.add_argument("--backend", choices=["fused", "reference"], default="fused")
    g.set_defaults(func=cli_generate.run)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as e:
        report(f"rnnfast {args.command}", str(e))
        return USAGE_ERROR
    except KeyboardInterrupt:   # outside training (which stops cleanly on its own)
        print(f"rnnfast {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
