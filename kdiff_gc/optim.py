"""Optimizers, learning-rate schedules and EMA schedules from a k-diffusion config, and the EMA update."""

from numbers import Real

import k_diffusion as K
import torch
from lion_pytorch import Lion
from torch import optim

from .errors import UserError
from .schedules import num_scales


class _NoVerbose(optim.lr_scheduler._LRScheduler):
    """k-diffusion's schedules pass ``verbose`` to ``LRScheduler.__init__``, which torch 2.14 removed;
    placed after them in the MRO, this drops it."""

    def __init__(self, optimizer, last_epoch=-1, verbose=False):
        super().__init__(optimizer, last_epoch)


class InverseLR(K.utils.InverseLR, _NoVerbose):
    """k-diffusion's ``InverseLR``, working on torch 2.14."""


class ExponentialLR(K.utils.ExponentialLR, _NoVerbose):
    """k-diffusion's ``ExponentialLR``, working on torch 2.14."""


class ConstantLRWithWarmup(K.utils.ConstantLRWithWarmup, _NoVerbose):
    """k-diffusion's ``ConstantLRWithWarmup``, working on torch 2.14."""


class CurriculumLR(optim.lr_scheduler.LRScheduler):
    """The learning rate divided by ``2^power`` each time the iCT curriculum doubles ``N``:
    ``lr(k) = lr * ((N(k) - 1) / s0)^(-power)``, with ``N(k)`` as in :func:`kdiff_gc.schedules.num_scales`.

    This project's own short-budget option (docs/algorithm.md §11.7), not the paper's: the paper
    (arXiv 2406.09570, following iCT, arXiv 2310.14189) keeps Lion's rate constant over 100k+ steps;
    only ``N(k)``, iCT's curriculum, comes from there. The loss's weight ``1 / (sigma_{i+1} - sigma_i)``
    grows like ``N``, and so does its sharpness: a rate that learns fast on the coarse grids makes the
    optimizer overshoot on the fine grids of a short run, and the samples degrade (docs/stability.md
    measures it). ``power`` 1 keeps ``lr * (N - 1)`` constant.
    """

    def __init__(self, optimizer: optim.Optimizer, total_steps: int, s0: int, s1: int, power: float = 1.0,
                 last_epoch: int = -1):
        self.total_steps, self.s0, self.s1, self.power = total_steps, s0, s1, power
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        factor = ((num_scales(self.last_epoch, self.total_steps, self.s0, self.s1) - 1)
                  / self.s0) ** -self.power
        return [base_lr * factor for base_lr in self.base_lrs]


def param_groups(model: torch.nn.Module, lr: float):
    """k-diffusion's per-model parameter groups where the model defines them, else all parameters."""
    return (model.param_groups(lr) if hasattr(model, "param_groups")
            else [{"params": list(model.parameters()), "lr": lr}])


def make_optimizer(config: dict, model: torch.nn.Module, lr: float | None = None) -> optim.Optimizer:
    """``lion`` (the paper's), ``adamw``, ``adam`` or ``radam`` from ``config["optimizer"]``."""
    c = config["optimizer"]
    lr = c["lr"] if lr is None else lr
    groups = param_groups(model, lr)
    betas, wd = tuple(c.get("betas", (0.9, 0.999))), c.get("weight_decay", 0.0)
    if c["type"] == "lion":
        return Lion(groups, lr=lr, betas=tuple(c.get("betas", (0.9, 0.99))), weight_decay=wd)
    kinds = {"adamw": optim.AdamW, "adam": optim.Adam, "radam": optim.RAdam}
    if c["type"] not in kinds:
        raise UserError(f"optimizer.type {c['type']!r} is unknown: use lion, adamw, adam or radam")
    return kinds[c["type"]](groups, lr=lr, betas=betas, eps=c.get("eps", 1e-8), weight_decay=wd)


def make_lr_scheduler(config: dict, opt: optim.Optimizer):
    """k-diffusion's ``lr_sched`` types, ``constant`` (with warmup), ``inverse`` and ``exponential``, and
    ``curriculum`` (:class:`CurriculumLR`, ``power`` default 1), which follows the consistency curriculum."""
    c = config["lr_sched"]
    if c["type"] == "curriculum":
        power = c.get("power", 1.0)
        if isinstance(power, bool) or not isinstance(power, Real) or not 0 <= power < float("inf"):
            raise UserError(f"lr_sched.power = {power!r}: must be a number >= 0 (1 halves the rate each "
                            "time the curriculum doubles N)")
        cons = config["consistency"]
        return CurriculumLR(opt, cons["total_steps"], cons["curriculum"]["s0"], cons["curriculum"]["s1"],
                            power)
    if c["type"] == "constant":
        return ConstantLRWithWarmup(opt, warmup=c.get("warmup", 0.0))
    if c["type"] == "inverse":
        return InverseLR(opt, inv_gamma=c["inv_gamma"], power=c["power"], warmup=c.get("warmup", 0.0))
    if c["type"] == "exponential":
        return ExponentialLR(opt, num_steps=c["num_steps"], decay=c["decay"], warmup=c.get("warmup", 0.0))
    raise UserError(f"lr_sched.type {c['type']!r} is unknown: use constant, inverse, exponential or "
                    "curriculum")


class EmaSchedule(K.utils.EMAWarmup):
    """k-diffusion's EMA warm-up, ``decay(s) = min(max_value, 1 - (1 + (s - start) / inv_gamma)^-power)`` at
    the update after ``s`` earlier optimizer steps (``min_value = max_value`` makes it constant), applied
    every ``update_every`` steps: at steps ``s`` that ``update_every`` divides, and not in between.

    ``start_step`` set, the EMA is ema-pytorch 0.2.3's ``EMA(beta=max_value, update_after_step=start_step,
    update_every=update_every)``, which the official GC code uses (docs/algorithm.md §7.5): it copies the
    online weights at each update up to ``start_step`` and at the first one after it (ema-pytorch's
    ``initted`` copy), then averages with ``decay(s)``, ``start = start_step``. ``start_step=None`` is
    k-diffusion's warm-up (``start = 0``), whose first update alone copies. The state dict (``last_epoch``:
    the steps so far) resumes it.
    """

    def __init__(self, inv_gamma: float = 1.0, power: float = 1.0, min_value: float = 0.0,
                 max_value: float = 1.0, update_every: int = 1, start_step: int | None = None):
        super().__init__(inv_gamma, power, min_value, max_value, start_at=start_step or 0)
        self.update_every, self.start_step = update_every, start_step

    def load_state_dict(self, state_dict: dict) -> None:
        """The step count alone: the schedule's shape is the config's, so that a checkpoint from before a
        key was added, or ``--config-override`` with another ``ema_sched``, gets the configured schedule
        whole (k-diffusion's ``EMAWarmup`` also restores its parameters)."""
        self.last_epoch = state_dict["last_epoch"]

    def decay(self) -> float | None:
        """The decay of this step's update (0 copies the online weights), or None at a step with no update."""
        s = self.last_epoch
        if s % self.update_every:
            return None
        if self.start_step is not None and s <= self.start_step + self.update_every:
            return 0.0  # up to start_step, and the first update after it (the next multiple of update_every)
        return self.get_value()


def make_ema_schedule(config: dict) -> EmaSchedule:
    """``ema_sched``: ``{"type": "constant", "value": 0.99}`` or k-diffusion's ``inverse`` warm-up
    (``inv_gamma``, ``power``, ``max_value``), either every ``update_every`` steps from ``start_step``
    (:class:`EmaSchedule`)."""
    c = config["ema_sched"]
    when = {"update_every": c.get("update_every", 1), "start_step": c.get("start_step")}
    if c["type"] == "constant":
        return EmaSchedule(min_value=c["value"], max_value=c["value"], **when)
    if c["type"] == "inverse":
        return EmaSchedule(c.get("inv_gamma", 1.0), c["power"], max_value=c["max_value"], **when)
    raise UserError(f"ema_sched.type {c['type']!r} is unknown: use constant or inverse")


class EmaUpdate:
    """k-diffusion's ``ema_update(model, averaged, decay)`` as one fused call over the parameter lists:
    ``theta_ema <- lerp(theta_ema, theta, 1 - decay)`` (``torch._foreach_lerp_``, the same kernel as its
    per-parameter ``lerp_``), then the buffers copied. The two models' parameters are matched by name once,
    here, as k-diffusion checks at every call."""

    def __init__(self, model: torch.nn.Module, averaged: torch.nn.Module):
        self.params, self.averaged = self._matched(model.named_parameters(), averaged.named_parameters())
        self.buffers, self.averaged_buffers = self._matched(model.named_buffers(), averaged.named_buffers())

    @staticmethod
    def _matched(named, averaged_named) -> tuple[list, list]:
        tensors, averaged = dict(named), dict(averaged_named)
        if tensors.keys() != averaged.keys():
            raise ValueError("the EMA model's parameters and buffers must be the model's")
        return list(tensors.values()), [averaged[name] for name in tensors]

    @torch.no_grad()
    def __call__(self, decay: float) -> None:
        torch._foreach_lerp_(self.averaged, self.params, 1 - decay)
        if self.buffers:
            torch._foreach_copy_(self.averaged_buffers, self.buffers)


def update_ema(update: EmaUpdate, schedule: EmaSchedule) -> None:
    """After an optimizer step: the EMA update the schedule gives for this step (none at a step it skips),
    then the schedule counts the step."""
    if (decay := schedule.decay()) is not None:
        update(decay)
    schedule.step()
