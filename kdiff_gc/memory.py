"""Sizes checked against the machine before they are allocated: a model, a batch, a grid of samples that no
machine here holds is one line at start-up, not an allocation failure minutes in. The estimates are lower
bounds (the tensors that must exist), compared with the device's whole memory."""

import math

import psutil
import torch
from k_diffusion import config as k_config

from .errors import UserError

FLOAT_BYTES = 4


def device_memory(device: torch.device) -> tuple[int, str]:
    """``(bytes, what)``: the GPU's memory, or the machine's for the CPU."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        return total, f"GPU's {gib(total)}"
    total = psutil.virtual_memory().total
    return total, f"machine's {gib(total)} of memory"


def gib(n: float) -> str:
    return f"{n / 2 ** 30:,.1f} GiB"


def require(nbytes: float, what: str, fix: str, device: torch.device) -> None:
    """Refuse ``what``, which needs at least ``nbytes``, where the device has less in all."""
    total, name = device_memory(device)
    if nbytes > total:
        raise UserError(f"{what} needs at least {gib(nbytes)}, more than this {name}: {fix}")


def parameter_count(config: dict) -> int:
    """The parameters of the config's k-diffusion model, counted on the meta device (nothing allocated)."""
    with torch.device("meta"):
        return sum(p.numel() for p in k_config.make_model(config).parameters())


def image_floats(config: dict) -> int:
    """The numbers in one image of the config's model."""
    m = config["model"]
    return m["input_channels"] * math.prod(m["input_size"])


def require_model(config: dict, copies: int, what: str, device: torch.device) -> None:
    """Refuse ``copies`` float32 copies of the config's model (``what`` they are: weights, EMA, gradients,
    optimizer moments) that the device cannot hold."""
    count = parameter_count(config)
    require(count * FLOAT_BYTES * copies, f"the model's {count / 1e9:,.2f} G parameters ({what})",
            "lower model.channels, model.widths or model.depths", device)
