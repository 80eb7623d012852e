"""Optimizers and schedules from configs; k-diffusion's LR schedules on this torch."""

import pytest
import torch
from lion_pytorch import Lion

from kdiff_gc import optim


def sgd():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def lrs(sched, n=4):
    out = []
    for _ in range(n):
        out.append(sched.get_last_lr()[0])
        sched.optimizer.step()
        sched.step()
    return out


def test_k_diffusion_lr_schedules_follow_their_formulas():
    # InverseLR: (1 - warmup^(t+1)) * (1 + t / inv_gamma)^-power
    got = lrs(optim.make_lr_scheduler({"lr_sched": {"type": "inverse", "inv_gamma": 10.0, "power": 0.5,
                                                    "warmup": 0.5}}, sgd()))
    assert got == pytest.approx([(1 - 0.5 ** (t + 1)) * (1 + t / 10) ** -0.5 for t in range(4)])
    # ExponentialLR: (1 - warmup^(t+1)) * (decay^(1/num_steps))^t
    got = lrs(optim.make_lr_scheduler({"lr_sched": {"type": "exponential", "num_steps": 2, "decay": 0.25,
                                                    "warmup": 0.0}}, sgd()))
    assert got == pytest.approx([0.5 ** t for t in range(4)])
    got = lrs(optim.make_lr_scheduler({"lr_sched": {"type": "constant", "warmup": 0.9}}, sgd()))
    assert got == pytest.approx([1 - 0.9 ** (t + 1) for t in range(4)])


def test_optimizer_types():
    model = torch.nn.Linear(2, 2)
    made = {kind: optim.make_optimizer({"optimizer": {"type": kind, "lr": 1e-3, "betas": [0.9, 0.99],
                                                      "eps": 1e-8, "weight_decay": 0.0}}, model, lr=5e-4)
            for kind in ("lion", "adamw", "adam", "radam")}
    assert isinstance(made["lion"], Lion)
    assert [type(o).__name__ for o in made.values()] == ["Lion", "AdamW", "Adam", "RAdam"]
    assert all(o.param_groups[0]["lr"] == 5e-4 for o in made.values())
    with pytest.raises(optim.UserError, match="optimizer.type 'sgd' is unknown"):
        optim.make_optimizer({"optimizer": {"type": "sgd", "lr": 1e-3}}, model)


def test_ema_schedules():
    constant = optim.make_ema_schedule({"ema_sched": {"type": "constant", "value": 0.9999}})
    for _ in range(3):
        assert constant.decay() == 0.9999
        constant.step()
    warmup = optim.make_ema_schedule({"ema_sched": {"type": "inverse", "power": 0.75, "max_value": 0.9999}})
    values = []
    for _ in range(3):
        values.append(warmup.decay())
        warmup.step()
    assert values == pytest.approx([0.0, 1 - 2 ** -0.75, 1 - 3 ** -0.75])  # k-diffusion's 1 - (1 + t)^-power


def test_ema_schedule_every_k_steps_from_a_start_step():
    sched = optim.make_ema_schedule({"ema_sched": {"type": "inverse", "inv_gamma": 2.0, "power": 1.0,
                                                   "max_value": 0.8, "update_every": 3, "start_step": 4}})
    decays = []
    for _ in range(22):
        decays.append(sched.decay())
        sched.step()
    # updates at steps 0, 3, 6, ...; copies (0) through start_step 4 and at 6, the first update after it; then
    # 1 - (1 + (s - 4) / 2)^-1, capped at 0.8: step 9 gives 1 - 1/3.5, step 12 1 - 1/5, step 15 and on the cap
    expected = {0: 0.0, 3: 0.0, 6: 0.0, 9: 1 - 1 / 3.5, 12: 0.8, 15: 0.8, 18: 0.8, 21: 0.8}
    assert decays == pytest.approx([expected.get(s) for s in range(22)])


def test_ema_schedule_resumes_its_count_and_keeps_the_configured_shape():
    """A checkpoint's schedule state gives the step count; the decay rule is the config's (a state saved by
    an older schedule, or --config-override with another ema_sched)."""
    config = {"ema_sched": {"type": "inverse", "power": 2 / 3, "max_value": 0.9999, "update_every": 5,
                            "start_step": 0}}
    sched = optim.make_ema_schedule(config)
    old = optim.make_ema_schedule({"ema_sched": {"type": "constant", "value": 0.9999}})
    old.last_epoch = 1000
    sched.load_state_dict(old.state_dict())
    assert sched.last_epoch == 1000 and sched.decay() == pytest.approx(1 - 1001 ** (-2 / 3))
    sched.step()
    assert sched.decay() is None  # step 1001: not a multiple of 5


class Tiny(torch.nn.Module):
    """Parameters and a constant float buffer, like k-diffusion's Fourier features."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.SiLU(), torch.nn.Linear(5, 2))
        self.register_buffer("features", torch.randn(4))


@pytest.mark.parametrize("start_step, update_every, max_value", [(0, 5, 0.9999), (7, 5, 0.9), (0, 1, 0.9),
                                                                 (10, 4, 0.95)])
def test_ema_schedule_holds_ema_pytorch_0_2_3s_weights_at_every_step_and_across_a_resume(start_step,
                                                                                        update_every,
                                                                                        max_value):
    """The official GC code's EMA (ema-pytorch 0.2.3, which it pins): ``EMA(model, beta, update_after_step,
    update_every)`` with its default warm-up (inv_gamma 1, power 2/3), ``update()`` after each optimizer step.
    Both are driven by the same sequence of online weights; halfway, ours is rebuilt from its state dict."""
    from ema_pytorch import EMA

    online, ours = Tiny(), Tiny()
    ours.load_state_dict(online.state_dict())
    reference = EMA(online, beta=max_value, update_after_step=start_step, update_every=update_every)
    config = {"ema_sched": {"type": "inverse", "power": 2 / 3, "max_value": max_value,
                            "update_every": update_every, "start_step": start_step}}
    sched, update = optim.make_ema_schedule(config), optim.EmaUpdate(online, ours)
    moved = 0
    for step in range(90):
        with torch.no_grad():
            for p in online.parameters():
                p.add_(torch.randn_like(p))
        if step == 45:  # a resume: a new schedule from the saved state
            sched, saved = optim.make_ema_schedule(config), sched.state_dict()
            sched.load_state_dict(saved)
        before = ours.net[0].weight.clone()
        optim.update_ema(update, sched)
        reference.update()
        moved += not torch.equal(before, ours.net[0].weight)
        assert all(torch.equal(a, b)
                   for a, b in zip(ours.state_dict().values(), reference.ema_model.state_dict().values()))
    assert moved == len(range(0, 90, update_every))  # it moved at the updates alone, and the test can see it


def test_curriculum_lr_halves_every_two_doublings_of_n():
    # total 80 steps, s0 10, s1 80: K' = floor(80 / (floor(log2(8)) + 1)) = 20, so N - 1 = 10, 20, 40, 80
    # for steps 0-19, 20-39, 40-59, 60-79, and lr = ((N - 1) / 10)^-0.5 = 1, 2^-0.5, 1/2, 8^-0.5
    config = {"lr_sched": {"type": "curriculum", "power": 0.5},
              "consistency": {"total_steps": 80, "curriculum": {"s0": 10, "s1": 80}}}
    got = lrs(optim.make_lr_scheduler(config, sgd()), 81)
    expected = [1.0] * 20 + [0.7071067811865476] * 20 + [0.5] * 20 + [0.3535533905932738] * 21
    assert got == pytest.approx(expected)
    config["lr_sched"]["power"] = 1.0
    assert lrs(optim.make_lr_scheduler(config, sgd()), 80)[::20] == pytest.approx([1.0, 0.5, 0.25, 0.125])


def test_curriculum_lr_resumes_where_it_stopped():
    config = {"lr_sched": {"type": "curriculum"},
              "consistency": {"total_steps": 80, "curriculum": {"s0": 10, "s1": 80}}}
    first = optim.make_lr_scheduler(config, sgd())
    lrs(first, 30)
    second = optim.make_lr_scheduler(config, sgd())
    second.load_state_dict(first.state_dict())
    assert second.get_last_lr() == pytest.approx([0.5])  # step 30 is in the second stage; power 1 by default
    assert lrs(second, 11)[-1] == pytest.approx(0.25)  # step 40 starts the third


@pytest.mark.parametrize("power", [-1, "0.5", True, float("inf")])
def test_curriculum_lr_refuses_a_bad_power(power):
    config = {"lr_sched": {"type": "curriculum", "power": power},
              "consistency": {"total_steps": 80, "curriculum": {"s0": 10, "s1": 80}}}
    with pytest.raises(optim.UserError, match="lr_sched.power"):
        optim.make_lr_scheduler(config, sgd())


# bench/gpu_check.sh
@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_fused_ema_update_equals_k_diffusions_to_the_last_bit(device):
    import k_diffusion as K

    torch.manual_seed(0)
    model, ours, theirs = (torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8),
                                               torch.nn.Linear(4, 2)).to(device) for _ in range(3))
    theirs.load_state_dict(ours.state_dict())
    update = optim.EmaUpdate(model, ours)
    for decay in (0.9, 0.999, 0.9999, 0.3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model(torch.randn(2, 3, 6, 6, device=device))  # moves the BatchNorm buffers
        update(decay)
        K.utils.ema_update(model, theirs, decay)
        assert all(torch.equal(a, b)
                   for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    assert not torch.equal(ours[0].weight, model[0].weight)


def test_fused_ema_update_refuses_models_that_differ():
    with pytest.raises(ValueError, match="must be the model's"):
        optim.EmaUpdate(torch.nn.Linear(2, 2), torch.nn.Sequential(torch.nn.Linear(2, 2)))
