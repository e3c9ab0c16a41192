"""``rnnfast generate``: continue a prompt with a checkpoint's model, every option checked."""
import argparse

import torch

from . import checkpoint, generate as generation, specs
from .checkpoint import CheckpointError
from .cli_args import UsageError
from .data import HumanNumbers

BOOK_PROMPT = "one thousand two hundred"


def _vocab_preview(vocab, n: int = 12) -> str:
    shown = " ".join(vocab[:n])
    return shown + (f" ... ({len(vocab)} words)" if len(vocab) > n else "")


def _prompt_ids(args: argparse.Namespace, vocab, model_id: int, human_numbers: bool):
    text = args.prompt if args.prompt is not None else BOOK_PROMPT if human_numbers else None
    if text is None:
        raise UsageError(f"--prompt: the checkpoint {args.load} was not trained on the human "
                         f"numbers, so there is no default prompt; give words of its "
                         f"vocabulary: {_vocab_preview(vocab)}")
    words = text.split()
    index = {w: i for i, w in enumerate(vocab)}
    unknown = [w for w in words if w not in index]
    if unknown:
        raise UsageError(f"--prompt: unknown words {unknown}: not in the checkpoint's "
                         f"vocabulary: {_vocab_preview(vocab)}")
    if not words:
        raise UsageError("--prompt: give at least one word")
    if not specs.spec(model_id).reads_sequences and len(words) < 3:
        raise UsageError(f"--prompt: LMModel{model_id} reads three words at a time: give at "
                         f"least three words, got {len(words)}")
    return text, torch.tensor([index[w] for w in words], dtype=torch.int64)


def run(args: argparse.Namespace) -> int:
    try:
        ck = checkpoint.read(args.load)
        model = checkpoint.build_model(ck, backend=args.backend)
    except CheckpointError as e:
        raise UsageError(f"--load {args.load}: {e}") from None
    model_id, vocab = ck["config"]["model"], list(ck["vocab"])
    human_numbers = set(vocab) <= set(HumanNumbers.build().vocab)
    text, prompt = _prompt_ids(args, vocab, model_id, human_numbers)
    ids = generation.generate(model, model_id, prompt, args.tokens, args.temperature, args.seed)
    continuation = " ".join(vocab[i] for i in ids)
    mode = "greedy" if args.temperature == 0 else f"temperature {args.temperature:g}"
    print(f"LMModel{model_id} from {args.load}, {args.tokens} tokens, {mode}")
    print(f"{text} | {continuation}")
    if human_numbers:   # the book's text counts: see how well the model learned to
        numbers = generation.read_numbers(f"{text} {continuation}")
        good, steps = generation.counting_steps(numbers)
        print("numbers: " + " ".join("?" if n is None else str(n) for n in numbers))
        print(f"counting: {good} of {steps} steps add one")
    return 0
