"""The library's training state and step: the step against the step written out by hand, the checkpoint
against its table of kinds, and a resume from the state dict against an unbroken run."""

import copy
import math

import accelerate
import pytest
import torch

import kdiff_gc
from kdiff_gc.errors import UserError
from kdiff_gc.toy import ToyMLP
from kdiff_gc.train_state import KINDS, TrainState, load_checkpoint, train_step
from test_train import TINY

LR, CLIP, DECAY, TOTAL = 0.1, 0.05, 0.9, 100


def toy_state(clip: float = CLIP, seed: int = 0) -> TrainState:
    torch.manual_seed(seed)
    inner = ToyMLP(width=16)
    return TrainState(inner, torch.optim.SGD(inner.parameters(), lr=LR),
                      kdiff_gc.EmaSchedule(min_value=DECAY, max_value=DECAY), total_steps=TOTAL,
                      grad_clip=clip, accelerator=accelerate.Accelerator(cpu=True))


@pytest.mark.parametrize("clip", [CLIP, 0.0])
def test_train_step_is_the_step_written_out(clip):
    state = toy_state(clip)
    before = copy.deepcopy(state.model)
    x0, noise, indices = torch.randn(8, 2), torch.randn(8, 2), torch.randint(0, 10, (8,))
    loss_fn = kdiff_gc.ConsistencyLoss()
    train_step(state, loss_fn, x0, noise=noise, indices=indices)

    # by hand: the loss's gradient clipped to norm CLIP, an SGD step, then ema = DECAY ema + (1 - DECAY) theta
    loss_fn(before, None, x0, 0, TOTAL, noise=noise, indices=indices).loss.mean().backward()
    params = list(before.parameters())
    norm = math.sqrt(sum(p.grad.pow(2).sum().item() for p in params))
    assert clip == 0 or norm > clip  # the clip acts
    scale = min(1.0, clip / (norm + 1e-6)) if clip > 0 else 1.0
    expected = [p.detach() - LR * scale * p.grad for p in params]
    for got, want, start in zip(state.model.parameters(), expected, params):
        assert torch.allclose(got, want, atol=1e-6)
        assert not torch.equal(got, start.detach())
    for got, want, start in zip(state.model_ema.parameters(), expected, params):
        assert torch.allclose(got, DECAY * start.detach() + (1 - DECAY) * want, atol=1e-6)
    assert state.step == 1 and state.batches_done == 1 and state.sched.last_epoch == 1


def test_the_state_dict_is_the_checkpoint_its_table_of_kinds_describes(tmp_path):
    state = toy_state()
    train_step(state, kdiff_gc.ConsistencyLoss(), torch.randn(8, 2))
    ckpt = state.state_dict()
    assert ckpt.keys() == KINDS.keys()
    assert all(ok(ckpt[key]) for key, (ok, _, _) in KINDS.items())
    torch.save(ckpt, tmp_path / "good.pth")
    assert load_checkpoint(tmp_path / "good.pth")["step"] == 1
    torch.save({**ckpt, "batches_done": -1}, tmp_path / "bad.pth")
    with pytest.raises(UserError, match="damaged: batches_done is not an integer >= 0"):
        load_checkpoint(tmp_path / "bad.pth")
    del ckpt["rng"]
    torch.save(ckpt, tmp_path / "short.pth")
    with pytest.raises(UserError, match=r"not a kdiff-gc training checkpoint \(it lacks rng\)"):
        load_checkpoint(tmp_path / "short.pth")


def test_a_state_resumed_from_its_state_dict_repeats_the_unbroken_run(tmp_path):
    loss_fn = kdiff_gc.ConsistencyLoss(kdiff_gc.GeneratorInduced(mu=0.5))  # GC draws rows at random too
    batches = [torch.randn(8, 2) for _ in range(4)]
    unbroken = toy_state()
    for x0 in batches:
        train_step(unbroken, loss_fn, x0)

    first = toy_state()
    for x0 in batches[:2]:
        train_step(first, loss_fn, x0)
    torch.save(first.state_dict(), tmp_path / "half.pth")
    torch.manual_seed(123)  # whatever ran in between
    resumed = toy_state(seed=7)  # other initial weights: all of them come from the checkpoint
    resumed.load_state_dict(load_checkpoint(tmp_path / "half.pth"), tmp_path / "half.pth")
    for x0 in batches[2:]:
        train_step(resumed, loss_fn, x0)
    assert resumed.step == unbroken.step == 4
    for a, b in zip([*resumed.model.parameters(), *resumed.model_ema.parameters()],
                    [*unbroken.model.parameters(), *unbroken.model_ema.parameters()]):
        assert torch.equal(a, b)


def test_ic_and_gc_of_one_seed_draw_the_same_noise_and_levels_at_every_step():
    """Common random numbers: GC's row choice comes from the coupling's own generator, so the noise z and the
    noise levels of a GC run are those of the IC run of the same seed, step for step (50 steps, a real
    k-diffusion model with dropout, whose masks draw from the global stream as well)."""
    config = kdiff_gc.load_config({**TINY, "consistency": {"total_steps": 100}})

    def run(coupling) -> tuple[torch.Tensor, torch.Tensor, float]:
        noise = []

        def recording(x0, z, sigma, sigma_next, context):
            noise.append(z.clone())
            return coupling(x0, z, sigma, sigma_next, context)

        state = TrainState.from_config(config, accelerate.Accelerator(cpu=True), seed=11)
        loss_fn = kdiff_gc.make_consistency_loss(config, coupling=recording)
        data = torch.Generator().manual_seed(0)  # the same batches for both
        sigmas, gc_shares = [], []
        for _ in range(50):
            out = train_step(state, loss_fn, torch.rand([8, 1, 8, 8], generator=data) * 2 - 1)
            sigmas.append(out.sigma)
            gc_shares.append(out.gc_share.item())
        return torch.stack(sigmas), torch.stack(noise), sum(gc_shares) / len(gc_shares)

    ic_sigmas, ic_noise, ic_share = run(kdiff_gc.Independent())
    gc_sigmas, gc_noise, gc_share = run(kdiff_gc.GeneratorInduced(mu=0.5))
    assert ic_share == 0 and 0.3 < gc_share < 0.7  # GC did choose rows, at about mu
    assert torch.equal(ic_sigmas, gc_sigmas) and torch.equal(ic_noise, gc_noise)
