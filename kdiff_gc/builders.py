"""The library's parts from a loaded config (:func:`kdiff_gc.config.load_config`): the consistency denoiser
around k-diffusion's model, the coupling, and the loss step."""

import torch
from k_diffusion import config as k_config

from .coupling import COUPLINGS, Distillation, GeneratorInduced
from .denoiser import ConsistencyDenoiser
from .distances import make_distance
from .loss import ConsistencyLoss, NoiseSchedule


def make_coupling(config: dict, generator: torch.nn.Module | None = None,
                  teacher: torch.nn.Module | None = None):
    """The coupling that ``config["consistency"]["coupling"]`` names. ``generator`` is the frozen GC
    generator (``"generator": "frozen"``), ``teacher`` the denoiser of ``"type": "distillation"``;
    the training program loads them from ``generator_path`` and ``teacher_path``."""
    c = config["consistency"]["coupling"]
    kind = c["type"]
    if kind == "generator_induced":
        if c["generator"] == "frozen" and generator is None:
            raise ValueError("consistency.coupling.generator = \"frozen\": pass the frozen model as "
                             "generator=")
        return GeneratorInduced(c["mu"], c["mu_end"], c["start_step"],
                                generator if generator is not None else c["generator"])
    if kind == "distillation":
        if teacher is None:
            raise ValueError("consistency.coupling.type = \"distillation\": pass the teacher denoiser as "
                             "teacher=")
        return Distillation(teacher, c["solver"])
    return COUPLINGS[kind]()


def make_consistency_loss(config: dict, coupling=None, *, generator: torch.nn.Module | None = None,
                          teacher: torch.nn.Module | None = None) -> ConsistencyLoss:
    """The loss step of a loaded config: its coupling (or ``coupling``, any callable of the coupling
    signature), noise schedule and distance."""
    c = config["consistency"]
    return ConsistencyLoss(coupling or make_coupling(config, generator, teacher),
                           NoiseSchedule.from_config(c),
                           make_distance(c["distance"]["type"], c["distance"]["c"]))


def make_denoiser(config: dict) -> ConsistencyDenoiser:
    """k-diffusion's ``make_model`` for the inner model, wrapped in :class:`ConsistencyDenoiser`."""
    return ConsistencyDenoiser(k_config.make_model(config), sigma_data=config["model"]["sigma_data"],
                               sigma_min=config["consistency"]["sigma_min"])
