"""Inference files, loading, and sample_gc.py."""

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import safetensors.torch as safetorch
import torch
from PIL import Image

from kdiff_gc import load_config, make_denoiser
from kdiff_gc.programs import sample as sample_program
from kdiff_gc.errors import UserError
from kdiff_gc.inference import export_inference, load_model
from models import TRANSFORMER_V1
from test_train import ENV, ROOT, TINY


def test_export_then_load_gives_the_same_outputs_bit_for_bit(ckpt, tmp_path):
    out = tmp_path / "model.safetensors"
    export_inference(ckpt, out)
    state = safetorch.load_file(str(out))
    stored = torch.load(ckpt, weights_only=True)
    assert state.keys() == stored["model_ema"].keys()
    assert json.loads(safetorch.safe_open(str(out), "pt").metadata()["config"]) == stored["config"]
    from_file, _ = load_model(out)
    from_ckpt, _ = load_model(ckpt)
    x, sigma = torch.randn(4, 1, 8, 8) * 3, torch.tensor([0.01, 0.5, 3.0, 80.0])
    with torch.no_grad():
        assert torch.equal(from_file(x, sigma), from_ckpt(x, sigma))
    assert all(torch.equal(from_file.inner_model.state_dict()[k], v) for k, v in stored["model_ema"].items())


def test_mismatched_config_and_smuggled_pickle(ckpt, tmp_path):
    other = json.loads(json.dumps(TINY))
    other["model"]["channels"] = [8, 32]
    with pytest.raises(UserError, match="do not fit the config's model"):
        load_model(ckpt, config=other)

    class Boom:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('pwned')" % str(tmp_path / "pwned"),))

    evil = tmp_path / "evil.pth"
    stored = torch.load(ckpt, weights_only=True)
    stored["extra"] = Boom()
    torch.save(stored, evil)
    with pytest.raises(UserError, match="unreadable"):
        load_model(evil)
    assert not (tmp_path / "pwned").exists()


def sample(capsys, *argv):
    sample_program.main([str(a) for a in argv])
    return capsys.readouterr().out


def test_sample_gc_formats_counts_and_one_step_equals_the_model_call(ckpt, tmp_path, capsys):
    sample(capsys, ckpt, "-n", 5, "--batch-size", 8, "--seed", 7, "-o", tmp_path / "one.npz")
    images = np.load(tmp_path / "one.npz")["arr_0"]
    assert images.shape == (5, 8, 8, 1) and images.dtype == np.uint8
    model, _ = load_model(ckpt)
    x = torch.randn([5, 1, 8, 8], generator=torch.Generator().manual_seed(7)) * 80.0
    with torch.no_grad():
        direct = model(x, torch.full([5], 80.0))
    want = ((direct.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(images, want)

    sample(capsys, ckpt, "-n", 6, "--batch-size", 4, "--steps", 2, "-o", tmp_path / "grid.png")
    assert Image.open(tmp_path / "grid.png").size == (3 * 8, 2 * 8)
    sample(capsys, ckpt, "-n", 3, "--sigmas", "80,2,0.5", "-o", tmp_path / "pngs")
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    sample(capsys, ckpt, "-n", 2, "--sampler", "euler", "--sampler-steps", 3, "-o", tmp_path / "euler.npz")
    assert np.load(tmp_path / "euler.npz")["arr_0"].shape == (2, 8, 8, 1)


def test_sample_gc_refuses_to_overwrite_and_unknown_samplers(ckpt, tmp_path, capsys):
    (tmp_path / "taken.png").write_bytes(b"keep me")
    for argv, message in ([("-o", tmp_path / "taken.png"), "exists"],
                          [("--sampler", "nope", "-o", tmp_path / "x.png"), "--sampler 'nope' is unknown"],
                          [("--class", 1, "-o", tmp_path / "y.png"), "not class-conditional"],
                          [("-o", tmp_path / "x.jpg"),
                           "--output " + str(tmp_path / "x.jpg") + ": name a .png"]):
        with pytest.raises(SystemExit) as exit_info:
            sample_program.main([str(ckpt), *map(str, argv)])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert (tmp_path / "taken.png").read_bytes() == b"keep me" and not (tmp_path / "x.jpg").exists()


def test_sample_gc_draws_random_classes_for_a_class_conditional_model_and_records_them(tmp_path, capsys):
    """Without --class each image gets a class drawn after its batch's noise from the --seed generator;
    the classes go to arr_1, and each image is the model's 1-step output for its noise and class."""
    config = load_config({"model": TRANSFORMER_V1, "dataset": {"num_classes": 3}, "consistency": {}})
    torch.manual_seed(0)
    model = make_denoiser(config).eval()
    path = tmp_path / "cond.safetensors"
    safetorch.save_file(model.inner_model.state_dict(), str(path), metadata={"config": json.dumps(config)})

    sample(capsys, path, "-n", 7, "--batch-size", 4, "--seed", 3, "-o", tmp_path / "random.npz")
    stored = np.load(tmp_path / "random.npz")
    gen, want, classes = torch.Generator().manual_seed(3), [], []
    for n in (4, 3):
        x = torch.randn([n, 1, 8, 8], generator=gen) * 80.0
        label = torch.randint(0, 3, [n], generator=gen)
        with torch.no_grad():
            want.append(model(x, torch.full([n], 80.0), class_cond=label))
        classes.append(label)
    want = ((torch.cat(want).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(stored["arr_1"], torch.cat(classes).numpy())
    np.testing.assert_array_equal(stored["arr_0"], want)
    assert len(set(stored["arr_1"].tolist())) > 1

    sample(capsys, path, "-n", 3, "--class", 2, "-o", tmp_path / "two.npz")
    assert np.load(tmp_path / "two.npz")["arr_1"].tolist() == [2, 2, 2]


def test_convert_follows_the_umask_refuses_to_overwrite_and_gives_the_right_hint(ckpt, tmp_path):
    def convert(*argv, umask=0o022):
        return subprocess.run([sys.executable, str(ROOT / "convert_for_inference_gc.py"), *map(str, argv)],
                              capture_output=True, text=True, env=ENV, preexec_fn=lambda: os.umask(umask))

    out = tmp_path / "model.safetensors"
    assert convert(ckpt, "-o", out).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # 0o666 less the umask 0o022
    before = out.read_bytes()
    refused = convert(ckpt, "-o", out)
    assert refused.returncode == 2 and "exists: choose another --output or pass --overwrite" in refused.stderr
    assert out.read_bytes() == before
    assert convert(ckpt, "-o", out, "--overwrite", umask=0o077).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    missing = convert(tmp_path / "missing.pth")
    assert missing.returncode == 2 and "--resume" not in missing.stderr
    assert missing.stderr.strip() == (f"error: checkpoint {tmp_path / 'missing.pth'} does not exist: "
                                      "give a .pth checkpoint that train_gc.py wrote")
