"""What the command line accepts, and how it says no: one line on stderr naming the option and
what it takes, exit status 2 (argparse's), printed by one process only under torchrun."""
import argparse
import math
import os
import sys
from typing import Any, Callable, NoReturn

USAGE_ERROR = 2   # argparse's exit status for a bad command line


class UsageError(Exception):
    """A bad option value or file, found after parsing; the message starts with the option."""


def speaks() -> bool:
    """Under torchrun every rank parses the same command line: rank 0 alone reports."""
    return os.environ.get("RANK", "0") in ("", "0")


def say_error(prog: str, message: str) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr)


def report(prog: str, message: str) -> None:
    """say_error on rank 0 (or without torchrun), silence on the other ranks."""
    if speaks():
        say_error(prog, message)


class OneLineParser(argparse.ArgumentParser):
    """argparse's parser.error without the usage block: one line (``--help`` has the rest)."""

    def error(self, message: str) -> NoReturn:
        report(self.prog, message)
        sys.exit(USAGE_ERROR)


def _checked(convert: Callable[[str], Any], ok: Callable[[Any], bool],
             expected: str) -> Callable[[str], Any]:
    """An argparse type: convert(text) if ok() accepts it, else "expected ..., got '...'"."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


positive_int = _checked(int, lambda v: v > 0, "a positive integer")
non_negative_int = _checked(int, lambda v: v >= 0, "0 or a positive integer")
positive_number = _checked(float, lambda v: math.isfinite(v) and v > 0,
                           "a positive finite number")
non_negative_number = _checked(float, lambda v: math.isfinite(v) and v >= 0,
                               "0 or a positive finite number")
