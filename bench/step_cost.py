"""Seconds per training step and peak memory of IC, batch-OT and GC, as ratios to IC.

Each step is the library's :func:`kdiff_gc.train_step` (loss, backward, clip, the config's optimizer, the
LR schedule, the EMA) on a :class:`kdiff_gc.TrainState` built from the config, as train_gc.py runs it, at
the curriculum's midpoint; only the coupling changes. All variants share one model, one batch and one
process, and are timed in alternation (round-robin
over repeats), so machine noise hits them alike; each ratio is a median over rounds with its spread.
"gc_full_batch" runs the generator on the whole batch and masks afterwards, as the official code does;
plain GC runs it only on the selected rows. The floor of GC at ``mu`` is IC plus ``mu`` times a no-grad
forward pass of the generator on the whole batch (timed in the same rounds): what GC costs beyond it
is the coupling's own overhead.

    python -m bench.step_cost --quick                 # seconds, CPU
    python -m bench.step_cost                         # the CIFAR-10 model size (use a GPU), bf16 there
"""

import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")

import accelerate
import k_diffusion as K
import numpy as np
import torch

import kdiff_gc
from kdiff_gc.coupling import CouplingContext, noisy_pair
from kdiff_gc.runtime import default_device, has_accelerator
from kdiff_gc.sampling import sample_shape
from bench.report import ROOT, command, machine, parser, write_csv, write_json



class FullBatchGC(kdiff_gc.GeneratorInduced):
    """GC as the official code computes it: the generator on every row, then a mask (for comparison only)."""

    def __call__(self, x0, z, sigma, sigma_next, context: CouplingContext):
        is_gc = torch.rand(x0.shape[0], device=x0.device) < self.mu_at(context.step, context.total_steps)
        generator = self.generator_model(context)
        with torch.no_grad(), K.utils.eval_mode(generator):
            x0_hat = generator(x0 + K.utils.append_dims(sigma, x0.ndim) * z, sigma, **context.extra_args)
        x0 = torch.where(K.utils.append_dims(is_gc, x0.ndim), x0_hat.to(x0.dtype), x0)
        return noisy_pair(x0, z, sigma, sigma_next, is_gc)


FORWARD = "forward_nograd"  # the generator's pass on the whole batch: the unit of GC's floor
GC_MU = {"gc_mu0.25": 0.25, "gc_mu0.5": 0.5, "gc_mu1.0": 1.0}
VARIANTS = {
    "ic": lambda: kdiff_gc.Independent(),
    "batch_ot": lambda: kdiff_gc.MinibatchOT(),
    **{name: (lambda mu=mu: kdiff_gc.GeneratorInduced(mu=mu)) for name, mu in GC_MU.items()},
    "gc_full_batch_mu0.5": lambda: FullBatchGC(mu=0.5),
}


def quantile(values: list[float], q: float) -> float:
    return float(np.quantile(values, q))


def main() -> None:
    p = parser(__doc__, "the digits model, batch 32, few repeats")
    p.add_argument("--config", type=Path,
                   help="model config (default: cifar10_gc.json, or digits_gc.json with --quick)")
    p.add_argument("--batch-size", type=int, help="default: 512 (32 with --quick)")
    p.add_argument("--repeats", type=int, help="timed rounds per variant (default 20, 3 with --quick)")
    p.add_argument("--mixed-precision", choices=["no", "bf16"], help="default: bf16 on a GPU, no on the CPU")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "step_cost", help="output prefix")
    args = p.parse_args()
    device = default_device()
    config_path = (args.config
                   or ROOT / "configs" / ("digits_gc.json" if args.quick else "cifar10_gc.json")).resolve()
    batch = args.batch_size or (32 if args.quick else 512)
    repeats = args.repeats or (3 if args.quick else 20)
    precision = args.mixed_precision or ("bf16" if device.type == "cuda" else "no")

    config = kdiff_gc.load_config(config_path)
    accelerator = accelerate.Accelerator(mixed_precision=precision, cpu=not has_accelerator())
    state = kdiff_gc.TrainState.from_config(config, accelerator, seed=0)
    x0 = torch.rand([batch, *sample_shape(config)], device=device) * 2 - 1
    losses = {name: kdiff_gc.make_consistency_loss(config, coupling=make())
              for name, make in VARIANTS.items()}
    step_at = config["consistency"]["total_steps"] // 2  # mid-curriculum

    def one_step(name: str) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        if name == FORWARD:
            with torch.no_grad(), accelerator.autocast():
                state.model_ema(x0 + torch.randn_like(x0), torch.ones(batch, device=device))
        else:
            state.step = step_at
            kdiff_gc.train_step(state, losses[name], x0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    names = [*VARIANTS, FORWARD]
    for name in names:  # warm-up
        one_step(name)
    times = {name: [] for name in names}
    peaks = {}
    for _ in range(repeats):
        for name in names:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            times[name].append(one_step(name))
            if device.type == "cuda":
                peaks[name] = max(peaks.get(name, 0), torch.cuda.max_memory_allocated() / 2 ** 20)
    ic = times["ic"]
    rows = []
    for name, t in times.items():
        ratios = [a / b for a, b in zip(t, ic)]
        row = {"variant": name, "median_s": statistics.median(t), "ratio_to_ic": statistics.median(ratios),
               "ratio_q1": quantile(ratios, 0.25), "ratio_q3": quantile(ratios, 0.75),
               "ratio_min": min(ratios), "ratio_max": max(ratios),
               "over_floor": "", "over_floor_q1": "", "over_floor_q3": "",
               "peak_mib": peaks.get(name, float("nan")), "batch": batch, "repeats": repeats,
               "precision": precision}
        if (mu := GC_MU.get(name)) is not None:  # (GC - IC - mu * forward) / IC, round by round
            over = [(g - i - mu * f) / i for g, i, f in zip(t, ic, times[FORWARD])]
            row.update(over_floor=statistics.median(over), over_floor_q1=quantile(over, 0.25),
                       over_floor_q3=quantile(over, 0.75))
        rows.append(row)
    write_csv(rows, args.out.with_suffix(".csv"))
    meta = {"machine": machine(),
            "config": str(config_path.relative_to(ROOT) if config_path.is_relative_to(ROOT) else config_path),
            "batch": batch, "parameters": K.utils.n_params(state.inner),
            "step": "kdiff_gc.train_step",
            "command": command()}
    write_json(meta, args.out.with_suffix(".json"))
    for r in rows:
        floor = f"  over floor {r['over_floor']:+.3f} ({r['over_floor_q1']:+.3f} to " \
            f"{r['over_floor_q3']:+.3f})" \
            if r["over_floor"] != "" else ""
        print(f"{r['variant']:>22}  {r['median_s'] * 1000:8.1f} ms  x{r['ratio_to_ic']:.3f} "
              f"({r['ratio_q1']:.3f}-{r['ratio_q3']:.3f}){floor}  peak {r['peak_mib']:.0f} MiB")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
