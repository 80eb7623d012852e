import math

import k_diffusion as K
import pytest
import torch

import kdiff_gc
from kdiff_gc.toy import ToyMLP
from models import IMAGE_V1, TRANSFORMER_V1

SIGMA_MIN, SIGMA_DATA = 0.002, 0.5


def expected_scalings(s):
    """The consistency-model scalings (Song et al. 2023, arXiv 2303.01469), written out on Python floats."""
    c_skip = SIGMA_DATA ** 2 / ((s - SIGMA_MIN) ** 2 + SIGMA_DATA ** 2)
    c_out = SIGMA_DATA * (s - SIGMA_MIN) / math.sqrt(s ** 2 + SIGMA_DATA ** 2)
    c_in = 1 / math.sqrt(s ** 2 + SIGMA_DATA ** 2)
    return c_skip, c_out, c_in


def test_scalings_match_the_formula():
    model = kdiff_gc.ConsistencyDenoiser(ToyMLP(), sigma_data=SIGMA_DATA, sigma_min=SIGMA_MIN)
    sigmas = [0.002, 0.01, 0.5, 1.0, 17.0, 80.0]
    got = model.get_scalings(torch.tensor(sigmas, dtype=torch.float64))
    for j, s in enumerate(sigmas):
        for value, want in zip(got, expected_scalings(s)):
            assert value[j].item() == pytest.approx(want, rel=1e-12, abs=1e-15)


def make_inner(kind):
    if kind == "mlp":
        return ToyMLP(dim=64), torch.randn(4, 64), {}
    config = kdiff_gc.load_config({"model": IMAGE_V1, "dataset": {}} if kind == "image_v1" else
                                  {"model": TRANSFORMER_V1, "dataset": {"num_classes": 3}})
    inner = K.config.make_model(config)
    x = torch.randn(4, 1, 8, 8)
    if kind == "image_v1":
        return inner, x, {"aug_cond": torch.randn(4, 9)}
    return inner, x, {"class_cond": torch.tensor([0, 1, 2, 0])}


@pytest.mark.parametrize("kind", ["mlp", "image_v1", "image_transformer_v1"])
def test_identity_at_sigma_min_is_bit_exact(kind):
    inner, x, cond = make_inner(kind)
    model = kdiff_gc.ConsistencyDenoiser(inner, sigma_data=SIGMA_DATA, sigma_min=SIGMA_MIN).eval()
    with torch.no_grad():
        out = model(x, torch.full([x.shape[0]], SIGMA_MIN), **cond)
    assert torch.equal(out, x)


@pytest.mark.parametrize("kind", ["mlp", "image_v1", "image_transformer_v1"])
def test_forward_is_skip_plus_scaled_inner(kind):
    inner, x, cond = make_inner(kind)
    model = kdiff_gc.ConsistencyDenoiser(inner, sigma_data=SIGMA_DATA, sigma_min=SIGMA_MIN).eval()
    s = 3.0
    c_skip, c_out, c_in = expected_scalings(s)
    sigma = torch.full([x.shape[0]], s)
    with torch.no_grad():
        want = c_skip * x + c_out * inner(c_in * x, sigma, **cond)
        got = model(x, sigma, **cond)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_k_diffusion_samplers_run_unchanged():
    config = kdiff_gc.load_config({"model": IMAGE_V1})
    model = kdiff_gc.make_denoiser(config).eval()
    sigmas = K.sampling.get_sigmas_karras(4, SIGMA_MIN, 80.0)
    x = torch.randn(2, 1, 8, 8) * sigmas[0]
    out = K.sampling.sample_euler(model, x, sigmas, disable=True)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, x)


def test_denoising_loss_is_refused_with_a_pointer():
    model = kdiff_gc.ConsistencyDenoiser(ToyMLP())
    with pytest.raises(TypeError, match="ConsistencyLoss"):
        model.loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1))
