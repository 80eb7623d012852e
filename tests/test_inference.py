"""Inference files, loading, and sample_gc.py."""

import json

import numpy as np
import pytest
import safetensors.torch as safetorch
import torch
from PIL import Image

from kdiff_gc import generate
from kdiff_gc.errors import UserError
from kdiff_gc.inference import export_inference, load_model
from test_train import TINY


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
    generate.main([str(a) for a in argv])
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
                          [("--class", 1, "-o", tmp_path / "y.png"), "not class-conditional"]):
        with pytest.raises(SystemExit) as exit_info:
            generate.main([str(ckpt), *map(str, argv)])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert (tmp_path / "taken.png").read_bytes() == b"keep me"
