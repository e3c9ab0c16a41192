"""Ctrl-C and SIGTERM during training: a request to stop at the next clean point, not a
KeyboardInterrupt traceback in the middle of a step or a save."""
import signal
from typing import Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """While active (``with StopRequests() as stop:``), the first SIGINT or SIGTERM only sets
    ``stop.signal``; the training loop polls ``stop.requested`` and stops at a clean point. A
    second one raises KeyboardInterrupt at once, for a user who will not wait."""

    def __init__(self) -> None:
        self.signal: Optional[int] = None
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self) -> "StopRequests":
        for s in SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""

    @property
    def exit_status(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + (self.signal or signal.SIGINT)
