"""A full disk, made for real: a tmpfs of a few kilobytes. torch.save and safetensors do not raise OSError
there (a RuntimeError, a SafetensorError): each write still ends in the OSError of a full disk, naming the
file, with no partial file left and the previous one intact, and a training run ends in one line."""

import errno
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kdiff_gc import checkpoint
from kdiff_gc.inference import write_inference
from test_train import TINY, write_config


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs; the test is skipped where this machine does not let us mount one (not root)."""
    where = tmp_path / "small"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield where
    subprocess.run(["umount", "--lazy", str(where)], check=False)  # lazy: a file left open does not block it


@pytest.mark.parametrize("writer", ["torch.save", "safetensors"])
def test_a_write_to_a_full_disk_is_the_oserror_of_a_full_disk(small_disk, writer):
    path = small_disk / ("big.pth" if writer == "torch.save" else "big.safetensors")
    path.write_bytes(b"the previous file")
    big = {"x": torch.zeros(100_000)}  # 400 kB
    with pytest.raises(OSError) as error:
        if writer == "torch.save":
            checkpoint.save_checkpoint(big, path)
        else:
            write_inference(big, TINY, path)
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(path)
    assert path.read_bytes() == b"the previous file"
    assert sorted(p.name for p in small_disk.iterdir()) == [path.name]


def test_a_run_whose_disk_fills_ends_in_one_line(small_disk, tmp_path):
    out = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "train_gc.py"),
                          "--config", str(write_config(tmp_path)), "--out-dir", str(small_disk),
                          "--end-step", "2", "--demo-every", "0", "--seed", "0"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {small_disk / 'model_00000002.pth'}: no space left on device: free space "
                           "on that disk"), out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert not list(small_disk.glob(".*.tmp")) and (small_disk / "model_metrics.csv").is_file()
