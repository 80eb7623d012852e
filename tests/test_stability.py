"""bench/stability.py's per-row gradient weights, against autograd."""

import pytest
import torch

from bench.stability import gradient_weights
from kdiff_gc import load_config
from kdiff_gc.distances import pseudo_huber
from kdiff_gc.loss import LossOutput


@pytest.mark.parametrize("distance", [{"type": "pseudo_huber", "c": 0.3}, {"type": "pseudo_huber", "c": None},
                                      {"type": "l2"}])
def test_gradient_weights_are_the_norms_of_each_rows_loss_gradient(distance):
    config = load_config({"model": {"type": "image_v1", "input_channels": 1, "input_size": [4, 4],
                                    "patch_size": 1, "mapping_out": 8, "depths": [1], "channels": [8],
                                    "self_attn_depths": [False]},
                          "consistency": {"distance": distance}})
    torch.manual_seed(0)
    # rows far from and near the target, where pseudo-Huber is linear and quadratic
    prediction = (torch.randn(6, 1, 4, 4) * torch.tensor([3, 1, 0.1, 1e-2, 1e-3, 0.5])[:, None, None, None])
    prediction.requires_grad_(True)
    weight = torch.tensor([1.0, 2.0, 50.0, 400.0, 3000.0, 0.5])
    if distance["type"] == "l2":
        per_row = (prediction ** 2).flatten(1).sum(1)
    else:
        per_row = pseudo_huber(prediction, torch.zeros_like(prediction), distance["c"])
    loss = weight * per_row
    (gradient,) = torch.autograd.grad(loss.sum(), prediction)
    out = LossOutput(loss.detach(), 11, torch.tensor(0.0), torch.ones(6), weight)
    expected = gradient.flatten(1).norm(dim=1).double()
    assert torch.allclose(gradient_weights(config, out, 16), expected, rtol=1e-3)
