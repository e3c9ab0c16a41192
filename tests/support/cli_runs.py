"""Running the real ``rnnfast`` command in a subprocess, as a user would, and reading what
it leaves behind."""
import os
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def command(*args):
    return [sys.executable, "-m", "rnnfast", *map(str, args)]


def env(paths=(), **extra):
    """The environment for a run: PYTHONPATH puts ``paths`` and then this checkout's rnnfast
    first (whichever one is installed); ``extra`` adds variables."""
    path = os.pathsep.join([*map(str, paths), ROOT, os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path, **{k: str(v) for k, v in extra.items()})


def run(*args, timeout=300, paths=(), **extra_env):
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout,
                          env=env(paths, **extra_env))


def start(*args, **extra_env):
    return subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env(**extra_env))


def epochs_done(path):
    """Epochs recorded in the checkpoint at path, or None while there is none."""
    if not os.path.exists(path):
        return None
    return torch.load(path, weights_only=True)["resume"]["epochs_done"]


def wait_for(condition, proc, timeout=120, what="the condition"):
    """Polls condition() every 10 ms until it holds; fails if proc ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"rnnfast ended (rc {proc.returncode}) before {what}:\n"
                                 f"{proc.stdout.read()}\n{proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def epoch_rows(stdout):
    return [l.split() for l in stdout.splitlines() if l.split() and l.split()[0].isdigit()]
