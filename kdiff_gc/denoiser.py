"""The consistency parameterization as a k-diffusion denoiser."""

import torch
from k_diffusion import layers


class ConsistencyDenoiser(layers.Denoiser):
    """``f(x, sigma) = c_skip x + c_out F(c_in x, sigma)`` with the consistency-model scalings.

    ``c_skip = sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2)``,
    ``c_out = sigma_data (sigma - sigma_min) / sqrt(sigma^2 + sigma_data^2)``,
    ``c_in = 1 / sqrt(sigma^2 + sigma_data^2)`` (docs/algorithm.md §2.1; arXiv 2303.01469, 2310.14189), so
    that ``f(x, sigma_min) == x`` exactly. ``inner_model(x, sigma, **kwargs)`` is any module with
    k-diffusion's call signature; it receives the raw sigma, as k-diffusion models expect.
    Being a :class:`k_diffusion.layers.Denoiser`, it runs under k-diffusion's samplers unchanged.
    """

    def __init__(self, inner_model: torch.nn.Module, sigma_data: float = 0.5, sigma_min: float = 0.002):
        super().__init__(inner_model, sigma_data=sigma_data)
        self.sigma_min = sigma_min

    def get_scalings(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shifted = sigma - self.sigma_min
        c_skip = self.sigma_data ** 2 / (shifted ** 2 + self.sigma_data ** 2)
        c_out = self.sigma_data * shifted / (sigma ** 2 + self.sigma_data ** 2) ** 0.5
        c_in = 1 / (sigma ** 2 + self.sigma_data ** 2) ** 0.5
        return c_skip, c_out, c_in

    def loss(self, *args, **kwargs):
        raise TypeError("ConsistencyDenoiser has no denoising loss: train it with kdiff_gc.ConsistencyLoss")
