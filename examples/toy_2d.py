"""Train a one-step generator on a 2-D Gaussian mixture with IC and with GC, using kdiff_gc's loss and
training steps.

    python examples/toy_2d.py --steps 1500

Prints, per coupling, the share of 1-step samples within 0.25 of a mode and the median distance.
"""

import argparse
import os

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")

import accelerate
import torch

import kdiff_gc
from kdiff_gc.toy import GaussianMixture, ToyMLP


def train(coupling, mix: GaussianMixture, steps: int, batch_size: int, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    inner = ToyMLP(width=128)
    state = kdiff_gc.TrainState(inner, torch.optim.Adam(inner.parameters(), lr=2e-3),
                                kdiff_gc.EmaSchedule(min_value=0.99, max_value=0.99), total_steps=steps,
                                accelerator=accelerate.Accelerator(cpu=True))
    loss_fn = kdiff_gc.ConsistencyLoss(coupling)
    for step in range(steps):
        out = kdiff_gc.train_step(state, loss_fn, mix.sample(batch_size))
        if step % (steps // 5) == 0 or step == steps - 1:
            print(f"  step {step:5d}  N {out.n_scales:4d}  loss {out.loss.mean().item():.4f}  "
                  f"gc share {out.gc_share.item():.2f}")
    x = 80.0 * torch.randn(4000, 2)
    return kdiff_gc.sample_consistency(state.model_ema, x, kdiff_gc.get_sigmas_consistency(1), disable=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    mix = GaussianMixture.ring(modes=4, radius=1.0, std=0.05)
    for name, coupling in [("IC", kdiff_gc.Independent()), ("GC mu=0.5", kdiff_gc.GeneratorInduced(mu=0.5))]:
        print(f"{name}:")
        distance = mix.distance_to_modes(train(coupling, mix, args.steps, args.batch_size, args.seed))
        print(f"  1-step samples within 0.25 of a mode: {(distance < 0.25).float().mean().item():.1%}, "
              f"median distance {distance.median().item():.3f}")


if __name__ == "__main__":
    main()
