"""Why short consistency-training runs degrade late: the digits recipe, instrumented step by step.

A bare loop (the data in one tensor) built from the same parts as train_gc.py: the config's model in a
ConsistencyDenoiser, the library's loss step and coupling, the config's optimizer and LR schedule,
gradient clipping, k-diffusion's ``ema_update``. Every step it records what could make the late,
fine-grid stages fail:

- ``loss`` and, per sigma band, the mean loss of the rows in it;
- ``grad_norm``: the gradient norm before clipping (``training.grad_clip`` clips it);
- ``grad_cos``: the cosine between this step's and the previous step's gradient (near -1: the optimizer
  steps back and forth across a valley);
- ``ess``: the effective share of the batch that carries the gradient. Row r's loss is
  ``lambda_r d(||delta_r||)``, whose derivative with respect to the student's output has norm
  ``g_r = lambda_r d'(||delta_r||)`` (pseudo-Huber: ``lambda_r ||delta_r|| / sqrt(||delta_r||^2 + c^2)``);
  ``ess = (sum g)^2 / (B sum g^2)`` is 1 when all rows weigh alike and 1/B when one row carries all;
- ``top_row``: the largest ``g_r / sum g``, and ``top_sigma``, the sigma of that row;
- ``ema_gap``: ``||theta - theta_ema|| / ||theta_ema||`` (the EMA is also the GC generator).

Every ``--every`` steps the judge (bench/judge.py) scores 1-step samples of the EMA and of the online
model and 2-step samples of the EMA.

    python -m bench.stability --quick                  # seconds
    python -m bench.stability --seeds 0,1,2 --jobs 2   # the paper's schedule against the digits recipe
    python -m bench.stability --variants paper_schedule,paper_schedule_no_clip,paper_schedule_ic,\
        paper_schedule_lr_1e-4,cap_n161,curriculum_lr,recipe --seeds 0,1,2 --jobs 2 --grids
                                                       # docs/stability.md

Each finished run's rows wait in PREFIX_finished/ until all runs are done, so that the same command,
rerun after an interruption, trains only the runs that had not finished.
"""

import argparse
import copy
import json
import math
import multiprocessing
import os
import shutil
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")

import k_diffusion as K
import torch
from jsonmerge import merge

import kdiff_gc
from kdiff_gc import optim
from kdiff_gc.distances import pseudo_huber_constant
from kdiff_gc.monitor import largest_ratio
from kdiff_gc.precision import fourier_features_in_fp32
from bench.judge import Judge, consistency_samples, dataset_tensors
from bench.report import ROOT, command, enlarge, machine, plot_curves, write_csv, write_json

BANDS = [(0.0, 0.02), (0.02, 0.2), (0.2, 2.0), (2.0, 20.0), (20.0, 81.0)]
PAPER_SCHEDULE = {"lr_sched": {"type": "constant", "warmup": 0.0},
                  "consistency": {"curriculum": {"s1": 1280}}}
VARIANTS = {  # patches over --config (configs/digits_gc.json)
    # the schedule before: the paper's curriculum (N up to 1281) squeezed into the run, Lion at a constant
    # 3e-4
    "paper_schedule": PAPER_SCHEDULE,
    "paper_schedule_no_clip": merge(PAPER_SCHEDULE, {"training": {"grad_clip": 0.0}}),
    "paper_schedule_ic": merge(PAPER_SCHEDULE, {"consistency": {"coupling": {"type": "independent"}}}),
    "paper_schedule_lr_1e-4": merge(PAPER_SCHEDULE, {"optimizer": {"lr": 1e-4}}),
    "cap_n161": {"lr_sched": {"type": "constant", "warmup": 0.0}},  # N capped at 161, constant rate
    "curriculum_lr": {"consistency": {"curriculum": {"s1": 1280}}},  # the rate divided by N, N up to 1281
    "recipe": {},  # configs/digits_gc.json: both
}


def variant_config(base: Path, patch: dict) -> dict:
    return kdiff_gc.load_config(merge(json.loads(base.read_text()), patch))


class RecordingDistance:
    """The loss's distance, recording ``||a - b||`` per row so the gradient weights can be computed."""

    def __init__(self, distance):
        self.distance, self.norms = distance, None

    def __call__(self, a, b):
        self.norms = (a - b).detach().flatten(1).norm(dim=1).double()
        return self.distance(a, b)


def gradient_weights(config: dict, weights: torch.Tensor, norms: torch.Tensor, size: int) -> torch.Tensor:
    """``g_r = lambda_r d'(||delta_r||)``: pseudo-Huber ``x / sqrt(x^2 + c^2)``, squared L2 ``2 x``."""
    if config["consistency"]["distance"]["type"] == "l2":
        return weights * 2 * norms
    c = config["consistency"]["distance"]["c"] or pseudo_huber_constant(size)
    return weights * norms / (norms ** 2 + c ** 2).sqrt()


def flat_grad(params) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in params if p.grad is not None])


def save_grid(model, config: dict, path: Path, n: int = 64) -> None:
    """1-step samples of ``model`` above 2-step samples from the same noise, as train_gc.py's demo grids
    (enlarged, so that 8x8 digits can be seen)."""
    from torchvision.utils import make_grid

    rows = [consistency_samples(model, config, n, steps, seed=10 ** 6) for steps in (1, 2)]
    enlarge(K.utils.to_pil_image(make_grid(torch.cat(rows).clamp(-1, 1), nrow=8, padding=1, pad_value=1)),
            path)


def train(config: dict, seed: int, steps: int, every: int, images: torch.Tensor, judge: Judge, n_eval: int,
          grid: Path | None = None):
    """One instrumented run; returns (per-step rows, per-evaluation rows). ``grid``: where to save the
    EMA model's final samples."""
    torch.manual_seed(seed)
    inner = fourier_features_in_fp32(K.config.make_model(config))
    inner_ema = copy.deepcopy(inner).requires_grad_(False)
    c = config["consistency"]
    model = kdiff_gc.ConsistencyDenoiser(inner, config["model"]["sigma_data"], c["sigma_min"])
    model_ema = kdiff_gc.ConsistencyDenoiser(inner_ema, config["model"]["sigma_data"], c["sigma_min"]).eval()
    loss_fn = kdiff_gc.make_consistency_loss(config)
    loss_fn.distance = recorder = RecordingDistance(loss_fn.distance)
    opt = optim.make_optimizer(config, inner)
    sched, ema_sched = optim.make_lr_scheduler(config, opt), optim.make_ema_schedule(config)
    ema_update = optim.EmaUpdate(inner, inner_ema)
    params = list(inner.parameters())
    batch, clip, total = config["training"]["batch_size"], config["training"]["grad_clip"], c["total_steps"]
    order_gen = torch.Generator().manual_seed(seed + 1)
    order, cursor, previous = torch.randperm(len(images), generator=order_gen), 0, None
    steps_rows, eval_rows = [], []
    for step in range(steps):
        if cursor + batch > len(images):
            order, cursor = torch.randperm(len(images), generator=order_gen), 0
        x0 = images[order[cursor:cursor + batch]]
        cursor += batch
        sigmas, probabilities, weights = loss_fn.schedule.tables(step, total)
        indices = kdiff_gc.schedules.sample_indices(probabilities, batch)
        out = loss_fn(model, model_ema, x0, step, total, indices=indices)
        out.loss.mean().backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf")).item()
        grad = flat_grad(params)
        grad_cos = (math.nan if previous is None
                    else torch.nn.functional.cosine_similarity(grad, previous, dim=0).item())
        previous = grad
        opt.step()
        opt.zero_grad()
        sched.step()
        optim.update_ema(ema_update, ema_sched)

        g = gradient_weights(config, weights[indices], recorder.norms, x0[0].numel())
        sigma_rows = sigmas[indices]
        with torch.no_grad():
            ema_gap = (torch.cat([(p - q).flatten() for p, q in zip(params, inner_ema.parameters())]).norm()
                       / torch.cat([q.flatten() for q in inner_ema.parameters()]).norm()).item()
        row = {"step": step + 1, "n_scales": len(sigmas), "loss": out.loss.mean().item(),
               "grad_norm": grad_norm, "grad_cos": grad_cos,
               "ess": (g.sum() ** 2 / (len(g) * (g ** 2).sum())).item(),
               "top_row": (g.max() / g.sum()).item(), "top_sigma": sigma_rows[g.argmax()].item(),
               "ema_gap": ema_gap}
        for lo, hi in BANDS:
            rows = (sigma_rows >= lo) & (sigma_rows < hi)
            row[f"loss_{lo:g}_{hi:g}"] = out.loss.detach()[rows].mean().item() if rows.any() else float("nan")
        steps_rows.append(row)
        if (step + 1) % every == 0 or step + 1 == steps:
            evaluation = {"step": step + 1, "n_scales": len(sigmas)}
            with torch.no_grad():
                for name, m, n_steps in (("ema_1step", model_ema, 1), ("ema_2step", model_ema, 2),
                                         ("online_1step", model, 1)):
                    with K.utils.eval_mode(m):
                        scores = judge.score(consistency_samples(m, config, n_eval, n_steps, seed=10 ** 6))
                    evaluation.update({f"{name}_{k}": v for k, v in scores.items()})
            eval_rows.append(evaluation)
            if grid is not None and step + 1 == steps:
                with torch.no_grad(), K.utils.eval_mode(model_ema):
                    save_grid(model_ema, config, grid)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in evaluation.items()}),
                  flush=True)
    return steps_rows, eval_rows


def nan_mean(values) -> float:
    """The mean of the values that are not NaN (NaN if none is): a sigma band may have no row in a step."""
    kept = [v for v in values if not math.isnan(v)]
    return statistics.fmean(kept) if kept else math.nan


def binned(rows: list[dict], keys: list[str], width: int) -> list[dict]:
    """Per variant and seed, the mean of each key over blocks of ``width`` steps (labelled by the block's
    end)."""
    groups: dict = {}
    for r in rows:
        block = (r["step"] - 1) // width
        groups.setdefault((r["variant"], r["seed"], block), []).append(r)
    return [{"variant": v, "seed": s, "step": (b + 1) * width, **{k: nan_mean(r[k] for r in g) for k in keys}}
            for (v, s, b), g in groups.items()]


def stages(rows: list[dict], keys: list[str]) -> list[dict]:
    """Per variant and curriculum stage N, the median of each key over its steps and seeds."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["variant"], r["n_scales"]), []).append(r)
    return [{"variant": v, "n_scales": n, "steps": len(g),
             **{k: statistics.median(r[k] for r in g if not math.isnan(r[k])) for k in keys}}
            for (v, n), g in groups.items()]


def run_one(config_path: Path, variant: str, seed: int, steps: int | None, every: int, n_eval: int,
            grid: Path | None, threads: int, done: Path) -> tuple[list[dict], list[dict]]:
    """One (variant, seed) run, in its own process when runs go side by side. Its rows are also written to
    ``done``, and a rerun with the same arguments reads them back there instead of training again (a
    full run takes an hour; an interruption should not cost the runs that finished)."""
    arguments = [str(config_path), variant, seed, steps, every, n_eval]
    if done.exists() and (kept := json.loads(done.read_text()))["arguments"] == arguments:
        return kept["steps"], kept["evals"]
    torch.set_num_threads(threads)
    config = variant_config(config_path, VARIANTS[variant])
    steps = steps or config["consistency"]["total_steps"]
    images, labels = dataset_tensors(config)
    judge = Judge(images, labels)
    s, e = train(config, seed, steps, min(every, steps), images, judge, n_eval, grid)
    rows = ([{"variant": variant, "seed": seed, **r} for r in s],
            [{"variant": variant, "seed": seed, **r} for r in e])
    done.parent.mkdir(parents=True, exist_ok=True)
    done.with_suffix(".tmp").write_text(json.dumps({"arguments": arguments, "steps": rows[0],
                                                    "evals": rows[1]}))
    done.with_suffix(".tmp").replace(done)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one seed, 20 steps, judge on 50 samples")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "digits_gc.json")
    p.add_argument("--variants", default="paper_schedule,recipe",
                   help=f"comma-separated, from: {', '.join(VARIANTS)}")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--steps", type=int, help="default consistency.total_steps (20 with --quick)")
    p.add_argument("--every", type=int, default=100, help="judge every this many steps")
    p.add_argument("--evaluate-n", type=int, help="samples per judgement (default 500; 50 with --quick)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs side by side, one thread each (default 1: one run, all threads)")
    p.add_argument("--grids", action="store_true",
                   help="save each run's final samples as PREFIX_VARIANT_sSEED.png")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "stability",
                   help="output prefix: PREFIX_{steps,evals,stages}.csv, PREFIX_{judge,optimizer}.png, "
                        "PREFIX.json")
    args = p.parse_args()
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    if args.jobs < 1:
        p.error(f"--jobs {args.jobs}: give at least 1")
    seeds = [int(s) for s in args.seeds.split(",")]
    n_eval = args.evaluate_n or (50 if args.quick else 500)
    steps = args.steps or (20 if args.quick else None)
    finished = args.out.with_name(args.out.name + "_finished")  # each run's rows until all are written
    tasks = [(args.config, v, seed, steps, args.every, n_eval,
              args.out.with_name(f"{args.out.name}_{v}_s{seed}.png") if args.grids else None,
              1 if args.jobs > 1 else torch.get_num_threads(), finished / f"{v}_s{seed}.json")
             for v in variants for seed in seeds]
    started = time.time()
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(run_one, *zip(*tasks)))
    shutil.rmtree(finished)
    steps_rows = [r for s, _ in results for r in s]
    eval_rows = [r for _, e in results for r in e]
    last = max(r["step"] for r in steps_rows)
    keys = ["loss", "grad_norm", "grad_cos", "ess", "top_row", "ema_gap"]
    write_csv(binned(steps_rows, keys + ["n_scales"] + [f"loss_{lo:g}_{hi:g}" for lo, hi in BANDS],
                     max(last // 100, 1)),
              args.out.with_name(args.out.name + "_steps.csv"))
    write_csv(eval_rows, args.out.with_name(args.out.name + "_evals.csv"))
    write_csv(stages(steps_rows, keys), args.out.with_name(args.out.name + "_stages.csv"))
    plot_curves(eval_rows, "step", ["ema_1step_frechet", "ema_1step_confident", "online_1step_frechet"],
                "variant", args.out.with_name(args.out.name + "_judge.png"), linear=("ema_1step_confident",))
    plot_curves(binned(steps_rows, ["grad_norm", "grad_cos", "ess", "loss"], max(last // 40, 1)), "step",
                ["grad_norm", "grad_cos", "ess", "loss"], "variant",
                args.out.with_name(args.out.name + "_optimizer.png"), linear=("grad_cos", "ess", "loss"))
    ratios = {v: {seed: largest_ratio([r["loss"] for r in steps_rows
                                       if r["variant"] == v and r["seed"] == seed])
                  for seed in seeds} for v in variants}
    write_json({"machine": machine(), "seconds": round(time.time() - started), "jobs": args.jobs,
                "variants": variants, "patches": {v: VARIANTS[v] for v in variants}, "seeds": seeds,
                "judge_accuracy": Judge(*dataset_tensors(variant_config(args.config, {}))).accuracy,
                "largest_loss_ratio": ratios,
                "command": command()},
               args.out.with_suffix(".json"))


if __name__ == "__main__":
    main()
