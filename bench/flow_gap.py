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

    python bench/flow_gap.py --quick      # seconds
    python bench/flow_gap.py              # 3 seeds, 3000 steps, 2-D and 16-D
"""

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import k_diffusion as K
import torch

import kdiff_gc
from kdiff_gc.toy import GaussianMixture, ToyMLP
from bench.report import machine, plot_curves, write_csv, write_json

ROOT = Path(__file__).resolve().parents[1]
BANDS = [(0.0, 0.1), (0.1, 1.0), (1.0, 10.0), (10.0, 81.0)]
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


def sliced_w2(a: torch.Tensor, b: torch.Tensor, projections: int = 128) -> float:
    """Sliced Wasserstein-2 between two equal-size point sets (sorted 1-D projections)."""
    dirs = torch.randn(a.shape[1], projections, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0)
    pa, pb = (a.double() @ dirs).sort(0).values, (b.double() @ dirs).sort(0).values
    return (pa - pb).pow(2).mean().sqrt().item()


def velocity_gap(pair: kdiff_gc.Pair, sigma: torch.Tensor, sigma_next: torch.Tensor, denoiser) -> torch.Tensor:
    """Per row ``||v_proxy - v(x_{i+1}, sigma_{i+1})||^2``: the proxy velocity of a pair,
    ``(x_{i+1} - x_i) / (sigma_{i+1} - sigma_i)`` (``z`` for IC and GC pairs, the teacher's step for CD),
    against the probability-flow velocity ``v(x, sigma) = (x - D*(x, sigma)) / sigma`` of the data
    (Karras et al. 2022, arXiv 2206.00364) with the exact denoiser ``D*``. For IC its mean is ``E ||z - E[z | x_sigma]||^2``."""
    proxy = (pair.x_next - pair.x) / (sigma_next - sigma)[:, None]
    true = (pair.x_next - denoiser(pair.x_next, sigma_next)) / sigma_next[:, None]
    return (proxy - true).pow(2).sum(1)


class EvalSet:
    """Fixed (x0, z, sigma) from the training density at the final curriculum, and f* there."""

    def __init__(self, mix: GaussianMixture, loss_fn: kdiff_gc.ConsistencyLoss, n: int, total: int, batch: int):
        g = torch.Generator().manual_seed(1)
        sigmas, probabilities, _ = loss_fn.schedule.tables(total - 1, total)
        idx = torch.multinomial(probabilities, n, replacement=True, generator=g)
        self.x0, self.z = mix.sample(n, g), torch.randn(n, mix.means.shape[1], generator=g)
        self.sigma_lower, self.sigma = sigmas[idx].float(), sigmas[idx + 1].float()
        self.denoiser, self.total, self.batch = mix.denoiser(), total, batch
        self.x = self.x0 + self.sigma[:, None] * self.z
        self.truth = mix.flow_map(self.x, self.sigma)
        self.reference = mix.sample(n, g)
        self.noise = torch.randn(n, mix.means.shape[1], generator=g) * 80.0

    @torch.no_grad()
    def coupling_velocity_gap(self, coupling, model) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row: the velocity gap of ``coupling``'s pairs at the last step, ``model`` as its generator,
        batch by batch as in training, and whether the row is a GC pair. The coupling's random draws are
        seeded and do not touch training's RNG."""
        context = kdiff_gc.CouplingContext(self.total - 1, self.total, model, model)
        gaps, is_gc = [], []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(2)
            for rows in torch.arange(len(self.x0)).split(self.batch):
                lower, upper = self.sigma_lower[rows], self.sigma[rows]
                pair = coupling(self.x0[rows], self.z[rows], lower, upper, context)
                gaps.append(velocity_gap(pair, lower, upper, self.denoiser))
                is_gc.append(pair.is_gc)
        return torch.cat(gaps), torch.cat(is_gc)

    def by_band(self, values: torch.Tensor, name: str) -> dict:
        """Means of ``values`` over the rows whose sigma falls in each band."""
        row = {}
        for lo, hi in BANDS:
            band = (self.sigma >= lo) & (self.sigma < hi)
            row[f"{name}_sigma_{lo:g}_{hi:g}"] = values[band].mean().item() if band.any() else float("nan")
        return row

    @torch.no_grad()
    def measure(self, model, coupling) -> dict:
        f = model(self.x, self.sigma)
        gap = (f - self.truth).pow(2).sum(1)
        vgap, is_gc = self.coupling_velocity_gap(coupling, model)
        return {"flow_gap": gap.mean().item(), "transport": (f - self.z).pow(2).sum(1).mean().item(),
                "sample_swd": sliced_w2(model(self.noise, torch.full([len(self.noise)], 80.0)), self.reference),
                "velocity_gap": vgap.mean().item(),
                "velocity_gap_gc_rows": vgap[is_gc].mean().item() if is_gc.any() else float("nan"),
                **self.by_band(gap, "gap"), **self.by_band(vgap, "vgap")}


def train_one(mix, coupling, seed: int, steps: int, evals: int, eval_set: EvalSet, batch: int) -> list[dict]:
    torch.manual_seed(seed)
    model = kdiff_gc.ConsistencyDenoiser(ToyMLP(dim=mix.means.shape[1], width=128))
    ema = copy.deepcopy(model).requires_grad_(False)
    loss_fn = kdiff_gc.ConsistencyLoss(coupling)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    rows = []
    for step in range(1, steps + 1):
        out = loss_fn(model, ema, mix.sample(batch), step - 1, steps)
        opt.zero_grad()
        out.loss.mean().backward()
        opt.step()
        K.utils.ema_update(model, ema, 0.99)
        if step % (steps // evals) == 0:
            rows.append({"step": step, **eval_set.measure(ema.eval(), coupling)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2-D only, 1 seed, 100 steps, small evaluation set")
    p.add_argument("--seeds", type=int, help="default 3 (1 with --quick)")
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
        eval_set = EvalSet(mix, kdiff_gc.ConsistencyLoss(), n_eval, steps, batch)
        for method, coupling in couplings(mix).items():
            for seed in range(seeds):
                for r in train_one(mix, coupling, seed, steps, evals, eval_set, batch):
                    rows.append({"dim": dim, "method": method, "seed": seed, **r})
                print(f"dim {dim} {method} seed {seed}: " + ", ".join(f"{k} {rows[-1][k]:.4g}" for k in HEADLINE))
    write_csv(rows, args.out.with_suffix(".csv"))
    for dim in {r["dim"] for r in rows}:
        plot_curves([r for r in rows if r["dim"] == dim], "step", HEADLINE, "method",
                    args.out.parent / f"{args.out.name}_{dim}d.png")
    meta = {"machine": machine(), "seconds": round(time.time() - started), "seeds": seeds, "steps": steps,
            "command": " ".join(["python", "bench/flow_gap.py", *sys.argv[1:]])}
    write_json(meta, args.out.with_suffix(".json"))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
