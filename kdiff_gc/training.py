"""One consistency-training loss step (iCT recipe with a pluggable coupling), usable from any loop."""

from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Callable

import torch

from . import distances, schedules
from .coupling import CouplingContext, Independent


@dataclass
class LossOutput:
    """Per-sample weighted losses and the step's diagnostics (tensors stay on the device)."""

    loss: torch.Tensor
    n_scales: int
    gc_share: torch.Tensor
    sigma_mean: torch.Tensor


@lru_cache(maxsize=32)
def _grid_tables(n: int, sigma_min: float, sigma_max: float, rho: float, p_mean: float, p_std: float,
                 weighting: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    sigmas = schedules.karras_grid(n, sigma_min, sigma_max, rho)
    return sigmas, schedules.index_probabilities(sigmas, p_mean, p_std), schedules.WEIGHTINGS[weighting](sigmas)


def same_randomness(device: torch.device):
    """Context whose random draws are replayed by the code after it (its RNG state is restored on exit)."""
    if device.type == "cpu":
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(devices=[device], device_type=device.type)


class ConsistencyLoss:
    """Consistency training loss with a coupling (docs/algorithm.md §7; iCT, arXiv 2310.14189; GC, arXiv 2406.09570).

    Per sample: draw ``i`` from the discretized lognormal over the grid of ``N(k)`` levels and
    ``z ~ N(0, I)``, build ``(x_i, x_{i+1})`` with the coupling, then
    ``loss = lambda_i * d(stopgrad f(x_i, sigma_i), f(x_{i+1}, sigma_{i+1}))``. The target is the
    online model under stop-gradient, and both passes see the same dropout mask (the RNG state is
    restored between them).
    """

    def __init__(self, coupling: Callable | None = None, *, sigma_min: float = 0.002, sigma_max: float = 80.0,
                 rho: float = 7.0, s0: int = 10, s1: int = 1280, p_mean: float = -1.1, p_std: float = 2.0,
                 distance: str | Callable = "pseudo_huber", huber_c: float | None = None,
                 weighting: str = "improved"):
        self.coupling = Independent() if coupling is None else coupling
        self.grid_args = (sigma_min, sigma_max, rho, p_mean, p_std, weighting)
        self.s0, self.s1 = s0, s1
        if distance == "pseudo_huber":
            distance = partial(distances.pseudo_huber, c=huber_c)
        self.distance = distances.DISTANCES[distance] if isinstance(distance, str) else distance

    def grid(self, step: int, total_steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(sigmas, index probabilities, weights)`` of the curriculum at ``step``, in float64 on the CPU."""
        return _grid_tables(schedules.num_scales(step, total_steps, self.s0, self.s1), *self.grid_args)

    def __call__(self, model: torch.nn.Module, ema_model: torch.nn.Module | None, x0: torch.Tensor, step: int,
                 total_steps: int, *, noise: torch.Tensor | None = None, indices: torch.Tensor | None = None,
                 **extra_args) -> LossOutput:
        """Loss of one batch ``x0`` at global ``step`` of ``total_steps``; ``extra_args`` (``aug_cond``,
        ``class_cond``, ...) reach the target pass, the student pass and the GC generator alike.
        ``noise`` and ``indices`` may be given to replay a draw (common random numbers)."""
        sigmas, probabilities, weights = self.grid(step, total_steps)
        if indices is None:
            indices = schedules.sample_indices(probabilities, x0.shape[0])
        indices = indices.cpu()
        per_row = torch.stack([sigmas[indices], sigmas[indices + 1], weights[indices]])  # one host-to-device copy
        sigma, sigma_next, weight = per_row.to(x0.device, x0.dtype, non_blocking=True)
        z = torch.randn_like(x0) if noise is None else noise

        context = CouplingContext(step, total_steps, model, ema_model, extra_args)
        pair = self.coupling(x0, z, sigma, sigma_next, context)
        with same_randomness(x0.device), torch.no_grad():
            target = model(pair.x, sigma, **extra_args)
        prediction = model(pair.x_next, sigma_next, **extra_args)
        loss = weight * self.distance(prediction.to(x0.dtype), target.to(x0.dtype))  # full precision under autocast
        return LossOutput(loss, len(sigmas), pair.is_gc.float().mean(), sigma.mean())
