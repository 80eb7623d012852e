"""The training program: the README command, exact resume, two processes, a stock k-diffusion config."""

import csv
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from kdiff_gc.errors import UserError
from kdiff_gc.programs.train import build_parser
from kdiff_gc.run_files import truncate_metrics
from kdiff_gc import trainer
from kdiff_gc.trainer import Run
from kdiff_gc.options import RunOptions

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "K_DIFFUSION_USE_COMPILE": "0", "PYTHONWARNINGS": "ignore"}

TINY = {
    "model": {"type": "image_v1", "input_channels": 1, "input_size": [8, 8], "mapping_out": 16,
              "depths": [1, 1], "channels": [8, 16], "self_attn_depths": [False, False],
              "augment_wrapper": False, "dropout_rate": 0.1},
    "dataset": {"type": "digits"},
    "optimizer": {"type": "lion", "lr": 1e-4, "betas": [0.9, 0.99], "weight_decay": 0.0},
    "ema_sched": {"type": "constant", "value": 0.99},
    "training": {"batch_size": 8},
    "consistency": {"total_steps": 40, "coupling": {"mu": 0.5}},
}


def write_config(folder: Path, config: dict = TINY, name: str = "tiny.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(config))
    return path


def train(cwd: Path, *args: str, launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = (launcher or [sys.executable]) + [str(ROOT / "train_gc.py"), *args]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


def metrics(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_flag_is_an_option_with_the_options_default():
    """train_gc.py's flags map one to one onto RunOptions' fields (all but ``save``, which only code sets),
    and a flag left out takes the field's default."""
    from dataclasses import asdict

    parsed = vars(build_parser().parse_args(["--config", "c.json"]))
    assert parsed == {k: v for k, v in asdict(RunOptions(config="c.json")).items() if k != "save"}
    assert RunOptions(**parsed).save is True


@pytest.mark.parametrize("workers, augment_prob", [("0", 0.0), ("0", 0.5), ("2", 0.5)])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, workers, augment_prob):
    config = write_config(tmp_path, {**TINY, "model": {**TINY["model"], "augment_prob": augment_prob}})
    common = ["--config", str(config), "--seed", "5", "--demo-every", "0", "--save-every", "2",
              "--num-workers", workers]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert train(tmp_path, *common, "--out-dir", str(whole), "--end-step", "6").returncode == 0
    assert train(tmp_path, *common, "--out-dir", str(parts), "--end-step", "5").returncode == 0
    # as if killed after step 5's metrics but before its checkpoint: the latest pointer is step 4's
    (parts / "model_state.json").write_text(json.dumps({"latest_checkpoint": "model_00000004.pth"}))
    resumed = train(tmp_path, *common, "--out-dir", str(parts), "--end-step", "6", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stderr + resumed.stdout
    a, b = metrics(whole / "model_metrics.csv"), metrics(parts / "model_metrics.csv")
    assert [r["step"] for r in b] == ["1", "2", "3", "4", "5", "6"]
    assert a == b
    ema_a = torch.load(whole / "model_00000006.pth", weights_only=True)["model_ema"]
    ema_b = torch.load(parts / "model_00000006.pth", weights_only=True)["model_ema"]
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)


TORCHRUN = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2"]
ACCELERATE = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2"]  # gloo without a GPU


@pytest.mark.parametrize("launcher, seed", [(TORCHRUN, ["--seed", "1"]), (TORCHRUN, []), (ACCELERATE, [])],
                         ids=["torchrun-seed", "torchrun-no-seed", "accelerate-no-seed"])
def test_two_processes_share_curriculum_and_ema_and_write_one_set_of_files(tmp_path, launcher, seed):
    """Without --seed, rank 0 draws the seed for all: the EMA, which is the GC generator, is the same."""
    config = write_config(tmp_path)
    out = train(tmp_path, "--config", str(config), *seed, "--demo-every", "2", "--save-every", "2",
                "--end-step", "2", "--sample-n", "4", "--out-dir", "run", launcher=launcher)
    assert out.returncode == 0, out.stderr[-3000:]
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["model.lock", "model_00000002.pth", "model_demo_00000002.png", "model_metrics.csv",
                     "model_state.json"]
    ckpt = torch.load(tmp_path / "run" / "model_00000002.pth", weights_only=True)
    assert len(ckpt["ranks"]) == 2
    assert ckpt["ranks"][0] == ckpt["ranks"][1]  # EMA checksums and N(k) agree
    assert not torch.equal(ckpt["rng"][0]["cpu"], ckpt["rng"][1]["cpu"])  # noise and GC choices differ
    assert len(metrics(tmp_path / "run" / "model_metrics.csv")) == 2


def test_stock_k_diffusion_config_with_a_consistency_section_trains(tmp_path):
    # k-diffusion's configs/config_mnist.json, with its data set pointed at local PNGs and "consistency": {}
    stock = {
        "model": {"type": "image_v1", "input_channels": 1, "input_size": [28, 28], "patch_size": 1,
                  "mapping_out": 256, "depths": [2, 4, 4], "channels": [128, 128, 256],
                  "self_attn_depths": [False, False, True], "has_variance": False, "loss_config": "karras",
                  "loss_weighting": "soft-min-snr", "dropout_rate": 0.05, "augment_wrapper": True,
                  "augment_prob": 0.12, "sigma_data": 0.6162, "sigma_min": 1e-2, "sigma_max": 80,
                  "sigma_sample_density": {"type": "cosine-interpolated"}},
        "dataset": {"type": "imagefolder", "location": str(tmp_path / "pngs")},
        "optimizer": {"type": "adamw", "lr": 2e-4, "betas": [0.95, 0.999], "eps": 1e-6,
                      "weight_decay": 1e-3},
        "lr_sched": {"type": "constant", "warmup": 0.0},
        "ema_sched": {"type": "inverse", "power": 0.6667, "max_value": 0.9999},
    }
    (tmp_path / "pngs").mkdir()
    for i, image in enumerate(load_digits().images[:8]):
        Image.fromarray(np.uint8(image * 255 / 16)).save(tmp_path / "pngs" / f"{i}.png")
    refused = train(tmp_path, "--config", str(write_config(tmp_path, stock, "stock.json")), "--end-step", "1")
    assert refused.returncode == 2 and 'add a "consistency" section' in refused.stderr
    stock["consistency"] = {}
    out = train(tmp_path, "--config", str(write_config(tmp_path, stock, "stock.json")), "--batch-size", "2",
                "--end-step", "2", "--demo-every", "0")
    assert out.returncode == 0, out.stderr[-3000:]
    ckpt = torch.load(tmp_path / "model_00000002.pth", weights_only=True)
    assert ckpt["config"]["consistency"]["sigma_min"] == 0.002
    assert any(k.startswith("inner_model.") for k in ckpt["model"])  # KarrasAugmentWrapper's inner model
    notices = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("notice:")]
    # each stock key that consistency training ignores, once; sigma_max 80 is what it uses
    assert notices == [
        "notice: model.sigma_min = 0.01 is not used; consistency.sigma_min = 0.002 is",
        'notice: model.loss_weighting = "soft-min-snr" is not used; consistency.weighting = "improved" is',
        'notice: model.sigma_sample_density = {"type": "cosine-interpolated"} is not used; '
        'consistency.timestep_density = {"type": "lognormal", "p_mean": -1.1, "p_std": 2.0} is',
        'notice: model.loss_config = "karras" is not used; the consistency section\'s loss is']


def test_user_error_is_one_line_with_exit_code_2(tmp_path):
    out = train(tmp_path, "--config", str(tmp_path / "nope.json"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"error: config {str(tmp_path / 'nope.json')!r} does not "
                                               "exist: pass --config PATH to a JSON file"]
    assert re.search("Traceback", out.stderr) is None


def test_loss_watch_warns_on_a_diverging_run_and_not_on_a_healthy_one(tmp_path):
    """Lion at 3e-2 on the tiny model blows the loss up within 300 steps; at 1e-4 the loss falls. The
    warning names the step and the numbers, is printed once, and the run still ends normally."""
    outputs = {}
    for lr in (1e-4, 3e-2):
        config = json.loads(json.dumps(TINY))
        config["optimizer"]["lr"] = lr
        config["consistency"]["total_steps"] = 300
        out = train(tmp_path, "--config", str(write_config(tmp_path, config, f"lr{lr}.json")),
                    "--name", f"lr{lr}", "--out-dir", str(tmp_path), "--demo-every", "0", "--seed", "0")
        assert out.returncode == 0, out.stderr[-3000:]
        outputs[lr] = out.stdout + out.stderr
    assert "running away" not in outputs[1e-4]
    warnings = re.findall(r"warning: the loss is running away at step (\d+): .* ([\d.]+)x the median",
                          outputs[3e-2])
    assert len(warnings) == 1
    step, ratio = int(warnings[0][0]), float(warnings[0][1])
    losses = [float(r["loss"]) for r in metrics(tmp_path / "lr0.03_metrics.csv")]
    before, recent = losses[:step - 50], statistics.fmean(losses[step - 50:step])
    assert 250 <= step <= 300 and ratio > 2
    # the ratio it reports is the data's
    assert recent / statistics.median(before) == pytest.approx(ratio, abs=0.05)


def test_truncate_metrics_keeps_the_rows_up_to_the_step_and_survives_an_empty_file(tmp_path):
    path = tmp_path / "m.csv"
    header = "step,loss,n_scales,gc_share,lr,fid_1step,kid_1step,fid_2step,kid_2step\n"
    path.write_text(header + "1,3.0,11,0.5,0.001,,,,\n2,2.5,11,0.5,0.001,7.5,0.1,6.5,0.2\n"
                             "3,2.0,11,0.5,0.001,,,,\n")
    kept = truncate_metrics(path, 2)
    assert [(r["step"], r["loss"], r["fid_1step"]) for r in kept] == [(1, 3.0, ""), (2, 2.5, "7.5")]
    assert path.read_text() == header + "1,3.0,11,0.5,0.001,,,,\n2,2.5,11,0.5,0.001,7.5,0.1,6.5,0.2\n"
    path.write_text("")  # a crash between creating the file and writing its header
    assert truncate_metrics(path, 2) == [] and not path.exists()


def test_an_accelerate_launch_that_asked_for_several_cpu_processes_and_got_one_is_refused(tmp_path):
    out = train(tmp_path, "--config", str(write_config(tmp_path)), "--end-step", "1", "--out-dir", "run",
                launcher=[str(BIN / "accelerate"), "launch", "--num_processes", "2", "--cpu"])
    # accelerate exits 1 with its own traceback whenever its child fails; the child's is the error line
    assert (out.returncode == 1
            and "error: accelerate launch asked for several processes but started one" in out.stderr)
    assert "returned non-zero exit status 2" in out.stderr and "kdiff_gc" not in out.stderr
    assert not (tmp_path / "run").exists()


def test_resuming_with_a_different_config_is_refused_unless_overridden(tmp_path):
    run_args = ["--out-dir", "run", "--demo-every", "0", "--save-every", "1", "--seed", "0"]
    assert train(tmp_path, "--config", str(write_config(tmp_path)), "--end-step", "1",
                 *run_args).returncode == 0
    ic = json.loads(json.dumps(TINY))
    ic["consistency"]["coupling"] = {"type": "independent"}
    ic["optimizer"]["lr"] = 2e-4
    ic_config = str(write_config(tmp_path, ic, "ic.json"))
    refused = train(tmp_path, "--config", ic_config, "--end-step", "2", "--resume", *run_args)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: resume: the config differs from the one {Path('run') / 'model_00000001.pth'} was trained "
        "with, in consistency.coupling.type, optimizer.lr: resume with that config, or pass "
        "--config-override to go on with this one")
    assert not (tmp_path / "run" / "model_00000002.pth").exists()
    accepted = train(tmp_path, "--config", ic_config, "--end-step", "2", "--resume", "--config-override",
                     *run_args)
    assert accepted.returncode == 0, accepted.stderr[-3000:]
    ckpt = torch.load(tmp_path / "run" / "model_00000002.pth", weights_only=True)
    assert ckpt["config"]["consistency"]["coupling"]["type"] == "independent"


def test_a_checkpoint_from_before_a_config_key_was_added_resumes_and_a_real_difference_is_refused(tmp_path):
    """A key the stored config lacks (consistency.sigma_mid, default 0.821) was added since: both configs
    are normalised with today's defaults, so the same command resumes; a config that sets the key to another
    value than the default trained with is refused, naming it."""
    run_args = ["--out-dir", "run", "--demo-every", "0", "--seed", "0"]
    config = str(write_config(tmp_path))
    assert train(tmp_path, "--config", config, *run_args, "--end-step", "1").returncode == 0
    path = tmp_path / "run" / "model_00000001.pth"
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["config"]["consistency"]["sigma_mid"] == 0.821
    del ckpt["config"]["consistency"]["sigma_mid"]
    torch.save(ckpt, path)
    other = json.loads(json.dumps(TINY))
    other["consistency"]["sigma_mid"] = 0.8
    refused = train(tmp_path, "--config", str(write_config(tmp_path, other, "other.json")), *run_args,
                    "--end-step", "2")
    assert refused.returncode == 2 and "in consistency.sigma_mid:" in refused.stderr.splitlines()[-1]
    resumed = train(tmp_path, "--config", config, *run_args, "--end-step", "2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming from {Path('run') / 'model_00000001.pth'} at step 1" in resumed.stderr + resumed.stdout


def test_a_run_of_the_cifar10_configs_settings_holds_ema_pytorchs_weights_at_every_step_across_a_resume(
        tmp_path):
    """configs/cifar10_gc.json's EMA, clipping and loss on the tiny model: each step's checkpoint holds the
    EMA weights that ema-pytorch 0.2.3 (which the official code pins) holds when its ``update()`` is replayed
    on the run's own online weights, step by step. Updates at steps 0 and 5 copy, at 10 and 15 average; the
    run stops at step 8 and the same command continues it."""
    import k_diffusion as K
    from ema_pytorch import EMA

    from kdiff_gc.config import load_config

    paper = json.loads((ROOT / "configs" / "cifar10_gc.json").read_text())
    assert paper["training"]["grad_clip"] == 0
    config = {**paper, "model": {**TINY["model"], "dropout_rate": 0.0}, "dataset": TINY["dataset"],
              "training": {**paper["training"], "batch_size": 8}}
    run_args = ["--config", str(write_config(tmp_path, config)), "--out-dir", "run", "--demo-every", "0",
                "--save-every", "1", "--seed", "3"]
    assert train(tmp_path, *run_args, "--end-step", "8").returncode == 0
    resumed = train(tmp_path, *run_args, "--end-step", "16", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    e = paper["ema_sched"]
    online = K.config.make_model(load_config(config))
    reference = EMA(online, beta=e["max_value"], update_after_step=e["start_step"],
                    update_every=e["update_every"])
    assert (e["inv_gamma"], e["power"]) == (reference.inv_gamma, reference.power)  # ema-pytorch's defaults
    for step in range(1, 17):
        ckpt = torch.load(tmp_path / "run" / f"model_{step:08}.pth", weights_only=True)
        online.load_state_dict(ckpt["model"])
        reference.update()
        expected = reference.ema_model.state_dict()
        assert all(torch.equal(ckpt["model_ema"][k], expected[k]) for k in expected), f"step {step}"
    # it averages
    assert not torch.equal(ckpt["model_ema"]["mapping.0.weight"], ckpt["model"]["mapping.0.weight"])


def test_ema_weights_that_differ_between_processes_at_start_up_are_an_error(tmp_path, monkeypatch):
    """The start-up check, with a second rank whose EMA checksum is off by one (as it was when each process
    drew its own seed); nothing is written."""
    monkeypatch.setattr(trainer, "gather",
                        lambda acc, obj: [obj, {**obj, "ema_checksum": obj["ema_checksum"] + 1}])
    args = build_parser().parse_args(["--config", str(write_config(tmp_path)),
                                      "--out-dir", str(tmp_path / "run")])
    with pytest.raises(UserError,
                       match="the EMA weights \\(the GC generator\\) differ between processes at start-up"):
        Run(RunOptions(**vars(args)))
    assert not (tmp_path / "run").exists()


FAIL_METRICS = '''import errno, os
if "TEST_FAIL_METRICS_AT" in os.environ:  # the disk fills up when the metrics reach that step
    from kdiff_gc import run_files
    write_metrics = run_files.RunFiles.write_metrics

    def failing(self, logger, row):
        if row["step"] >= int(os.environ["TEST_FAIL_METRICS_AT"]):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.metrics))
        write_metrics(self, logger, row)
    run_files.RunFiles.write_metrics = failing
'''


def test_a_failed_metrics_write_stops_every_process(tmp_path):
    """Only the main process writes; its failure travels with the gathered stats, so the other process stops
    too, with one line, instead of failing in (or, with NCCL, waiting at) its next collective."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(FAIL_METRICS)
    config = write_config(tmp_path)
    env = {**ENV, "PYTHONPATH": str(tmp_path / "site"), "TEST_FAIL_METRICS_AT": "3"}
    out = subprocess.run(TORCHRUN + [str(ROOT / "train_gc.py"), "--config", str(config), "--seed", "1",
                                     "--demo-every", "0", "--end-step", "20", "--out-dir", "run"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert f"error: {Path('run') / 'model_metrics.csv'}: no space left on device" in out.stderr
    assert "the last checkpoint and the metrics so far are intact" in out.stderr
    # the other process stops with its own line, not a traceback from a collective whose peer has gone
    assert ("error: the main process could not write the metrics" in out.stderr
            and "[rank1]: Traceback" not in out.stderr)
    assert [int(r["step"]) for r in metrics(tmp_path / "run" / "model_metrics.csv")] == [1, 2]


def test_a_resume_under_another_batch_size_is_refused_and_another_split_of_it_continues(tmp_path):
    """The checkpoint records the batch layout. Another global batch size is a config difference; the
    same batch over 2 accumulation steps continues at the same position: 2 micro-batches a step."""
    run_args = ["--config", str(write_config(tmp_path)), "--out-dir", "run", "--demo-every", "0",
                "--save-every", "1", "--seed", "0"]
    assert train(tmp_path, *run_args, "--end-step", "2").returncode == 0
    assert torch.load(tmp_path / "run" / "model_00000002.pth", weights_only=True)["batch"] == {
        "size": 8, "processes": 1, "grad_accum_steps": 1}
    refused = train(tmp_path, *run_args, "--end-step", "3", "--batch-size", "4")
    assert refused.returncode == 2 and "in the batch size (8, now 4):" in refused.stderr.splitlines()[-1]
    split = train(tmp_path, *run_args, "--end-step", "3", "--grad-accum-steps", "2")
    assert split.returncode == 0, split.stderr[-3000:]
    assert "Resuming 1 process(es) x 1 accumulation step(s) as 1 x 2" in split.stdout
    ckpt = torch.load(tmp_path / "run" / "model_00000003.pth", weights_only=True)
    assert ckpt["batch"]["grad_accum_steps"] == 2 and ckpt["batches_done"] == 3 * 2


def test_evaluate_n_0_turns_evaluation_off_as_in_k_diffusion(tmp_path):
    out = train(tmp_path, "--config", str(write_config(tmp_path)), "--out-dir", "run", "--demo-every", "0",
                "--end-step", "2", "--evaluate-every", "1", "--evaluate-n", "0")
    assert out.returncode == 0, out.stderr[-3000:]
    assert [r["fid_1step"] for r in metrics(tmp_path / "run" / "model_metrics.csv")] == ["", ""]


def test_k_diffusions_wandb_save_model_uploads_each_checkpoint_and_start_method_starts_the_workers(
        tmp_path, monkeypatch):
    """--wandb-save-model (checked with a stand-in for the wandb module, which is not installed here) and
    --start-method spawn (k-diffusion's default) with one data worker."""
    import types

    from kdiff_gc.programs.train import main

    calls = []
    fake = types.SimpleNamespace(init=lambda **kw: calls.append(("init", kw["project"])),
                                 log=lambda row, step: calls.append(("log", step)),
                                 save=lambda path, base_path: calls.append(("save", Path(path).name)))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    main(["--config", str(write_config(tmp_path)), "--out-dir", str(tmp_path / "run"), "--demo-every", "0",
          "--end-step", "2", "--save-every", "1", "--wandb-project", "p", "--wandb-save-model",
          "--num-workers", "1", "--start-method", "spawn"])
    assert calls == [("init", "p"), ("log", 1), ("save", "model_00000001.pth"), ("log", 2),
                     ("save", "model_00000002.pth")]


def test_a_data_set_that_fails_on_one_process_only_stops_every_process_naming_it(tmp_path):
    """A custom get_dataset that fails on rank 1 alone (as a file missing on one node): rank 0 stops too,
    with the same line, naming process 1, instead of waiting at its next collective."""
    (tmp_path / "one_rank.py").write_text(
        "import os\n\nimport torch\n\n\ndef get_dataset(config, transform):\n"
        "    if os.environ['RANK'] == '1':\n        raise FileNotFoundError('/data/shard-1 is missing')\n"
        "    return [((torch.zeros(1, 8, 8), torch.zeros(1, 8, 8), torch.zeros(9)),)] * 16\n")
    config = {**TINY, "dataset": {"type": "custom", "location": str(tmp_path / "one_rank.py")}}
    out = train(tmp_path, "--config", str(write_config(tmp_path, config)), "--out-dir", "run", "--seed", "0",
                launcher=TORCHRUN)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: process 1: dataset.location '{tmp_path / 'one_rank.py'}': get_dataset(config, "
                      "transform) raised FileNotFoundError: /data/shard-1 is missing"] * 2, out.stderr[-3000:]
    assert not (tmp_path / "run").exists()


def test_a_resume_keeps_the_best_fid_of_a_best_checkpoint_newer_than_the_one_resumed(tmp_path):
    """{name}_best.pth written after the checkpoint resumed from (a stop between an evaluation and the next
    save): its FID, not the checkpoint's, is the one to beat."""
    from kdiff_gc.options import RunOptions
    from kdiff_gc.trainer import Run

    config = str(write_config(tmp_path))
    assert train(tmp_path, "--config", config, "--out-dir", "run", "--demo-every", "0", "--end-step", "1",
                 "--seed", "0").returncode == 0
    ckpt = torch.load(tmp_path / "run" / "model_00000001.pth", weights_only=True)
    ckpt["best_fid_1step"] = 5.0
    torch.save(ckpt, tmp_path / "run" / "model_00000001.pth")
    torch.save({**ckpt, "best_fid_1step": 3.0}, tmp_path / "run" / "model_best.pth")
    run = Run(RunOptions(config=config, out_dir=str(tmp_path / "run"), end_step=2, demo_every=0))
    assert run.state.best_fid == 3.0


def test_a_failing_wandb_log_turns_wandb_off_and_training_goes_on(tmp_path, monkeypatch, capsys):
    import types

    from kdiff_gc.programs.train import main

    def log(row, step):
        if step == 2:
            raise ConnectionError("wandb service unreachable")

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=lambda **kw: None, log=log))
    main(["--config", str(write_config(tmp_path)), "--out-dir", str(tmp_path / "run"), "--demo-every", "0",
          "--end-step", "4", "--wandb-project", "p"])
    out = capsys.readouterr().out
    assert out.count("warning: wandb.log failed at step 2 (ConnectionError: wandb service unreachable)") == 1
    assert [r["step"] for r in metrics(tmp_path / "run" / "model_metrics.csv")] == ["1", "2", "3", "4"]
