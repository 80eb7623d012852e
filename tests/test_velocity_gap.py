"""The flow-gap benchmark's velocity gap against closed forms on a single Gaussian."""

import torch

import kdiff_gc
from kdiff_gc.toy import EvalSet, GaussianMixture, ToyMLP, velocity_gap


def gaussian(dim: int, std: float) -> GaussianMixture:
    return GaussianMixture(torch.full([1, dim], 0.3, dtype=torch.float64),
                           torch.tensor([std], dtype=torch.float64))


def test_independent_coupling_gap_is_the_posterior_variance_of_the_noise():
    """Data N(m, s^2 I): x = x0 + sigma z gives Var(z | x) = s^2 / (s^2 + sigma^2) per coordinate, so the
    IC velocity gap E ||z - E[z | x]||^2 is d s^2 / (s^2 + sigma^2)."""
    dim, std, n = 3, 0.7, 40_000
    mix, g = gaussian(dim, std), torch.Generator().manual_seed(0)
    x0, z = mix.sample(n, g), torch.randn(n, dim, generator=g)
    for lower, upper in [(0.4, 0.5), (1.5, 2.0)]:
        sigma, sigma_next = torch.full([n], lower), torch.full([n], upper)
        pair = kdiff_gc.Independent()(x0, z, sigma, sigma_next, kdiff_gc.CouplingContext())
        gap = velocity_gap(pair, sigma, sigma_next, mix.denoiser()).mean().item()
        expected = dim * std ** 2 / (std ** 2 + upper ** 2)
        assert abs(gap - expected) < 0.03 * expected, (upper, gap, expected)


def test_distillation_with_the_exact_euler_step_has_no_gap():
    """CD with an Euler step of the exact teacher moves along the true velocity at x_{i+1}: the gap is 0,
    while a pair on the noise ray (IC) has a positive one."""
    mix, g = gaussian(2, 0.5), torch.Generator().manual_seed(1)
    x0, z = mix.sample(64, g), torch.randn(64, 2, generator=g)
    sigma, sigma_next = torch.full([64], 1.0), torch.full([64], 1.2)
    context = kdiff_gc.CouplingContext()
    cd = kdiff_gc.Distillation(mix.denoiser(), solver="euler")(x0, z, sigma, sigma_next, context)
    ic = kdiff_gc.Independent()(x0, z, sigma, sigma_next, context)
    assert velocity_gap(cd, sigma, sigma_next, mix.denoiser()).max().item() < 1e-8
    assert velocity_gap(ic, sigma, sigma_next, mix.denoiser()).mean().item() > 0.05


def test_measuring_the_coupling_leaves_training_randomness_alone():
    """The GC pairs of the evaluation are drawn from their own seed: measuring twice gives the same
    numbers and the global RNG is where it was; the generator-made rows are about a share mu."""
    mix = GaussianMixture.ring(modes=4)
    eval_set = EvalSet(mix, kdiff_gc.NoiseSchedule(), n=200, total=50, batch=64)
    model = kdiff_gc.ConsistencyDenoiser(ToyMLP(dim=2, width=16)).eval()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first, is_gc = eval_set.coupling_velocity_gap(kdiff_gc.GeneratorInduced(mu=0.5), model)
    again, _ = eval_set.coupling_velocity_gap(kdiff_gc.GeneratorInduced(mu=0.5), model)
    assert torch.equal(torch.get_rng_state(), state) and torch.equal(first, again)
    assert 0.35 < is_gc.float().mean().item() < 0.65
    ic, _ = eval_set.coupling_velocity_gap(kdiff_gc.Independent(), model)
    assert torch.equal(ic[~is_gc], first[~is_gc]) and not torch.equal(ic[is_gc], first[is_gc])
