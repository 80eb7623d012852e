"""Stopping a run when the cluster asks: a scheduler's signal (SLURM sends SIGTERM, or the signal of
``--signal``, before it kills or requeues a job) is only noted here; the loop finishes its optimizer
step, every process learns of it with the step's gathered statistics, and the run saves and exits with
:data:`STOPPED_EXIT`, so that the same command, run again, continues it."""

import signal
import time
from collections.abc import Iterable

STOPPED_EXIT = 75  # sysexits.h's EX_TEMPFAIL: "a temporary failure; the user is invited to retry"


def signal_numbers(names: str) -> list[signal.Signals]:
    """``"TERM,USR1"`` (or ``SIGTERM,SIGUSR1``) as signals; ``""`` is none. A name this system lacks is a
    ``ValueError`` naming it."""
    found = []
    for name in filter(None, (n.strip().upper() for n in names.split(","))):
        full = name if name.startswith("SIG") else f"SIG{name}"
        if full in ("SIGKILL", "SIGSTOP") or not hasattr(signal.Signals, full):
            raise ValueError(f"{name!r} is not a signal that a process can catch here")
        found.append(signal.Signals[full])
    return found


def outlive_the_first(signals: Iterable[signal.Signals], worker_id: int = 0) -> None:
    """A data worker's ``worker_init_fn``: a scheduler signals every process of a job, and a worker killed by
    it would end the run before it can save, so the worker outlives the first of these signals; a later one
    ends it as usual (the loader, and Python's exit, end a worker that is slow to stop with SIGTERM)."""
    def first_only(signum: int, frame) -> None:
        for s in signals:
            signal.signal(s, signal.SIG_DFL)

    for s in signals:
        signal.signal(s, first_only)


class StopRequest:
    """Notes the first of ``signals`` that arrives (later ones, say during the save, change nothing) and,
    every ``minutes`` (0: never) since the last save, that a save is due. Used as a context manager, it
    restores the previous handlers on exit, unless the run stops (:meth:`outlast`)."""

    def __init__(self, signals: list[signal.Signals], minutes: float = 0.0):
        self.signals, self.minutes = signals, minutes
        self.received: signal.Signals | None = None
        self.saved_at = time.monotonic()
        self.previous = {}
        self.restore = True

    def __enter__(self) -> "StopRequest":
        for s in self.signals:
            self.previous[s] = signal.signal(s, self.note)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items() if self.restore else ():
            signal.signal(s, handler)

    def outlast(self) -> None:
        """The run stops here: ignore the signals from now until the process exits, the context's exit
        included. A later one (the scheduler's second, or torchrun ending the other workers once one has
        exited) must not turn the stopped run's exit into a kill. Ignored, not noted: Python puts its own
        handlers back to the default as the interpreter exits, but leaves an ignored signal ignored."""
        for s in self.signals:
            signal.signal(s, signal.SIG_IGN)
        self.restore = False

    def note(self, signum: int, frame) -> None:
        if self.received is None:
            self.received = signal.Signals(signum)

    def save_due(self) -> bool:
        return self.minutes > 0 and time.monotonic() - self.saved_at >= 60 * self.minutes

    def saved(self) -> None:
        self.saved_at = time.monotonic()
