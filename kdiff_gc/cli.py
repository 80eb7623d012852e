"""What the command-line programs share: a parser whose errors are one line, and flag types with ranges.

A flag out of range is refused by argparse before anything runs, with ``error: ...`` on one line and
exit code 2, as a :class:`kdiff_gc.errors.UserError` is.
"""

import argparse
import math
import sys
from pathlib import Path

from .errors import UserError

SEED = (0, 2 ** 63 - 1)  # what torch's and numpy's seeding accept
# upper bounds of the programs' sizes, so that a typo is refused at once rather than after hours (out of
# memory at the first demo grid or evaluation): far above any paper config's (batch 1024, FID on 50,000
# samples, a demo grid of 64), and a week in minutes
MAX_BATCH, MAX_SAMPLES, MAX_GRID, WEEK = 2 ** 20, 10 ** 6, 10 ** 4, 7 * 24 * 60


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's ``(default: ...)`` after each option's help, once: not where the help already names its
    default, nor for options without one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with :class:`HelpFormatter`, whose errors are one ``error:`` line."""

    def __init__(self, **kwargs):
        super().__init__(formatter_class=kwargs.pop("formatter_class", HelpFormatter), **kwargs)

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _range(name: str, minimum=None, maximum=None, exclusive_minimum=None) -> str:
    if minimum is not None and maximum is not None:
        return f"{name} in [{minimum}, {maximum}]"
    if exclusive_minimum == 0:
        return f"a positive {name.removeprefix('an ').removeprefix('a ')}"
    return f"{name} >= {minimum}" if minimum is not None else name


def integer(minimum: int | None = None, maximum: int | None = None):
    """An argparse type: an integer in ``[minimum, maximum]``."""
    what = _range("an integer", minimum, maximum)

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value

    return parse


def off_or_integer(minimum: int, maximum: int):
    """An argparse type: 0 (off) or an integer in ``[minimum, maximum]`` (k-diffusion's ``--evaluate-n 0``
    turns evaluation off)."""
    what = f"0 (off) or an integer in [{minimum}, {maximum}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value != 0 and not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value

    return parse


def number(minimum: float | None = None, exclusive_minimum: float | None = None,
           maximum: float | None = None):
    """An argparse type: a finite number ``>= minimum`` or ``> exclusive_minimum``, and ``<= maximum``."""
    what = _range("a finite number", minimum, exclusive_minimum=exclusive_minimum) + (
        f" at most {maximum}" if maximum is not None else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value) or (minimum is not None and value < minimum) or \
                (exclusive_minimum is not None and value <= exclusive_minimum) or \
                (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value

    return parse


def integers(minimum: int, maximum: int):
    """An argparse type: comma-separated integers in ``[minimum, maximum]``, e.g. ``1,2``."""
    one = integer(minimum, maximum)

    def parse(text: str) -> list[int]:
        try:
            return [one(part) for part in text.split(",")]
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated integers in "
                                             f"[{minimum}, {maximum}]") from None

    return parse


def descending_sigmas(text: str) -> list[float]:
    """An argparse type: comma-separated positive noise levels in decreasing order, e.g. ``80,2,0.5``."""
    try:
        sigmas = [number(exclusive_minimum=0)(part) for part in text.split(",")]
    except argparse.ArgumentTypeError:
        sigmas = []
    if not sigmas or any(a <= b for a, b in zip(sigmas, sigmas[1:])):
        raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated positive numbers in decreasing "
                                         "order")
    return sigmas


def check_output_folder(path: Path, flag: str) -> None:
    """The folder ``path`` goes into exists, checked before the work whose result it receives."""
    folder = Path(path).parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise UserError(f"{flag} {path}: {folder} {what}: create it, or choose another {flag}")


def run_name(text: str) -> str:
    """An argparse type: a file-name prefix (folders go in ``--out-dir``), short enough that its longest file,
    ``.{name}_{step:08}.pth.{random}.tmp``, fits the 255 bytes of a file name."""
    if not text or "/" in text or "\\" in text or "\0" in text or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"{text!r} is not a file-name prefix: put folders in --out-dir")
    if len(text.encode()) > 200:
        raise argparse.ArgumentTypeError(f"a name of {len(text.encode())} bytes is too long for its "
                                         "file names: use at most 200")
    return text
