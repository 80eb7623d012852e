"""Data sets by name: CIFAR-10 downloaded through torchvision from a server on 127.0.0.1 (its checksums
swapped for the test's own), failed downloads that leave one line and no files, and Hugging Face data sets
loaded both ways."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets

from fake_data import FileServer, cifar10_archive
from kdiff_gc import load_config
from kdiff_gc.data import Unaugmented, make_dataset
from kdiff_gc.errors import UserError
from kdiff_gc.programs.train import build_parser
from kdiff_gc.trainer import Run
from kdiff_gc.options import RunOptions
from models import IMAGE_V1

ROOT = Path(__file__).resolve().parents[1]
RGB32 = {**IMAGE_V1, "input_channels": 3, "input_size": [32, 32], "augment_prob": 0.0}


@pytest.fixture
def cifar10_site(tmp_path, monkeypatch):
    """A served CIFAR-10 archive, and torchvision's CIFAR10 pointed at it; yields the server and the
    images."""
    served = tmp_path / "served"
    served.mkdir()
    archive, checksums, images = cifar10_archive(served)
    server = FileServer(served)
    monkeypatch.setattr(datasets.CIFAR10, "url", f"{server.url}/{archive.name}")
    for key, value in checksums.items():
        monkeypatch.setattr(datasets.CIFAR10, key, value)
    yield server, images
    server.close()


LOCK = ".cifar-10-batches-py-download.lock"  # the download's lock file stays, as a run's lock does


def config_at(location: Path, **dataset) -> dict:
    return load_config({"model": RGB32, "dataset": {"type": "cifar10", "location": str(location), **dataset}})


def test_cifar10_is_downloaded_verified_and_unpacked_when_missing(cifar10_site, tmp_path):
    server, images = cifar10_site
    location = tmp_path / "data"
    dataset = make_dataset(config_at(location))
    # 32x32 RGB: k-diffusion's resize and crop leave them be (make_dataset wraps it to check its items)
    assert np.array_equal(dataset.dataset.pixels, images)
    # no archive, no staging folder; the download's lock file stays, as a run's lock does
    assert sorted(p.name for p in location.iterdir()) == [LOCK, "cifar-10-batches-py"]
    fetched = sum(server.gets.values())
    assert fetched > 0
    make_dataset(config_at(location))  # present now: read, not fetched again
    assert sum(server.gets.values()) == fetched


def test_a_download_trains_a_step(cifar10_site, tmp_path):
    config = {"model": RGB32, "dataset": {"type": "cifar10", "location": str(tmp_path / "data")},
              "optimizer": {"type": "lion", "lr": 1e-4}, "consistency": {"total_steps": 10}}
    (tmp_path / "c.json").write_text(json.dumps(config))
    args = build_parser().parse_args(["--config", str(tmp_path / "c.json"),
                                      "--out-dir", str(tmp_path / "run"),
                                      "--batch-size", "4", "--end-step", "1", "--demo-every", "0"])
    Run(RunOptions(**vars(args))).run()
    assert (tmp_path / "run" / "model_00000001.pth").is_file()
    assert torch.load(tmp_path / "run" / "model_00000001.pth", weights_only=True)["step"] == 1


@pytest.mark.parametrize("fault", ["unreachable", "checksum"])
def test_a_failed_download_is_one_line_and_leaves_no_files(cifar10_site, tmp_path, monkeypatch, fault):
    if fault == "unreachable":
        # discard port
        monkeypatch.setattr(datasets.CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    else:
        monkeypatch.setattr(datasets.CIFAR10, "tgz_md5", "0" * 32)
    location = tmp_path / "data"
    with pytest.raises(UserError) as error:
        make_dataset(config_at(location))
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"dataset.location '{location}' has no CIFAR-10 data, "
                                                      "and downloading it failed (")
    assert "extract cifar-10-python.tar.gz there so that it holds cifar-10-batches-py/" in message
    assert not location.exists()
    (location / "keep").mkdir(parents=True)  # a folder that was there stays, empty of download files
    with pytest.raises(UserError):
        make_dataset(config_at(location))
    assert sorted(p.name for p in location.iterdir()) == [LOCK, "keep"]


def test_downloads_off_says_what_to_place_where_without_a_request(cifar10_site, tmp_path):
    server, _ = cifar10_site
    with pytest.raises(UserError, match=r"has no CIFAR-10 data \(dataset\.download is false\): extract "
                                        r"cifar-10-python\.tar\.gz there"):
        make_dataset(config_at(tmp_path / "data", download=False))
    assert not server.gets and not (tmp_path / "data").exists()


def test_a_damaged_copy_is_not_downloaded_over(cifar10_site, tmp_path):
    server, _ = cifar10_site
    (tmp_path / "data" / "cifar-10-batches-py").mkdir(parents=True)
    with pytest.raises(UserError, match="holds a damaged or incomplete copy of CIFAR-10: delete it"):
        make_dataset(config_at(tmp_path / "data"))
    assert not server.gets


def hf_config(location, **dataset) -> dict:
    return load_config({"model": {**IMAGE_V1, "input_channels": 3},
                        "dataset": {"type": "huggingface", "location": str(location), **dataset}})


def test_huggingface_from_disk_and_by_folder_give_k_diffusions_items_with_their_classes(tmp_path):
    import datasets as hf

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)) for _ in range(6)]
    labels = [0, 1, 2, 0, 1, 2]
    features = hf.Features({"picture": hf.Image(), "digit": hf.ClassLabel(num_classes=3)})
    saved = hf.DatasetDict({"train": hf.Dataset.from_dict({"picture": images, "digit": labels},
                                                          features=features)})
    saved.save_to_disk(str(tmp_path / "saved"))
    # what load_dataset reads with its imagefolder builder
    for i, (image, label) in enumerate(zip(images, labels)):
        (tmp_path / "files" / f"class{label}").mkdir(parents=True, exist_ok=True)
        image.save(tmp_path / "files" / f"class{label}" / f"{i}.png")
    expected = {(label, tuple(Unaugmented()(image)[0].flatten().tolist()))
                for image, label in zip(images, labels)}

    from_disk = make_dataset(hf_config(tmp_path / "saved", image_key="picture", class_key="digit"))
    by_folder = make_dataset(hf_config(tmp_path / "files"))  # image and label: the default keys
    for dataset, (image_at, class_at) in [(from_disk, ("picture", "digit")), (by_folder, ("image", "label"))]:
        items = [dataset[i] for i in range(len(dataset))]
        assert {(item[class_at], tuple(item[image_at][0].flatten().tolist())) for item in items} == expected
        assert all(torch.equal(item[image_at][2], torch.zeros(9)) for item in items)


def test_a_huggingface_name_that_does_not_resolve_is_one_line(monkeypatch):
    import datasets as hf
    import huggingface_hub

    monkeypatch.setattr(hf.config, "HF_HUB_OFFLINE", True)  # the test machine has no network: fail at once
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError) as error:
        make_dataset(hf_config("no-such-owner/no-such-data-set"))
    message = str(error.value)
    assert "\n" not in message and message.startswith("dataset.location 'no-such-owner/no-such-data-set': "
                                                      "Hugging Face datasets cannot load its 'train' split (")


SITE = '''import json, os
if "TEST_CIFAR10" in os.environ:  # torchvision's CIFAR10 pointed at the test's server and checksums
    from torchvision import datasets
    for key, value in json.loads(os.environ["TEST_CIFAR10"]).items():
        setattr(datasets.CIFAR10, key, value)
'''


def test_with_two_processes_one_downloads_and_the_other_waits_on_its_lock(cifar10_site, tmp_path):
    server, _ = cifar10_site
    make_dataset(config_at(tmp_path / "alone"))  # how many requests one download makes
    one_download = sum(server.gets.values())
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITE)
    patched = {key: getattr(datasets.CIFAR10, key)
               for key in ("url", "tgz_md5", "train_list", "test_list", "meta")}
    config = {"model": RGB32, "dataset": {"type": "cifar10", "location": str(tmp_path / "data")},
              "optimizer": {"type": "lion", "lr": 1e-4}, "consistency": {"total_steps": 10}}
    (tmp_path / "c.json").write_text(json.dumps(config))
    env = {**os.environ, "K_DIFFUSION_USE_COMPILE": "0", "PYTHONWARNINGS": "ignore",
           "TEST_CIFAR10": json.dumps(patched), "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run([str(Path(sys.executable).parent / "torchrun"), "--standalone",
                          "--nproc_per_node", "2", str(ROOT / "train_gc.py"),
                          "--config", str(tmp_path / "c.json"), "--out-dir", str(tmp_path / "run"),
                          "--batch-size", "4", "--end-step", "1", "--demo-every", "0", "--seed", "0"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert sum(server.gets.values()) == 2 * one_download  # the first download, and one by the two processes
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [LOCK, "cifar-10-batches-py"]


def test_a_staging_folder_left_by_a_killed_download_is_removed_by_the_next(cifar10_site, tmp_path):
    location = tmp_path / "data"
    (location / ".cifar-10-batches-py-download-killed" / "cifar-10-batches-py").mkdir(parents=True)
    make_dataset(config_at(location))
    assert sorted(p.name for p in location.iterdir()) == [LOCK, "cifar-10-batches-py"]
