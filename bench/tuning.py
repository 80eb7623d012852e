"""Consistency tuning from a diffusion model (as ECT, via train_gc.py --init-from): IC against GC, and both
against training from scratch.

1. Pretrain a diffusion model on the data set with k-diffusion's parts: the recipe's inner model in
   k-diffusion's Denoiser (EDM preconditioning and loss weighting), noise levels from its log-normal density
   (EDM's P_mean -1.2, P_std 1.2), the recipe's optimizer at a constant rate, and an EMA (K.utils.ema_update).
   The EMA model is written as a k-diffusion inference file (safetensors, its config in the metadata) and
   judged on samples of k-diffusion's Heun sampler (Karras et al.'s 18 steps, 35 evaluations), to show what is
   tuned, and by its denoising error at a few noise levels up to sigma_max (where tuning's 1-step map starts).
   The file is kept (under version control in the default output folder) and reused: retraining it on another
   machine gives other weights, and every seed must tune the same model (its runs name it by content digest).
2. Tune it with train_gc.py's loop, IC and GC (mu 0.5), several seeds, the recipe unchanged (its steps and
   curriculum), judged along the way exactly as bench/convergence.py judges runs from scratch.
3. Compare: tuned GC against tuned IC, paired by seed; and the steps each needs to reach the best mean 1-step
   Frechet distance of IC trained from scratch (bench/convergence.py's runs of the same data set).

    python -m bench.tuning --quick    # smoke run: 20 pretraining steps, 8 tuning steps, 1 seed
    python -m bench.tuning --jobs 2   # digits: 2000 pretraining steps, 5 seeds (~25 min, 2 cores)
    python -m bench.tuning --dataset mnist --jobs 2
                                      # MNIST: 10000 pretraining steps, 5 seeds (~2-3 h, 2 cores)

Run bench/convergence.py for the same data set first: its curves are the "from scratch" side.
"""

import copy
import csv
import json
import os
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")

import k_diffusion as K
import torch

from kdiff_gc import optim
from kdiff_gc.config import load_config
from kdiff_gc.inference import load_k_diffusion_denoiser, read_weights, write_inference
from bench.convergence import (CONFIGS, JUDGE_NOISE_SEED, final_grids, judged_steps, mean_curve, run_all,
                               summarize, weights_digest)
from bench.judge import Judge, dataset_tensors, reference_half
from bench.report import ROOT, command, machine, parser, plot_curves, sample_grid, write_csv, write_json

METHODS = ["ic", "gc_mu0.5"]
# EDM's training noise levels, k-diffusion's default
LOG_NORMAL = {"type": "lognormal", "mean": -1.2, "std": 1.2}
EMA_DECAY = 0.999
# Diffusion training steps per data set: enough for k-diffusion's Heun sampler to draw digit shapes, so that
# there is something to tune. 2000 steps do on digits (8x8; Heun judge Frechet 1.50). On MNIST (28x28, a
# larger model) 2000 steps give scribbles (Frechet 45); 10000 (19 to 33 min on 2 threads, by machine) give
# digit-like strokes (two such models, trained alike on two machines: Frechet 19.6 and 52.9), against about
# 6.5 for consistency training from scratch.
PRETRAIN_STEPS = {"digits": 2000, "mnist": 10000}
# The diffusion model's denoising error is measured at these noise levels and at its sigma_max, on the first
# ERROR_IMAGES images: EDM's log-normal density draws sigma > 10 once in about 570 draws and sigma > 80 once
# in about 600,000, so a briefly trained model may denoise worst exactly where tuning's 1-step map starts.
ERROR_SIGMAS, ERROR_IMAGES = [0.5, 2.0, 10.0], 512


def pretrain(config: dict, steps: int, batch_size: int, seed: int, path: Path,
             good_enough: Callable[[Path], bool] | None = None, every: int = 0) -> int:
    """A diffusion model of the data set, its EMA written to ``path`` as a k-diffusion inference file (and the
    seconds it took, ``good_enough``'s included, to ``path``.json). With ``good_enough``, the EMA is also
    written every ``every`` steps and training stops at the first such file it accepts. Returns the steps
    trained."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    model_config = {**config["model"], "sigma_sample_density": LOG_NORMAL}
    inner = K.config.make_model({**config, "model": model_config})
    ema = copy.deepcopy(inner).requires_grad_(False).eval()
    denoiser = K.config.make_denoiser_wrapper({"model": model_config})(inner)
    density = K.config.make_sample_density(model_config)
    opt = optim.make_optimizer(config, inner)
    images = dataset_tensors(config)[0]
    for step in range(1, steps + 1):
        reals = images[torch.randint(len(images), [batch_size])]
        loss = denoiser.loss(reals, torch.randn_like(reals), density([batch_size])).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        K.utils.ema_update(inner, ema, EMA_DECAY)
        if step == steps or good_enough and step % every == 0:
            write_inference(ema.state_dict(), {**config, "model": model_config}, path)
            if good_enough and good_enough(path) or step == steps:  # the last step is checked too
                break
    write_json({"seconds": time.perf_counter() - started}, path.with_suffix(".json"))
    return step


def protocol_teacher(dataset: str, work: Path, max_steps: int, floors: float, judge: Judge, judge_n: int,
                     every: int) -> tuple[Path, dict]:
    """docs/evidence-protocol.md section 7's diffusion model and its record: pretrained (:func:`pretrain`) on
    the judge's reference half until its Heun samples (:func:`diffusion_samples`) reach a held-out Frechet of
    at most ``floors`` real floors, checked every ``every`` steps, then named by its weights' digest,
    ``DATASET_diffusion_protocol_DIGEST.safetensors``. Every tuned run must start from the same model, so a
    model kept in ``work`` is reused; one that stops short of the target at ``max_steps`` is a one-line
    ``SystemExit``."""
    found = sorted(work.glob(f"{dataset}_diffusion_protocol_*.safetensors"))
    if found:
        record = json.loads(found[0].with_suffix(".json").read_text())
        if record["floors"] > floors:
            raise SystemExit(f"{found[0]} was pretrained to {record['floors']:g} real floors, not "
                             f"{floors:g}: remove it (and its .json) to pretrain again")
        return found[0], record
    config = load_config(reference_half(json.loads(CONFIGS[dataset].read_text())))
    target, checks = floors * judge.floor()["frechet"], []

    def good_enough(path: Path) -> bool:
        checks.append({"frechet_held_out": judge.score(diffusion_samples(path, judge_n))["frechet_held_out"]})
        return checks[-1]["frechet_held_out"] <= target

    staged = work / f"{dataset}_diffusion_protocol.safetensors"
    steps = pretrain(config, max_steps, config["training"]["batch_size"], 0, staged, good_enough, every)
    for i, check in enumerate(checks):
        check["step"] = min((i + 1) * every, steps)
    seconds = json.loads(staged.with_suffix(".json").read_text())["seconds"]
    if checks[-1]["frechet_held_out"] > target:
        raise SystemExit(f"the diffusion model's Heun samples reached a held-out Frechet of "
                         f"{checks[-1]['frechet_held_out']:.3f} after {steps} steps, above the protocol's "
                         f"{floors:g} real floors ({target:.3f}): give more --pretrain-steps")
    digest = weights_digest(str(staged))
    path = work / f"{dataset}_diffusion_protocol_{digest}.safetensors"
    staged.rename(path)
    record = {"steps": steps, "seconds": seconds, "floors": floors, "target": target, "every": every,
              "judge_n": judge_n, "checks": checks, "sha256_16": digest}
    staged.with_suffix(".json").unlink()
    write_json(record, path.with_suffix(".json"))
    return path, record


@torch.no_grad()
def diffusion_samples(path: Path, n: int) -> torch.Tensor:
    """``n`` samples of the inference file's model with k-diffusion's Heun sampler on Karras et al.'s 18 noise
    levels (from its sigma_min to its sigma_max, rho 7), the judge's noise."""
    denoiser, m = load_k_diffusion_denoiser(path), read_weights(path)[1]["model"]
    sigmas = K.sampling.get_sigmas_karras(18, m["sigma_min"], m["sigma_max"], rho=7.0)
    noise = torch.randn([n, m["input_channels"], *m["input_size"]],
                        generator=torch.Generator().manual_seed(JUDGE_NOISE_SEED))
    return K.sampling.sample_heun(denoiser, noise * sigmas[0], sigmas, disable=True)


@torch.no_grad()
def denoising_error(denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], images: torch.Tensor,
                    sigmas: list[float], seed: int = 0) -> dict[str, float]:
    """Mean squared error of D(x + sigma n, sigma) against x, n ~ N(0, I), at each of ``sigmas`` (keyed by
    sigma as text). Tuning starts from D(sigma_max z, sigma_max) as its 1-step map, so an error at high noise
    above that of the data mean (the best constant) is one tuning must first unlearn."""
    noise = torch.Generator().manual_seed(seed)
    return {f"{s:g}": (denoiser(images + s * torch.randn(images.shape, generator=noise),
                                torch.full([len(images)], s))
                       - images).square().mean().item() for s in sigmas}


def read_rows(path: Path) -> list[dict]:
    """bench/convergence.py's judge rows, with their numbers as numbers."""
    with open(path, newline="") as f:
        return [{**r, "seed": int(r["seed"]), "step": int(r["step"]),
                 **{k: float(r[k]) for k in r if k not in ("dataset", "method", "seed", "step")}}
                for r in csv.DictReader(f)]


def main() -> None:
    p = parser(__doc__, "20 pretraining steps, 8 tuning steps, 1 seed, judge on 50", seeds=5)
    p.add_argument("--dataset", choices=list(CONFIGS), default="digits")
    p.add_argument("--pretrain-steps", type=int, help="diffusion training steps (default per data set: "
                   + ", ".join(f"{k} {v}" for k, v in PRETRAIN_STEPS.items()) + "; 20 with --quick)")
    p.add_argument("--steps", type=int, help="tuning steps (default the recipe's consistency.total_steps)")
    p.add_argument("--every", type=int, help="judge every this many steps (default steps / 16)")
    p.add_argument("--judge-n", type=int, help="samples per judgement (default 1000; 50 with --quick)")
    p.add_argument("--jobs", type=int, default=1, help="runs side by side, one thread each")
    p.add_argument("--scratch", type=Path, default=ROOT / "docs" / "bench" / "convergence",
                   help="bench/convergence.py's output prefix, for the runs from scratch "
                        "(PREFIX_DATASET.csv)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "tuning",
                   help="output prefix: PREFIX_DATASET.{csv,json}, plots and grids, runs in PREFIX_runs/")
    args = p.parse_args()
    config = load_config(CONFIGS[args.dataset])
    pretrain_steps = args.pretrain_steps or (20 if args.quick else PRETRAIN_STEPS[args.dataset])
    seeds, judge_n = args.seeds or (1 if args.quick else 5), args.judge_n or (50 if args.quick else 1000)
    steps = args.steps or (8 if args.quick else config["consistency"]["total_steps"])
    every = args.every or max(steps // 16, 1)
    scratch_csv = args.scratch.parent / f"{args.scratch.name}_{args.dataset}.csv"
    if min(pretrain_steps, seeds, args.jobs, steps, every) < 1 or judge_n < 2:
        p.error("steps, seeds, --every and --jobs must be at least 1, --judge-n at least 2")
    if not scratch_csv.is_file():
        p.error(f"{scratch_csv} is missing: run bench/convergence.py --datasets {args.dataset} first "
                "(or pass --scratch)")
    scratch = [r for r in read_rows(scratch_csv) if r["method"] in METHODS]
    if judged_steps(steps, every) != sorted({r["step"] for r in scratch}):
        p.error(f"{scratch_csv} was judged at other steps: give the --steps and --every it was run with")
    work = args.out.parent / f"{args.out.name}_runs"
    work.mkdir(parents=True, exist_ok=True)
    teacher = work / f"{args.dataset}_diffusion_{pretrain_steps}.safetensors"
    if not teacher.exists():
        pretrain(config, pretrain_steps, config["training"]["batch_size"], 0, teacher)
    pretrain_seconds = json.loads(teacher.with_suffix(".json").read_text())["seconds"]
    judge = Judge.for_config(config)
    teacher_samples = diffusion_samples(teacher, judge_n)
    teacher_scores = judge.score(teacher_samples)
    images = dataset_tensors(config)[0][:ERROR_IMAGES]
    sigmas = [*ERROR_SIGMAS, float(config["model"]["sigma_max"])]  # pretrain keeps the recipe's noise range
    teacher_error = {"mse": denoising_error(load_k_diffusion_denoiser(teacher), images, sigmas),
                     "data_mean_mse": (images - images.mean(0)).square().mean().item()}
    out = args.out.parent / f"{args.out.name}_{args.dataset}"
    sample_grid(teacher_samples[:64], out.with_name(f"{out.name}_grid_diffusion.png"))
    rows, seconds_per_step, training_seconds = run_all(args.dataset, METHODS, range(seeds), steps, every,
                                                       judge_n, work, args.jobs, str(teacher))
    tuned = summarize(rows, seconds_per_step, {})
    scratch_best = min(mean_curve(scratch, "ic", "frechet_1step").values())
    curves = {f"scratch_{m}": mean_curve(scratch, m, "frechet_1step") for m in METHODS}
    curves |= {f"tuned_{m}": mean_curve(rows, m, "frechet_1step") for m in METHODS}
    to_scratch_best = {k: next((s for s, v in c.items() if v <= scratch_best), None)
                       for k, c in curves.items()}
    both = ([{**r, "method": f"scratch_{r['method']}"} for r in scratch]
            + [{**r, "method": f"tuned_{r['method']}"} for r in rows])
    write_csv(rows, out.with_suffix(".csv"))
    plot_curves(both, "step", ["frechet_1step", "confident_1step", "frechet_2step"], "method",
                out.with_name(f"{out.name}_step.png"), linear=("confident_1step",))
    final_grids(args.dataset, METHODS, steps, work, out)
    write_json({"machine": machine(), "jobs": args.jobs, "training_seconds": round(training_seconds),
                "dataset": args.dataset, "methods": METHODS, "seeds": seeds, "steps": steps, "every": every,
                "judge_n": judge_n, "pretrain": {"steps": pretrain_steps, "seconds": pretrain_seconds,
                                                 "sigma_sample_density": LOG_NORMAL, "ema_decay": EMA_DECAY,
                                                 "heun_18_steps": teacher_scores, "denoising": teacher_error},
                "scratch": str(scratch_csv.relative_to(ROOT) if scratch_csv.resolve().is_relative_to(ROOT)
                               else scratch_csv),
                "scratch_ic_best_frechet_1step": scratch_best, "to_scratch_ic_best": to_scratch_best,
                "summary": tuned, "command": command()},
               out.with_suffix(".json"))
    print(json.dumps({"teacher": teacher_scores, "to_scratch_ic_best": to_scratch_best,
                      "tuned_final_frechet_1step": tuned["final_frechet_1step"]}, indent=2))


if __name__ == "__main__":
    main()
