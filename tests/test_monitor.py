"""The loss watch: one warning when the loss runs away, none for a healthy run."""

import random
import statistics

from kdiff_gc.monitor import LossWatch, largest_ratio


def ratios(losses, window=50, history=500, min_history=200):
    """Brute force: for each step t (1-based) with enough history, the mean of the last `window` losses over
    the median of the at most `history` losses before them."""
    out = {}
    for t in range(window + min_history, len(losses) + 1):
        out[t] = (statistics.fmean(losses[t - window:t])
                  / statistics.median(losses[max(0, t - window - history):t - window]))
    return out


def first_runaway(losses, window, history, min_history, factor):
    return next((t for t, r in ratios(losses, window, history, min_history).items() if r > factor), None)


def feed(watch, losses):
    return [(step, message) for step, loss in enumerate(losses, 1) if (message := watch.update(step, loss))]


def test_warns_once_at_the_first_step_past_the_factor():
    rng = random.Random(0)
    losses = [3 + rng.gauss(0, 0.5) for _ in range(700)] + [3 * 1.01 ** t for t in range(300)]
    expected = first_runaway(losses, 50, 500, 200, 2.0)
    assert expected is not None and 700 < expected < 1000
    warnings = feed(LossWatch(window=50, history=500, min_history=200, factor=2.0), losses)
    assert [step for step, _ in warnings] == [expected]
    assert f"at step {expected}" in warnings[0][1] and "x the median" in warnings[0][1]


def test_silent_on_noise_and_on_a_falling_loss():
    rng = random.Random(1)
    noisy = [3 * rng.lognormvariate(0, 0.3) for _ in range(2000)]
    falling = [10 * 0.999 ** t + rng.gauss(0, 0.1) for t in range(2000)]
    assert (first_runaway(noisy, 50, 500, 200, 2.0) is None
            and first_runaway(falling, 50, 500, 200, 2.0) is None)
    assert feed(LossWatch(), noisy) == [] and feed(LossWatch(), falling) == []


def test_needs_enough_history_before_comparing():
    losses = [1.0] * 100 + [50.0] * 60  # a jump before 200 steps of history: nothing to compare with yet
    assert feed(LossWatch(window=50, history=500, min_history=200), losses) == []


def test_largest_ratio_is_the_largest_the_watch_compares():
    rng = random.Random(2)
    losses = [3 * rng.lognormvariate(0, 0.3) for _ in range(900)]
    assert largest_ratio(losses) == max(ratios(losses).values())
    assert largest_ratio(losses[:249]) is None  # 200 steps of history plus a window of 50 are needed
