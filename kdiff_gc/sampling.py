"""Multistep consistency sampling in k-diffusion's sampler convention."""

import math
import numbers
from typing import Sequence

import torch
from k_diffusion.sampling import default_noise_sampler
from tqdm.auto import trange

from . import schema


def _descending_levels(values) -> bool:
    """Whether ``values`` is a non-empty sequence of finite positive numbers in decreasing order."""
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        return False
    finite = all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                 for v in values)
    return finite and all(a > b for a, b in zip(values, values[1:]))


def get_sigmas_consistency(steps: int | Sequence[float] = 1, sigma_max: float = 80.0,
                           sigma_mid: float = 0.821, device: torch.device | str = "cpu") -> torch.Tensor:
    """Sigma schedule for :func:`sample_consistency`, ending in 0 like k-diffusion's ``get_sigmas_*``.

    ``steps=1``: ``[sigma_max, 0]``; ``steps=2``: ``[sigma_max, sigma_mid, 0]``, by default iCT's two-step
    choice on CIFAR-10, 0.821 (docs/algorithm.md §9.2); a sequence: those sigmas, descending, then 0.
    """
    schema.check_argument("sigma_max", sigma_max, "consistency.sigma_max")
    schema.check_argument("sigma_mid", sigma_mid, "consistency.sigma_mid")
    sigmas = steps.tolist() if torch.is_tensor(steps) else steps
    if isinstance(steps, int) and not isinstance(steps, bool) and steps in (1, 2):
        if steps == 2 and sigma_mid >= sigma_max:
            raise schema.argument_error("sigma_mid", sigma_mid, f"below sigma_max ({sigma_max})")
        sigmas = [sigma_max] if steps == 1 else [sigma_max, sigma_mid]
    if not _descending_levels(sigmas):
        raise schema.argument_error("steps", steps, "1, 2 or a non-empty sequence of finite positive sigmas "
                                    "in decreasing order")
    return torch.tensor([float(s) for s in sigmas] + [0.0], device=device)


def config_sigmas(config: dict, steps: int | Sequence[float],
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """:func:`get_sigmas_consistency` with a loaded config's ``sigma_max`` and two-step ``sigma_mid``."""
    c = config["consistency"]
    return get_sigmas_consistency(steps, c["sigma_max"], c["sigma_mid"], device)


def sample_shape(config: dict) -> list[int]:
    """``[C, H, W]`` of one sample of a config's model."""
    return [config["model"]["input_channels"], *config["model"]["input_size"]]


def random_classes(config: dict, n: int, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> dict:
    """``extra_args`` for ``n`` samples of a config's model: uniformly random ``class_cond`` for a
    class-conditional model (drawn on the CPU from ``generator``, else the global RNG), nothing otherwise."""
    classes = config["dataset"].get("num_classes", 0)
    return {"class_cond": torch.randint(0, classes, [n], generator=generator).to(device)} if classes else {}


def _check_sigmas(sigmas, sigma_min: float) -> None:
    """Refuse sigmas the sampler cannot take: below ``sigma_min`` its fresh noise ``sqrt(sigma^2 -
    sigma_min^2)`` is NaN. One read of ``sigmas`` (a device sync), once per sampling."""
    if torch.is_tensor(sigmas) and sigmas.ndim == 1 and sigmas.is_floating_point():
        levels = sigmas.tolist()
        # sigma_min as ``sigmas`` holds it: a float32 sigma_min may round below the float64 one
        floor = torch.tensor(sigma_min, dtype=sigmas.dtype).item()
        nonzero = levels[:-1] if levels[-1:] == [0.0] else levels
        if _descending_levels(nonzero) and nonzero[-1] >= floor:
            return
        sigmas = [float(f"{s:.7g}") for s in levels]  # shown as written, not float32's long decimals
    raise schema.argument_error("sigmas", sigmas, "a 1-D floating-point tensor of one or more finite noise "
                                f"levels in decreasing order, each at least sigma_min ({sigma_min}), then "
                                "optionally 0")


@torch.no_grad()
def sample_consistency(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None,
                       sigma_min: float | None = None):
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1; docs/algorithm.md §9.1).

    ``x`` is ``sigmas[0] * z``, as for every k-diffusion sampler. For each sigma: ``x0 = f(x, sigma)``;
    if a next nonzero sigma follows, ``x = x0 + sqrt(sigma_next^2 - sigma_min^2) z'``. A trailing 0 in
    ``sigmas`` is allowed and ends the loop. ``sigma_min`` defaults to ``model.sigma_min``.
    """
    extra_args = {} if extra_args is None else extra_args
    if sigma_min is not None:
        schema.check_argument("sigma_min", sigma_min, "consistency.sigma_min")
    sigma_min = getattr(model, "sigma_min", None) if sigma_min is None else sigma_min
    if sigma_min is None:
        raise ValueError("sample_consistency needs sigma_min: pass it, or sample a ConsistencyDenoiser")
    _check_sigmas(sigmas, sigma_min)
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    if sigmas[-1] == 0:
        sigmas = sigmas[:-1]
    s_in = x.new_ones([x.shape[0]])
    for i in trange(len(sigmas), disable=disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        x = denoised
        if i + 1 < len(sigmas):
            # a sigma equal to sigma_min as float32 holds it may square below sigma_min^2: no noise, not NaN
            x = (denoised + (sigmas[i + 1] ** 2 - sigma_min ** 2).clamp(min=0) ** 0.5
                 * noise_sampler(sigmas[i], sigmas[i + 1]))
    return x


@torch.no_grad()
def sample_fixed_noise(model, config: dict, n: int, steps: Sequence[int], generator: torch.Generator,
                       device: torch.device | str = "cpu",
                       batch_size: int | None = None) -> list[torch.Tensor]:
    """``n`` samples of ``model`` for each step count in ``steps``, all from one draw of ``generator`` (a CPU
    generator, so the draw is the same on any device): the noise, the fresh noise of the later steps, then
    random classes for a class-conditional model. So the 1- and 2-step samples share their noise, and a
    seeded generator gives the same images run after run: the demo grids and the judge draw this way.
    ``batch_size`` (default ``n``) bounds the images per forward pass."""
    noise = torch.randn([n, *sample_shape(config)], generator=generator)
    fresh = torch.randn(noise.shape, generator=generator)
    classes = random_classes(config, n, generator)
    batch_size = batch_size or n
    out = []
    for k in steps:
        sigmas, parts = config_sigmas(config, k, device), []
        for lo in range(0, n, batch_size):
            rows = slice(lo, lo + batch_size)
            extra_args = {key: value[rows].to(device) for key, value in classes.items()}
            x = noise[rows].to(device) * config["consistency"]["sigma_max"]
            later = fresh[rows].to(device)
            parts.append(sample_consistency(model, x, sigmas, extra_args=extra_args,
                                            noise_sampler=lambda *_, z=later: z, disable=True))
        out.append(torch.cat(parts))
    return out
