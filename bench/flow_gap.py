"""Flow gap on exact ground truth: how far each coupling's model is from the true consistency function.

A Gaussian mixture has an exact denoiser, so its probability-flow ODE (Karras et al. 2022, arXiv
2206.00364) gives the true consistency function f*. The same small MLP is trained with IC, batch-OT, GC
(mu 0.3, 0.5, 0.7, 1.0) and CD with the exact teacher, several seeds each, and the EMA model is
measured along training on a fixed evaluation set drawn from the training sigma density:

- flow gap      E ||f_theta(x_sigma, sigma) - f*(x_sigma, sigma)||^2, overall and per sigma band;
- sample        sliced Wasserstein-2 distance between 1-step samples and the mixture;
- transport     E ||f_theta(x_sigma, sigma) - z||^2;
- velocity gap  the paper's CT/CD discrepancy: how far the velocity a coupling's pairs stand for is from
                the true probability-flow velocity at x_{i+1} (see ``velocity_gap``), with the pairs the
                coupling builds from the current EMA model, in batches of the training size; overall,
                per sigma band, and over GC's generator-made rows alone.

    python -m bench.flow_gap --quick      # seconds
    python -m bench.flow_gap              # 3 seeds, 3000 steps, 2-D and 16-D
"""

import json
import os
import time
from pathlib import Path

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")

import accelerate
import torch

import kdiff_gc
from kdiff_gc.toy import EvalSet, GaussianMixture, ToyMLP
from bench.report import ROOT, command, machine, parser, plot_curves, write_csv, write_json

HEADLINE = ["flow_gap", "sample_swd", "transport", "velocity_gap"]  # printed and plotted


def mixture(dim: int) -> GaussianMixture:
    if dim == 2:
        return GaussianMixture.ring(modes=8, radius=1.0, std=0.05)
    means = torch.randn(8, dim, generator=torch.Generator().manual_seed(11))
    return GaussianMixture(means / means.norm(dim=1, keepdim=True) * 1.5, torch.full([8], 0.1))


def couplings(mix: GaussianMixture) -> dict:
    return {"ic": kdiff_gc.Independent(), "batch_ot": kdiff_gc.MinibatchOT(),
            **{f"gc_mu{mu}": kdiff_gc.GeneratorInduced(mu=mu) for mu in (0.3, 0.5, 0.7, 1.0)},
            "cd_exact": kdiff_gc.Distillation(mix.denoiser())}


def train_one(mix, coupling, seed: int, steps: int, evals: int, eval_set: EvalSet, batch: int) -> list[dict]:
    torch.manual_seed(seed)
    inner = ToyMLP(dim=mix.means.shape[1], width=128)
    state = kdiff_gc.TrainState(inner, torch.optim.Adam(inner.parameters(), lr=2e-3),
                                kdiff_gc.EmaSchedule(min_value=0.99, max_value=0.99), total_steps=steps,
                                accelerator=accelerate.Accelerator(cpu=True))
    loss_fn = kdiff_gc.ConsistencyLoss(coupling)
    rows = []
    while state.step < steps:
        kdiff_gc.train_step(state, loss_fn, mix.sample(batch))
        if state.step % (steps // evals) == 0:
            rows.append({"step": state.step, **eval_set.measure(state.model_ema, coupling)})
    return rows


def main() -> None:
    p = parser(__doc__, "2-D only, 1 seed, 100 steps, small evaluation set", seeds=3)
    p.add_argument("--steps", type=int, help="default 3000 (100 with --quick)")
    p.add_argument("--dims", help="mixture dimensions (default 2,16; 2 with --quick)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "flow_gap", help="output prefix")
    args = p.parse_args()
    seeds, steps = args.seeds or (1 if args.quick else 3), args.steps or (100 if args.quick else 3000)
    dims = [int(d) for d in (args.dims or ("2" if args.quick else "2,16")).split(",")]
    n_eval, evals, batch = (256, 2, 128) if args.quick else (2000, 10, 256)
    rows, started = [], time.time()
    for dim in dims:
        mix = mixture(dim)
        eval_set = EvalSet(mix, kdiff_gc.NoiseSchedule(), n_eval, steps, batch)
        for method, coupling in couplings(mix).items():
            for seed in range(seeds):
                for r in train_one(mix, coupling, seed, steps, evals, eval_set, batch):
                    rows.append({"dim": dim, "method": method, "seed": seed, **r})
                print(f"dim {dim} {method} seed {seed}: "
                      + ", ".join(f"{k} {rows[-1][k]:.4g}" for k in HEADLINE))
    write_csv(rows, args.out.with_suffix(".csv"))
    for dim in {r["dim"] for r in rows}:
        plot_curves([r for r in rows if r["dim"] == dim], "step", HEADLINE, "method",
                    args.out.parent / f"{args.out.name}_{dim}d.png")
    meta = {"machine": machine(), "seconds": round(time.time() - started), "seeds": seeds, "steps": steps,
            "command": command()}
    write_json(meta, args.out.with_suffix(".json"))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
