"""Watching a run's loss: one warning when it runs away from its recent level.

A consistency run that diverges does not end in NaN: its loss climbs for hundreds of steps while the
samples turn into flat gray squares (docs/stability.md). The watch compares the mean loss of the last
``window`` steps with the median of the ``history`` steps before them and warns once when the ratio
passes ``factor``. The default factor, 2, sits above the largest ratio of healthy runs of the digits
recipe and below that of the diverging ones (docs/stability.md, "A loss that runs away").
"""

import statistics
from collections import deque


class LossWatch:
    """``update(step, loss)`` returns a warning, once, when the mean loss of the last ``window`` steps is
    more than ``factor`` times the median of the (at most) ``history`` steps before them; ``min_history``
    steps must precede the window before any comparison."""

    def __init__(self, window: int = 50, history: int = 500, min_history: int = 200, factor: float = 2.0):
        self.window, self.min_history, self.factor = window, min_history, factor
        self.losses = deque(maxlen=window + history)
        self.warned = False

    def levels(self) -> tuple[float, float, int] | None:
        """``(mean of the last window, median of the steps before, how many steps before)``, or None while
        fewer than ``min_history`` steps precede the window."""
        before = len(self.losses) - self.window
        if before < self.min_history:
            return None
        values = list(self.losses)
        return statistics.fmean(values[before:]), statistics.median(values[:before]), before

    def ratio(self) -> float | None:
        """The recent mean over the earlier median (None while too few steps have been seen)."""
        levels = self.levels()
        return None if levels is None else levels[0] / levels[1]

    def update(self, step: int, loss: float) -> str | None:
        self.losses.append(loss)
        if self.warned or (levels := self.levels()) is None or levels[0] <= self.factor * levels[1]:
            return None
        self.warned = True
        recent, median, before = levels
        return (f"warning: the loss is running away at step {step}: its mean over the last {self.window} "
                f"steps is {recent:.4g}, {recent / median:.1f}x the median {median:.4g} of the {before} "
                "steps before; the samples are likely degrading (lower the learning rate, or see "
                "docs/stability.md)")


def largest_ratio(losses: list[float]) -> float | None:
    """The largest ratio a :class:`LossWatch` with the defaults sees along a run's losses (None if too
    short)."""
    watch, ratios = LossWatch(), []
    for step, loss in enumerate(losses, 1):
        watch.update(step, loss)
        if (ratio := watch.ratio()) is not None:
            ratios.append(ratio)
    return max(ratios, default=None)
