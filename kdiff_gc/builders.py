"""The library's parts from a loaded config (:func:`kdiff_gc.config.load_config`): the consistency denoiser
around k-diffusion's model, the coupling, and the loss step."""

import torch
from k_diffusion import config as k_config

from . import memory
from .coupling import COUPLINGS
from .denoiser import ConsistencyDenoiser
from .distances import make_distance
from .errors import UserError
from .loss import ConsistencyLoss, NoiseSchedule


def make_coupling(config: dict, **models: torch.nn.Module):
    """The coupling that ``config["consistency"]["coupling"]`` names, built by its registry entry
    (:data:`kdiff_gc.coupling.COUPLINGS`), with the models it takes passed by name: ``generator=`` the frozen
    GC generator (``"generator": "frozen"``), ``teacher=`` the denoiser of ``"type": "distillation"``;
    the training program loads them from ``generator_path`` and ``teacher_path``."""
    c = config["consistency"]["coupling"]
    needed = COUPLINGS[c["type"]].models(c)
    if missing := [name for name in needed if models.get(name) is None]:
        name = missing[0]
        raise ValueError(f'consistency.coupling.type "{c["type"]}" with these options takes a '
                         f"{needed[name]}: pass it as {name}=")
    return COUPLINGS[c["type"]].build(c, **{name: models[name] for name in needed})


def make_consistency_loss(config: dict, coupling=None, **models: torch.nn.Module) -> ConsistencyLoss:
    """The loss step of a loaded config: its coupling (or ``coupling``, any callable of the coupling
    signature; ``models``: as :func:`make_coupling`'s), noise schedule and distance."""
    c = config["consistency"]
    return ConsistencyLoss(coupling or make_coupling(config, **models), NoiseSchedule.from_config(c),
                           make_distance(c["distance"]["type"], c["distance"]["c"]))


def make_inner_model(config: dict) -> torch.nn.Module:
    """k-diffusion's ``make_model``, once its weights are known to fit in memory; its refusal as one
    :class:`UserError`."""
    try:
        memory.require_model(config, 1, "its weights", torch.device("cpu"))  # builds it on the meta device
        return k_config.make_model(config)
    except (KeyError, ValueError) as e:
        raise UserError(f"config: model section cannot build a k-diffusion model ({e!r}): check model.type "
                        "and its keys") from None


def make_denoiser(config: dict) -> ConsistencyDenoiser:
    """k-diffusion's model (:func:`make_inner_model`), wrapped in :class:`ConsistencyDenoiser`."""
    return ConsistencyDenoiser(make_inner_model(config), sigma_data=config["model"]["sigma_data"],
                               sigma_min=config["consistency"]["sigma_min"])
