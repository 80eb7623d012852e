"""The benchmarks' statistics against independent computations: the paired t interval against its formula
with a tabled quantile, the sign-flip p-value against all 2^n sign patterns enumerated by brute force, Holm's
correction against its step-down procedure run by hand, and convergence's summary against answers worked out
by hand."""

import itertools
import math
import statistics

import pytest

from bench.convergence import summarize
from bench.report import checkpoint_spread, holm, holm_adjusted, paired_test

T_975 = {4: 2.776445105, 9: 2.262157163}  # Student t quantiles (0.975; 4 and 9 degrees of freedom), tabled


@pytest.mark.parametrize("differences", [[-0.3, -0.1, 0.2, -0.5, -0.4],
                                         [-1.2, -0.4, -0.9, 0.1, -0.6, -0.3, -0.8, 0.2, -0.5, -0.7]])
def test_the_t_interval_is_mean_plus_minus_t_times_the_standard_error(differences):
    n = len(differences)
    half = T_975[n - 1] * statistics.stdev(differences) / math.sqrt(n)
    got = paired_test(differences, lower_is_better=True)
    mean = sum(differences) / n
    assert got["mean"] == pytest.approx(mean) and got["n"] == n
    assert (got["low"], got["high"]) == pytest.approx((mean - half, mean + half))


@pytest.mark.parametrize("differences", [[-0.3, -0.1, 0.2, -0.5, -0.4], [-2.0, -1.0, -3.0, -0.5, -1.5],
                                         [0.5, -0.2, 0.4, 0.1, 0.3, -0.1, 0.6, 0.2]])
def test_the_sign_flip_p_value_counts_every_sign_pattern(differences):
    observed = abs(sum(differences))
    patterns = list(itertools.product([1, -1], repeat=len(differences)))
    as_far = sum(abs(sum(s * d for s, d in zip(signs, differences))) >= observed - 1e-12
                 for signs in patterns)
    assert paired_test(differences, True)["p_sign_flip"] == pytest.approx(as_far / len(patterns))


def test_five_seeds_cannot_reach_a_sign_flip_p_below_one_sixteenth():
    """All five differences negative: only the pattern itself and its mirror are as far, 2 / 32."""
    assert paired_test([-2.0, -1.0, -3.0, -0.5, -1.5], True)["p_sign_flip"] == pytest.approx(0.0625)


@pytest.mark.parametrize("differences, lower_is_better, verdict", [
    ([-0.3, -0.25, -0.28], True, "better"), ([-0.3, -0.1, -0.25], True, "no detectable difference"),
    ([0.3, 0.25, 0.28], True, "worse"), ([0.3, 0.25, 0.28], False, "better")])
def test_the_unadjusted_verdict_is_the_t_interval_s(differences, lower_is_better, verdict):
    assert paired_test(differences, lower_is_better)["verdict"] == verdict


def test_one_seed_gives_no_verdict():
    got = paired_test([-4.0], lower_is_better=True)
    assert got["verdict"] == "too few seeds" and got["low"] is None and got["p_t"] is None


def test_checkpoint_spread_by_hand_and_against_white_noise():
    # successive differences +1, -2, +1: sum of squares 6 over 2 (n - 1) = 6: spread sqrt(1) = 1
    assert checkpoint_spread([1.0, 2.0, 0.0, 1.0]) == pytest.approx(1.0)
    # a trend adds its slope: a line falling 1 a checkpoint gives sqrt(1 / 2)
    assert checkpoint_spread([5.0, 4.0, 3.0, 2.0]) == pytest.approx(1 / math.sqrt(2))
    import random
    rng = random.Random(0)
    noise = [rng.gauss(0, 0.1) for _ in range(20000)]
    assert checkpoint_spread(noise) == pytest.approx(0.1, rel=0.03)  # white noise: its own deviation
    # a slow trend barely moves it, where the plain standard deviation takes in the whole descent
    drifting = [v - 1e-4 * i for i, v in enumerate(noise)]
    assert checkpoint_spread(drifting) == pytest.approx(0.1, rel=0.03) and statistics.stdev(drifting) > 0.5
    with pytest.raises(ValueError, match="at least 2 checkpoints"):
        checkpoint_spread([1.0])


def test_holm_adjusted_p_values_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): 4 x 0.005 = 0.02; 3 x 0.01 = 0.03; 2 x 0.03 = 0.06;
    # 1 x 0.04 = 0.04, raised to the running maximum 0.06; a product above 1 is 1
    assert holm_adjusted([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjusted([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_holm_rejects_what_the_step_down_procedure_rejects():
    """Holm's procedure: compare the i-th smallest p with alpha / (m - i + 1), stop at the first failure."""
    for p_values in ([0.001, 0.02, 0.03, 0.2], [0.012, 0.013, 0.9], [0.04, 0.001],
                     [0.3, 0.001, 0.02, 0.0124]):
        m, rejected = len(p_values), set()
        for rank, i in enumerate(sorted(range(m), key=lambda i: p_values[i])):
            if p_values[i] >= 0.05 / (m - rank):
                break
            rejected.add(i)
        assert {i for i, q in enumerate(holm_adjusted(p_values)) if q < 0.05} == rejected


def test_a_family_s_verdicts_follow_the_corrected_t_test():
    clear = paired_test([-1.0, -1.1, -0.9, -1.2, -1.0, -0.95, -1.05, -1.1, -0.9, -1.0], True)
    weak = [paired_test([-0.3, -0.1, 0.2, -0.5, -0.4, -0.2, -0.6, 0.1, -0.3, 0.1], True) for _ in range(2)]
    assert weak[0]["verdict"] == "better" and 0.025 < weak[0]["p_t"] < 0.05  # holds alone, not 2nd of 3
    holm([clear, *weak], [True, True, True])
    assert clear["verdict"] == "better" and clear["p_t_holm"] == pytest.approx(3 * clear["p_t"])
    assert [w["verdict"] for w in weak] == ["no detectable difference"] * 2
    assert weak[0]["p_t_holm"] == pytest.approx(2 * weak[0]["p_t"])
    assert clear["sign_flip_agrees"] and clear["p_sign_flip_holm"] == pytest.approx(3 * 2 / 1024)


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


def evidence_rows(method: str, seed: int, frechet: list[float], closer: float = 0.04) -> list[dict]:
    return [{"method": method, "seed": seed, "step": 100 * (i + 1), "frechet_held_out_1step": f,
             "frechet_held_out_2step": f / 2, "frechet_1step": f, "confident_1step": 1 / (1 + f),
             "coverage_1step": 0.9, "closer_share_1step": closer}
            for i, f in enumerate(frechet)]


def test_the_protocol_s_endpoints_by_hand():
    """Floor 0.5, so the threshold is 2.0. IC reaches it at step 300 (seed 0) and never (seed 1: counted as
    last step + interval = 500); GC at 200 and 300. E1: IC ends at 2.5 and 2.2, GC at 1.0 and 1.5; GC's seed 0
    ends worse (1.0) than at half the run (0.9)."""
    from bench.evidence import summarize

    rows = (evidence_rows("ic", 0, [6, 4, 2, 2.5]) + evidence_rows("ic", 1, [4, 3, 2.1, 2.2])
            + evidence_rows("gc", 0, [5, 0.9, 1, 1]) + evidence_rows("gc", 1, [3, 2.5, 2, 1.5], closer=0.2))
    s = summarize(rows, {"ic": 0.1, "gc": 0.2}, {"frechet": 0.5, "confident": 0.9, "coverage": 1.0}, {})
    assert s["threshold"] == 2.0 and s["reached_threshold"] == {"ic": 1, "gc": 2}
    steps = s["primary"]["steps_to_threshold"]
    assert (steps["ic"]["mean"], steps["gc"]["mean"]) == (400, 250)
    assert steps["gc"]["vs_ic"]["mean"] == pytest.approx(((200 - 300) + (300 - 500)) / 2)
    assert s["seconds_to_threshold"] == pytest.approx({"ic": 400 * 0.1, "gc": 250 * 0.2})
    final = s["primary"]["final"]["gc"]["vs_ic"]
    assert final["mean"] == pytest.approx(((1 - 2.5) + (1.5 - 2.2)) / 2)
    # one family of two tests: Holm doubles the smaller p-value
    p_values = sorted([final["p_t"], steps["gc"]["vs_ic"]["p_t"]])
    assert min(final["p_t_holm"], steps["gc"]["vs_ic"]["p_t_holm"]) == pytest.approx(2 * p_values[0])
    assert s["half_step"] == 200
    assert s["exploratory"]["half"]["gc"]["vs_ic"]["mean"] == pytest.approx(((0.9 - 4) + (2.5 - 3)) / 2)
    assert [(m["method"], m["seed"]) for m in s["memorising"]] == [("gc", 1)] * 4
    assert s["ends_worse_than_half"] == [{"method": "gc", "seed": 0, "half": 0.9, "final": 1}]
    assert s["grid_seed"] == 1  # IC's finals 2.5 (seed 0) and 2.2 (seed 1): the lower median is seed 1


def test_a_family_with_tests_not_yet_run_counts_them_as_p_one():
    one = paired_test([-0.3, -0.1, 0.2, -0.5, -0.4, -0.2, -0.6, 0.1, -0.3, 0.1], True)
    holm([one], [True], size=4)
    assert one["p_t_holm"] == pytest.approx(min(1.0, 4 * one["p_t"]))
    assert one["verdict"] == "no detectable difference"


def test_each_method_s_best_recipe_has_the_lowest_mean_final_frechet():
    def point(ic, gc):
        return {"primary": {"final": {"ic": {"mean": ic}, "gc_mu0.5": {"mean": gc}}}}

    from bench.evidence import best_recipes
    grid = {"_a": point(1.2, 0.9), "_b": point(1.0, 1.1), "_c": point(1.0, 0.95)}
    # IC ties between _b and _c at 1.0: the first tag in order wins
    assert best_recipes(grid, ["ic", "gc_mu0.5"]) == {"ic": "_b", "gc_mu0.5": "_a"}


def test_a_best_point_that_is_the_shared_recipe_reuses_the_shared_runs(tmp_path):
    import json

    from bench.evidence import CONFIGS, grid_variants, recipe_variants
    recipe = json.loads(CONFIGS["digits"].read_text())  # lr 3e-4, dropout 0, constant EMA 0.99
    same = "_lr0.0003_do0_ema0.99"
    assert (recipe["optimizer"]["lr"], recipe["model"]["dropout_rate"], recipe["ema_sched"]) == (
        3e-4, 0, {"type": "constant", "value": 0.99})

    def point(tag, ic, gc):
        return tag, {"primary": {"final": {"ic": {"mean": ic}, "gc_mu0.5": {"mean": gc}}}}

    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"summaries": dict(point(tag, 2.0, 2.0) for tag, _ in grid_variants("digits"))
                                | dict([point(same, 1.0, 3.0), point("_lr0.0006_do0.3_ema0.99", 3.0, 1.0)])}))
    best = recipe_variants("best", "digits", ["ic", "gc_mu0.5"], grid)["best"]
    assert best["ic"] is None  # the shared recipe's runs (digits_ic_sN) are read back
    tag, sections = best["gc_mu0.5"]
    assert tag == "_lr0.0006_do0.3_ema0.99" and sections["model"]["dropout_rate"] == 0.3
    assert sections["optimizer"]["lr"] == 6e-4 and sections["ema_sched"]["value"] == 0.99


def test_the_results_page_corrects_the_primary_family_across_data_sets(tmp_path):
    """Only digits has run each method at its best: its two tests are corrected as two of a family of four."""
    import json

    from bench.results_page import evidence_files

    def summary(differences):
        test = paired_test(differences, True)
        return {"seeds": {"ic": [0, 1, 2], "gc_mu0.5": [0, 1, 2]},
                "primary": {"final": {"gc_mu0.5": {"vs_ic": dict(test)}},
                            "steps_to_threshold": {"gc_mu0.5": {"vs_ic": dict(test)}}}}

    final = [-0.5, -0.4, -0.6]
    (tmp_path / "evidence_digits_best.json").write_text(json.dumps(
        {"dataset": "digits", "recipe": "best", "summaries": {"best": summary(final)}}))
    (tmp_path / "evidence_digits.json").write_text(json.dumps(
        {"dataset": "digits", "recipe": "shared", "summaries": {"shared": summary([-1.0, 0.0, 0.2])}}))
    found = {m["recipe"]: m for _, m in evidence_files(tmp_path)}
    p = paired_test(final, True)["p_t"]
    best = found["best"]["summaries"]["best"]["primary"]
    # two equal p-values: the smaller gets 4 p, the next max(4 p, 3 p)
    assert best["final"]["gc_mu0.5"]["vs_ic"]["p_t_holm"] == pytest.approx(4 * p)
    assert best["steps_to_threshold"]["gc_mu0.5"]["vs_ic"]["p_t_holm"] == pytest.approx(4 * p)
    assert "p_t_holm" not in found["shared"]["summaries"]["shared"]["primary"]["final"]["gc_mu0.5"]["vs_ic"]


def test_a_family_s_planned_size_counts_the_tests_not_yet_run():
    from bench.evidence import summarize

    rows = (evidence_rows("ic", 0, [6, 4, 2, 2.5]) + evidence_rows("ic", 1, [4, 3, 2.1, 2.2])
            + evidence_rows("ic", 2, [5, 3, 2.4, 2.6])
            + evidence_rows("gc", 0, [5, 0.9, 1, 1]) + evidence_rows("gc", 1, [3, 2.5, 2, 1.5])
            + evidence_rows("gc", 2, [4, 2, 1.6, 1.4]))
    floor = {"frechet": 0.5, "confident": 0.9, "coverage": 1.0}
    alone = summarize(rows, {"ic": 0.1, "gc": 0.2}, floor, {})["primary"]["final"]["gc"]["vs_ic"]
    planned = summarize(rows, {"ic": 0.1, "gc": 0.2}, floor, {}, (12, 25))
    final, steps = (planned["primary"][k]["gc"]["vs_ic"] for k in ("final", "steps_to_threshold"))
    smaller, larger = sorted([final, steps], key=lambda t: t["p_t"])
    assert smaller["p_t_holm"] == pytest.approx(min(1, 12 * smaller["p_t"]))
    assert larger["p_t_holm"] == pytest.approx(min(1, max(12 * smaller["p_t"], 11 * larger["p_t"])))
    assert alone["p_t_holm"] <= final["p_t_holm"]


def test_the_tuning_grid_table_marks_each_method_s_best_point(tmp_path):
    import json

    from bench.results_page import tuning_grid_section

    def point(ic, gc):
        return {"primary": {"final": {m: {"mean": v, "min": v - 0.1, "max": v + 0.1}
                                      for m, v in (("ic", ic), ("gc_mu0.5", gc))}}}

    (tmp_path / "evidence_digits_grid.json").write_text(json.dumps(
        {"dataset": "digits", "recipe": "grid", "methods": ["ic", "gc_mu0.5"], "seeds": [100, 101],
         "command": "c", "machine": "m",
         "best": {"ic": "_lr0.00015_do0.3_ema0.999", "gc_mu0.5": "_lr0.0006_do0_ema0.99"},
         "summaries": {"_lr0.00015_do0.3_ema0.999": point(1.5, 2.0),
                       "_lr0.0006_do0_ema0.99": point(2.5, 1.25)}}))
    (tmp_path / "evidence_digits.json").write_text(json.dumps({"recipe": "shared"}))
    table = [line for line in tuning_grid_section(tmp_path / "evidence") if line.startswith("| 0.")]
    assert table == ["| 0.00015, 0.3, 0.999 | **1.50 (1.40–1.60)** | 2.00 (1.90–2.10) |",
                     "| 0.0006, 0, 0.99 | 2.50 (2.40–2.60) | **1.25 (1.15–1.35)** |"]


def test_a_data_set_without_protocol_runs_is_called_a_comparison_between_scribbles(tmp_path):
    import json

    from bench.results_page import scribbles_note

    for dataset, shares in (("digits", (0.64, 0.66)), ("mnist", (0.586, 0.583))):
        (tmp_path / f"convergence_{dataset}.json").write_text(json.dumps(
            {"dataset": dataset, "summary": {"final_confident_1step": {
                "ic": {"mean": shares[0]}, "gc_mu0.5": {"mean": shares[1]}}}}))
    page = tmp_path / "results.md"
    note = [line for line in scribbles_note(tmp_path, {"digits"}, page) if line]
    assert len(note) == 1 and note[0].startswith("mnist has no recipe under the protocol yet")
    assert note[0].endswith("between scribbles: the earlier runs (`convergence_mnist.json`) ended with "
                            "ic 0.59, gc_mu0.5 0.58 of the 1-step samples confident.")
    assert scribbles_note(tmp_path, {"digits", "mnist"}, page) == []
    # the recipe search's candidates follow, each with what keeps it from qualifying, and its grid
    (tmp_path / "mnist_recipe.json").write_text(json.dumps(
        {"dataset": "mnist", "seed": 100, "command": "python -m bench.mnist_recipe", "candidates": {
            "base_10k": {"steps": 10000, "changes": {}, "floors": 6.04, "confident": 0.61, "minutes": 40.2,
                         "qualifies": False},
            "wide_3k": {"steps": 3000, "changes": {"model": {"channels": [64, 128]}}, "floors": 2.5,
                        "confident": 0.85, "minutes": 44, "qualifies": True}}}))
    note = [line for line in scribbles_note(tmp_path, {"digits"}, tmp_path / "docs" / "results.md") if line]
    assert ("`mnist_recipe.json`): base_10k (10000 steps): 6.0 real floors, confident 0.61, 40 min, does "
            "not qualify; wide_3k (3000 steps, {\"model\": {\"channels\": [64, 128]}}): 2.5 real floors, "
            "confident 0.85, 44 min. wide_3k qualifies. ![base_10k](../mnist_recipe_grid_base_10k.png) "
            "![wide_3k](../mnist_recipe_grid_wide_3k.png)") in note[0]


def test_a_run_that_ends_worse_than_at_half_is_set_against_its_second_half():
    from bench.results_page import worse_than_half

    # second half 1, 2, 0, 1, 3: successive differences +1, -2, +1, +2, so the spread of one checkpoint is
    # sqrt(10 / 8) and of a difference of two sqrt(2.5) = 1.58; the rise 2 is 2 / 1.58 = 1.3 of it; one
    # checkpoint (0) lies below the half's 1, so the half ranks 2 of 5; the mean is 7 / 5
    line = worse_than_half({"method": "gc", "seed": 2, "half": 1.0, "final": 3.0}, [1.0, 2.0, 0.0, 1.0, 3.0])
    assert line == ("gc seed 2: 1.00 then 3.00 (+2.00, 1.3 times its checkpoints' spread, 1.58; the half "
                    "ranks 2 of the second half's 5 checkpoints, whose mean is 1.40)")
