"""The public API refuses bad arguments when it is called or built, with one ValueError worded like the config
errors: ``name = value: must be what is allowed`` (issue 30). The table covers the API as
tests/test_bad_inputs.py's catalogue covers the programs."""

import math
from pathlib import Path

import pytest
import torch

import kdiff_gc
from kdiff_gc import (ConsistencyDenoiser, ConsistencyLoss, Distillation, GeneratorInduced, NoiseSchedule,
                      export_inference, get_sigmas_consistency, load_config, load_model,
                      make_consistency_loss, sample_consistency)
from kdiff_gc.errors import UserError
from kdiff_gc.toy import ToyMLP
from models import Recorder
from test_train import TINY

NAN, INF = math.nan, math.inf
HERE = __file__  # an existing file that is no checkpoint: each check must come before the file is read
GONE = "/nonexistent/gone.pth"


def model(sigma_min: float = 0.002) -> ConsistencyDenoiser:
    return ConsistencyDenoiser(ToyMLP(dim=2, width=8, depth=1), sigma_min=sigma_min).eval()


def loss_of(x0):
    return ConsistencyLoss()(model(), None, x0, 0, 10)


def sample(sigmas, **kwargs):
    return sample_consistency(model(), torch.randn(3, 2), sigmas, disable=True, **kwargs)


SIGMAS = ("must be a 1-D floating-point tensor of one or more finite noise levels in decreasing order, each "
          "at least sigma_min (0.002), then optionally 0")
STEPS = "must be 1, 2 or a non-empty sequence of finite positive sigmas in decreasing order"
X0 = "must be a floating-point tensor [N, ...] of 2 or more dimensions with N >= 1 rows"

BAD = [
    # GeneratorInduced
    (lambda: GeneratorInduced(mu=1.5), "mu = 1.5: must be a number in [0, 1]"),
    (lambda: GeneratorInduced(mu=NAN), "mu = NaN: must be a finite number"),
    (lambda: GeneratorInduced(mu=True), "mu = true: must be a number in [0, 1]"),
    (lambda: GeneratorInduced(mu="0.5"), 'mu = "0.5": must be a number in [0, 1]'),
    (lambda: GeneratorInduced(mu_end=-0.1), "mu_end = -0.1: must be a number in [0, 1] or null"),
    (lambda: GeneratorInduced(start_step=-1), "start_step = -1: must be an integer >= 0"),
    (lambda: GeneratorInduced(start_step=2.0), "start_step = 2.0: must be an integer >= 0 (write 2)"),
    (lambda: GeneratorInduced(generator="emma"),
     "generator = \"emma\": must be one of 'ema', 'online' or a torch.nn.Module"),
    (lambda: GeneratorInduced(generator="frozen"),
     "generator = \"frozen\": must be one of 'ema', 'online' or a torch.nn.Module"),
    # Distillation
    (lambda: Distillation("heun"), 'teacher = "heun": must be a torch.nn.Module, a denoiser D(x, sigma)'),
    (lambda: Distillation(lambda x, s: x), "teacher = <function>: must be a torch.nn.Module"),
    (lambda: Distillation(Recorder(), "rk4"), "solver = \"rk4\": must be one of 'heun', 'euler'"),
    # NoiseSchedule
    (lambda: NoiseSchedule(s0=0), "s0 = 0: must be an integer in [1, 1048576]"),
    (lambda: NoiseSchedule(s1=1280.0), "s1 = 1280.0: must be an integer in [1, 1048576] (write 1280)"),
    (lambda: NoiseSchedule(s0=20, s1=10), "s0 = 20: must be at most s1 (10)"),
    (lambda: NoiseSchedule(density="x"), "density = \"x\": must be one of 'lognormal', 'uniform'"),
    (lambda: NoiseSchedule(weighting="karras"),
     "weighting = \"karras\": must be one of 'improved', 'uniform'"),
    (lambda: NoiseSchedule(sigma_min=80.0, sigma_max=1.0), "sigma_min = 80.0: must be below sigma_max (1.0)"),
    (lambda: NoiseSchedule(sigma_min=0), "sigma_min = 0: must be a positive number"),
    (lambda: NoiseSchedule(sigma_max=INF), "sigma_max = Infinity: must be a finite number"),
    (lambda: NoiseSchedule(rho=0), "rho = 0: must be a number in [0.1, 100]"),
    (lambda: NoiseSchedule(p_mean=50), "p_mean = 50: must be a number in [-20, 20]"),
    (lambda: NoiseSchedule(p_std=0.0), "p_std = 0.0: must be a number in (0, 20]"),
    # ConsistencyLoss
    (lambda: ConsistencyLoss(coupling="gc"),
     'coupling = "gc": must be a callable coupling(x0, z, sigma, sigma_next, context) or None'),
    (lambda: ConsistencyLoss(schedule={"s0": 10}), 'schedule = {"s0": 10}: must be a NoiseSchedule or None'),
    (lambda: ConsistencyLoss(distance="l2"), 'distance = "l2": must be a callable distance(a, b) or None'),
    (lambda: loss_of(torch.zeros(4, 2, dtype=torch.uint8)),
     f"x0 = a torch.uint8 tensor of shape [4, 2]: {X0}"),
    (lambda: loss_of(torch.zeros(0, 2)), f"x0 = a torch.float32 tensor of shape [0, 2]: {X0}"),
    (lambda: loss_of(torch.zeros(4)), f"x0 = a torch.float32 tensor of shape [4]: {X0}"),
    (lambda: loss_of([[0.0, 1.0]]), f"x0 = [[0.0, 1.0]]: {X0}"),
    # get_sigmas_consistency
    (lambda: get_sigmas_consistency([NAN]), f"steps = [NaN]: {STEPS}"),
    (lambda: get_sigmas_consistency([INF, 1.0]), f"steps = [Infinity, 1.0]: {STEPS}"),
    (lambda: get_sigmas_consistency(3), f"steps = 3: {STEPS}"),
    (lambda: get_sigmas_consistency(True), f"steps = true: {STEPS}"),
    (lambda: get_sigmas_consistency("80"), f'steps = "80": {STEPS}'),
    (lambda: get_sigmas_consistency([1, 5]), f"steps = [1, 5]: {STEPS}"),
    (lambda: get_sigmas_consistency([]), f"steps = []: {STEPS}"),
    (lambda: get_sigmas_consistency(1, sigma_max=NAN), "sigma_max = NaN: must be a finite number"),
    (lambda: get_sigmas_consistency(1, sigma_max=0), "sigma_max = 0: must be a number in (0, 10000.0]"),
    (lambda: get_sigmas_consistency(2, sigma_mid=-1.0), "sigma_mid = -1.0: must be a number in (0, 10000.0]"),
    (lambda: get_sigmas_consistency(2, sigma_mid=100.0), "sigma_mid = 100.0: must be below sigma_max (80.0)"),
    # sample_consistency
    (lambda: sample(torch.tensor([80.0, 0.001, 0.0])), f"sigmas = [80.0, 0.001, 0.0]: {SIGMAS}"),
    (lambda: sample(torch.tensor([1.0, 5.0, 0.0])), f"sigmas = [1.0, 5.0, 0.0]: {SIGMAS}"),
    (lambda: sample(torch.tensor([NAN, 0.0])), f"sigmas = [NaN, 0.0]: {SIGMAS}"),
    (lambda: sample(torch.tensor([0.0])), f"sigmas = [0.0]: {SIGMAS}"),
    (lambda: sample(torch.tensor([80.0, 0.0, 0.0])), f"sigmas = [80.0, 0.0, 0.0]: {SIGMAS}"),
    (lambda: sample(torch.tensor([[80.0, 0.0]])),
     f"sigmas = a torch.float32 tensor of shape [1, 2]: {SIGMAS}"),
    (lambda: sample([80.0, 0.0]), f"sigmas = [80.0, 0.0]: {SIGMAS}"),
    (lambda: sample(torch.tensor([80.0, 0.0]), sigma_min=-1.0),
     "sigma_min = -1.0: must be a positive number"),
    # export_inference and load_model
    (lambda: export_inference(HERE, "x.txt"), 'out_path = "x.txt": must be a path ending in .safetensors'),
    (lambda: export_inference(HERE, "x.safetensors", "fp64"),
     "dtype = \"fp64\": must be one of 'fp32', 'fp16', 'bf16'"),
    # the checkpoint's own words, which convert_for_inference_gc.py prints (tests/test_inference.py)
    (lambda: export_inference(GONE, "x.safetensors"),
     f"checkpoint {GONE} does not exist: give a .pth checkpoint that train_gc.py wrote"),
    (lambda: export_inference(Path(HERE).parent, "x.safetensors"), "is a folder: give a .pth checkpoint"),
    (lambda: export_inference(HERE, "x.safetensors"), f"checkpoint {HERE} is unreadable"),
    (lambda: load_model(Path(HERE).parent), "must be a file (it is a folder)"),
    (lambda: load_model(GONE), f'path = "{GONE}": must be a file (it does not exist)'),
    (lambda: load_model(HERE, config="tiny.json"), 'config = "tiny.json": must be a config dict or None'),
]


@pytest.mark.parametrize("call, message", BAD, ids=[message.split(":")[0] for _, message in BAD])
def test_a_bad_argument_is_one_value_error_naming_it(call, message):
    with pytest.raises(ValueError) as caught:
        call()
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_file_is_also_a_user_error_so_a_program_prints_one_line():
    for call in (lambda: load_model(GONE), lambda: export_inference(GONE, "x.safetensors")):
        with pytest.raises(UserError, match="does not exist"):
            call()


def test_the_defaults_and_the_configs_values_still_build_and_run():
    config = load_config(TINY)
    loss_fn = make_consistency_loss(config)  # the config's coupling (GC) and schedule
    assert isinstance(loss_fn.coupling, GeneratorInduced) and loss_fn.schedule.s1 == 1280
    assert NoiseSchedule() == NoiseSchedule.from_config(config["consistency"])
    NoiseSchedule(sigma_min=1, sigma_max=2, rho=7, s0=10, s1=10, density="uniform", weighting="uniform")
    GeneratorInduced(mu=0, mu_end=1, start_step=0, generator="online")
    Distillation(Recorder(), "euler")
    f = model()
    out = ConsistencyLoss(GeneratorInduced(mu=1.0, generator=f))(f, None, torch.randn(4, 2), 0, 10)
    assert out.loss.shape == (4,) and out.gc_share == 1
    assert get_sigmas_consistency((80, 1.5)).tolist() == [80.0, 1.5, 0.0]
    assert get_sigmas_consistency(torch.tensor([80.0, 1.0]))[-1] == 0
    # sigma_min itself, as a float32 tensor holds it, is allowed (0.7 squares below 0.7^2 in float32); the
    # trailing 0 may be left out
    for sigma_min, sigmas in [(0.002, [80, 0.002]), (0.7, [80, 0.7]), (0.002, torch.tensor([80.0]))]:
        sigmas = sigmas if torch.is_tensor(sigmas) else get_sigmas_consistency(sigmas)
        assert sample_consistency(model(sigma_min), torch.randn(3, 2), sigmas, disable=True).isfinite().all()
    assert kdiff_gc.sample_consistency(Recorder(), torch.randn(3, 2), torch.tensor([80.0, 0.0]), disable=True,
                                       sigma_min=0.002).shape == (3, 2)
