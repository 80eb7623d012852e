"""Mixed precision that keeps the noise-level embedding exact enough for consistency training."""

import k_diffusion as K
import torch


class FullPrecisionFourierFeatures(K.layers.FourierFeatures):
    """k-diffusion's ``FourierFeatures`` computed in float32 even under autocast. In bf16 the phases
    ``2 pi c_noise W`` of neighbouring grid levels round to the same value (at N = 1281, about a third
    of the neighbouring pairs), so the two passes of the consistency loss would see one sigma."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        with torch.autocast(input.device.type, enabled=False):
            return super().forward(input.float())


def fourier_features_in_fp32(model: torch.nn.Module) -> torch.nn.Module:
    """Switch every k-diffusion ``FourierFeatures`` in ``model`` to :class:`FullPrecisionFourierFeatures`
    (same parameters and state dict; only autocast behaviour changes)."""
    for module in model.modules():
        if type(module) is K.layers.FourierFeatures:
            module.__class__ = FullPrecisionFourierFeatures
    return model
