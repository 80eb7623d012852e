"""A 2-D toy: a Gaussian mixture to train on and a small MLP with k-diffusion's call signature."""

import math

import torch
from torch import nn


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

    def distance_to_modes(self, x: torch.Tensor) -> torch.Tensor:
        """Distance of each point to its nearest mean."""
        return torch.cdist(x.double(), self.means).min(1).values


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
