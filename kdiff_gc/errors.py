"""The one exception the command-line programs turn into a one-line message and a non-zero exit."""

import functools
import sys


class UserError(Exception):
    """Bad input from the user (a config, a path, a checkpoint): the message names the problem and the fix."""


def exits_on_user_error(main):
    """Wrap a program's ``main``: a :class:`UserError` prints ``error: ...`` on one line and exits with 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapper
