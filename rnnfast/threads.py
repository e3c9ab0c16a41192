"""How many threads ``rnnfast train`` uses unless told (``--threads N``, or OMP_NUM_THREADS).

One. Measured on a 2-core machine (docs/training.md, "Threads"): at the book's size a second thread
gained 10-15% on a quiet machine, and as soon as another CPU-bound process ran, two threads
made each epoch 3 to 22 times slower, while one thread only shared its core. A fixed count
also gives a run whose numbers do not depend on the machine's core count, which a resumed run
relies on to end bitwise equal.
"""
import os
from typing import Optional

DEFAULT_THREADS = 1


def choose(requested: Optional[int]) -> Optional[int]:
    """The thread count to set: ``requested`` (0: torch's own default, one per core), else
    None when OMP_NUM_THREADS is set (torch already follows it), else DEFAULT_THREADS."""
    if requested is not None:
        return requested or None
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    return DEFAULT_THREADS
