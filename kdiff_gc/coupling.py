"""Couplings: how a training pair ``(x_i, x_{i+1})`` is built from data, noise and two noise levels
(and consistency distillation, whose pair comes from a teacher's ODE step).

Every coupling is a callable ``coupling(x0, z, sigma, sigma_next, context) -> Pair``. The context
carries what a coupling may need beyond the batch (the step, the models, the conditioning). A config names
one of :data:`COUPLINGS`, whose options are in ``kdiff_gc.schema.COUPLING_TYPES``; :func:`register` adds
one's own to both.
Issenhuth et al. (arXiv 2406.09570) define GC and compare it with IC and batch-OT (docs/algorithm.md §8).
"""

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from k_diffusion.utils import append_dims, eval_mode
from scipy.optimize import linear_sum_assignment

from . import schema


def _default(key: str):
    """The schema's default for ``consistency.coupling.<key>``: an option's default is defined there only."""
    return schema.default(schema.CONSISTENCY, f"coupling.{key}")


def _check(name: str, value) -> None:
    """Refuse an option that ``consistency.coupling.<name>`` would refuse in a config."""
    schema.check_argument(name, value, f"consistency.coupling.{name}")


@dataclass
class Pair:
    """A training pair on one noise trajectory, and which rows came from the generator."""

    x: torch.Tensor
    x_next: torch.Tensor
    is_gc: torch.Tensor


@dataclass
class CouplingContext:
    """What the loss step knows at this step: the online and EMA models and the conditioning, and
    ``generator``, a CPU generator for the coupling's own random choices (GC's rows). Kept apart from the
    stream that draws the noise and the noise levels, it gives every coupling of one seed the same noise and
    levels (common random numbers); None draws from the global stream."""

    step: int = 0
    total_steps: int = 1
    model: torch.nn.Module | None = None
    ema_model: torch.nn.Module | None = None
    extra_args: dict = field(default_factory=dict)
    generator: torch.Generator | None = None


def noisy_pair(x0: torch.Tensor, z: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor,
               is_gc: torch.Tensor | None = None) -> Pair:
    """``(x0 + sigma_i z, x0 + sigma_{i+1} z)``: both points on the same noise ray."""
    if is_gc is None:
        is_gc = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
    return Pair(x0 + append_dims(sigma, x0.ndim) * z, x0 + append_dims(sigma_next, x0.ndim) * z, is_gc)


class Independent:
    """Independent coupling (IC): data and noise drawn independently, ``x_i = x0 + sigma_i z``
    (docs/algorithm.md §8.1)."""

    def __call__(self, x0, z, sigma, sigma_next, context: CouplingContext) -> Pair:
        return noisy_pair(x0, z, sigma, sigma_next)


def ot_assignment(x0: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The permutation ``perm`` minimizing ``sum_j ||x0_j - z_perm[j]||^2`` (exact, Hungarian)."""
    cost = torch.cdist(x0.flatten(1).double(), z.flatten(1).double()).pow(2)
    _, cols = linear_sum_assignment(cost.cpu().numpy())
    return torch.as_tensor(cols, device=x0.device)


class MinibatchOT:
    """Batch-OT coupling: re-pair the noise to the data inside the local batch by an exact
    assignment on squared Euclidean cost, then proceed as IC (docs/algorithm.md §8.2). Data rows (and
    their conditioning) keep their order; only the noise is permuted (§11.5)."""

    def __call__(self, x0, z, sigma, sigma_next, context: CouplingContext) -> Pair:
        return noisy_pair(x0, z[ot_assignment(x0, z)], sigma, sigma_next)


def evaluating(model: torch.nn.Module):
    """k-diffusion's ``eval_mode(model)``, or nothing where every module is in eval mode already (the EMA
    generator is): its two walks over the modules, setting and restoring each flag, cost more than the
    check."""
    return eval_mode(model) if any(module.training for module in model.modules()) else nullcontext()


def take_rows(extra_args: dict, rows: torch.Tensor, batch_size: int) -> dict:
    """The conditioning of the selected rows: tensors whose first dimension is the batch are indexed."""
    return {k: v[rows] if torch.is_tensor(v) and v.ndim and v.shape[0] == batch_size else v
            for k, v in extra_args.items()}


class GeneratorInduced:
    """Generator-induced coupling (GC), Issenhuth et al. 2025 (docs/algorithm.md §8.3).

    With probability ``mu`` a row becomes a GC pair: ``x0_hat = stopgrad f_gen(x0 + sigma_i z, sigma_i)``
    and ``(x_i, x_{i+1}) = (x0_hat + sigma_i z, x0_hat + sigma_{i+1} z)`` with the same ``z``; the other
    rows are IC pairs. ``mu`` is the share of GC pairs (the official code's ``mix_gen_induced_traj``
    is ``1 - mu``). It is 0 before ``start_step``, then moves linearly from ``mu`` to ``mu_end``
    between ``start_step`` and ``total_steps``.

    ``generator`` is ``"ema"`` (the paper's default), ``"online"``, or a frozen consistency model.
    It runs without gradient, in eval mode (no dropout), and only on the selected rows, so a batch
    costs about ``mu`` extra forward passes.
    """

    def __init__(self, mu: float = _default("mu"), mu_end: float | None = _default("mu_end"),
                 start_step: int = _default("start_step"),
                 generator: str | torch.nn.Module = _default("generator")):
        for name, value in (("mu", mu), ("mu_end", mu_end), ("start_step", start_step)):
            _check(name, value)
        # a config's "frozen" is the model itself here, loaded from generator_path
        named = isinstance(generator, str) and generator in ("ema", "online")
        if not (named or isinstance(generator, torch.nn.Module)):
            raise schema.argument_error("generator", generator, "one of 'ema', 'online' or a torch.nn.Module")
        self.mu = mu
        self.mu_end = mu if mu_end is None else mu_end
        self.start_step = start_step
        self.generator = generator

    def mu_at(self, step: int, total_steps: int) -> float:
        """``mu(k) = mu + (mu_end - mu) * (k - start) / (K - start)`` for ``k >= start``, else 0
        (docs/algorithm.md §8.3.3)."""
        if step < self.start_step:
            return 0.0
        progress = min((step - self.start_step) / max(total_steps - self.start_step, 1), 1.0)
        return self.mu + (self.mu_end - self.mu) * progress

    def generator_model(self, context: CouplingContext) -> torch.nn.Module:
        if isinstance(self.generator, torch.nn.Module):
            return self.generator
        model = {"ema": context.ema_model, "online": context.model}[self.generator]
        if model is None:
            raise ValueError(f"GC generator {self.generator!r} needs that model, but none was passed to the "
                             "loss step")
        return model

    def __call__(self, x0, z, sigma, sigma_next, context: CouplingContext) -> Pair:
        batch_size = x0.shape[0]
        mu = self.mu_at(context.step, context.total_steps)
        if mu <= 0:
            return noisy_pair(x0, z, sigma, sigma_next)
        # drawn on the host (choosing the rows needs no wait for a GPU), from the coupling's own generator
        is_gc = torch.rand(batch_size, generator=context.generator) < mu
        rows = is_gc.nonzero().squeeze(1)
        is_gc = is_gc.to(x0.device, non_blocking=True)
        if rows.numel() == 0:
            return noisy_pair(x0, z, sigma, sigma_next, is_gc)
        rows = rows.to(x0.device, non_blocking=True)
        sigma_rows = sigma[rows]
        noisy = x0[rows] + append_dims(sigma_rows, x0.ndim) * z[rows]
        generator = self.generator_model(context)
        with torch.no_grad(), evaluating(generator):
            x0_hat_rows = generator(noisy, sigma_rows, **take_rows(context.extra_args, rows, batch_size))
        x0_hat = x0.index_copy(0, rows, x0_hat_rows.to(x0.dtype))
        return noisy_pair(x0_hat, z, sigma, sigma_next, is_gc)


def ode_step(denoiser, x: torch.Tensor, sigma_from: torch.Tensor, sigma_to: torch.Tensor,
             solver: str = "heun", **extra_args) -> torch.Tensor:
    """One step of the probability-flow ODE ``dx/dsigma = (x - D(x, sigma)) / sigma`` from ``sigma_from``
    to ``sigma_to`` (per row): Euler, or Heun (Karras et al. 2022, Algorithm 1 without churn;
    docs/algorithm.md §8.4)."""
    h = append_dims(sigma_to - sigma_from, x.ndim)
    d = (x - denoiser(x, sigma_from, **extra_args)) / append_dims(sigma_from, x.ndim)
    x_euler = x + h * d
    if solver == "euler":
        return x_euler
    d_next = (x_euler - denoiser(x_euler, sigma_to, **extra_args)) / append_dims(sigma_to, x.ndim)
    return x + h * (d + d_next) / 2


class Distillation:
    """Consistency distillation (CD, Song et al. 2023; docs/algorithm.md §8.4):
    ``x_{i+1} = x0 + sigma_{i+1} z`` and ``x_i`` is one ODE step (Heun or Euler) from it down to ``sigma_i``
    with a teacher denoiser ``D(x, sigma)``: any k-diffusion ``Denoiser``, or an exact one
    (``kdiff_gc.toy.GaussianMixture.denoiser``). GC approximates this pair without a teacher."""

    def __init__(self, teacher: torch.nn.Module, solver: str = _default("solver")):
        if not isinstance(teacher, torch.nn.Module):
            raise schema.argument_error("teacher", teacher, "a torch.nn.Module, a denoiser D(x, sigma)")
        _check("solver", solver)
        self.teacher, self.solver = teacher, solver

    def __call__(self, x0, z, sigma, sigma_next, context: CouplingContext) -> Pair:
        x_next = x0 + append_dims(sigma_next, x0.ndim) * z
        with torch.no_grad():
            x = ode_step(self.teacher, x_next, sigma_next, sigma, self.solver, **context.extra_args)
        return Pair(x.to(x0.dtype), x_next, torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device))


# the kinds of model a coupling may take, and the files train_gc.py loads each from
MODEL_FILES = {"consistency_model": "a train_gc.py checkpoint or inference file",
               "denoiser": "a k-diffusion checkpoint or inference file"}


@dataclass(frozen=True)
class CouplingType:
    """A coupling a config can name: ``build(options, **models)`` makes it from the config's
    ``consistency.coupling`` section, and ``models(options)`` names the models it takes then, each with its
    kind (:data:`MODEL_FILES`); train_gc.py loads model ``name`` from the option ``{name}_path``."""

    build: Callable[..., Callable]
    models: Callable[[dict], dict[str, str]] = lambda options: {}


def _generator_induced(c: dict, generator: torch.nn.Module | None = None) -> GeneratorInduced:
    return GeneratorInduced(c["mu"], c["mu_end"], c["start_step"],
                            generator if c["generator"] == "frozen" else c["generator"])


# one entry per type of kdiff_gc.schema.COUPLING_TYPES, which holds each type's options
COUPLINGS = {
    "independent": CouplingType(lambda c: Independent()),
    "minibatch_ot": CouplingType(lambda c: MinibatchOT()),
    "generator_induced": CouplingType(_generator_induced, lambda c: (
        {"generator": "consistency_model"} if c["generator"] == "frozen" else {})),
    "distillation": CouplingType(lambda c, teacher: Distillation(teacher, c["solver"]),
                                 lambda c: {"teacher": "denoiser"}),
}


def register(name: str, build: Callable[..., Callable], options: dict[str, dict] | None = None,
             models: Callable[[dict], dict[str, str]] | None = None, what: str = "") -> None:
    """A coupling of one's own, for configs to name as ``consistency.coupling.type``: ``build(options,
    **models)`` returns a callable of the coupling signature; ``options`` maps each of its own keys of
    ``consistency.coupling`` to its JSON Schema (with ``default`` and ``description``), checked and
    defaulted as the built-in ones; ``models``, as :class:`CouplingType`'s; ``what`` describes it in the
    generated config reference."""
    if not callable(build) or (models is not None and not callable(models)):
        raise TypeError(f"register({name!r}): build and models must be callables")
    schema.add_coupling(name, what or name, options or {})
    COUPLINGS[name] = CouplingType(build, models or CouplingType.models)
