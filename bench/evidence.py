"""The runs of docs/evidence-protocol.md: each method trains on the judge's reference half of the data set
(the held-out half stays unseen), with common random numbers across methods of one seed, and is judged every
``steps / 16`` steps on 1000 samples by bench/judge.py (Frechet distance to the held-out half, and the
memorisation check). The summary holds the protocol's endpoints, E1 (the final 1-step held-out Frechet) and
E2 (the steps to 4 real floors), against IC with paired t-tests, exact sign-flip p-values and Holm's
correction, and the exploratory figures as a family of their own.

    python -m bench.evidence --quick                                  # smoke run: 8 steps, 2 seeds
    python -m bench.evidence --seeds 0-9 --jobs 2                     # digits, shared recipe (~45 min)
    python -m bench.evidence --seeds 100-101 --grid --jobs 2          # the tuning grid on the tuning seeds

Every run is kept in PREFIX_runs/ (a rerun with the same arguments reads it back), so a long comparison can
span several sessions. With --jobs N the runs go side by side, one thread each: time it with nothing else
running, since the seconds per step are part of the result.
"""

import itertools
import json
import os
import statistics
from pathlib import Path

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")

from kdiff_gc.config import load_config
from kdiff_gc.inference import load_model
from bench.convergence import CONFIGS, JUDGE_NOISE_SEED, METHODS, nearest, run_all
from bench.judge import Judge, consistency_samples
from bench.report import (ROOT, command, holm, machine, paired_test, parser, plot_curves, sample_grid,
                          write_csv, write_json)

GRID = {"lr": (1.5e-4, 3e-4, 6e-4), "dropout": (0.0, 0.3), "ema": (0.99, 0.999)}  # the protocol's section 4


def grid_variants(dataset: str) -> list[tuple[str, dict]]:
    """The tuning grid as ``(tag, {section: value})`` variants of the recipe (bench/convergence.py's
    ``method_config``): learning rate x dropout x EMA decay, everything else the recipe's."""
    recipe = json.loads(CONFIGS[dataset].read_text())
    return [(f"_lr{lr:g}_do{dropout:g}_ema{ema:g}",
             {"optimizer": {**recipe["optimizer"], "lr": lr},
              "model": {**recipe["model"], "dropout_rate": dropout},
              "ema_sched": {"type": "constant", "value": ema}})
            for lr, dropout, ema in itertools.product(*GRID.values())]


ENDPOINT = "frechet_held_out_1step"  # E1 and E2 of docs/evidence-protocol.md
THRESHOLD_FLOORS = 4  # E2's threshold, in real floors
MEMORISING_SHARE = 0.10  # a run is flagged when more samples than this lie unusually near a training image


def comparison(values: dict[str, dict[int, float]], lower_is_better: bool) -> dict:
    """Each method's mean (min, max over seeds) and, against IC, its paired differences by seed with
    :func:`bench.report.paired_test` (uncorrected: :func:`correct` corrects a family).
    ``values[method][seed]``."""
    out = {}
    for method, by_seed in values.items():
        entry = {"mean": statistics.mean(by_seed.values()), "min": min(by_seed.values()),
                 "max": max(by_seed.values())}
        if method != "ic":
            seeds = sorted(set(by_seed) & set(values["ic"]))
            entry["vs_ic"] = {**paired_test([by_seed[s] - values["ic"][s] for s in seeds], lower_is_better),
                              "lower_is_better": lower_is_better}
        out[method] = entry
    return out


def correct(comparisons: list[dict]) -> None:
    """Holm-correct, as one family, every paired test against IC in these :func:`comparison` results."""
    tests = [entry["vs_ic"] for c in comparisons for entry in c.values() if "vs_ic" in entry]
    holm(tests, [t["lower_is_better"] for t in tests])


def steps_to(curve: list[dict], threshold: float, censored: int) -> int:
    """The first judged step whose 1-step held-out Frechet is at most ``threshold``, else ``censored``."""
    return next((r["step"] for r in sorted(curve, key=lambda r: r["step"]) if r[ENDPOINT] <= threshold),
                censored)


def summarize(rows: list[dict], seconds_per_step: dict[str, float], floor: dict, inception: dict) -> dict:
    """docs/evidence-protocol.md's figures for one data set: the real floor and E2's threshold; E1 (the final
    1-step held-out Frechet) and E2 (the steps to the threshold, with seconds beside them) against IC, one
    Holm family; the exploratory figures, another; the runs flagged by the memorisation check, those that end
    worse than at half the run, and the seed whose grid is shown."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    judged = sorted({r["step"] for r in rows})
    last, every = judged[-1], judged[-1] - judged[-2] if len(judged) > 1 else judged[-1]
    half = nearest(judged, last / 2)  # the middle checkpoint kept_steps keeps
    runs = {m: sorted({r["seed"] for r in rows if r["method"] == m}) for m in methods}
    curve = {(m, s): [r for r in rows if r["method"] == m and r["seed"] == s]
             for m in methods for s in runs[m]}

    def by_seed(figure):
        return {m: {s: figure(curve[m, s]) for s in runs[m]} for m in methods}

    def at(step, key):
        return lambda mine: next(r[key] for r in mine if r["step"] == step)

    threshold = THRESHOLD_FLOORS * floor["frechet"]
    steps = by_seed(lambda mine: steps_to(mine, threshold, last + every))
    final, halfway = by_seed(at(last, ENDPOINT)), by_seed(at(half, ENDPOINT))
    primary = {"final": comparison(final, True), "steps_to_threshold": comparison(steps, True)}
    correct(list(primary.values()))
    exploratory = {"half": comparison(halfway, True),
                   "best": comparison(by_seed(lambda mine: min(r[ENDPOINT] for r in mine)), True),
                   "final_2step": comparison(by_seed(at(last, "frechet_held_out_2step")), True),
                   "final_confident": comparison(by_seed(at(last, "confident_1step")), False),
                   "final_coverage": comparison(by_seed(at(last, "coverage_1step")), False),
                   "final_reference_half": comparison(by_seed(at(last, "frechet_1step")), True)}
    if inception:
        scored = [m for m in methods if all(f"{m}_s{s}" in inception for s in runs[m])]
        exploratory["inception_fid"] = comparison(
            {m: {s: inception[f"{m}_s{s}"][last]["fid_1step"] for s in runs[m]} for m in scored}, True)
    correct(list(exploratory.values()))
    ic_final = sorted(runs["ic"], key=lambda s: (final["ic"][s], s))
    return {
        "last_step": last, "half_step": half, "every": every, "seeds": runs, "floor": floor,
        "threshold": threshold, "seconds_per_step": seconds_per_step,
        "seconds_to_threshold": {m: statistics.mean(v * seconds_per_step[m] for v in steps[m].values())
                                 for m in methods},
        "reached_threshold": {m: sum(v <= last for v in steps[m].values()) for m in methods},
        "primary": primary, "exploratory": exploratory,
        "memorising": [{"method": m, "seed": s, "step": r["step"], "closer_share": r["closer_share_1step"]}
                       for (m, s), mine in curve.items() for r in mine
                       if r["closer_share_1step"] > MEMORISING_SHARE],
        "ends_worse_than_half": [  # a run that ends worse than its own midpoint needs explaining
            {"method": m, "seed": s, "half": halfway[m][s], "final": final[m][s]}
            for m in methods for s in runs[m] if final[m][s] > halfway[m][s]],
        "grid_seed": ic_final[(len(ic_final) - 1) // 2],  # IC's lower median seed on E1
    }


def grids(dataset: str, methods: list[str], seed: int, steps: int, work: Path, out: Path) -> None:
    """``PREFIX_grid_METHOD.png``: 64 1-step samples of each method's final EMA model at ``seed`` (the
    protocol's rule picks it), the same noise for every method."""
    for method in methods:
        model, config = load_model(work / f"{dataset}_{method}_s{seed}_{steps:08}.pth")
        sample_grid(consistency_samples(model, config, 64, 1, seed=JUDGE_NOISE_SEED),
                    out.with_name(f"{out.name}_grid_{method}.png"))


def seed_list(text: str) -> list[int]:
    """``"0-9"`` or ``"100,101"`` as seeds."""
    seeds = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds += range(int(low), int(high or low) + 1)
    return seeds


def main() -> None:
    p = parser(__doc__, "digits, IC and GC mu 0.5, seeds 0-1, 8 steps, judge on 50")
    p.add_argument("--dataset", choices=list(CONFIGS), default="digits")
    p.add_argument("--methods", default="ic,gc_mu0.5", help=f"comma-separated, from {', '.join(METHODS)}")
    p.add_argument("--seeds", type=seed_list, help="seeds, as 0-9 or 100,101 (default 0-9)")
    p.add_argument("--grid", action="store_true", help="every point of the tuning grid, not the recipe alone")
    p.add_argument("--jobs", type=int, default=1, help="runs side by side, one thread each")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "evidence",
                   help="output prefix: PREFIX_DATASET[_grid].{csv,json}, plots, grids; runs in PREFIX_runs/")
    args = p.parse_args()
    methods = args.methods.split(",")
    if "ic" not in methods or any(m not in METHODS for m in methods):
        p.error(f"--methods must include ic and come from {', '.join(METHODS)}")
    seeds = args.seeds or ([0, 1] if args.quick else list(range(10)))
    if args.jobs < 1 or len(seeds) < 1:
        p.error("--jobs and --seeds must be at least 1")
    recipe = load_config(CONFIGS[args.dataset])
    steps = 8 if args.quick else recipe["consistency"]["total_steps"]
    every, judge_n = max(steps // 16, 1), 50 if args.quick else 1000
    work = args.out.parent / f"{args.out.name}_runs"
    work.mkdir(parents=True, exist_ok=True)
    judge = Judge.for_config(recipe)
    floor = judge.floor()
    out = args.out.parent / f"{args.out.name}_{args.dataset}{'_grid' if args.grid else ''}"
    rows, summaries, training_seconds = [], {}, 0.0
    for variant in grid_variants(args.dataset) if args.grid else [None]:
        tag = variant[0] if variant else ""
        mine, seconds_per_step, seconds = run_all(args.dataset, methods, seeds, steps, every, judge_n, work,
                                                  args.jobs, variant=variant, held_out=True)
        rows += [{**r, "recipe": tag or "shared"} for r in mine]
        summaries[tag or "shared"] = summarize(mine, seconds_per_step, floor, {})
        training_seconds += seconds
    write_csv(rows, out.with_suffix(".csv"))
    if not args.grid:
        plot_curves(rows, "step", [ENDPOINT, "confident_1step", "closer_share_1step"], "method",
                    out.with_name(f"{out.name}_step.png"), linear=("confident_1step", "closer_share_1step"))
        grids(args.dataset, methods, summaries["shared"]["grid_seed"], steps, work, out)
    write_json({"machine": machine(), "jobs": args.jobs, "threads_per_run": 1 if args.jobs > 1 else None,
                "training_seconds": round(training_seconds), "dataset": args.dataset, "methods": methods,
                "seeds": seeds, "steps": steps, "every": every, "judge_n": judge_n,
                "judge_accuracy": judge.accuracy, "grid": GRID if args.grid else None,
                "summaries": summaries, "command": command()}, out.with_suffix(".json"))
    for name, s in summaries.items():
        print(name, json.dumps({m: e["mean"] for m, e in s["primary"]["final"].items()}))


if __name__ == "__main__":
    main()
