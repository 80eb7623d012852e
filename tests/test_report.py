"""The benchmarks' statistics against independent computations: the paired bootstrap against the exact
bootstrap distribution enumerated by brute force, and convergence's summary against answers worked out by
hand."""

import itertools

import numpy as np
import pytest

from bench.convergence import summarize
from bench.report import paired_bootstrap


def exact_bootstrap_means(values: list[float]) -> np.ndarray:
    """The mean of every one of the n^n equally likely resamples with replacement."""
    return np.array([np.mean(r) for r in itertools.product(values, repeat=len(values))])


@pytest.mark.parametrize("differences", [[0.0, 1.0, 2.0, 10.0], [-3.0, -1.0, 0.5, -2.0, -0.2]])
def test_the_interval_is_the_exact_bootstrap_distribution_s_quantiles(differences):
    means = exact_bootstrap_means(differences)
    result = paired_bootstrap(differences, lower_is_better=True)
    # 10,000 Monte Carlo resamples: the 2.5% and 97.5% quantiles lie well within the exact 1%-5% and 95%-99%
    # ones
    assert np.quantile(means, 0.01) <= result["low"] <= np.quantile(means, 0.05)
    assert np.quantile(means, 0.95) <= result["high"] <= np.quantile(means, 0.99)
    assert result["mean"] == pytest.approx(np.mean(differences)) and result["n"] == len(differences)


@pytest.mark.parametrize("differences", [[-3.0, -2.5, -2.0, -3.5, -2.2], [-1.0, 1.0, -0.5, 0.7, 0.1],
                                         [0.4, 0.9, 0.2, 0.6, 1.1]])
@pytest.mark.parametrize("lower_is_better", [True, False])
def test_the_verdict_follows_whether_the_interval_excludes_zero(differences, lower_is_better):
    means = exact_bootstrap_means(differences)
    low, high = np.quantile(means, 0.025), np.quantile(means, 0.975)
    # all three cases sit far from the edge, where Monte Carlo could flip them
    below, above = high < 0, low > 0
    expected = (("better" if below == lower_is_better else "worse") if below or above
                else "no detectable difference")
    assert paired_bootstrap(differences, lower_is_better)["verdict"] == expected


def test_one_seed_gives_no_verdict():
    assert paired_bootstrap([-4.0], lower_is_better=True) == {"n": 1, "mean": -4.0, "low": None, "high": None,
                                                              "verdict": "too few seeds"}


def judge_rows(method: str, seed: int, frechet: list[float]) -> list[dict]:
    return [{"method": method, "seed": seed, "step": 100 * (i + 1), "frechet_1step": f,
             "frechet_2step": f / 2, "confident_1step": 1 / (1 + f), "coverage_1step": 0.9}
            for i, f in enumerate(frechet)]


def test_summary_steps_to_ic_s_best_and_paired_figures():
    # IC's mean curve over seeds: 5, 3, 2, 2.5 -> its best is 2.0, reached at step 300; GC's: 4, 2, 1.5, 1 ->
    # step 200
    rows = (judge_rows("ic", 0, [6, 4, 2, 3]) + judge_rows("ic", 1, [4, 2, 2, 2])
            + judge_rows("gc", 0, [5, 2, 1, 1]) + judge_rows("gc", 1, [3, 2, 2, 1]))
    s = summarize(rows, {"ic": 0.1, "gc": 0.2}, {})
    assert s["ic_best_frechet_1step"] == 2.0
    assert s["to_ic_best"] == {"ic": {"steps": 300, "seconds": 30}, "gc": {"steps": 200, "seconds": 40}}
    final = s["final_frechet_1step"]
    assert final["ic"] == {"mean": 2.5, "min": 2, "max": 3} and final["gc"]["mean"] == 1.0
    assert final["gc"]["vs_ic"]["mean"] == pytest.approx(((1 - 3) + (1 - 2)) / 2)
    assert s["half_step"] == 200  # the judged step nearest 400 / 2: IC 4 and 2, GC 2 and 2
    assert (s["half_frechet_1step"]["ic"]["mean"] == 3.0
            and s["half_frechet_1step"]["gc"]["vs_ic"]["mean"] == -1.0)
    best = s["best_frechet_1step"]  # each seed's own minimum along the run: IC 2 and 2, GC 1 and 1
    assert best["ic"]["mean"] == 2.0 and best["gc"]["vs_ic"]["mean"] == -1.0
    assert s["final_confident_1step"]["gc"]["mean"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    # IC seed 0 ends at 3, worse than its best (2) but not its half (4)
    assert s["ends_worse_than_half"] == []


def test_summary_lists_the_runs_that_end_worse_than_at_half_the_run():
    rows = (judge_rows("ic", 0, [6, 4, 2, 3]) + judge_rows("ic", 1, [4, 2, 2, 2.5])
            + judge_rows("gc", 0, [5, 2, 1, 1]) + judge_rows("gc", 1, [3, 2, 9, 2]))
    assert summarize(rows, {"ic": 0.1, "gc": 0.2}, {})["ends_worse_than_half"] == [
        {"method": "ic", "seed": 1, "half": 2, "final": 2.5}]  # GC seed 1 spikes to 9 but ends at its half, 2
