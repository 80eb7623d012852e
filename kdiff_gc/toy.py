"""A toy with exact ground truth: a Gaussian mixture (its denoiser and true consistency function) to
train on, a small MLP with k-diffusion's call signature, and what a model trained on it is measured
with (docs/algorithm.md §12)."""

import math

import torch
from torch import nn

from .coupling import CouplingContext, Pair, ode_step
from .loss import NoiseSchedule

BANDS = [(0.0, 0.1), (0.1, 1.0), (1.0, 10.0), (10.0, 81.0)]  # sigma bands for the per-band means


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
        ``r_k ∝ w_k N(x; m_k, (s_k^2 + sigma^2) I)`` (the posterior mean of a Gaussian mixture;
        docs/algorithm.md §12.1), in float64."""
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

    def flow_map(self, x: torch.Tensor, sigma: torch.Tensor, sigma_min: float = 0.002,
                 steps: int = 200) -> torch.Tensor:
        """The true consistency function ``f*(x, sigma)``: the probability-flow ODE
        ``dx/dsigma = (x - D(x, sigma)) / sigma`` integrated from ``sigma`` to ``sigma_min`` with Heun steps
        evenly spaced in ``log sigma``, in float64 (docs/algorithm.md §12.2)."""
        x, log_hi, log_lo = (x.double(), sigma.double().log(),
                             torch.full_like(sigma, sigma_min, dtype=torch.float64).log())
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


def sliced_w2(a: torch.Tensor, b: torch.Tensor, projections: int = 128) -> float:
    """Sliced Wasserstein-2 between two equal-size point sets (sorted 1-D projections)."""
    dirs = torch.randn(a.shape[1], projections, generator=torch.Generator().manual_seed(5),
                       dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0)
    pa, pb = (a.double() @ dirs).sort(0).values, (b.double() @ dirs).sort(0).values
    return (pa - pb).pow(2).mean().sqrt().item()


def velocity_gap(pair: Pair, sigma: torch.Tensor, sigma_next: torch.Tensor, denoiser) -> torch.Tensor:
    """Per row ``||v_proxy - v(x_{i+1}, sigma_{i+1})||^2``: the proxy velocity of a pair,
    ``(x_{i+1} - x_i) / (sigma_{i+1} - sigma_i)`` (``z`` for IC and GC pairs, the teacher's step for CD),
    against the probability-flow velocity ``v(x, sigma) = (x - D*(x, sigma)) / sigma`` of the data
    (Karras et al. 2022, arXiv 2206.00364) with the exact denoiser ``D*`` (docs/algorithm.md §12.3). For IC
    its mean is ``E ||z - E[z | x_sigma]||^2``."""
    proxy = (pair.x_next - pair.x) / (sigma_next - sigma)[:, None]
    true = (pair.x_next - denoiser(pair.x_next, sigma_next)) / sigma_next[:, None]
    return (proxy - true).pow(2).sum(1)


class EvalSet:
    """Fixed (x0, z, sigma) from the training density at the final curriculum, and f* there: what a model
    trained on the mixture is measured on (its flow gap, transport cost, 1-step samples and velocity gap)."""

    def __init__(self, mix: GaussianMixture, schedule: NoiseSchedule, n: int, total: int, batch: int):
        g = torch.Generator().manual_seed(1)
        sigmas, probabilities, _ = schedule.tables(total - 1, total)
        idx = torch.multinomial(probabilities, n, replacement=True, generator=g)
        self.x0, self.z = mix.sample(n, g), torch.randn(n, mix.means.shape[1], generator=g)
        self.sigma_lower, self.sigma = sigmas[idx].float(), sigmas[idx + 1].float()
        self.denoiser, self.total, self.batch = mix.denoiser(), total, batch
        self.x = self.x0 + self.sigma[:, None] * self.z
        self.truth = mix.flow_map(self.x, self.sigma)
        self.reference = mix.sample(n, g)
        self.noise = torch.randn(n, mix.means.shape[1], generator=g) * 80.0

    @torch.no_grad()
    def coupling_velocity_gap(self, coupling, model) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row: the velocity gap of ``coupling``'s pairs at the last step, ``model`` as its generator,
        batch by batch as in training, and whether the row is a GC pair. The coupling's random draws are
        seeded and do not touch training's RNG."""
        context = CouplingContext(self.total - 1, self.total, model, model)
        gaps, is_gc = [], []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(2)
            for rows in torch.arange(len(self.x0)).split(self.batch):
                lower, upper = self.sigma_lower[rows], self.sigma[rows]
                pair = coupling(self.x0[rows], self.z[rows], lower, upper, context)
                gaps.append(velocity_gap(pair, lower, upper, self.denoiser))
                is_gc.append(pair.is_gc)
        return torch.cat(gaps), torch.cat(is_gc)

    def by_band(self, values: torch.Tensor, name: str) -> dict:
        """Means of ``values`` over the rows whose sigma falls in each band."""
        row = {}
        for lo, hi in BANDS:
            band = (self.sigma >= lo) & (self.sigma < hi)
            row[f"{name}_sigma_{lo:g}_{hi:g}"] = values[band].mean().item() if band.any() else float("nan")
        return row

    @torch.no_grad()
    def measure(self, model, coupling) -> dict:
        f = model(self.x, self.sigma)
        gap = (f - self.truth).pow(2).sum(1)
        vgap, is_gc = self.coupling_velocity_gap(coupling, model)
        return {"flow_gap": gap.mean().item(), "transport": (f - self.z).pow(2).sum(1).mean().item(),
                "sample_swd": sliced_w2(model(self.noise, torch.full([len(self.noise)], 80.0)),
                                        self.reference),
                "velocity_gap": vgap.mean().item(),
                "velocity_gap_gc_rows": vgap[is_gc].mean().item() if is_gc.any() else float("nan"),
                **self.by_band(gap, "gap"), **self.by_band(vgap, "vgap")}
