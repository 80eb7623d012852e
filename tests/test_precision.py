import k_diffusion as K
import torch

from kdiff_gc import schedules
from kdiff_gc.precision import FullPrecisionFourierFeatures, fourier_features_in_fp32


def test_sigma_embedding_keeps_neighbouring_levels_apart_under_bf16():
    torch.manual_seed(0)
    embed = K.layers.FourierFeatures(1, 256)
    sigmas = schedules.karras_grid(1281).float()
    c_noise = (sigmas.log() / 4)[:, None]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        plain = embed(c_noise)
        fixed = fourier_features_in_fp32(torch.nn.Sequential(embed))[0](c_noise)

    def collapsed(e):
        return (e[1:] == e[:-1]).all(1).sum().item()
    assert collapsed(plain) > 100  # bf16 gives many neighbours one embedding (the problem)
    assert collapsed(fixed) == 0 and fixed.dtype == torch.float32
    with torch.no_grad():
        exact = torch.cat([(2 * torch.pi * c_noise @ embed.weight.T).cos(),
                           (2 * torch.pi * c_noise @ embed.weight.T).sin()], 1)
    torch.testing.assert_close(fixed, exact)
    assert isinstance(embed, FullPrecisionFourierFeatures) and set(embed.state_dict()) == {"weight"}
