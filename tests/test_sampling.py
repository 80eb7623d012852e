import k_diffusion as K
import pytest
import torch

import kdiff_gc
from kdiff_gc.config import load_config
from kdiff_gc.sampling import config_sigmas, sample_fixed_noise
from kdiff_gc.toy import ToyMLP


def model():
    return kdiff_gc.ConsistencyDenoiser(ToyMLP(dim=6), sigma_data=0.5, sigma_min=0.002).eval()


def test_one_step_equals_the_model_call():
    f = model()
    x = 80.0 * torch.randn(5, 6)
    out = kdiff_gc.sample_consistency(f, x, kdiff_gc.get_sigmas_consistency(1), disable=True)
    with torch.no_grad():
        assert torch.equal(out, f(x, torch.full([5], 80.0)))


def test_two_steps_against_the_algorithm_written_out():
    f = model()
    x = 80.0 * torch.randn(5, 6)
    fresh = torch.randn(5, 6)
    seen = []
    out = kdiff_gc.sample_consistency(f, x, kdiff_gc.get_sigmas_consistency(2, sigma_mid=0.8),
                                      noise_sampler=lambda s, s_next: fresh, callback=seen.append,
                                      disable=True)
    with torch.no_grad():
        x0 = f(x, torch.full([5], 80.0))
        x_mid = x0 + (0.8 ** 2 - 0.002 ** 2) ** 0.5 * fresh
        want = f(x_mid, torch.full([5], 0.8))
    torch.testing.assert_close(out, want)
    assert [d["i"] for d in seen] == [0, 1]
    assert set(seen[0]) == {"x", "i", "sigma", "sigma_hat", "denoised"}
    torch.testing.assert_close(seen[1]["x"], x_mid)


def test_sigma_schedules():
    assert kdiff_gc.get_sigmas_consistency(1).tolist() == [80.0, 0.0]
    # iCT's two-step midpoint on CIFAR-10 by default, as a float32 tensor holds it
    assert kdiff_gc.get_sigmas_consistency(2).tolist() == [80.0, torch.tensor(0.821).item(), 0.0]
    assert kdiff_gc.get_sigmas_consistency(2, sigma_mid=0.5).tolist() == [80.0, 0.5, 0.0]
    assert kdiff_gc.get_sigmas_consistency([80, 5, 1]).tolist() == [80.0, 5.0, 1.0, 0.0]
    for bad in (3, [1, 5], [5, 0]):
        with pytest.raises(ValueError):
            kdiff_gc.get_sigmas_consistency(bad)


def test_a_config_names_its_two_step_midpoint():
    config = {"model": {"type": "image_v1", "input_channels": 1, "input_size": [8, 8], "mapping_out": 8,
                        "depths": [1], "channels": [8], "self_attn_depths": [False]}}
    assert config_sigmas(load_config(config), 2).tolist() == [80.0, torch.tensor(0.821).item(), 0.0]
    config["consistency"] = {"sigma_max": 40.0, "sigma_mid": 0.5}
    assert config_sigmas(load_config(config), 2).tolist() == [40.0, 0.5, 0.0]
    assert config_sigmas(load_config(config), 1).tolist() == [40.0, 0.0]


def test_fixed_noise_samples_against_the_algorithm_written_out():
    """One draw of the generator, in order: the noise, the later steps' fresh noise; the 1- and 2-step samples
    share it, and the batch size changes nothing."""
    config = load_config({"model": {"type": "image_v1", "input_channels": 1, "input_size": [8, 8],
                                    "mapping_out": 8, "depths": [1], "channels": [8],
                                    "self_attn_depths": [False]}})
    f = kdiff_gc.make_denoiser(config).eval()
    one, two = sample_fixed_noise(f, config, 5, (1, 2), torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(7)
    noise, fresh = torch.randn(5, 1, 8, 8, generator=gen), torch.randn(5, 1, 8, 8, generator=gen)
    with torch.no_grad():
        x0 = f(noise * 80.0, torch.full([5], 80.0))
        mid = config["consistency"]["sigma_mid"]
        want_two = f(x0 + (mid ** 2 - 0.002 ** 2) ** 0.5 * fresh, torch.full([5], mid))
    torch.testing.assert_close(one, x0)
    torch.testing.assert_close(two, want_two)
    batched = sample_fixed_noise(f, config, 5, (2,), torch.Generator().manual_seed(7), batch_size=2)[0]
    torch.testing.assert_close(batched, two)


def test_k_diffusion_sigmas_without_trailing_zero_and_sigma_min_required():
    f = model()
    x = 80.0 * torch.randn(2, 6)
    sigmas = K.sampling.get_sigmas_karras(3, 0.5, 80.0)[:-1]
    out = kdiff_gc.sample_consistency(f, x, sigmas, disable=True)
    assert out.shape == x.shape
    with pytest.raises(ValueError, match="sigma_min"):
        kdiff_gc.sample_consistency(f.inner_model, x, sigmas, disable=True)


def test_the_samplers_that_need_two_steps_are_the_ones_listed():
    """Every k-diffusion sampler sample_gc.py offers, run for one step of a model that returns zeros: the ones
    that fail are MIN_SAMPLER_STEPS's, which sample_gc.py refuses with fewer steps."""
    from kdiff_gc.programs.sample import MIN_SAMPLER_STEPS, k_diffusion_samplers

    def runs(sampler, steps: int) -> bool:
        try:
            sampler(lambda x, sigma, **kwargs: torch.zeros_like(x), torch.randn(2, 1, 4, 4) * 80,
                    K.sampling.get_sigmas_karras(steps, 0.002, 80.0), disable=True)
        except Exception:
            return False
        return True

    samplers = k_diffusion_samplers()
    assert {name for name, sampler in samplers.items() if not runs(sampler, 1)} == set(MIN_SAMPLER_STEPS)
    assert all(runs(samplers[name], steps) for name, steps in MIN_SAMPLER_STEPS.items())
