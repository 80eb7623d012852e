"""Tiny k-diffusion model configs and small recording modules shared by the tests."""

import torch
from torch import nn

IMAGE_V1 = {"type": "image_v1", "input_channels": 1, "input_size": [8, 8], "mapping_out": 16,
            "depths": [1, 1], "channels": [16, 32], "self_attn_depths": [False, True]}
TRANSFORMER_V1 = {"type": "image_transformer_v1", "input_channels": 1, "input_size": [8, 8],
                  "patch_size": [2, 2], "depth": 1, "width": 64}


class Recorder(nn.Module):
    """``F(x, sigma) = a * x + b * log(sigma)`` that records the rows and keyword arguments it sees."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.7))
        self.b = nn.Parameter(torch.tensor(0.3))
        self.calls = []

    def forward(self, x, sigma, **kwargs):
        self.calls.append({"x": x.detach().clone(), "sigma": sigma.detach().clone(), **kwargs})
        return self.a * x + self.b * sigma.log().view(-1, *[1] * (x.ndim - 1))
