import copy
import math

import k_diffusion as K
import pytest
import torch

import kdiff_gc
from kdiff_gc.toy import GaussianMixture, ToyMLP
from models import IMAGE_V1, Recorder

STEP, TOTAL = 0, 1000  # N(0) = 11 grid points


def grid_by_hand(n=11, lo=0.002, hi=80.0, rho=7.0):
    return torch.tensor([(lo ** (1 / rho) + i / (n - 1) * (hi ** (1 / rho) - lo ** (1 / rho))) ** rho
                         for i in range(n)], dtype=torch.float64)


def test_loss_uses_one_dropout_mask_for_both_passes():
    model = kdiff_gc.ConsistencyDenoiser(ToyMLP(dim=16, dropout=0.5)).train()
    x0, z = torch.randn(32, 16), torch.randn(32, 16)
    idx = torch.randint(0, 10, (32,))
    loss_fn = kdiff_gc.ConsistencyLoss(kdiff_gc.Independent())

    torch.manual_seed(123)
    out = loss_fn(model, None, x0, STEP, TOTAL, noise=z, indices=idx)
    out.loss.mean().backward()
    got_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    sigmas = grid_by_hand()
    s, s_next = sigmas[idx].float(), sigmas[idx + 1].float()
    weight = (1 / (sigmas[idx + 1] - sigmas[idx])).float()
    c = 0.00054 * math.sqrt(16)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    with torch.no_grad():
        target = model(x0 + s[:, None] * z, s)
    torch.set_rng_state(state)
    pred = model(x0 + s_next[:, None] * z, s_next)
    want = weight * (torch.sqrt(((pred - target) ** 2).sum(1) + c * c) - c)
    torch.testing.assert_close(out.loss, want)
    want.mean().backward()
    for got, p in zip(got_grads, model.parameters()):
        torch.testing.assert_close(got, p.grad)

    # With a fresh mask for the student the loss differs: the comparison above can tell them apart.
    torch.manual_seed(123)
    with torch.no_grad():
        model(x0 + s[:, None] * z, s)
        other_pred = model(x0 + s_next[:, None] * z, s_next)
    assert not torch.allclose(other_pred, pred)


def test_conditioning_reaches_target_student_and_generator():
    model, ema = kdiff_gc.ConsistencyDenoiser(Recorder()), kdiff_gc.ConsistencyDenoiser(Recorder())
    labels = torch.arange(8)
    loss_fn = kdiff_gc.ConsistencyLoss(kdiff_gc.GeneratorInduced(mu=1.0))
    out = loss_fn(model, ema, torch.randn(8, 2), STEP, TOTAL, class_cond=labels)
    assert len(ema.inner_model.calls) == 1 and len(model.inner_model.calls) == 2
    for call in ema.inner_model.calls + model.inner_model.calls:
        assert torch.equal(call["class_cond"], labels)
    assert out.gc_share.item() == 1.0


def test_diagnostics():
    model = kdiff_gc.ConsistencyDenoiser(ToyMLP())
    loss_fn = kdiff_gc.ConsistencyLoss(kdiff_gc.GeneratorInduced(mu=0.5))
    idx = torch.tensor([0, 3, 9, 9])
    out = loss_fn(model, copy.deepcopy(model), torch.randn(4, 2), 300, 1000, indices=idx)
    # K' = floor(1000 / 8) = 125, so step 300 is in stage 2: N = 10 * 4 + 1
    assert out.n_scales == 41
    assert out.loss.shape == (4,) and (out.loss >= 0).all()
    sigmas = grid_by_hand(41)
    assert torch.allclose(out.sigma, sigmas[idx].float(), rtol=1e-6)
    assert torch.allclose(out.weight, 1 / (sigmas[idx + 1] - sigmas[idx]).float(), rtol=1e-6)
    assert out.gc_share.item() in (0.0, 0.25, 0.5, 0.75, 1.0)


def test_gc_with_mu_zero_gives_the_ic_loss_exactly():
    model = kdiff_gc.ConsistencyDenoiser(ToyMLP(dropout=0.2))
    x0 = torch.randn(16, 2)
    losses = []
    for coupling in (kdiff_gc.Independent(), kdiff_gc.GeneratorInduced(mu=0.0)):
        torch.manual_seed(7)
        losses.append(kdiff_gc.ConsistencyLoss(coupling)(model, model, x0, 50, 1000).loss)
    assert torch.equal(*losses)


def train_toy(coupling, steps=1500):
    """Short run of the loss step on a 4-mode ring (radius 1, std 0.05), Adam 2e-3, EMA 0.99."""
    mix = GaussianMixture.ring(4, radius=1.0, std=0.05)
    model = kdiff_gc.ConsistencyDenoiser(ToyMLP(width=128))
    ema = copy.deepcopy(model).requires_grad_(False)
    loss_fn = kdiff_gc.ConsistencyLoss(coupling)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(1)
    x_eval, z_eval = mix.sample(1024, g), torch.randn(1024, 2, generator=g)
    idx_eval = torch.multinomial(loss_fn.schedule.tables(0, steps)[1], 1024, replacement=True, generator=g)

    def eval_loss():
        return loss_fn(model, ema, x_eval, 0, steps, noise=z_eval, indices=idx_eval).loss.mean().item()
    before = eval_loss()
    for k in range(steps):
        out = loss_fn(model, ema, mix.sample(256), k, steps)
        opt.zero_grad()
        out.loss.mean().backward()
        opt.step()
        K.utils.ema_update(model, ema, 0.99)
    with torch.no_grad():
        samples = kdiff_gc.sample_consistency(ema, 80 * torch.randn(2000, 2),
                                              kdiff_gc.get_sigmas_consistency(1), disable=True)
    return mix, before, eval_loss(), samples


@pytest.mark.parametrize("coupling", [kdiff_gc.Independent(), kdiff_gc.GeneratorInduced(mu=0.5)],
                         ids=["ic", "gc"])
def test_toy_training_learns_the_mixture(coupling):
    mix, before, after, samples = train_toy(coupling)
    assert after < 0.8 * before
    distance = mix.distance_to_modes(samples)
    assert distance.median() < 0.3  # untrained: ~1.0 (samples near the origin); modes are 1.41 apart
    share = torch.bincount(torch.cdist(samples.double(), mix.means).argmin(1), minlength=4) / len(samples)
    assert (share > 0.1).all(), f"a mode is missing: {share.tolist()}"


def test_the_default_schedule_is_the_papers_and_a_config_overrides_it():
    assert kdiff_gc.NoiseSchedule() == kdiff_gc.NoiseSchedule(0.002, 80.0, 7.0, 10, 1280, -1.1, 2.0,
                                                              "improved")
    config = kdiff_gc.load_config({"model": IMAGE_V1, "consistency": {
        "rho": 5, "curriculum": {"s1": 640}, "timestep_density": {"p_std": 1.5}, "weighting": "uniform"}})
    schedule = kdiff_gc.make_consistency_loss(config).schedule
    assert schedule == kdiff_gc.NoiseSchedule(0.002, 80.0, 5, 10, 640, -1.1, 1.5, "uniform")
    sigmas, probabilities, weights = schedule.tables(0, 1000)
    assert (torch.allclose(sigmas, grid_by_hand(rho=5), rtol=1e-12)
            and torch.equal(weights, torch.ones(10, dtype=torch.float64)))


def test_the_uniform_density_draws_every_pair_of_levels_alike():
    config = kdiff_gc.load_config({"model": IMAGE_V1,
                                   "consistency": {"timestep_density": {"type": "uniform"}}})
    schedule = kdiff_gc.make_consistency_loss(config).schedule
    assert schedule.density == "uniform" and kdiff_gc.NoiseSchedule().density == "lognormal"
    # N = 11 at the start, 1281 at the end of the paper's curriculum
    for step, pairs in [(0, 10), (99999, 1280)]:
        assert torch.equal(schedule.tables(step, 100000)[1],
                           torch.full([pairs], 1 / pairs, dtype=torch.float64))
