"""iCT schedules: discretization curriculum, noise grid, index density and weighting.

Improved consistency training (Song & Dhariwal, 2023, arXiv 2310.14189), as docs/algorithm.md §3-§5
states it. Plain functions of plain numbers; the loss step composes them.
"""

import math

import torch


def num_scales(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """Discretization curriculum ``N(k) = min(s0 * 2^floor(k / K'), s1) + 1`` (docs/algorithm.md §3.1).

    ``K' = floor(K / (log2(floor(s1 / s0)) + 1))`` with ``K = total_steps`` (§3.2), at least 1 (§11.2).
    """
    k_prime = math.floor(total_steps / (math.log2(math.floor(s1 / s0)) + 1))
    doublings = step // max(k_prime, 1)
    return min(s0 * 2 ** doublings, s1) + 1


def karras_grid(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> torch.Tensor:
    """Ascending grid ``sigma_i = (sigma_min^(1/rho) + i/(N-1) (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho``
    (docs/algorithm.md §3.3).

    ``i = 0..N-1``, so ``sigma_0 = sigma_min`` and ``sigma_{N-1} = sigma_max``. Computed in float64
    and cast, so the ends are the configured values to the last bit of ``dtype`` (§11.1).
    """
    if n < 2:
        raise ValueError(f"karras_grid needs n >= 2 points, got {n}")
    ramp = torch.arange(n, dtype=torch.float64) / (n - 1)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (lo + ramp * (hi - lo)) ** rho
    sigmas[0], sigmas[-1] = sigma_min, sigma_max
    return sigmas.to(dtype=dtype, device=device)


def index_probabilities(sigmas: torch.Tensor, p_mean: float = -1.1, p_std: float = 2.0) -> torch.Tensor:
    """Discretized lognormal density over ``i in {0..N-2}`` (docs/algorithm.md §4.1).

    ``p(i) ∝ erf((ln sigma_{i+1} - P_mean) / (sqrt(2) P_std)) - erf((ln sigma_i - P_mean) / (sqrt(2)
    P_std))``, normalized to sum to one.
    """
    cdf = torch.erf((sigmas.double().log() - p_mean) / (math.sqrt(2) * p_std))
    mass = cdf[1:] - cdf[:-1]
    return mass / mass.sum()


def sample_indices(probabilities: torch.Tensor, batch_size: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``batch_size`` indices ``i`` i.i.d. from ``probabilities`` (with replacement)."""
    return torch.multinomial(probabilities, batch_size, replacement=True, generator=generator)


def improved_weighting(sigmas: torch.Tensor) -> torch.Tensor:
    """iCT weighting ``lambda_i = 1 / (sigma_{i+1} - sigma_i)`` for ``i = 0..N-2``
    (docs/algorithm.md §5.1)."""
    return 1 / (sigmas[1:] - sigmas[:-1])


def uniform_weighting(sigmas: torch.Tensor) -> torch.Tensor:
    """Constant weighting ``lambda_i = 1`` (original consistency training, docs/algorithm.md §5.1)."""
    return torch.ones_like(sigmas[1:])


WEIGHTINGS = {"improved": improved_weighting, "uniform": uniform_weighting}
