"""Consistency distillation with an exact teacher, and the ground truth it rests on."""

import copy
import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

import kdiff_gc
from kdiff_gc import CouplingContext, Distillation
from kdiff_gc.toy import GaussianMixture, ToyMLP
from models import IMAGE_V1


def two_modes():
    return GaussianMixture(torch.tensor([[1.0, 0.0], [-1.0, 0.5]]), torch.tensor([0.1, 0.3]),
                           torch.tensor([0.3, 0.7]))


def test_exact_denoiser_against_bayes_by_hand():
    mix = two_modes()
    x, sigma = torch.tensor([[0.2, 0.1], [-2.0, 1.0]]), torch.tensor([0.5, 2.0])
    got = mix.denoise(x, sigma)
    for b in range(2):
        s2 = sigma[b].item() ** 2
        weights = [w * multivariate_normal.pdf(x[b].numpy(), m.numpy(), (sd ** 2 + s2) * np.eye(2))
                   for w, m, sd in zip([0.3, 0.7], mix.means, [0.1, 0.3])]
        posterior = np.array(weights) / sum(weights)
        means = [m.numpy() + sd ** 2 / (sd ** 2 + s2) * (x[b].numpy() - m.numpy())
                 for m, sd in zip(mix.means, [0.1, 0.3])]
        np.testing.assert_allclose(got[b].numpy(), sum(p * m for p, m in zip(posterior, means)), rtol=1e-5)


def test_flow_map_of_one_gaussian_is_the_closed_form():
    # one mode N(m, s^2 I): x(sigma) - m scales with sqrt(s^2 + sigma^2) along the ODE
    m, s = torch.tensor([[0.3, -0.2]]), 0.4
    mix = GaussianMixture(m, torch.tensor([s]))
    x, sigma = torch.randn(6, 2) * 3, torch.tensor([0.1, 0.5, 1.0, 5.0, 20.0, 80.0])
    want = m + (x - m) * math.sqrt(s ** 2 + 0.002 ** 2) / (s ** 2 + sigma[:, None] ** 2).sqrt()
    torch.testing.assert_close(mix.flow_map(x, sigma), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("solver", ["heun", "euler"])
def test_cd_pair_is_one_ode_step_of_the_teacher(solver):
    mix = two_modes()
    x0, z = mix.sample(5), torch.randn(5, 2)
    s, s_next = torch.tensor([0.1, 0.3, 1.0, 4.0, 30.0]), torch.tensor([0.2, 0.5, 2.0, 6.0, 80.0])
    pair = Distillation(mix.denoiser(), solver)(x0, z, s, s_next, CouplingContext())
    x_next = x0 + s_next[:, None] * z
    d = (x_next - mix.denoise(x_next, s_next)) / s_next[:, None]
    x_euler = x_next + (s - s_next)[:, None] * d
    want = x_euler
    if solver == "heun":
        d2 = (x_euler - mix.denoise(x_euler, s)) / s[:, None]
        want = x_next + (s - s_next)[:, None] * (d + d2) / 2
    torch.testing.assert_close(pair.x_next, x_next)
    torch.testing.assert_close(pair.x, want, rtol=1e-5, atol=1e-5)


def flow_gap(model, mix, x0, z, sigma, truth):
    with torch.no_grad():
        return (model(x0 + sigma[:, None] * z, sigma) - truth).pow(2).sum(1).mean().item()


def test_short_cd_run_moves_the_model_toward_the_true_flow_map():
    mix = GaussianMixture.ring(4, radius=1.0, std=0.05)
    model = kdiff_gc.ConsistencyDenoiser(ToyMLP(width=128))
    ema = copy.deepcopy(model).requires_grad_(False)
    loss_fn = kdiff_gc.ConsistencyLoss(Distillation(mix.denoiser()), kdiff_gc.NoiseSchedule(s0=10, s1=160))
    g = torch.Generator().manual_seed(3)
    x0, z = mix.sample(512, g), torch.randn(512, 2, generator=g)
    sigmas, probabilities, _ = loss_fn.schedule.tables(0, 1)
    # training density
    sigma = sigmas[1:][torch.multinomial(probabilities, 512, replacement=True, generator=g)].float()
    truth = mix.flow_map(x0 + sigma[:, None] * z, sigma)
    before = flow_gap(model, mix, x0, z, sigma, truth)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for k in range(600):
        out = loss_fn(model, ema, mix.sample(256), k, 600)
        opt.zero_grad()
        out.loss.mean().backward()
        opt.step()
    after = flow_gap(model, mix, x0, z, sigma, truth)
    assert after < 0.3 * before, (before, after)


def test_builders_for_frozen_generator_and_teacher():
    config = kdiff_gc.load_config({"model": IMAGE_V1, "consistency": {"coupling": {"generator": "frozen"}}})
    frozen = ToyMLP()
    assert kdiff_gc.make_coupling(config, generator=frozen).generator is frozen
    with pytest.raises(ValueError, match="takes a consistency_model: pass it as generator="):
        kdiff_gc.make_coupling(config)
    config = kdiff_gc.load_config({"model": IMAGE_V1,
                                   "consistency": {"coupling": {"type": "distillation", "solver": "euler"}}})
    teacher = two_modes().denoiser()
    coupling = kdiff_gc.make_coupling(config, teacher=teacher)
    assert isinstance(coupling, Distillation) and coupling.teacher is teacher and coupling.solver == "euler"
    with pytest.raises(ValueError, match="takes a denoiser: pass it as teacher="):
        kdiff_gc.make_coupling(config)
