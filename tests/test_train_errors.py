"""Bad input to the training program: one clear line, exit code 2, and no file damaged."""

import hashlib
import json
import re

import pytest
import torch

from kdiff_gc import checkpoint
from kdiff_gc.programs.train import main
from test_train import TINY, metrics, write_config


def run(capsys, *argv) -> str:
    """``main(argv)`` that must fail: returns its one-line message."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    lines = [line.strip() for line in re.split(r"[\r\n]+", capsys.readouterr().err) if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "Traceback" in line]
    assert errors == lines[-1:] and errors[0].startswith("error: "), lines  # progress bars aside, one line
    return errors[0]


def digests(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run of 2 steps with checkpoints at 1 and 2."""
    folder = tmp_path_factory.mktemp("trained")
    main(["--config", str(write_config(folder)), "--out-dir", str(folder), "--end-step", "2",
          "--save-every", "1", "--demo-every", "0", "--seed", "0"])
    return folder


def test_missing_malformed_and_invalid_configs(tmp_path, capsys):
    assert "does not exist" in run(capsys, "--config", str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{\"model\": ")
    assert "not valid JSON" in run(capsys, "--config", str(bad))
    config = json.loads(json.dumps(TINY))
    config["consistency"]["coupling"]["mixing"] = 0.5
    msg = run(capsys, "--config", str(write_config(tmp_path, config)))
    assert "consistency.coupling.mixing: unknown key" in msg
    config["consistency"]["coupling"] = {"mu": 2}
    assert ("consistency.coupling.mu = 2: must be a number in [0, 1]"
            in run(capsys, "--config", str(write_config(tmp_path, config))))


def test_missing_dataset_says_what_to_place_where(tmp_path, capsys):
    config = json.loads(json.dumps(TINY))
    config["dataset"] = {"type": "cifar10", "location": str(tmp_path / "data"), "download": False}
    msg = run(capsys, "--config", str(write_config(tmp_path, config)), "--out-dir", str(tmp_path / "out"))
    assert "has no CIFAR-10 data" in msg and "cifar-10-batches-py" in msg
    config["dataset"] = {"type": "imagefolder", "location": str(tmp_path / "nothing")}
    assert "has no image data" in run(capsys, "--config", str(write_config(tmp_path, config)),
                                      "--out-dir", str(tmp_path / "out"))


def test_the_same_command_continues_an_existing_run_and_keeps_its_rows(trained, tmp_path, capsys):
    """As k-diffusion's train.py: a folder whose state file exists is continued, not started over."""
    for p in trained.iterdir():
        (tmp_path / p.name).write_bytes(p.read_bytes())
    before = metrics(tmp_path / "model_metrics.csv")
    main(["--config", str(tmp_path / "tiny.json"), "--out-dir", str(tmp_path), "--end-step", "3",
          "--save-every", "1", "--demo-every", "0", "--seed", "0"])
    assert f"Resuming from {tmp_path / 'model_00000002.pth'} at step 2" in capsys.readouterr().out
    after = metrics(tmp_path / "model_metrics.csv")
    assert after[:2] == before and [r["step"] for r in after] == ["1", "2", "3"]


def test_corrupted_and_mismatched_checkpoints(trained, tmp_path, capsys):
    broken = tmp_path / "broken.pth"
    broken.write_bytes((trained / "model_00000002.pth").read_bytes()[:1000])
    before = digests(trained)
    msg = run(capsys, "--config", str(trained / "tiny.json"), "--out-dir", str(tmp_path),
              "--resume", str(broken))
    assert f"checkpoint {broken} is unreadable" in msg
    foreign = tmp_path / "k_diffusion_run.pth"
    torch.save({"model": {}, "model_ema": {}, "step": 3}, foreign)
    msg = run(capsys, "--config", str(trained / "tiny.json"), "--out-dir", str(tmp_path),
              "--resume", str(foreign))
    assert "is not a kdiff-gc training checkpoint (it lacks batches_done" in msg
    other = json.loads(json.dumps(TINY))
    other["model"]["channels"] = [8, 32]
    other_config = str(write_config(tmp_path, other, "other.json"))
    msg = run(capsys, "--config", other_config, "--out-dir", str(trained), "--resume")
    assert "was trained with, in model.channels: resume with that config, or pass --config-override" in msg
    msg = run(capsys, "--config", other_config, "--out-dir", str(trained), "--resume", "--config-override")
    assert "do not fit the config's model" in msg
    assert digests(trained) == before


def test_pickled_code_in_a_checkpoint_is_not_run(trained, tmp_path, capsys):
    class Boom:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('pwned')" % str(tmp_path / "pwned"),))

    evil = tmp_path / "evil.pth"
    ckpt = torch.load(trained / "model_00000002.pth", weights_only=True)
    ckpt["payload"] = Boom()
    torch.save(ckpt, evil)
    msg = run(capsys, "--config", str(trained / "tiny.json"), "--out-dir", str(tmp_path),
              "--resume", str(evil))
    assert "unreadable" in msg
    assert not (tmp_path / "pwned").exists()


def test_nan_loss_stops_with_the_step_and_keeps_what_was_saved(trained, tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    for p in trained.iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    # finite images (a NaN one is refused as an item) so large that the loss overflows
    (tmp_path / "nan_data.py").write_text(
        "import torch\n"
        "class NaNs(torch.utils.data.Dataset):\n"
        "    def __len__(self): return 64\n"
        "    def __getitem__(self, i): return ((torch.full([1, 8, 8], 3e38),) * 2 + "
        "(torch.zeros(9),),)\n"
        "def get_dataset(config, transform): return NaNs()\n")
    config = json.loads(json.dumps(TINY))
    config["dataset"] = {"type": "custom", "location": "nan_data.py"}
    before = digests(folder)
    msg = run(capsys, "--config", str(write_config(tmp_path, config)), "--out-dir", str(folder), "--resume",
              "--config-override", "--end-step", "4", "--save-every", "1")  # the same run on NaN data
    assert msg.startswith("error: loss is nan at step 3:")
    assert digests(folder) == before
    assert [r["step"] for r in metrics(folder / "model_metrics.csv")] == ["1", "2"]


def test_a_failed_save_leaves_the_previous_checkpoint_as_latest(trained, tmp_path, monkeypatch):
    state = tmp_path / "model_state.json"
    checkpoint.save_checkpoint({"step": 1}, tmp_path / "model_00000001.pth", state)

    def dies_halfway(obj, f):
        open(f, "wb").write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint({"step": 2}, tmp_path / "model_00000002.pth", state)
    assert checkpoint.latest_checkpoint(state) == tmp_path / "model_00000001.pth"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_00000001.pth", "model_state.json"]


def test_a_data_set_that_fails_past_its_first_item_stops_with_one_line(tmp_path, capsys):
    """An item past the first that raises, read by a data worker: one line with the item's own error, and
    no checkpoint or metrics row of a step that did not run."""
    (tmp_path / "items.py").write_text(
        "from sklearn.datasets import load_digits\nfrom PIL import Image\n\n\n"
        "class Items:\n    def __init__(self, transform):\n        self.transform = transform\n\n"
        "    def __len__(self):\n        return 64\n\n"
        "    def __getitem__(self, i):\n        if i > 0:\n"
        "            raise ValueError(f'item {i} is damaged')\n"
        "        pixels = (load_digits().images[i] * 255 / 16).astype('uint8')\n"
        "        return (self.transform(Image.fromarray(pixels)),)\n\n\n"
        "def get_dataset(config, transform):\n    return Items(transform)\n")
    config = {**TINY, "dataset": {"type": "custom", "location": str(tmp_path / "items.py")}}
    msg = run(capsys, "--config", str(write_config(tmp_path, config)), "--out-dir", str(tmp_path / "run"),
              "--demo-every", "0", "--num-workers", "1", "--seed", "0")
    assert re.fullmatch(r"error: dataset item (\d+): could not be read \(ValueError: item \1 is damaged\): "
                        r"fix or remove it, .*; the last checkpoint .*", msg), msg
    # nothing a fresh start would take for another run's: the metrics file comes with the first row
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["model.lock"]
