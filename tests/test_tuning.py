"""Consistency tuning from a k-diffusion model, a frozen GC generator, and CD with a k-diffusion teacher."""

import copy
import json

import k_diffusion as K
import pytest
import safetensors.torch as safetorch
import torch
from sklearn.datasets import load_digits

from kdiff_gc.errors import UserError
from kdiff_gc.inference import export_inference
from kdiff_gc.programs.train import build_parser
from kdiff_gc.trainer import Run
from kdiff_gc.options import RunOptions
from test_train import TINY, metrics, write_config


@pytest.fixture(scope="module")
def diffusion_ckpt(tmp_path_factory):
    """A short k-diffusion-style diffusion run on the digits, saved in k-diffusion train.py's layout."""
    folder = tmp_path_factory.mktemp("diffusion")
    config = K.config.load_config({k: v for k, v in TINY.items() if k != "consistency"})
    inner = K.config.make_model(config)
    ema = copy.deepcopy(inner)
    model = K.config.make_denoiser_wrapper(config)(inner)
    opt = torch.optim.AdamW(inner.parameters(), lr=1e-3)
    data = torch.tensor(load_digits().images[:32], dtype=torch.float32)[:, None] / 8 - 1
    for step in range(3):
        reals = data[step * 8:(step + 1) * 8]
        sigma = K.utils.rand_log_normal([8], loc=-1.2, scale=1.2)
        model.loss(reals, torch.randn_like(reals), sigma).mean().backward()
        opt.step()
        opt.zero_grad()
        K.utils.ema_update(inner, ema, 0.9)
    path = folder / "diffusion_00000003.pth"
    torch.save({"config": config, "model": inner.state_dict(), "model_ema": ema.state_dict(),
                "opt": opt.state_dict(), "sched": {}, "ema_sched": {}, "epoch": 0, "step": 3,
                "gns_stats": None, "ema_stats": {"loss": 0.5},
                "demo_gen": torch.Generator().get_state()}, path)
    return path


def make_run(folder, config, *extra):
    folder.mkdir(exist_ok=True)
    args = build_parser().parse_args(["--config", str(write_config(folder, config)), "--out-dir", str(folder),
                                      "--end-step", "2", "--demo-every", "0", "--seed", "0",
                                      *map(str, extra)])
    return Run(RunOptions(**vars(args)))


def same_weights(module, state):
    own = module.state_dict()
    return own.keys() == state.keys() and all(torch.equal(own[k], v) for k, v in state.items())


@pytest.mark.parametrize("as_inference_file", [False, True])
def test_init_from_a_k_diffusion_checkpoint_loads_every_weight_and_trains(diffusion_ckpt, tmp_path,
                                                                          as_inference_file):
    source = torch.load(diffusion_ckpt, weights_only=True)["model_ema"]
    path = diffusion_ckpt
    if as_inference_file:
        path = tmp_path / "diffusion.safetensors"
        safetorch.save_file(source, str(path))
    run = make_run(tmp_path, TINY, "--init-from", path)
    assert same_weights(run.accelerator.unwrap_model(run.state.inner), source)
    assert same_weights(run.state.inner_ema, source)
    run.run()
    assert [r["step"] for r in metrics(tmp_path / "model_metrics.csv")] == ["1", "2"]
    assert not same_weights(run.accelerator.unwrap_model(run.state.inner), source)


def test_init_from_a_mismatched_model_is_refused(diffusion_ckpt, tmp_path):
    other = json.loads(json.dumps(TINY))
    other["model"]["channels"] = [8, 32]
    with pytest.raises(UserError, match="do not fit the config's model"):
        make_run(tmp_path, other, "--init-from", diffusion_ckpt)


def frozen_generator_config(tmp_path, mu: float) -> tuple[dict, object]:
    """TINY with GC from a frozen generator: the EMA of a 2-step run, exported as an inference file."""
    make_run(tmp_path / "first", TINY).run()
    generator_file = tmp_path / "generator.safetensors"
    export_inference(tmp_path / "first" / "model_00000002.pth", generator_file)
    config = json.loads(json.dumps(TINY))
    config["consistency"]["coupling"] = {"generator": "frozen", "generator_path": str(generator_file),
                                         "mu": mu}
    return config, generator_file


def test_frozen_generator_from_a_checkpoint(tmp_path):
    config, generator_file = frozen_generator_config(tmp_path, mu=1.0)
    run = make_run(tmp_path / "second", config)
    generator = run.loss_fn.coupling.generator
    assert same_weights(generator.inner_model, safetorch.load_file(str(generator_file)))
    run.run()
    assert same_weights(generator.inner_model, safetorch.load_file(str(generator_file)))  # frozen
    assert all(r["gc_share"] == "1.0" for r in metrics(tmp_path / "second" / "model_metrics.csv"))
    config["consistency"]["coupling"]["generator_path"] = None
    with pytest.raises(UserError, match="set consistency.coupling.generator_path"):
        make_run(tmp_path / "third", config)


def test_distillation_with_a_k_diffusion_teacher(diffusion_ckpt, tmp_path):
    config = json.loads(json.dumps(TINY))
    config["consistency"]["coupling"] = {"type": "distillation", "teacher_path": str(diffusion_ckpt)}
    run = make_run(tmp_path, config)
    teacher = run.loss_fn.coupling.teacher
    assert isinstance(teacher, K.layers.Denoiser)
    assert same_weights(teacher.inner_model, torch.load(diffusion_ckpt, weights_only=True)["model_ema"])
    run.run()
    assert len(metrics(tmp_path / "model_metrics.csv")) == 2


def test_resume_is_exact_with_a_frozen_generator(tmp_path):
    config, _ = frozen_generator_config(tmp_path, mu=0.5)
    make_run(tmp_path / "whole", config, "--end-step", 4, "--save-every", 2).run()
    second_half = tmp_path / "half"
    make_run(second_half, config, "--end-step", 4, "--resume",
             tmp_path / "whole" / "model_00000002.pth").run()
    whole = metrics(tmp_path / "whole" / "model_metrics.csv")
    assert metrics(second_half / "model_metrics.csv") == whole[2:]
