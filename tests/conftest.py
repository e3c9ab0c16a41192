import os

import pytest
import torch


@pytest.fixture
def seed():
    """A fresh random seed per test, printed so that a failure can be replayed
    (RNNFAST_SEED=<seed> pytest ...)."""
    value = int(os.environ.get("RNNFAST_SEED", int.from_bytes(os.urandom(4), "little")))
    torch.manual_seed(value)
    print(f"seed = {value}")
    return value
