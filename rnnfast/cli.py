"""Command line: ``rnnfast train`` (also ``python -m rnnfast train``)."""
import argparse
import sys
import time

import torch

from . import train as training


def _train(args: argparse.Namespace) -> int:
    epochs_default, lrs_default, schedule_default = training.DEFAULT_RECIPES[args.model]
    epochs = args.epochs or epochs_default
    lrs = args.lr or lrs_default
    schedule = args.schedule or schedule_default
    if args.threads:
        torch.set_num_threads(args.threads)
    task = training.make_task(args.model, args.hidden, args.seq_len, args.bs, args.backend,
                              args.seed)
    phases = " + ".join(f"{'fit_one_cycle' if schedule == 'one-cycle' else 'fit'}({e}, {lr:g})"
                        for e, lr in zip(epochs, lrs))
    print(f"LMModel{args.model} (backend={args.backend}, hidden={args.hidden}, bs={args.bs}, "
          f"seed={args.seed}, threads={torch.get_num_threads()}): {phases}")
    print(f"{'epoch':>5}  {'train_loss':>10}  {'valid_loss':>10}  {'accuracy':>8}  {'time':>7}")

    from tqdm import tqdm  # a progress bar on a terminal, silent in logs and CI
    bar = tqdm(total=sum(epochs), unit="epoch", leave=False, disable=None, file=sys.stderr)

    def on_epoch(r: training.EpochResult) -> None:
        bar.write(f"{r.epoch:>5}  {r.train_loss:>10.4f}  {r.valid_loss:>10.4f}  "
                  f"{r.accuracy:>8.4f}  {r.seconds:>6.2f}s", file=sys.stdout)
        bar.update(1)

    t0 = time.perf_counter()
    history = training.run_recipe(task, epochs, lrs, schedule, on_epoch)
    bar.close()
    wall = time.perf_counter() - t0
    last = history[-1]
    per_epoch = sorted(r.seconds for r in history)[len(history) // 2]
    print(f"reached valid accuracy {last.accuracy:.4f} (valid loss {last.valid_loss:.4f}) after "
          f"{len(history)} epochs in {wall:.1f} s: {per_epoch * 1000:.0f} ms per epoch "
          f"(median, train + valid)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rnnfast", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train an LMModel on the human-numbers data (book recipe)")
    t.add_argument("--model", type=int, choices=[1, 2, 3, 4], default=4)
    t.add_argument("--hidden", type=int, default=64, help="hidden size (default 64)")
    t.add_argument("--epochs", type=int, nargs="+",
                   help="epochs per phase (default: the book's recipe; model 4: 30 50)")
    t.add_argument("--lr", type=float, nargs="+",
                   help="learning rate per phase (default: the book's; model 4: 1e-3 1e-4)")
    t.add_argument("--schedule", choices=["constant", "one-cycle"],
                   help="fit (constant) or fit_one_cycle (default: the book's for the model)")
    t.add_argument("--backend", choices=["fused", "reference"], default="fused")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--bs", type=int, default=64, help="batch size (default 64)")
    t.add_argument("--seq-len", type=int, default=16, help="LMModel4 sequence length (16)")
    t.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    t.set_defaults(func=_train)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
