"""Training progress as data: ``ProgressEvent(stage, fraction, message)``.

``ml.train.train(..., progress=callback)`` calls ``callback(event)`` for every step it
reports, in order, with ``fraction`` (0..1, never decreasing) of the whole run done; the last
event is ``stage="done", fraction=1.0``. Without a callback the messages are printed to
stderr with the elapsed time (the command line).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable

__all__ = ["ProgressEvent", "Reporter", "TRAIN_STAGES"]


@dataclass(frozen=True)
class ProgressEvent:
    stage: str
    fraction: float
    message: str


# Stage name -> (fraction at its start, fraction at its end) for ``ml.train``.
TRAIN_STAGES = {
    "listing": (0.0, 0.02),
    "loading": (0.02, 0.10),
    "features": (0.10, 0.55),
    "robustness": (0.55, 0.70),
    "cross-validation": (0.70, 0.82),
    "head": (0.82, 0.88),
    "saving": (0.88, 0.98),
    "done": (1.0, 1.0),
}


class Reporter:
    """Callable with a message (what ``ml``'s helpers call); turns it into a ``ProgressEvent``
    of the current stage. ``stage(name)`` moves to a stage; ``part(done, total)`` moves the
    fraction within it."""

    def __init__(self, callback: Callable[[ProgressEvent], None] | None = None, stages: dict | None = None):
        self.callback = callback
        self.stages = stages or TRAIN_STAGES
        self.t0 = time.monotonic()
        self.name, self.fraction = "listing", 0.0

    def stage(self, name: str, message: str | None = None) -> None:
        self.name = name
        self.fraction = max(self.fraction, self.stages[name][0])
        if message:
            self(message)

    def part(self, done: float, total: float) -> None:
        lo, hi = self.stages[self.name]
        self.fraction = max(self.fraction, lo + (hi - lo) * min(1.0, done / max(total, 1e-9)))

    def __call__(self, message: str) -> None:
        event = ProgressEvent(self.name, round(float(self.fraction), 4), str(message))
        if self.callback is None:
            print(f"[{time.monotonic() - self.t0:7.1f}s] {message}", file=sys.stderr, flush=True)
        else:
            self.callback(event)
