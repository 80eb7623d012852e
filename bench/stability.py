"""Why short consistency-training runs degrade late: the digits recipe, instrumented step by step.

Each run is train_gc.py's loop itself (``kdiff_gc.trainer.Run``, with ``--seed SEED``: its data order,
model, training step and EMA), without checkpoints or demo grids, instrumented through the loop's two
hooks: before each optimizer step (the gradients are there) and after it. Every step it records what
could make the late, fine-grid stages fail:

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

import contextlib
import json
import math
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")

import k_diffusion as K
import torch
from jsonmerge import merge

import kdiff_gc
from kdiff_gc.distances import pseudo_huber_constant
from kdiff_gc.loss import LossOutput
from kdiff_gc.monitor import largest_ratio
from kdiff_gc.options import RunOptions
from kdiff_gc.sampling import sample_shape
from kdiff_gc.train_state import TrainState
from kdiff_gc.trainer import Run
from bench.judge import Judge, consistency_samples, dataset_tensors
from bench.report import ROOT, command, enlarge, machine, parser, plot_curves, write_csv, write_json

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


def variant_file(base: Path, patch: dict) -> dict:
    """The config file's value with the variant's patch over it."""
    return merge(json.loads(base.read_text()), patch)


def gradient_weights(config: dict, out: LossOutput, size: int) -> torch.Tensor:
    """``g_r = lambda_r d'(||delta_r||)``, from each row's loss ``l_r = lambda_r d(||delta_r||)``: for
    pseudo-Huber, ``u = l_r / lambda_r = sqrt(x^2 + c^2) - c`` gives ``x^2 = u (u + 2c)`` and
    ``g_r = lambda_r x / (u + c)``; for squared L2, ``u = x^2`` and ``g_r = 2 lambda_r x``."""
    weights = out.weight.double()
    u = (out.loss.detach().double() / weights).clamp(min=0)
    if config["consistency"]["distance"]["type"] == "l2":
        return 2 * weights * u.sqrt()
    c = config["consistency"]["distance"]["c"] or pseudo_huber_constant(size)
    return weights * (u * (u + 2 * c)).sqrt() / (u + c)


def save_grid(model, config: dict, path: Path, n: int = 64) -> None:
    """1-step samples of ``model`` above 2-step samples from the same noise, as train_gc.py's demo grids
    (enlarged, so that 8x8 digits can be seen)."""
    from torchvision.utils import make_grid

    rows = [consistency_samples(model, config, n, steps, seed=10 ** 6) for steps in (1, 2)]
    enlarge(K.utils.to_pil_image(make_grid(torch.cat(rows).clamp(-1, 1), nrow=8, padding=1, pad_value=1)),
            path)


class Instruments:
    """The hooks of train_gc.py's loop (:class:`kdiff_gc.trainer.Run`) that record a run: before each
    optimizer step, the gradient and the rows' weights; after it, the EMA gap, and every ``every`` steps
    the judge's scores."""

    def __init__(self, config: dict, steps: int, every: int, judge: Judge, n_eval: int, grid: Path | None):
        self.config, self.steps, self.every, self.judge, self.n_eval = config, steps, every, judge, n_eval
        self.grid, self.previous, self.row = grid, None, {}
        self.steps_rows, self.eval_rows = [], []

    def on_gradients(self, state: TrainState, out: LossOutput) -> None:
        grad = torch.cat([p.grad.flatten() for p in state.inner.parameters() if p.grad is not None])
        grad_cos = (math.nan if self.previous is None
                    else torch.nn.functional.cosine_similarity(grad, self.previous, dim=0).item())
        self.previous = grad.clone()
        g = gradient_weights(self.config, out, math.prod(sample_shape(self.config)))
        sigma_rows = out.sigma.double()
        self.row = {"n_scales": out.n_scales, "loss": out.loss.mean().item(), "grad_norm": grad.norm().item(),
                    "grad_cos": grad_cos, "ess": (g.sum() ** 2 / (len(g) * (g ** 2).sum())).item(),
                    "top_row": (g.max() / g.sum()).item(), "top_sigma": sigma_rows[g.argmax()].item()}
        for lo, hi in BANDS:
            rows = (sigma_rows >= lo) & (sigma_rows < hi)
            self.row[f"loss_{lo:g}_{hi:g}"] = (out.loss.detach()[rows].mean().item() if rows.any()
                                               else float("nan"))

    @torch.no_grad()
    def after_step(self, state: TrainState) -> None:
        params, ema = list(state.inner.parameters()), list(state.inner_ema.parameters())
        ema_gap = (torch.cat([(p - q).flatten() for p, q in zip(params, ema)]).norm()
                   / torch.cat([q.flatten() for q in ema]).norm()).item()
        self.steps_rows.append({"step": state.step, **self.row, "ema_gap": ema_gap})
        if state.step % self.every and state.step != self.steps:
            return
        evaluation = {"step": state.step, "n_scales": self.row["n_scales"]}
        for name, model, n_steps in (("ema_1step", state.model_ema, 1), ("ema_2step", state.model_ema, 2),
                                     ("online_1step", state.model, 1)):
            with K.utils.eval_mode(model):
                scores = self.judge.score(consistency_samples(model, self.config, self.n_eval, n_steps,
                                                              seed=10 ** 6))
            evaluation.update({f"{name}_{k}": v for k, v in scores.items()})
        self.eval_rows.append(evaluation)
        if self.grid is not None and state.step == self.steps:
            with K.utils.eval_mode(state.model_ema):
                save_grid(state.model_ema, self.config, self.grid)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in evaluation.items()}),
              flush=True)


def train(raw: dict, seed: int, steps: int, every: int, judge: Judge, n_eval: int,
          grid: Path | None = None) -> tuple[list[dict], list[dict]]:
    """One instrumented run of train_gc.py's loop on the config file's value ``raw`` (data order, model,
    step and EMA as ``train_gc.py --seed SEED`` trains them, with no checkpoint and no demo grid); returns
    (per-step rows, per-evaluation rows). ``grid``: where to save the EMA model's final samples."""
    instruments = Instruments(kdiff_gc.load_config(raw), steps, every, judge, n_eval, grid)
    with tempfile.TemporaryDirectory() as folder:
        config_file = Path(folder) / "config.json"
        config_file.write_text(json.dumps(raw))
        options = RunOptions(config=str(config_file), out_dir=folder, seed=seed, end_step=steps, demo_every=0,
                             num_workers=0, save=False)
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):  # the progress bar
            Run(options, after_step=instruments.after_step, on_gradients=instruments.on_gradients).run()
    return instruments.steps_rows, instruments.eval_rows


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
    raw = variant_file(config_path, VARIANTS[variant])
    config = kdiff_gc.load_config(raw)
    steps = steps or config["consistency"]["total_steps"]
    judge = Judge(*dataset_tensors(config))
    s, e = train(raw, seed, steps, min(every, steps), judge, n_eval, grid)
    rows = ([{"variant": variant, "seed": seed, **r} for r in s],
            [{"variant": variant, "seed": seed, **r} for r in e])
    done.parent.mkdir(parents=True, exist_ok=True)
    done.with_suffix(".tmp").write_text(json.dumps({"arguments": arguments, "steps": rows[0],
                                                    "evals": rows[1]}))
    done.with_suffix(".tmp").replace(done)
    return rows


def main() -> None:
    p = parser(__doc__, "one seed, 20 steps, judge on 50 samples")
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
                "judge_accuracy": Judge(*dataset_tensors(kdiff_gc.load_config(args.config))).accuracy,
                "largest_loss_ratio": ratios,
                "command": command()},
               args.out.with_suffix(".json"))


if __name__ == "__main__":
    main()
