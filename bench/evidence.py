"""The runs of docs/evidence-protocol.md: each method trains on the judge's reference half of the data set
(the held-out half stays unseen), with common random numbers across methods of one seed, and is judged every
``steps / 16`` steps on 1000 samples by bench/judge.py (Frechet distance to the held-out half, and the
memorisation check). The summary holds the protocol's endpoints, E1 (the final 1-step held-out Frechet) and
E2 (the steps to 4 real floors), against IC with paired t-tests, exact sign-flip p-values and Holm's
correction, and the exploratory figures as a family of their own.

    python -m bench.evidence --quick                                  # smoke run: 8 steps, 2 seeds
    python -m bench.evidence --seeds 0-9 --jobs 2                     # digits, shared recipe (~45 min)
    python -m bench.evidence --seeds 100-101 --recipe grid --jobs 2   # the tuning grid, tuning seeds
    python -m bench.evidence --recipe best --jobs 2                   # each method at its best point
    python -m bench.evidence --seeds 0-9 --inception-n 500            # and Inception FID (~25 min)
    python -m bench.evidence --recipe tuned --methods ic,gc_mu0.5,gc_mu0.3 --jobs 2
                                      # tuned from the protocol's diffusion model (pretrained first)

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
from kdiff_gc.data import make_dataset
from kdiff_gc.inference import load_model
from bench.convergence import (CONFIGS, JUDGE_NOISE_SEED, METHODS, comparison, inception_scores, nearest,
                               run_all)
from bench.judge import Judge, consistency_samples, halves
from bench.tuning import diffusion_samples, protocol_teacher
from bench.report import (ROOT, command, holm, machine, parser, plot_curves, sample_grid,
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


# Each family's number of tests as the protocol plans them, so that a test not yet run counts as p = 1 and
# no correction loosens as runs are added: (E1 and E2, exploratory) of one data set's file.
# Shared recipe: E1 and E2 of GC mu 0.5, batch-OT, GC mu 0.3, GC mu 0.7 and the two tuned-from-diffusion
# comparisons (12); 6 exploratory figures for each of the four methods, and GC's Inception FID (25).
# Each at its own best: GC mu 0.5's E1 and E2 (the page corrects them with the other data set's, 4 in all);
# its 6 exploratory figures and Inception FID (7). The tuning grid's comparisons carry no verdict.
# Tuned from a diffusion model: its two comparisons' E1 and E2 belong to the shared recipe's family of 12 (its
# other tests counting as p = 1 here, which is stricter than one correction of all 12); its 6 exploratory
# figures for each of the three methods (18).
FAMILY_SIZES = {"shared": (12, 25), "best": (4, 7), "tuned": (12, 18), "grid": (None, None)}
# The diffusion model that tuned runs start from (docs/evidence-protocol.md section 7): Heun samples within
# TEACHER_FLOORS real floors, checked every TEACHER_EVERY steps, for at most TEACHER_MAX_STEPS steps.
TEACHER_FLOORS, TEACHER_EVERY, TEACHER_MAX_STEPS = 2.0, 2000, {"digits": 30000, "mnist": 60000}


def correct(comparisons: list[dict], size: int | None) -> None:
    """Holm-correct, as one family of ``size`` tests, every paired test against IC in these
    :func:`comparison` results."""
    tests = [entry["vs_ic"] for c in comparisons for entry in c.values() if "vs_ic" in entry]
    holm(tests, [t["lower_is_better"] for t in tests], size)


def steps_to(curve: list[dict], threshold: float, censored: int) -> int:
    """The first judged step whose 1-step held-out Frechet is at most ``threshold``, else ``censored``."""
    return next((r["step"] for r in sorted(curve, key=lambda r: r["step"]) if r[ENDPOINT] <= threshold),
                censored)


def summarize(rows: list[dict], seconds_per_step: dict[str, float], floor: dict, inception: dict,
              family_sizes: tuple[int | None, int | None] = (None, None)) -> dict:
    """docs/evidence-protocol.md's figures for one data set: the real floor and E2's threshold; E1 (the final
    1-step held-out Frechet) and E2 (the steps to the threshold, with seconds beside them) against IC, one
    Holm family; the exploratory figures, another; the runs flagged by the memorisation check, those that end
    worse than at half the run, and the seed whose grid is shown. ``family_sizes``: the two families'
    planned sizes (:data:`FAMILY_SIZES`; None: the tests present)."""
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
    correct(list(primary.values()), family_sizes[0])
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
    correct(list(exploratory.values()), family_sizes[1])
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


def grids(dataset: str, recipes: dict[str, str], seed: int, steps: int, work: Path, out: Path) -> None:
    """``PREFIX_grid_METHOD.png``: 64 1-step samples of each method's final EMA model (in its recipe, by tag)
    at ``seed`` (the protocol's rule picks it), the same noise for every method."""
    for method, tag in recipes.items():
        tag = "" if tag == "shared" else tag
        model, config = load_model(work / f"{dataset}_{method}{tag}_s{seed}_{steps:08}.pth")
        sample_grid(consistency_samples(model, config, 64, 1, seed=JUDGE_NOISE_SEED),
                    out.with_name(f"{out.name}_grid_{method}.png"))


def seed_list(text: str) -> list[int]:
    """``"0-9"`` or ``"100,101"`` as seeds."""
    seeds = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds += range(int(low), int(high or low) + 1)
    return seeds


def best_recipes(grid: dict, methods: list[str]) -> dict[str, str]:
    """Each method's grid point (its tag) with the lowest mean E1 over the tuning seeds: ``grid`` is the
    ``--recipe grid`` run's summaries by tag."""
    return {m: min(grid, key=lambda tag: (grid[tag]["primary"]["final"][m]["mean"], tag)) for m in methods}


def recipe_variants(recipe: str, dataset: str, methods: list[str], grid_file: Path
                    ) -> dict[str, dict[str, tuple[str, dict] | None]]:
    """``{summary name: {method: variant}}``: the shared recipe, every grid point, each method at its best
    grid point (read from ``grid_file``; None where that point is the shared recipe), or the shared recipe
    tuned from a diffusion model (its runs tagged ``_tuned``, kept apart from those from scratch)."""
    if recipe == "shared":
        return {"shared": dict.fromkeys(methods)}
    if recipe == "tuned":
        return {"tuned": dict.fromkeys(methods, ("_tuned", {}))}
    variants = dict(grid_variants(dataset))
    if recipe == "grid":
        return {tag: {m: (tag, sections) for m in methods} for tag, sections in variants.items()}
    chosen = best_recipes(json.loads(grid_file.read_text())["summaries"], methods)
    return {"best": {m: None if is_recipe(dataset, variants[chosen[m]]) else (chosen[m], variants[chosen[m]])
                     for m in methods}}


def is_recipe(dataset: str, sections: dict) -> bool:
    """Whether a grid point leaves the shared recipe as it is: its runs are then the shared recipe's runs
    (the same config and seed give the same run), read back instead of trained again."""
    recipe = json.loads(CONFIGS[dataset].read_text())
    return all(recipe[name] == value for name, value in sections.items())


def run_recipe(dataset: str, variants: dict, seeds: list[int], steps: int, every: int, judge_n: int,
               work: Path, jobs: int, init_from: str | None) -> tuple[list[dict], dict[str, float], float]:
    """Each method's runs in its variant (bench/convergence.py's ``run_all``, on the reference half, from
    ``init_from``'s weights where given), merged: the judge's rows under the method's name, the seconds per
    step, and the training seconds."""
    rows, per_step, seconds = [], {}, 0.0
    for variant in {v[0] if v else "": v for v in variants.values()}.values():
        mine = [m for m, v in variants.items() if v == variant]
        got, got_per_step, got_seconds = run_all(dataset, mine, seeds, steps, every, judge_n, work, jobs,
                                                 init_from, variant, held_out=True)
        rows, seconds = rows + got, seconds + got_seconds
        per_step |= got_per_step
    return rows, per_step, seconds


def inception_by_method(dataset: str, variants: dict, seeds: list[int], step: int, n: int,
                        work: Path) -> dict:
    """Inception FID and KID of IC's and GC mu 0.5's models at ``step``, in their recipes, against the
    held-out half (bench/convergence.py's ``inception_scores``), as ``{METHOD_sSEED: {step: scores}}``."""
    runs = {f"{m}_s{seed}": f"{m}{v[0] if v else ''}_s{seed}" for m, v in variants.items()
            if m in ("ic", "gc_mu0.5") for seed in seeds}
    scores = inception_scores(dataset, list(runs.values()), [step], n, work, held_out=True)
    return {key: scores[run] for key, run in runs.items()}


def arguments():
    """The flags, checked before any run."""
    p = parser(__doc__, "digits, IC and GC mu 0.5, seeds 0-1, 8 steps, judge on 50")
    p.add_argument("--dataset", choices=list(CONFIGS), default="digits")
    p.add_argument("--methods", default="ic,gc_mu0.5", help=f"comma-separated, from {', '.join(METHODS)}")
    p.add_argument("--seeds", type=seed_list, help="seeds, as 0-9 or 100,101 (default 0-9)")
    p.add_argument("--recipe", choices=["shared", "grid", "best", "tuned"], default="shared",
                   help="the shared recipe, every point of the tuning grid, each method at its best point, "
                   "or the shared recipe tuned from the protocol's diffusion model")
    p.add_argument("--pretrain-steps", type=int, help="--recipe tuned: the most diffusion training steps "
                   "(default per data set: " + ", ".join(f"{k} {v}" for k, v in TEACHER_MAX_STEPS.items())
                   + f"; 20 with --quick), checked every {TEACHER_EVERY}")
    p.add_argument("--teacher-floors", type=float, default=TEACHER_FLOORS,
                   help="--recipe tuned: the diffusion model's Heun samples must reach this many real floors "
                   f"(default {TEACHER_FLOORS:g}, the protocol's)")
    p.add_argument("--jobs", type=int, default=1, help="runs side by side, one thread each")
    p.add_argument("--inception-n", type=int, default=0,
                   help="also Inception FID of IC's and GC mu 0.5's final models on N samples against N "
                   "held-out images (0: not scored; about 0.15 s an image)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "evidence",
                   help="output prefix: PREFIX_DATASET[_RECIPE].{csv,json}, plots, grids; runs in "
                   "PREFIX_runs/")
    args = p.parse_args()
    args.methods = args.methods.split(",")
    if "ic" not in args.methods or any(m not in METHODS for m in args.methods):
        p.error(f"--methods must include ic and come from {', '.join(METHODS)}")
    args.seeds = args.seeds or ([0, 1] if args.quick else list(range(10)))
    args.pretrain_steps = args.pretrain_steps or (20 if args.quick else TEACHER_MAX_STEPS[args.dataset])
    if args.jobs < 1 or len(args.seeds) < 1 or args.pretrain_steps < 1:
        p.error("--jobs, --seeds and --pretrain-steps must be at least 1")
    if not args.teacher_floors > 0:
        p.error(f"--teacher-floors {args.teacher_floors}: give a positive number of real floors")
    held_out = len(halves(len(make_dataset(load_config(CONFIGS[args.dataset]))))[1])
    if not 0 <= args.inception_n <= held_out or args.inception_n == 1:
        p.error(f"--inception-n {args.inception_n}: give 0 (not scored) or 2 to {held_out}, the size of "
                "the held-out half")
    args.grid_file = args.out.parent / f"{args.out.name}_{args.dataset}_grid.json"
    if args.recipe == "best" and not args.grid_file.is_file():
        p.error(f"--recipe best reads {args.grid_file}: run --recipe grid on the tuning seeds first")
    return args


def main() -> None:
    args = arguments()
    config = load_config(CONFIGS[args.dataset])
    steps = 8 if args.quick else config["consistency"]["total_steps"]
    every, judge_n = max(steps // 16, 1), 50 if args.quick else 1000
    work = args.out.parent / f"{args.out.name}_runs"
    work.mkdir(parents=True, exist_ok=True)
    judge = Judge.for_config(config)
    out = args.out.parent / (f"{args.out.name}_{args.dataset}" + ("" if args.recipe == "shared"
                                                                  else f"_{args.recipe}"))
    rows, summaries, chosen, training_seconds, teacher, init_from = [], {}, {}, 0.0, {}, None
    if args.recipe == "tuned":
        init_from, record = protocol_teacher(args.dataset, work, args.pretrain_steps, args.teacher_floors,
                                             judge, judge_n, min(TEACHER_EVERY, args.pretrain_steps))
        teacher = {"teacher": {"file": init_from.name, **record}}
    for name, variants in recipe_variants(args.recipe, args.dataset, args.methods, args.grid_file).items():
        mine, per_step, seconds = run_recipe(args.dataset, variants, args.seeds, steps, every, judge_n, work,
                                             args.jobs, init_from and str(init_from))
        rows += [{**r, "recipe": name} for r in mine]
        fids = (inception_by_method(args.dataset, variants, args.seeds, steps, args.inception_n, work)
                if args.inception_n and args.recipe != "grid" else {})
        summaries[name] = summarize(mine, per_step, judge.floor(), fids, FAMILY_SIZES[args.recipe])
        chosen[name] = {m: v[0] if v else "shared" for m, v in variants.items()}
        training_seconds += seconds
    write_csv(rows, out.with_suffix(".csv"))
    if args.recipe != "grid":
        plot_curves(rows, "step", [ENDPOINT, "confident_1step", "closer_share_1step"], "method",
                    out.with_name(f"{out.name}_step.png"), linear=("confident_1step", "closer_share_1step"))
        grids(args.dataset, chosen[args.recipe], summaries[args.recipe]["grid_seed"], steps, work, out)
    if init_from:  # what the tuned runs start from, drawn by the sampler that judged it
        sample_grid(diffusion_samples(init_from, 64),
                    out.with_name(f"{out.name}_grid_diffusion.png"))
    write_json({"machine": machine(), "jobs": args.jobs, "training_seconds": round(training_seconds),
                "dataset": args.dataset, "methods": args.methods, "recipe": args.recipe, "recipes": chosen,
                "seeds": args.seeds, "steps": steps, "every": every, "judge_n": judge_n,
                "judge_accuracy": judge.accuracy, "grid": GRID, "summaries": summaries,
                **({"best": best_recipes(summaries, args.methods)} if args.recipe == "grid" else {}),
                **teacher,
                "command": command()},
               out.with_suffix(".json"))


if __name__ == "__main__":
    main()
