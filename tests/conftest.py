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


# Hypothesis profiles: "ci" (the default) keeps the suite fast; "long" is for local runs,
# e.g. HYPOTHESIS_PROFILE=long pytest tests/test_fuzz_reference.py. No deadline: the first
# examples pay for torch's lazy initialisation and timings vary on a shared machine.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("ci", max_examples=300, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=5000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def emulator_cache_dir(request, tmp_path_factory):
    """Where tests/cuda_emulator keeps its builds: pytest's cache folder, so that later sessions
    reuse them (each build is keyed by a hash of its sources and flags), or a temporary folder
    when the cache is off (-p no:cacheprovider)."""
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return cache.mkdir("rnnfast-cuda-emulator")
    return tmp_path_factory.mktemp("rnnfast-cuda-emulator")


@pytest.fixture(scope="session")
def emu(emulator_cache_dir):
    """The CUDA kernels' sources built against the emulator, driven as the CUDA op's host code
    drives them (tests/cuda_emulator/harness.py); skips where the library cannot be built."""
    from cuda_emulator import build
    from cuda_emulator.harness import EmulatedCuda

    try:
        return EmulatedCuda(build.build("library", emulator_cache_dir))
    except build.Unavailable as e:
        pytest.skip(f"cannot build the CUDA emulator: {e}")
