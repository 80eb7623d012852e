"""What the command-line programs share: their help formatter."""

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's ``(default: ...)`` after each option's help, once: not where the help already names its
    default, nor for options without one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)
