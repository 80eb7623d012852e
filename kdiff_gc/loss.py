"""One consistency-training loss step (docs/algorithm.md §7: the iCT recipe with a pluggable coupling),
usable from any loop, and the noise schedule it draws its levels from."""

from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Callable

import torch

from . import distances, schedules, schema
from .coupling import CouplingContext, Independent
from .runtime import same_randomness


@dataclass
class LossOutput:
    """Per-sample weighted losses and the step's diagnostics (tensors stay on the device): each row's
    ``sigma`` (``sigma_i``, the target's level) and ``weight`` (``lambda(sigma_i)``)."""

    loss: torch.Tensor
    n_scales: int
    gc_share: torch.Tensor
    sigma: torch.Tensor
    weight: torch.Tensor


def option(key: str):
    """A field read from ``consistency.<key>`` (dotted), whose default is that key's default in the schema:
    one place defines each option's default and rule (kdiff_gc/schema.py), one its use (here)."""
    return field(default=schema.default(schema.CONSISTENCY, key), metadata={"key": key})


@dataclass(frozen=True)
class NoiseSchedule:
    """The curriculum, the grid, the index density and the weighting (docs/algorithm.md §3-§5); the
    defaults are the paper's. Each field is one option: its default and rule in kdiff_gc/schema.py, its use
    here."""

    sigma_min: float = option("sigma_min")
    sigma_max: float = option("sigma_max")
    rho: float = option("rho")
    s0: int = option("curriculum.s0")
    s1: int = option("curriculum.s1")
    p_mean: float = option("timestep_density.p_mean")
    p_std: float = option("timestep_density.p_std")
    weighting: str = option("weighting")
    density: str = option("timestep_density.type")

    def __post_init__(self):
        """Each field refused as its config key would be, then the relations the keys cannot state alone."""
        for f in fields(self):
            schema.check_argument(f.name, getattr(self, f.name), f"consistency.{f.metadata['key']}")
        if self.sigma_min >= self.sigma_max:
            raise schema.argument_error("sigma_min", self.sigma_min, f"below sigma_max ({self.sigma_max})")
        if self.s0 > self.s1:
            raise schema.argument_error("s0", self.s0, f"at most s1 ({self.s1})")

    @classmethod
    def from_config(cls, consistency: dict) -> "NoiseSchedule":
        """The schedule of a loaded config's ``consistency`` section."""
        def read(key):
            value = consistency
            for part in key.split("."):
                value = value[part]
            return value
        return cls(**{f.name: read(f.metadata["key"]) for f in fields(cls)})

    def n_scales(self, step: int, total_steps: int) -> int:
        """``N(k)`` (§3.1)."""
        return schedules.num_scales(step, total_steps, self.s0, self.s1)

    def tables(self, step: int, total_steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(sigmas, index probabilities, weights)`` of the curriculum at ``step``, in float64 on the CPU."""
        return self._tables(self.n_scales(step, total_steps))

    @lru_cache(maxsize=32)
    def _tables(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sigmas = schedules.karras_grid(n, self.sigma_min, self.sigma_max, self.rho)
        probabilities = (schedules.index_probabilities(sigmas, self.p_mean, self.p_std)
                         if self.density == "lognormal"
                         else torch.full([n - 1], 1 / (n - 1), dtype=torch.float64))  # §4.2
        return sigmas, probabilities, schedules.WEIGHTINGS[self.weighting](sigmas)


def _check_batch(x0) -> None:
    """Refuse what is not a batch of rows before any work (its dtype and shape only, so no device sync):
    the distances flatten each row, and an empty batch draws no levels."""
    if torch.is_tensor(x0) and x0.is_floating_point() and x0.ndim >= 2 and x0.shape[0] >= 1:
        return
    raise schema.argument_error("x0", x0, "a floating-point tensor [N, ...] of 2 or more dimensions with "
                                "N >= 1 rows")


class ConsistencyLoss:
    """Consistency training loss with a coupling (docs/algorithm.md §7; iCT, arXiv 2310.14189; GC,
    arXiv 2406.09570).

    Per sample: draw ``i`` from the discretized lognormal over the grid of ``N(k)`` levels and
    ``z ~ N(0, I)``, build ``(x_i, x_{i+1})`` with the coupling, then
    ``loss = lambda_i * d(stopgrad f(x_i, sigma_i), f(x_{i+1}, sigma_{i+1}))``. The target is the
    online model under stop-gradient, and both passes see the same dropout mask (the RNG state is
    restored between them).
    """

    def __init__(self, coupling: Callable | None = None, schedule: NoiseSchedule | None = None,
                 distance: Callable | None = None):
        """``coupling`` (default IC), ``schedule`` (default the paper's) and ``distance(a, b)`` per sample
        (default pseudo-Huber with iCT's ``c``)."""
        if not (coupling is None or callable(coupling)):
            raise schema.argument_error("coupling", coupling,
                                        "a callable coupling(x0, z, sigma, sigma_next, context) or None")
        if not (schedule is None or isinstance(schedule, NoiseSchedule)):
            raise schema.argument_error("schedule", schedule, "a NoiseSchedule or None")
        if not (distance is None or callable(distance)):
            raise schema.argument_error("distance", distance, "a callable distance(a, b) or None")
        self.coupling = Independent() if coupling is None else coupling
        self.schedule = NoiseSchedule() if schedule is None else schedule
        self.distance = distances.pseudo_huber if distance is None else distance

    def __call__(self, model: torch.nn.Module, ema_model: torch.nn.Module | None, x0: torch.Tensor, step: int,
                 total_steps: int, *, noise: torch.Tensor | None = None, indices: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, **extra_args) -> LossOutput:
        """Loss of one batch ``x0`` at global ``step`` of ``total_steps``; ``extra_args`` (``aug_cond``,
        ``class_cond``, ...) reach the target pass, the student pass and the GC generator alike.
        ``noise`` and ``indices`` may be given to replay a draw; ``generator`` is the coupling's own
        (:class:`~kdiff_gc.coupling.CouplingContext`)."""
        _check_batch(x0)
        sigmas, probabilities, weights = self.schedule.tables(step, total_steps)
        if indices is None:
            indices = schedules.sample_indices(probabilities, x0.shape[0])
        indices = indices.cpu()
        # one host-to-device copy
        per_row = torch.stack([sigmas[indices], sigmas[indices + 1], weights[indices]])
        sigma, sigma_next, weight = per_row.to(x0.device, x0.dtype, non_blocking=True)
        z = torch.randn_like(x0) if noise is None else noise

        context = CouplingContext(step, total_steps, model, ema_model, extra_args, generator)
        pair = self.coupling(x0, z, sigma, sigma_next, context)
        with same_randomness(x0.device), torch.no_grad():
            target = model(pair.x, sigma, **extra_args)
        prediction = model(pair.x_next, sigma_next, **extra_args)
        # full precision under autocast
        loss = weight * self.distance(prediction.to(x0.dtype), target.to(x0.dtype))
        return LossOutput(loss, len(sigmas), pair.is_gc.float().mean(), sigma, weight)
