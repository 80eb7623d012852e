"""The catalogue of bad inputs to the four programs.

Each case must end with exit code 2, exactly one stderr line, starting with ``error:``, no traceback,
and every file byte for byte as it was. The programs run in this process (their imports are paid
once); ``test_the_scripts_print_one_line`` shows that the real scripts print nothing else.
"""

import copy
import errno
import hashlib
import importlib.util
import json
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch as safetorch
import torch

from kdiff_gc import generate, score, train
from kdiff_gc.inference import export_inference
from test_train import ROOT, TINY, metrics

spec = importlib.util.spec_from_file_location("convert_for_inference_gc", ROOT / "convert_for_inference_gc.py")
convert = importlib.util.module_from_spec(spec)
spec.loader.exec_module(convert)
PROGRAMS = {"train": train.main, "sample": generate.main, "evaluate": score.main, "convert": convert.main}


class Boom:
    """A pickle that would run code when unpickled."""

    def __reduce__(self):
        return (exec, ("open('pwned', 'w').write('pwned')",))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Shared files the cases point at: a config, a run of one step, its inference file, and odd files."""
    w = tmp_path_factory.mktemp("world")
    (w / "tiny.json").write_text(json.dumps(TINY))
    train.main(["--config", str(w / "tiny.json"), "--out-dir", str(w / "run"), "--end-step", "1", "--save-every", "1",
                "--demo-every", "0", "--seed", "0"])
    export_inference(w / "run" / "model_00000001.pth", w / "model.safetensors")
    ckpt = torch.load(w / "run" / "model_00000001.pth", weights_only=True)
    torch.save({**ckpt, "payload": Boom()}, w / "evil.pth")
    (w / "weights.pkl").write_bytes(pickle.dumps({"payload": Boom()}))
    (w / "notes.txt").write_text("not a checkpoint\n")
    (w / "afile").write_text("a file where a folder is expected\n")
    (w / "empty").mkdir()
    (w / "no_get_dataset.py").write_text("X = 1\n")
    safetorch.save_file({"w": torch.zeros(1)}, str(w / "bad_metadata.safetensors"), metadata={"config": "{not json"})
    safetorch.save_file({"w": torch.zeros(1)}, str(w / "no_config.safetensors"))
    return w


def digests(*folders: Path) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


# --- helpers that build a case's arguments in its own folder ------------------------------------------------


def config_file(tmp: Path, mutate=None, text: str | None = None, name: str = "c.json") -> str:
    config = copy.deepcopy(TINY)
    if mutate:
        mutate(config)
    (tmp / name).write_text(text if text is not None else json.dumps(config))
    return str(tmp / name)


def train_args(tmp: Path, *flags, mutate=None, text=None) -> list[str]:
    return ["--config", config_file(tmp, mutate, text), "--out-dir", str(tmp / "out"), "--end-step", "1",
            "--demo-every", "0", *flags]


def setting(path: str, value):
    """A mutation: set the dotted key ``path`` (``-`` deletes it)."""
    *parents, last = path.split(".")

    def mutate(config):
        section = config
        for key in parents:
            section = section.setdefault(key, {})
        if value == "-":
            section.pop(last, None)
        else:
            section[last] = value

    return mutate


def damaged(world: Path, tmp: Path, change) -> str:
    """A copy of the run's checkpoint with ``change(ckpt)`` applied."""
    ckpt = torch.load(world / "run" / "model_00000001.pth", weights_only=True)
    change(ckpt)
    torch.save(ckpt, tmp / "damaged.pth")
    return str(tmp / "damaged.pth")


def resume(world: Path, tmp: Path, change) -> list[str]:
    return ["--config", str(world / "tiny.json"), "--out-dir", str(tmp / "out"), "--end-step", "2", "--demo-every", "0",
            "--resume", damaged(world, tmp, change)]


def state_file(world: Path, tmp: Path, write) -> list[str]:
    """A copy of the run folder whose state file ``write(path)`` replaces."""
    run = tmp / "run"
    run.mkdir()
    for p in (world / "run").iterdir():
        (run / p.name).write_bytes(p.read_bytes())
    (run / "model_state.json").unlink()
    write(run / "model_state.json")
    return ["--config", str(world / "tiny.json"), "--out-dir", str(run), "--end-step", "2", "--demo-every", "0",
            "--resume"]


def sample(world: Path, tmp: Path, *flags, model: str = "model.safetensors") -> list[str]:
    return [str(world / model), "-o", str(tmp / "samples.png"), "-n", "4", *flags]


def evaluate(world: Path, tmp: Path, *flags) -> list[str]:
    return [str(world / "model.safetensors"), "-n", "4", "--batch-size", "4", *flags]


def no_group(ckpt):
    ckpt["opt"]["param_groups"] = []


def raw_weights(ckpt):
    ckpt["model_ema"] = {k: v.tolist() for k, v in ckpt["model_ema"].items()}


T = "train"
CASES = [
    # the config file itself
    (T, lambda w, t: ["--config", str(t / "missing.json")], "does not exist"),
    (T, lambda w, t: ["--config", str(t)], "is a folder"),
    (T, lambda w, t: train_args(t, text="{\"model\": "), "not valid JSON"),
    (T, lambda w, t: train_args(t, text="[1, 2]"), "must be an object"),
    (T, lambda w, t: train_args(t, text="null"), "must be an object"),
    (T, lambda w, t: train_args(t, text="3"), "must be an object"),
    (T, lambda w, t: train_args(t, text="\"configs/digits_gc.json\""), "must be an object"),
    (T, lambda w, t: ["--config", str(w / "weights.pkl")], "not valid"),
    (T, lambda w, t: train_args(t, text="{\"consistency\": {}}"), "model is missing"),
    # unknown keys, with the closest known key
    (T, lambda w, t: train_args(t, mutate=setting("lr_shed", {"type": "constant"})), "lr_shed: unknown key (did you mean 'lr_sched'?)"),
    (T, lambda w, t: train_args(t, mutate=setting("model.chanels", [8, 16])), "model.chanels: unknown key (did you mean 'channels'?)"),
    (T, lambda w, t: train_args(t, mutate=setting("optimizer.learning_rate", 1e-3)), "optimizer.learning_rate: unknown key"),
    (T, lambda w, t: train_args(t, mutate=setting("dataset.locaton", "data")), "did you mean 'location'?"),
    (T, lambda w, t: train_args(t, mutate=setting("ema_sched.vale", 0.9)), "did you mean 'value'?"),
    (T, lambda w, t: train_args(t, mutate=setting("training.batchsize", 8)), "did you mean 'batch_size'?"),
    (T, lambda w, t: train_args(t, mutate=setting("consistency.coupling.m", 0.5)), "consistency.coupling.m: unknown key"),
    (T, lambda w, t: train_args(t, mutate=setting("consistency.curriculum.s2", 5)), "consistency.curriculum.s2: unknown key"),
    # sections of the wrong type, missing keys, values out of range
    (T, lambda w, t: train_args(t, mutate=setting("dataset", "digits")), "dataset = \"digits\": must be an object"),
    (T, lambda w, t: train_args(t, mutate=setting("model.input_size", "-")), "model.input_size is missing"),
    (T, lambda w, t: train_args(t, mutate=setting("model.channels", "8,16")), "model.channels = \"8,16\""),
    (T, lambda w, t: train_args(t, mutate=setting("model.channels", [8, 16, 32])), "one entry per level"),
    (T, lambda w, t: train_args(t, mutate=setting("model.self_attn_depths", [0, 1])), "model.self_attn_depths[0] = 0"),
    (T, lambda w, t: train_args(t, mutate=setting("model.input_size", [8, 16])), "square"),
    (T, lambda w, t: train_args(t, mutate=setting("model.input_size", [9, 9])), "a multiple of 2"),
    (T, lambda w, t: train_args(t, mutate=setting("model.input_size", [8])), "model.input_size = [8]"),
    (T, lambda w, t: train_args(t, mutate=setting("model.type", "unet")), "model.type = 'unet'"),
    (T, lambda w, t: train_args(t, mutate=setting("model.type", "image_transformer_v2")), "builds image_v1"),
    (T, lambda w, t: train_args(t, mutate=setting("model.sigma_data", float("nan"))), "model.sigma_data = NaN: must be a finite number"),
    (T, lambda w, t: train_args(t, mutate=setting("model.dropout_rate", 1.5)), "model.dropout_rate = 1.5"),
    (T, lambda w, t: train_args(t, mutate=setting("model.augment_prob", -0.1)), "model.augment_prob = -0.1"),
    (T, lambda w, t: train_args(t, mutate=setting("model.mapping_out", 0)), "model.mapping_out = 0: must be an integer >= 1"),
    (T, lambda w, t: train_args(t, mutate=setting("ema_sched", {"type": "constant"})), "ema_sched.value is missing (needed by ema_sched.type = \"constant\")"),
    (T, lambda w, t: train_args(t, mutate=setting("ema_sched.value", 1.5)), "ema_sched.value = 1.5"),
    (T, lambda w, t: train_args(t, mutate=setting("ema_sched.type", "linear")), "ema_sched.type = \"linear\""),
    (T, lambda w, t: train_args(t, mutate=setting("optimizer.lr", -1)), "optimizer.lr = -1: must be a positive number"),
    (T, lambda w, t: train_args(t, mutate=setting("optimizer.lr", "1e-4")), "optimizer.lr = \"1e-4\""),
    (T, lambda w, t: train_args(t, mutate=setting("optimizer.betas", "0.9")), "optimizer.betas = \"0.9\""),
    (T, lambda w, t: train_args(t, mutate=setting("optimizer.betas", [0.9, 1.5])), "optimizer.betas[1] = 1.5"),
    (T, lambda w, t: train_args(t, mutate=setting("optimizer.type", "sgd")), "optimizer.type = \"sgd\""),
    (T, lambda w, t: train_args(t, mutate=setting("optimizer.weight_decay", -0.1)), "optimizer.weight_decay = -0.1"),
    (T, lambda w, t: train_args(t, mutate=setting("lr_sched", {"type": "inverse"})), "lr_sched.inv_gamma is missing"),
    (T, lambda w, t: train_args(t, mutate=setting("lr_sched", {"type": "cosine"})), "lr_sched.type = \"cosine\""),
    (T, lambda w, t: train_args(t, mutate=setting("lr_sched", {"type": "curriculum", "power": -1})), "lr_sched.power = -1"),
    (T, lambda w, t: train_args(t, mutate=setting("training.batch_size", 0)), "training.batch_size = 0"),
    (T, lambda w, t: train_args(t, mutate=setting("training.grad_clip", -1)), "training.grad_clip = -1"),
    (T, lambda w, t: train_args(t, mutate=setting("consistency.sigma_max", float("inf"))), "consistency.sigma_max = Infinity: must be a finite number"),
    (T, lambda w, t: train_args(t, mutate=setting("consistency.sigma_min", 100)), "below consistency.sigma_max"),
    (T, lambda w, t: train_args(t, mutate=setting("consistency.curriculum", {"s0": 100, "s1": 10})), "at most consistency.curriculum.s1"),
    (T, lambda w, t: train_args(t, mutate=setting("consistency.coupling.start_step", 40)), "below consistency.total_steps"),
    (T, lambda w, t: train_args(t, mutate=setting("consistency.total_steps", 0)), "consistency.total_steps = 0"),
    (T, lambda w, t: train_args(t, mutate=setting("consistency.coupling.type", "gc")), "consistency.coupling.type = \"gc\""),
    (T, lambda w, t: train_args(t, mutate=setting("consistency.coupling.mu", 2)), "consistency.coupling.mu = 2"),
    (T, lambda w, t: train_args(t, mutate=setting("consistency.distance", {"type": "lpips"})), "consistency.distance.type = \"lpips\""),
    (T, lambda w, t: train_args(t, mutate=setting("consistency.timestep_density.p_std", 0)), "p_std = 0"),
    (T, lambda w, t: train_args(t, mutate=setting("consistency.rho", "7")), "consistency.rho = \"7\""),
    (T, lambda w, t: train_args(t, mutate=setting("consistency", "gc")), "consistency = \"gc\": must be an object"),
    (T, lambda w, t: train_args(t, mutate=setting("consistency", "-")), "a diffusion config"),
    (T, lambda w, t: train_args(t, mutate=setting("consistency.coupling.generator", "frozen")), "set consistency.coupling.generator_path"),
    (T, lambda w, t: train_args(t, mutate=setting("consistency.coupling.type", "distillation")), "set consistency.coupling.teacher_path"),
    (T, lambda w, t: train_args(t, mutate=setting("consistency.coupling", {"generator": "frozen", "generator_path": str(t / "gone.pth")})), "does not exist"),
    # data sets
    (T, lambda w, t: train_args(t, mutate=setting("dataset", {"type": "foo"})), "dataset.type = \"foo\""),
    (T, lambda w, t: train_args(t, mutate=setting("dataset", {"type": "imagefolder"})), "dataset.location is missing"),
    (T, lambda w, t: train_args(t, mutate=setting("dataset", {"type": "cifar10", "location": str(t)})), "has no CIFAR-10 data"),
    (T, lambda w, t: train_args(t, mutate=setting("dataset", {"type": "imagefolder", "location": str(w / "empty")})), "holds no .png"),
    (T, lambda w, t: train_args(t, mutate=setting("dataset", {"type": "custom", "location": str(w / "no_get_dataset.py")})), "defines no function get_dataset"),
    (T, lambda w, t: train_args(t, mutate=setting("dataset", {"type": "custom", "location": str(t / "gone.py")})), "no such Python file"),
    (T, lambda w, t: train_args(t, mutate=setting("dataset.num_classes", -1)), "dataset.num_classes = -1"),
    # flags
    (T, lambda w, t: train_args(t, "--batch-size", "-1"), "--batch-size: -1 is not an integer >= 1"),
    (T, lambda w, t: train_args(t, "--batch-size", "0"), "--batch-size: 0 is not an integer >= 1"),
    (T, lambda w, t: train_args(t, "--batch-size", "eight"), "--batch-size: 'eight' is not an integer"),
    (T, lambda w, t: train_args(t, "--batch-size", "4096"), "fewer than one batch of 4096"),
    (T, lambda w, t: train_args(t, "--batch-size", "8", "--grad-accum-steps", "3"), "must divide by processes x --grad-accum-steps"),
    (T, lambda w, t: train_args(t, "--grad-accum-steps", "0"), "--grad-accum-steps: 0"),
    (T, lambda w, t: train_args(t, "--save-every", "0"), "--save-every: 0"),
    (T, lambda w, t: train_args(t, "--sample-n", "0"), "--sample-n: 0"),
    (T, lambda w, t: train_args(t, "--demo-every", "-5"), "--demo-every: -5"),
    (T, lambda w, t: train_args(t, "--end-step", "-1"), "--end-step: -1"),
    (T, lambda w, t: train_args(t, "--end-step", "0"), "--end-step: 0"),
    (T, lambda w, t: train_args(t, "--seed", "-1"), "--seed: -1 is not an integer in [0, 9223372036854775807]"),
    (T, lambda w, t: train_args(t, "--seed", str(2 ** 64)), "--seed"),
    (T, lambda w, t: train_args(t, "--num-workers", "-1"), "--num-workers: -1"),
    (T, lambda w, t: train_args(t, "--lr", "-1"), "--lr: -1 is not a positive finite number"),
    (T, lambda w, t: train_args(t, "--lr", "nan"), "--lr: nan"),
    (T, lambda w, t: train_args(t, "--lr", "inf"), "--lr: inf"),
    (T, lambda w, t: train_args(t, "--name", "sub/run"), "put folders in --out-dir"),
    (T, lambda w, t: train_args(t, "--name", ""), "--name: '' is not a file-name prefix"),
    (T, lambda w, t: train_args(t, "--evaluate-n", "1"), "--evaluate-n: 1"),
    (T, lambda w, t: train_args(t, "--evaluate-every", "-1"), "--evaluate-every: -1"),
    (T, lambda w, t: train_args(t, "--mixed-precision", "fp8"), "invalid choice: 'fp8'"),
    (T, lambda w, t: train_args(t, "--lr-shed", "1"), "unrecognized arguments: --lr-shed"),
    (T, lambda w, t: ["--out-dir", str(t)], "the following arguments are required: --config"),
    # the run folder, resuming, checkpoints
    (T, lambda w, t: ["--config", str(w / "tiny.json"), "--out-dir", str(w / "run")], "exists: pass --resume"),
    (T, lambda w, t: train_args(t, "--resume"), "no {} to resume from"),
    (T, lambda w, t: train_args(t, "--resume", str(t / "gone.pth")), "does not exist"),
    (T, lambda w, t: train_args(t, "--resume", str(w / "notes.txt")), "is unreadable"),
    (T, lambda w, t: train_args(t, "--resume", str(w / "evil.pth")), "is unreadable"),
    (T, lambda w, t: train_args(t, "--resume", str(w / "run" / "model_00000001.pth"), mutate=setting("optimizer.lr", 1e-3)), "the config differs"),
    (T, lambda w, t: resume(w, t, lambda c: c.update(rng=[{"cpu": torch.zeros(3, dtype=torch.uint8)}])), "damaged: rng cannot be restored"),
    (T, lambda w, t: resume(w, t, lambda c: c.update(rng="state")), "damaged: rng is not a list of RNG states"),
    (T, lambda w, t: resume(w, t, lambda c: c.update(demo_gen=torch.zeros(5, dtype=torch.uint8))), "damaged: demo_gen cannot be restored"),
    (T, lambda w, t: resume(w, t, lambda c: c.update(demo_gen=[1, 2])), "damaged: demo_gen is not"),
    (T, lambda w, t: resume(w, t, lambda c: c.update(step="5")), "damaged: step is not an integer >= 0"),
    (T, lambda w, t: resume(w, t, lambda c: c.update(seed=-3)), "damaged: seed"),
    (T, lambda w, t: resume(w, t, no_group), "damaged: opt cannot be restored"),
    (T, lambda w, t: resume(w, t, lambda c: c.update(opt=[])), "damaged: opt is not"),
    (T, lambda w, t: resume(w, t, lambda c: c.update(sched={})), "damaged: sched is not"),
    (T, lambda w, t: resume(w, t, lambda c: c.update(ema_sched={"last_epoch": "x"})), "damaged: ema_sched is not"),
    (T, lambda w, t: resume(w, t, raw_weights), "damaged: model_ema is not a state dict of tensors"),
    (T, lambda w, t: resume(w, t, lambda c: c.pop("batches_done")), "lacks batches_done"),
    (T, lambda w, t: state_file(w, t, lambda p: p.write_bytes(b"\xff\xfe\x00")), "model_state.json is damaged"),
    (T, lambda w, t: state_file(w, t, lambda p: p.mkdir()), "model_state.json is damaged"),
    (T, lambda w, t: state_file(w, t, lambda p: p.write_text("{}")), "model_state.json is damaged"),
    (T, lambda w, t: state_file(w, t, lambda p: p.write_text('{"latest_checkpoint": 3}')), "model_state.json is damaged"),
    (T, lambda w, t: state_file(w, t, lambda p: p.write_text('{"latest_checkpoint": "gone.pth"}')), "does not exist"),
    (T, lambda w, t: train_args(t, "--init-from", str(t / "gone.pth")), "does not exist"),
    (T, lambda w, t: train_args(t, "--init-from", str(w / "model.safetensors"), mutate=setting("model.channels", [8, 32])), "do not fit the config's model"),
    (T, lambda w, t: train_args(t, "--init-from", str(w / "evil.pth")), "unreadable"),
    # disk errors
    (T, lambda w, t: ["--config", str(w / "tiny.json"), "--out-dir", str(w / "afile"), "--end-step", "1"], "afile: file exists: a file stands where a folder should be"),
    (T, lambda w, t: ["--config", str(w / "tiny.json"), "--out-dir", str(w / "afile" / "run"), "--end-step", "1"], "not a directory: a file stands where a folder should be"),
    (T, lambda w, t: train_args(t, "--evaluate-every", "1", "--evaluate-n", "4", "--inception-weights", str(w / "weights.pkl")), "not a TorchScript network"),
    # sample_gc.py
    ("sample", lambda w, t: sample(w, t, "-n", "0"), "-n: 0 is not an integer >= 1"),
    ("sample", lambda w, t: sample(w, t, "-n", "-3"), "-n: -3"),
    ("sample", lambda w, t: sample(w, t, "--batch-size", "0"), "--batch-size: 0"),
    ("sample", lambda w, t: sample(w, t, model="gone.safetensors"), "does not exist"),
    ("sample", lambda w, t: sample(w, t, model="notes.txt"), "is unreadable"),
    ("sample", lambda w, t: sample(w, t, model="evil.pth"), "is unreadable"),
    ("sample", lambda w, t: sample(w, t, model="bad_metadata.safetensors"), "its metadata's config is not valid JSON"),
    ("sample", lambda w, t: sample(w, t, model="no_config.safetensors"), "carries no config"),
    ("sample", lambda w, t: sample(w, t, "--sampler", "magic"), "--sampler 'magic' is unknown"),
    ("sample", lambda w, t: sample(w, t, "--class", "3"), "not class-conditional"),
    ("sample", lambda w, t: sample(w, t, "--class", "-1"), "--class: -1"),
    ("sample", lambda w, t: sample(w, t, "--sigmas", "1,2"), "in decreasing order"),
    ("sample", lambda w, t: sample(w, t, "--sigmas", "a,b"), "in decreasing order"),
    ("sample", lambda w, t: sample(w, t, "--sigmas", "80,inf"), "in decreasing order"),
    ("sample", lambda w, t: sample(w, t, "--sigma-mid", "0"), "--sigma-mid: 0"),
    ("sample", lambda w, t: sample(w, t, "--steps", "2", "--sigma-mid", "100"), "not below the model's sigma_max"),
    ("sample", lambda w, t: sample(w, t, "--steps", "3"), "invalid choice: 3"),
    ("sample", lambda w, t: sample(w, t, "--seed", "-1"), "--seed: -1"),
    ("sample", lambda w, t: sample(w, t, "--sampler-steps", "0"), "--sampler-steps: 0"),
    ("sample", lambda w, t: [str(w / "model.safetensors"), "-o", str(w / "afile")], "exists: choose another --output"),
    ("sample", lambda w, t: sample(w, t) + ["-o", str(t / "samples.jpg")], "--output"),
    ("sample", lambda w, t: sample(w, t, "--config", str(t / "gone.json")), "--config"),
    ("sample", lambda w, t: sample(w, t, "--config", config_file(t, text="{oops")), "--config"),
    ("sample", lambda w, t: sample(w, t, "--config", config_file(t, mutate=setting("model.depths", [1]))), "one entry per level"),
    ("sample", lambda w, t: sample(w, t) + ["-o", str(w / "afile" / "x.png")], "afile/"),
    # evaluate_gc.py
    ("evaluate", lambda w, t: evaluate(w, t, "-n", "1"), "-n: 1 is not an integer >= 2"),
    ("evaluate", lambda w, t: evaluate(w, t, "--steps", "3"), "--steps: '3' is not comma-separated integers in [1, 2]"),
    ("evaluate", lambda w, t: evaluate(w, t, "--steps", "1,x"), "--steps"),
    ("evaluate", lambda w, t: evaluate(w, t, "--batch-size", "0"), "--batch-size: 0"),
    ("evaluate", lambda w, t: evaluate(w, t, "--seed", "x"), "--seed"),
    ("evaluate", lambda w, t: evaluate(w, t, "--output", str(w / "notes.txt")), "exists: choose another --output"),
    ("evaluate", lambda w, t: [str(t / "gone.safetensors")], "does not exist"),
    ("evaluate", lambda w, t: evaluate(w, t, "--inception-weights", str(w / "weights.pkl")), "not a TorchScript network"),
    ("evaluate", lambda w, t: evaluate(w, t, "--inception-weights", str(t / "gone.pt")), "not found"),
    # convert_for_inference_gc.py
    ("convert", lambda w, t: [str(t / "gone.pth")], "does not exist"),
    ("convert", lambda w, t: [str(w / "evil.pth"), "-o", str(t / "x.safetensors")], "unreadable"),
    ("convert", lambda w, t: [str(w / "model.safetensors"), "-o", str(t / "x.safetensors")], "not a kdiff-gc training checkpoint"),
    ("convert", lambda w, t: [str(w / "run" / "model_00000001.pth"), "-o", str(w / "notes.txt")], "exists"),
    ("convert", lambda w, t: [str(w / "run" / "model_00000001.pth"), "--dtype", "fp8"], "invalid choice: 'fp8'"),
    ("convert", lambda w, t: [damaged(w, t, raw_weights), "-o", str(t / "x.safetensors")], "model_ema is not"),
    ("convert", lambda w, t: [str(w / "run" / "model_00000001.pth"), "-o", str(w / "afile" / "x.safetensors")], "afile/"),
]


@pytest.mark.parametrize("program, make_args, expected", CASES,
                         ids=[f"{i:03}-{c[0]}" for i, c in enumerate(CASES)])
def test_bad_input_ends_in_one_line(world, tmp_path, capfd, monkeypatch, program, make_args, expected):
    argv = make_args(world, tmp_path)
    before = digests(world, tmp_path)
    monkeypatch.chdir(tmp_path)  # where a pickle that ran would have written
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no user Inception file is copied anywhere
    capfd.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        PROGRAMS[program](argv)
    err = capfd.readouterr().err
    assert exit_info.value.code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert expected.format(tmp_path / "out" / "model_state.json") in lines[0]
    assert not (tmp_path / "pwned").exists()
    assert digests(world, tmp_path) == before


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 100 and {c[0] for c in CASES} == set(PROGRAMS)


@pytest.mark.parametrize("problem, where", [(errno.ENOSPC, "save"), (errno.EROFS, "metrics"), (errno.EACCES, "demo")])
def test_a_failed_write_is_one_line_and_the_run_resumes(world, tmp_path, capfd, monkeypatch, problem, where):
    """A full disk, a read-only file system, a folder made read-only during the run: one line naming the
    file, the last checkpoint and metrics intact, and the run goes on with --resume once it is fixed."""
    args = ["--config", str(world / "tiny.json"), "--out-dir", str(tmp_path), "--end-step", "3", "--save-every", "1",
            "--demo-every", "1", "--seed", "0", "--sample-n", "4"]
    targets = {"save": (torch, "save"), "metrics": (train.K.utils.CSVLogger, "write"),
               "demo": (train.K.utils, "to_pil_image")}
    module, name = targets[where]
    original, calls, failing_call = getattr(module, name), [], {"save": 2, "metrics": 3, "demo": 2}[where]

    def fails_at_step_2(*a, **k):  # the metrics' first write is its header
        calls.append(1)
        if len(calls) == failing_call:
            raise OSError(problem, os.strerror(problem))
        return original(*a, **k)

    monkeypatch.setattr(module, name, fails_at_step_2)
    with pytest.raises(SystemExit):
        train.main(args)
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and os.strerror(problem).lower() in err[-1] and "--resume" in err[-1], err
    assert "model_" in err[-1] and str(tmp_path) in err[-1]
    assert not list(tmp_path.glob(".*.tmp"))
    assert (tmp_path / "model_state.json").read_text() == '{"latest_checkpoint": "model_00000001.pth"}'
    monkeypatch.undo()
    train.main(args + ["--resume"])
    assert [r["step"] for r in metrics(tmp_path / "model_metrics.csv")] == ["1", "2", "3"]


def launch(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "K_DIFFUSION_USE_COMPILE": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "train_gc.py"), *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_runs_started_together_in_one_folder(world, tmp_path):
    """One trains and the other is refused in one line; every checkpoint and metrics row is the winner's."""
    args = ["--config", str(world / "tiny.json"), "--out-dir", "out", "--end-step", "20", "--save-every", "1",
            "--demo-every", "0"]  # each run draws its own seed, which its checkpoints record
    runs = [launch(*args, cwd=tmp_path) for _ in range(2)]
    results = [(p.returncode, out, err) for p in runs for out, err in [p.communicate(timeout=300)]]
    assert sorted(code for code, _, _ in results) == [0, 2], [err[-2000:] for _, _, err in results]
    err = next(err for code, _, err in results if code == 2)
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    seeds = {torch.load(p, weights_only=True)["seed"] for p in (tmp_path / "out").glob("model_0*.pth")}
    assert len(seeds) == 1 and len(list((tmp_path / "out").glob("model_0*.pth"))) == 20
    assert [int(r["step"]) for r in metrics(tmp_path / "out" / "model_metrics.csv")] == list(range(1, 21))


def test_a_held_run_folder_is_refused_with_the_holders_pid(world, tmp_path, capfd):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from kdiff_gc.runlock import RunLock; "
                               f"lock = RunLock({str(tmp_path / 'out')!r}, 'model'); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SystemExit):
            train.main(["--config", str(world / "tiny.json"), "--out-dir", str(tmp_path / "out"), "--end-step", "1"])
    finally:
        holder.kill()
        holder.wait()
    assert capfd.readouterr().err.strip() == (f"error: another run (pid {holder.pid}) is using --name model in "
                                              f"{tmp_path / 'out'}: wait for it to end, or pick another --name or "
                                              "--out-dir")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.lock"]


def test_the_scripts_print_one_line(world, tmp_path):
    """The real scripts, imports and all: nothing on stderr but the error line."""
    for script, args in [("train_gc.py", ["--config", str(world / "tiny.json"), "--out-dir", str(world / "run")]),
                         ("sample_gc.py", [str(world / "model.safetensors"), "--sampler", "magic", "-o", "x.png"])]:
        out = subprocess.run([sys.executable, str(ROOT / script), *args], cwd=tmp_path, capture_output=True, text=True,
                             env={**os.environ, "K_DIFFUSION_USE_COMPILE": "0"})
        assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr
        assert out.stderr.startswith("error: ")
