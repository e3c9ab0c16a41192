"""``rnnfast train``: from the command line, and the checkpoint it starts from (--load) or
continues (--resume), to a training_run.Settings, with every option, file and output path
checked before the first epoch. Each problem is a cli_args.UsageError naming its option."""
import argparse
import os
from typing import Any, Dict, Optional, Tuple

from . import checkpoint, data, specs, textdata, threads
from .atomic_file import check_writable
from .checkpoint import CheckpointError
from .cli_args import UsageError
from .textdata import Corpus, DataError
from .train import Recipe
from .training_run import Settings

ARCH_DEFAULTS = {"model": 4, "hidden": 64, "seq_len": 16}
RUN_DEFAULTS = {"bs": 64, "backend": "fused", "seed": 42}


def _option(key: str) -> str:
    return "--" + key.replace("_", "-")


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(_shown(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _read(option: str, path: str) -> Dict[str, Any]:
    try:
        return checkpoint.read(path)
    except CheckpointError as e:
        raise UsageError(f"{option} {path}: {e}") from None


def _kept(args: argparse.Namespace, key: str, saved: Any, option: str, path: str) -> Any:
    """The checkpoint's value of ``key``: the command line may repeat it, not contradict it."""
    given = getattr(args, key)
    if isinstance(saved, list) and given is not None:
        given = list(given)
    if given is not None and given != saved:
        raise UsageError(f"{_option(key)} {_shown(given)} contradicts the checkpoint {path} "
                         f"({key} {_shown(saved)}); leave {_option(key)} out to keep it "
                         f"{'(the run continues as recorded)' if option == '--resume' else ''}"
                         .rstrip())
    return saved


def _recipe(args: argparse.Namespace, model: int) -> Recipe:
    spec = specs.spec(model)
    epochs = tuple(args.epochs or spec.epochs)
    lrs = tuple(args.lr or spec.lrs)
    if len(epochs) != len(lrs):
        if args.epochs and args.lr:
            why = f"--epochs gives {len(epochs)} phases and --lr {len(lrs)} learning rates"
        elif args.epochs:
            why = (f"--epochs {_shown(epochs)} gives {len(epochs)} phase(s), but model {model}'s "
                   f"default learning rates ({_shown(list(lrs))}) are for {len(lrs)}")
        else:
            why = (f"--lr {_shown(lrs)} gives {len(lrs)} learning rate(s), but model {model}'s "
                   f"default epochs ({_shown(list(epochs))}) are {len(epochs)} phase(s)")
        raise UsageError(f"{why}: give one learning rate per phase, e.g. --epochs "
                         f"{_shown(epochs)} --lr {_shown([lrs[0]] * len(epochs))}")
    return Recipe(epochs, lrs, args.schedule or spec.schedule)


def _corpus_from_args(args: argparse.Namespace, progress: bool) -> Optional[Corpus]:
    """The data the command line names, or None when it names none."""
    if args.text:
        return textdata.read_text(args.text, args.valid, progress)
    if args.data_dir:
        return textdata.read_data_dir(args.data_dir, progress)
    return None


def _check_combinations(args: argparse.Namespace) -> None:
    if args.load and args.resume:
        raise UsageError("--load and --resume: give one (--load starts a new run from a "
                         "checkpoint's weights, --resume continues the run it recorded)")
    if args.valid and not args.text:
        raise UsageError("--valid needs --text: it is the validation text for --text's "
                         "training text")
    if args.text and args.data_dir:
        raise UsageError("--text and --data-dir: give one of them")
    if args.save_every is not None and not (args.save or args.resume):
        raise UsageError("--save-every needs --save PATH (or --resume PATH, which saves to "
                         "PATH)")


def resolve(args: argparse.Namespace, progress: bool = True) -> Tuple[Settings, Corpus]:
    """Settings and data for the run, or a UsageError naming the first bad option or file."""
    _check_combinations(args)
    path = args.resume or args.load
    option = "--resume" if args.resume else "--load"
    ck = _read(option, path) if path else None
    state = None
    try:
        if ck is not None:
            checkpoint.build_model(ck)      # its weights must fit the model it names
        if args.resume:
            state = checkpoint.resume_state(ck)
    except CheckpointError as e:
        raise UsageError(f"{option} {path}: {e}") from None

    arch = {}
    for key, default in ARCH_DEFAULTS.items():
        if ck is not None:
            arch[key] = _kept(args, key, ck["config"][key], option, path)
        else:
            arch[key] = default if getattr(args, key) is None else getattr(args, key)
    spec = specs.spec(arch["model"])
    if args.seq_len is not None and not spec.reads_sequences:
        raise UsageError(f"--seq-len: LMModel{arch['model']} reads blocks of three tokens; "
                         f"--seq-len applies to models that read sequences (--model 4 or 5)")
    if args.layers is not None and spec.layers is None:
        raise UsageError(f"--layers: LMModel{arch['model']} has one recurrent cell; --layers "
                         f"applies to the multi-layer model (--model 5)")
    if ck is not None:
        arch["layers"] = _kept(args, "layers", ck["config"].get("layers"), option, path)
    else:
        arch["layers"] = None if spec.layers is None else args.layers or spec.layers

    cfg = ck["config"] if ck is not None else {}
    if state is not None:
        for key in ("epochs", "lr", "schedule"):
            if key not in cfg:
                raise UsageError(f"--resume {path}: is not a complete rnnfast checkpoint: its "
                                 f"config lacks {key!r}")
            _kept(args, key, cfg[key], option, path)
        recipe = Recipe(tuple(cfg["epochs"]), tuple(cfg["lr"]), cfg["schedule"])
        run = {key: _kept(args, key, cfg.get(key, RUN_DEFAULTS[key]), option, path)
               for key in RUN_DEFAULTS}
    else:
        recipe = _recipe(args, arch["model"])
        run = {key: default if getattr(args, key) is None else getattr(args, key)
               for key, default in RUN_DEFAULTS.items()}

    thread_count = threads.choose(args.threads)
    if args.threads is None and state is not None:
        thread_count = state["threads"]   # the recorded count: the run stays bitwise the same

    corpus = _corpus(args, ck, state, path, progress)
    if args.load:
        try:
            checkpoint.check_vocab(ck, corpus.vocab, corpus.describe())
        except CheckpointError as e:
            raise UsageError(f"--load {path}: {e}") from None
    save = args.save or args.resume
    s = Settings(**arch, recipe=recipe, **run, threads=thread_count, save=save,
                 save_every=args.save_every or 1, plot=args.plot, load=args.load,
                 resume=args.resume, start=ck, data=corpus.source)
    return s, corpus


def _corpus(args, ck, state, path: Optional[str], progress: bool) -> Corpus:
    try:
        corpus = _corpus_from_args(args, progress)
        if corpus is None and state is not None:
            source = ck["config"].get("data", {"data": "human-numbers"})
            try:
                corpus = textdata.read_source(source, progress)
            except DataError as e:
                raise UsageError(f"--resume {path}: the run's data: {e}; give its new place "
                                 f"with --text or --data-dir") from None
    except DataError as e:
        raise UsageError(str(e)) from None
    corpus = corpus or textdata.human_numbers()
    if state is not None and corpus.fingerprint != state["data"]:
        raise UsageError(f"--resume {path}: the data ({corpus.describe()}) is not the text "
                         f"the run was trained on: its tokens differ")
    return corpus


def check_batches(s: Settings, corpus: Corpus, world_size: int = 1) -> None:
    """Every epoch must have a batch to train on and one to validate; under torchrun every
    rank takes as many rows of each batch."""
    if world_size > 1 and s.bs % world_size:
        raise UsageError(f"--bs {s.bs}: under torchrun with {world_size} processes the batch "
                         f"size must be a multiple of {world_size}, so that every process "
                         f"takes as many rows of each batch")
    spec = specs.spec(s.model)
    counts = _sequence_counts(corpus, spec, s.seq_len)
    most = _largest_batch(spec, *counts)
    if s.bs <= most:
        return
    n_train, n_valid = counts
    what = (f"sequences of {s.seq_len} tokens" if spec.reads_sequences
            else "blocks of three tokens")
    counted = f"{n_train} training and {n_valid} validation {what}"
    made = f"{corpus.describe()} makes {counted}"
    own_text = "text" in corpus.source or "data-dir" in corpus.source
    top = most - most % world_size   # under torchrun: a multiple of the process count
    if top >= 1:
        raise UsageError(f"--bs {s.bs}: too large for the data: {made}, and a batch takes "
                         f"{s.bs} of {'each' if spec.stateful else 'the training ones'}; "
                         f"give --bs {top} or less" + (" or a longer text" if own_text else ""))
    longest = _longest_sequence(corpus, spec, s.bs) if spec.reads_sequences else 0
    if longest >= 1:
        raise UsageError(f"--seq-len {s.seq_len}: too long for the data: {made}, and a batch "
                         f"takes {s.bs} of each; give --seq-len {longest} or less")
    if own_text:
        part = ("--data-dir" if "data-dir" in corpus.source else
                "--valid" if corpus.valid_nums is not None and n_train > 0 else "--text")
        name = corpus.source[part[2:]]
        raise UsageError(f"{part} {name}: too short to train on: it makes {counted}, and a "
                         f"batch takes "
                         f"{s.bs} of {'each' if spec.stateful else 'the training ones'}; "
                         f"give a longer text")
    raise UsageError(f"--bs {s.bs} with --seq-len {s.seq_len}: too large together for the "
                     f"data: {made}; give a smaller --bs or --seq-len")


def _sequence_counts(corpus: Corpus, spec: specs.ModelSpec, seq_len: int) -> Tuple[int, int]:
    """How many training and validation sequences the book's pipeline makes (the counts
    only, without building them)."""
    def count(n_tokens: int) -> int:
        if spec.reads_sequences:
            return len(data.shifted_starts(n_tokens, seq_len))
        return len(data.three_token_starts(n_tokens))

    if corpus.valid_nums is None:
        n = count(len(corpus.train_nums))
        cut = data.cut_point(n)
        return cut, n - cut
    return count(len(corpus.train_nums)), count(len(corpus.valid_nums))


def _largest_batch(spec: specs.ModelSpec, n_train: int, n_valid: int) -> int:
    """The largest --bs that leaves a training batch and a validation one: drop_last for the
    stateful models, a short batch allowed for the others."""
    if spec.stateful:
        return min(n_train, n_valid)
    return n_train if n_valid > 0 else 0


def _longest_sequence(corpus: Corpus, spec: specs.ModelSpec, bs: int) -> int:
    """The longest --seq-len that leaves a batch of ``bs`` (0 if none does)."""
    lo, hi = 0, len(corpus.train_nums)
    while lo < hi:   # the counts fall as seq_len grows: bisect for the last that fits
        mid = (lo + hi + 1) // 2
        if _largest_batch(spec, *_sequence_counts(corpus, spec, mid)) >= bs:
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_outputs(s: Settings) -> None:
    """--save and --plot must be writable, and --plot's matplotlib importable, before epoch 0
    (rank 0's job under torchrun: only it writes)."""
    if s.save:
        why = check_writable(s.save)
        if why:   # a resumed run saves to its --resume PATH unless --save names another
            option = "--resume" if s.resume and s.save == s.resume else "--save"
            raise UsageError(f"{option} {s.save}: {why}")
    if s.plot:
        why = check_writable(s.plot)
        if why:
            raise UsageError(f"--plot {s.plot}: {why}")
        try:
            from matplotlib.backend_bases import FigureCanvasBase
        except ImportError:
            raise UsageError(f"--plot {s.plot}: needs matplotlib, which is not installed: "
                             f"pip install matplotlib") from None
        kinds = FigureCanvasBase.get_supported_filetypes()
        ext = os.path.splitext(s.plot)[1].lower().lstrip(".")
        if ext not in kinds:
            raise UsageError(f"--plot {s.plot}: give a file name ending in .png (or ." +
                             ", .".join(k for k in sorted(kinds) if k != "png") + ")")

