"""The one exception the command-line programs turn into a one-line message and a non-zero exit."""


class UserError(Exception):
    """Bad input from the user (a config, a path, a checkpoint): the message names the problem and the fix."""
