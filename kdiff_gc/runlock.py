"""One run at a time in a run folder: a lock on ``{out_dir}/{name}.lock``, which holds the holder's pid."""

import os
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import UserError, writing


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


class RunLock:
    """Holds ``(out_dir, name)`` for this process until :meth:`release`: filelock's lock (``flock``, released
    by the system when the process dies), so a second start is refused instead of racing the first."""

    def __init__(self, out_dir: Path, name: str):
        self.path = Path(out_dir) / f"{name}.lock"
        with writing(out_dir):
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(self.path, blocking=False, on_acquired=_write_pid)
        with writing(self.path):
            try:
                self.lock.acquire()
            except Timeout:  # an OSError too, so caught before writing() would take it for a disk error
                try:
                    holder = f"pid {int(self.path.read_text())}"
                except (OSError, ValueError):
                    holder = "a process that is starting"
                raise UserError(f"another run ({holder}) is using --name {name} in {out_dir}: wait for it to "
                                "end, or pick another --name or --out-dir") from None

    def release(self) -> None:
        """Let go. The file stays (filelock's design: a waiter must lock the same file a holder did)."""
        self.lock.release()
