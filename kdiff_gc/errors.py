"""The one exception the command-line programs turn into a one-line message and a non-zero exit,
and the same for the operating system's errors (a full disk, a read-only folder, a file in the way)."""

import errno
import functools
import sys
from contextlib import contextmanager
from pathlib import Path


class UserError(Exception):
    """Bad input from the user (a config, a path, a checkpoint): the message names the problem and the fix."""


ADVICE = {
    errno.ENOSPC: "free space on that disk",
    errno.EDQUOT: "free space within your quota",
    errno.EROFS: "the file system is read-only: choose a folder on a writable one",
    errno.EACCES: "make it writable for you, or choose another folder",
    errno.EPERM: "make it writable for you, or choose another folder",
    errno.ENOTDIR: "a file stands where a folder should be: move it, or choose another path",
    errno.EEXIST: "a file stands where a folder should be: move it, or choose another path",
    errno.EISDIR: "a folder stands where a file should be: move it, or choose another path",
}


def one_line(e: BaseException) -> str:
    """``Type: message``, its lines joined: another library's or the user's error inside one of ours."""
    text = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def os_error_message(e: OSError) -> str:
    """``PATH: the system's reason: what to do``, in one line."""
    if isinstance(e, BrokenPipeError):
        return "the output was closed (broken pipe): keep the program's output open, or redirect it to a file"
    if e.strerror is None and e.filename is None:  # an OSError of a library's, e.g. an unreadable image
        return f"{e}: check that file"
    reason = (e.strerror or type(e).__name__).lower()
    return (f"{e.filename or 'an output stream'}: {reason}: "
            f"{ADVICE.get(e.errno, 'check the path and the disk')}")


@contextmanager
def writing(path: Path):
    """Name ``path`` in any ``OSError`` raised while writing it (a write on a full disk names no file, and an
    atomic write's error names its temporary file)."""
    try:
        yield
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None


def _error_line(message: str) -> None:
    """``error: message`` and its newline in one write: the processes of a job share stderr, and print's
    separate write of the newline let two processes' lines run together."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def exits_on_user_error(main):
    """Wrap a program's ``main``: a :class:`UserError` or an ``OSError`` prints ``error: ...`` on one line and
    exits with 2; an interrupt (Ctrl-C) prints one line and exits with 130, as a shell reports it."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as e:
            message = str(e)
        except OSError as e:
            message = os_error_message(e)
        except KeyboardInterrupt:
            _error_line("interrupted; the files written before are intact (a training run continues with the "
                        "same command)")
            sys.exit(130)
        _error_line(message)
        sys.exit(2)

    return wrapper
