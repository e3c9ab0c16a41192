"""Command line: ``rnnfast train`` and ``rnnfast generate`` (also ``python -m rnnfast ...``).

``rnnfast train`` also runs data-parallel when launched by torchrun, e.g.
``torchrun --standalone --nproc_per_node=2 -m rnnfast train``.
"""
import argparse
import sys
import time

import torch

from . import checkpoint, distributed, generate as generation
from . import train as training
from .data import HumanNumbers

_ARCH_DEFAULTS = {"model": 4, "hidden": 64, "seq_len": 16}


def _architecture(args: argparse.Namespace, ck) -> dict:
    """Model number, hidden size and sequence length: from the command line, or from the
    checkpoint being continued (where the command line may repeat but not contradict it)."""
    arch = {}
    for key, default in _ARCH_DEFAULTS.items():
        given = getattr(args, key)
        if ck is not None:
            saved = ck["config"][key]
            if given is not None and given != saved:
                raise SystemExit(f"rnnfast train: --{key.replace('_', '-')} {given} contradicts "
                                 f"the checkpoint {args.load} ({key} = {saved})")
            arch[key] = saved
        else:
            arch[key] = default if given is None else given
    return arch


def _train(args: argparse.Namespace) -> int:
    ck = checkpoint.load(args.load) if args.load else None
    arch = _architecture(args, ck)
    epochs_default, lrs_default, schedule_default = training.DEFAULT_RECIPES[arch["model"]]
    epochs = args.epochs or epochs_default
    lrs = args.lr or lrs_default
    schedule = args.schedule or schedule_default
    if args.threads:
        torch.set_num_threads(args.threads)
    shard = distributed.init_from_env() if distributed.launched_by_torchrun() else \
        distributed.Shard()
    try:
        return _train_on(args, ck, arch, epochs, lrs, schedule, shard)
    finally:
        distributed.shutdown()


def _train_on(args, ck, arch, epochs, lrs, schedule, shard: distributed.Shard) -> int:
    dataset = HumanNumbers.build()
    task = training.make_task(arch["model"], arch["hidden"], arch["seq_len"], args.bs,
                              args.backend, args.seed, dataset=dataset)
    task.track_train_accuracy = bool(args.plot)   # the curves show it; it costs time
    if ck is not None:
        checkpoint.check_vocab(ck, dataset.vocab, args.load)
        task.model.load_state_dict(ck["state_dict"])
    task.distribute(shard)
    say = print if shard.is_main else (lambda *a, **k: None)   # rank 0 speaks for all

    phases = " + ".join(f"{'fit_one_cycle' if schedule == 'one-cycle' else 'fit'}({e}, {lr:g})"
                        for e, lr in zip(epochs, lrs))
    ranks = f", ranks={shard.world_size}" if shard.world_size > 1 else ""
    say(f"LMModel{arch['model']} (backend={args.backend}, hidden={arch['hidden']}, bs={args.bs}, "
        f"seed={args.seed}, threads={torch.get_num_threads()}{ranks}): {phases}"
        + (f", from {args.load}" if args.load else ""))
    say(f"{'epoch':>5}  {'train_loss':>10}  {'valid_loss':>10}  {'accuracy':>8}  {'time':>7}")

    from tqdm import tqdm  # a progress bar on a terminal, silent in logs and CI
    bar = tqdm(total=sum(epochs), unit="epoch", leave=False, file=sys.stderr,
               disable=None if shard.is_main else True)

    def on_epoch(r: training.EpochResult) -> None:
        if shard.is_main:
            bar.write(f"{r.epoch:>5}  {r.train_loss:>10.4f}  {r.valid_loss:>10.4f}  "
                      f"{r.accuracy:>8.4f}  {r.seconds:>6.2f}s", file=sys.stdout)
        bar.update(1)

    t0 = time.perf_counter()
    history = training.run_recipe(task, epochs, lrs, schedule, on_epoch)
    bar.close()
    wall = time.perf_counter() - t0
    last = history[-1]
    per_epoch = sorted(r.seconds for r in history)[len(history) // 2]
    say(f"reached valid accuracy {last.accuracy:.4f} (valid loss {last.valid_loss:.4f}) after "
        f"{len(history)} epochs in {wall:.1f} s: {per_epoch * 1000:.0f} ms per epoch "
        f"(median, train + valid)")
    if not shard.is_main:
        return 0
    if args.save:
        config = dict(arch, bs=args.bs, backend=args.backend, seed=args.seed,
                      epochs=list(epochs), lr=list(lrs), schedule=schedule)
        checkpoint.save(args.save, task.model, dataset.vocab, config, history)
        print(f"saved {args.save}")
    if args.plot:
        from .plot import save_curves
        title = f"LMModel{arch['model']}, hidden {arch['hidden']}: {phases}"
        save_curves(args.plot, history, title)
        print(f"plotted {args.plot}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    ck = checkpoint.load(args.load)
    model_id = ck["config"]["model"]
    model = checkpoint.build_model(ck, backend=args.backend)
    vocab = HumanNumbers([], list(ck["vocab"]), torch.empty(0, dtype=torch.int64))
    try:
        prompt = vocab.encode(args.prompt)
    except ValueError as e:
        raise SystemExit(f"rnnfast generate: --prompt: {e}")
    if len(prompt) == 0:
        raise SystemExit("rnnfast generate: --prompt is empty")
    ids = generation.generate(model, model_id, prompt, args.tokens, args.temperature, args.seed)
    continuation = vocab.decode(ids)
    mode = "greedy" if args.temperature <= 0 else f"temperature {args.temperature:g}"
    print(f"LMModel{model_id} from {args.load}, {args.tokens} tokens, {mode}")
    print(f"{args.prompt} | {continuation}")
    numbers = generation.read_numbers(f"{args.prompt} {continuation}")
    good, steps = generation.counting_steps(numbers)
    print("numbers: " + " ".join("?" if n is None else str(n) for n in numbers))
    print(f"counting: {good} of {steps} steps add one")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rnnfast", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train an LMModel on the human-numbers data (book recipe)")
    t.add_argument("--model", type=int, choices=[1, 2, 3, 4], help="LMModel number (default 4)")
    t.add_argument("--hidden", type=int, help="hidden size (default 64)")
    t.add_argument("--epochs", type=int, nargs="+",
                   help="epochs per phase (default: the book's recipe; model 4: 30 50)")
    t.add_argument("--lr", type=float, nargs="+",
                   help="learning rate per phase (default: the book's; model 4: 1e-3 1e-4)")
    t.add_argument("--schedule", choices=["constant", "one-cycle"],
                   help="fit (constant) or fit_one_cycle (default: the book's for the model)")
    t.add_argument("--backend", choices=["fused", "reference"], default="fused")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--bs", type=int, default=64,
                   help="batch size (default 64); under torchrun, split among the processes")
    t.add_argument("--seq-len", type=int, help="LMModel4 sequence length (default 16)")
    t.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    t.add_argument("--save", metavar="PATH",
                   help="write a checkpoint (weights, vocabulary, config, history) at the end")
    t.add_argument("--load", metavar="PATH",
                   help="start from a checkpoint's weights (its model, hidden size, seq-len)")
    t.add_argument("--plot", metavar="PNG",
                   help="plot loss and accuracy per epoch to a PNG (needs matplotlib)")
    t.set_defaults(func=_train)

    g = sub.add_parser("generate", help="continue a text with a trained model (from --save)")
    g.add_argument("--load", metavar="PATH", required=True, help="checkpoint from train --save")
    g.add_argument("--prompt", default="one thousand two hundred",
                   help="words of the human-numbers vocabulary (default: %(default)r)")
    g.add_argument("--tokens", type=int, default=40, help="tokens to generate (default 40)")
    g.add_argument("--temperature", type=float, default=0.0,
                   help="0 (default): greedy; above 0: sample from softmax(logits / T)")
    g.add_argument("--seed", type=int, default=0, help="sampling seed (with --temperature)")
    g.add_argument("--backend", choices=["fused", "reference"], default="fused")
    g.set_defaults(func=_generate)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
