import itertools
import json

import pytest
import torch

from kdiff_gc import CouplingContext, GeneratorInduced, Independent, MinibatchOT, coupling, schema
from kdiff_gc.toy import ToyMLP
from models import Recorder


def batch(n=8, shape=(3, 4, 4)):
    x0, z = torch.randn(n, *shape), torch.randn(n, *shape)
    sigma = torch.rand(n) * 5 + 0.01
    return x0, z, sigma, sigma + torch.rand(n)


def ray(x0, z, s):
    return x0 + s.view(-1, 1, 1, 1) * z


def test_independent_pairs_are_data_plus_scaled_noise():
    x0, z, s, s_next = batch()
    pair = Independent()(x0, z, s, s_next, CouplingContext())
    assert torch.equal(pair.x, ray(x0, z, s)) and torch.equal(pair.x_next, ray(x0, z, s_next))
    assert not pair.is_gc.any()


@pytest.mark.parametrize("context", [CouplingContext(step=5), CouplingContext(step=2, total_steps=10)])
def test_gc_with_mu_zero_or_before_start_is_ic(context):
    x0, z, s, s_next = batch()
    gen = Recorder()
    coupling = (GeneratorInduced(mu=0.0, generator=gen) if context.step == 5
                else GeneratorInduced(0.5, start_step=3, generator=gen))
    state = torch.get_rng_state()
    pair = coupling(x0, z, s, s_next, context)
    assert torch.equal(torch.get_rng_state(), state), "mu = 0 must not consume randomness"
    ic = Independent()(x0, z, s, s_next, context)
    assert torch.equal(pair.x, ic.x) and torch.equal(pair.x_next, ic.x_next)
    assert gen.calls == [] and not pair.is_gc.any()


def test_gc_with_mu_one_uses_the_generator_everywhere():
    x0, z, s, s_next = batch()
    gen = Recorder()
    pair = GeneratorInduced(mu=1.0, generator=gen)(x0, z, s, s_next, CouplingContext())
    a, b = gen.a.item(), gen.b.item()
    x0_hat = a * ray(x0, z, s) + b * s.log().view(-1, 1, 1, 1)
    torch.testing.assert_close(pair.x, ray(x0_hat, z, s))
    torch.testing.assert_close(pair.x_next, ray(x0_hat, z, s_next))
    assert pair.is_gc.all()


def test_generator_sees_exactly_the_selected_rows_and_their_conditioning():
    x0, z, s, s_next = batch(n=64)
    labels = torch.arange(64)
    gen = Recorder()
    context = CouplingContext(extra_args={"class_cond": labels, "guidance": 2.0})
    pair = GeneratorInduced(mu=0.5, generator=gen)(x0, z, s, s_next, context)
    rows = pair.is_gc.nonzero().squeeze(1)
    assert 10 < len(rows) < 54
    (call,) = gen.calls
    assert call["x"].shape[0] == len(rows)
    torch.testing.assert_close(call["x"], ray(x0, z, s)[rows])
    assert torch.equal(call["sigma"], s[rows])
    assert torch.equal(call["class_cond"], labels[rows]) and call["guidance"] == 2.0
    ic = ~pair.is_gc
    assert torch.equal(pair.x[ic], ray(x0, z, s)[ic]) and torch.equal(pair.x_next[ic], ray(x0, z, s_next)[ic])
    assert not torch.allclose(pair.x[rows], ray(x0, z, s)[rows])


def test_gc_share_matches_mu():
    x0, z, s, s_next = batch(n=20_000, shape=(1,))
    s, s_next = s.view(-1), s_next.view(-1)
    pair = GeneratorInduced(mu=0.3, generator=Recorder())(x0, z, s, s_next, CouplingContext())
    assert abs(pair.is_gc.float().mean().item() - 0.3) < 0.015


def test_mu_moves_linearly_from_start_step():
    coupling = GeneratorInduced(mu=0.2, mu_end=0.6, start_step=100)
    assert coupling.mu_at(99, 1100) == 0.0
    assert coupling.mu_at(100, 1100) == pytest.approx(0.2)
    assert coupling.mu_at(600, 1100) == pytest.approx(0.2 + 0.4 * 500 / 1000)
    assert coupling.mu_at(1100, 1100) == pytest.approx(0.6)
    assert coupling.mu_at(5000, 1100) == pytest.approx(0.6)
    assert GeneratorInduced(mu=0.5).mu_at(777, 1000) == 0.5


def test_generator_choice_ema_online_and_eval_mode():
    x0, z, s, s_next = batch()
    online, ema = ToyMLP(dim=48, dropout=0.5), ToyMLP(dim=48, dropout=0.5)
    seen = []
    for net in (online, ema):
        net.register_forward_pre_hook(lambda m, args, net=net: seen.append((net, m.training)))
    online.train(), ema.train()
    flat = [t.flatten(1) for t in (x0, z)]
    context = CouplingContext(model=online, ema_model=ema)
    GeneratorInduced(mu=1.0, generator="ema")(*flat, s, s_next, context)
    GeneratorInduced(mu=1.0, generator="online")(*flat, s, s_next, context)
    assert seen == [(ema, False), (online, False)]
    assert online.training and ema.training
    with pytest.raises(ValueError, match="'ema'"):
        GeneratorInduced(mu=1.0)(*flat, s, s_next, CouplingContext(model=online))


def test_generator_runs_in_eval_mode_when_only_a_submodule_trains():
    x0, z, s, s_next = (t.flatten(1) if t.ndim > 1 else t for t in batch())
    ema = ToyMLP(dim=48, dropout=0.5).eval()
    dropout = ema.net[2]
    dropout.train()  # the root is in eval mode, a dropout layer is not
    seen = []
    dropout.register_forward_pre_hook(lambda m, args: seen.append(m.training))
    GeneratorInduced(mu=1.0)(x0, z, s, s_next, CouplingContext(ema_model=ema))
    assert seen == [False] and dropout.training and not ema.training


def test_minibatch_ot_is_optimal_against_brute_force():
    x0, z, s, s_next = batch(n=6, shape=(3,))

    def cost(perm):
        return sum(((x0[j] - z[p]) ** 2).sum().item() for j, p in enumerate(perm))
    best = min(itertools.permutations(range(6)), key=cost)
    pair = MinibatchOT()(x0, z, s, s_next, CouplingContext())
    z_paired = (pair.x - x0) / s[:, None]
    torch.testing.assert_close(z_paired, z[list(best)], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pair.x_next, x0 + s_next[:, None] * z[list(best)])
    assert cost(best) < cost(range(6))


@pytest.mark.parametrize("args, error, message", [
    (("independent", lambda options: None), ValueError, "must be a new non-empty name"),
    (("", lambda options: None), ValueError, "must be a new non-empty name"),
    (("mine", "not callable"), TypeError, "build and models must be callables"),
    (("mine", lambda options: None, {"mu": {"type": "integer"}}), ValueError,
     "coupling option 'mu': must be a JSON Schema .* no other coupling's option of that name contradicts"),
    (("mine", lambda options: None, {"k": 3}), ValueError, "coupling option 'k': must be a JSON Schema"),
])
def test_register_refuses_what_it_cannot_add_and_adds_nothing(args, error, message):
    before = (dict(coupling.COUPLINGS), json.dumps(schema.CONSISTENCY))
    with pytest.raises(error, match=message):
        coupling.register(*args)
    assert (dict(coupling.COUPLINGS), json.dumps(schema.CONSISTENCY)) == before
