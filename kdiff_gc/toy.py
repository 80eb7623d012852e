"""A toy with exact ground truth: a Gaussian mixture (its denoiser and true consistency function) to
train on, and a small MLP with k-diffusion's call signature."""

import math

import torch
from torch import nn

from .coupling import ode_step


class GaussianMixture:
    """Isotropic Gaussian mixture with weights ``w_k``, means ``m_k`` and standard deviations ``s_k``."""

    def __init__(self, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor | None = None):
        self.means, self.stds = means.double(), stds.double()
        self.weights = torch.full_like(self.stds, 1 / len(stds)) if weights is None else weights.double()

    @classmethod
    def ring(cls, modes: int = 4, radius: float = 1.0, std: float = 0.05, dim: int = 2) -> "GaussianMixture":
        """``modes`` equal-weight modes evenly spaced on a circle in the first two coordinates."""
        angles = torch.arange(modes, dtype=torch.float64) * 2 * math.pi / modes
        means = torch.zeros(modes, dim, dtype=torch.float64)
        means[:, 0], means[:, 1] = radius * angles.cos(), radius * angles.sin()
        return cls(means, torch.full([modes], std, dtype=torch.float64))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.means.shape[1], dtype=torch.float64, generator=generator)
        return (self.means[k] + self.stds[k, None] * noise).float()

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The exact denoiser ``D(x, sigma) = sum_k r_k(x) (m_k + s_k^2 / (s_k^2 + sigma^2) (x - m_k))``,
        ``r_k ∝ w_k N(x; m_k, (s_k^2 + sigma^2) I)`` (the posterior mean of a Gaussian mixture; docs/algorithm.md
        §12.1), in float64."""
        x64, var = x.double(), self.stds ** 2 + sigma.double()[:, None] ** 2  # (B, K)
        sq = torch.cdist(x64, self.means) ** 2
        log_r = self.weights.log() - sq / (2 * var) - x.shape[1] / 2 * var.log()
        r = torch.softmax(log_r, dim=1)
        shrink = self.stds ** 2 / var  # (B, K)
        per_mode = self.means + shrink[..., None] * (x64[:, None] - self.means)  # (B, K, D)
        return (r[..., None] * per_mode).sum(1).to(x.dtype)

    def denoiser(self) -> "ExactDenoiser":
        """This mixture's exact denoiser as a module with k-diffusion's call signature (a CD teacher)."""
        return ExactDenoiser(self)

    def flow_map(self, x: torch.Tensor, sigma: torch.Tensor, sigma_min: float = 0.002, steps: int = 200) -> torch.Tensor:
        """The true consistency function ``f*(x, sigma)``: the probability-flow ODE
        ``dx/dsigma = (x - D(x, sigma)) / sigma`` integrated from ``sigma`` to ``sigma_min`` with Heun steps
        evenly spaced in ``log sigma``, in float64 (docs/algorithm.md §12.2)."""
        x, log_hi, log_lo = x.double(), sigma.double().log(), torch.full_like(sigma, sigma_min, dtype=torch.float64).log()
        for k in range(steps):
            s_from = (log_hi + (log_lo - log_hi) * k / steps).exp()
            s_to = (log_hi + (log_lo - log_hi) * (k + 1) / steps).exp()
            x = ode_step(self.denoise, x, s_from, s_to, "heun")
        return x.float()

    def distance_to_modes(self, x: torch.Tensor) -> torch.Tensor:
        """Distance of each point to its nearest mean."""
        return torch.cdist(x.double(), self.means).min(1).values


class ExactDenoiser(nn.Module):
    """``D(x, sigma)`` of a :class:`GaussianMixture`, called like a k-diffusion denoiser."""

    def __init__(self, mixture: GaussianMixture):
        super().__init__()
        self.mixture = mixture

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.mixture.denoise(x, sigma)


class ToyMLP(nn.Module):
    """``F(x, sigma)``: an MLP on ``[x, log(sigma) / 4]``, the sigma embedding k-diffusion models use."""

    def __init__(self, dim: int = 2, width: int = 128, depth: int = 3, dropout: float = 0.0):
        super().__init__()
        layers, d = [], dim + 1
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.SiLU(), nn.Dropout(dropout)]
            d = width
        self.net = nn.Sequential(*layers, nn.Linear(d, dim))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, sigma.log()[:, None] / 4], dim=1))
