"""Data sets in their real on-disk layouts, made of random pixels, for tests that cannot download."""

import hashlib
import pickle
from pathlib import Path

import numpy as np
from torchvision import datasets


def fake_cifar10(root: Path, per_batch: int = 4, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """``root/cifar-10-batches-py`` as the CIFAR-10 archive unpacks (pickled batches of ``(n, 3072)`` uint8 rows
    and labels, ``batches.meta``); returns the training images ``(n, 32, 32, 3)`` and labels. torchvision checks
    each file's md5, so :func:`cifar10_checksums` gives the ones to patch into ``datasets.CIFAR10``."""
    folder = root / datasets.CIFAR10.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for name, _ in datasets.CIFAR10.train_list + datasets.CIFAR10.test_list:
        rows = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        batch_labels = rng.integers(0, 10, per_batch).tolist()
        (folder / name).write_bytes(pickle.dumps({"data": rows, "labels": batch_labels}))
        if name.startswith("data_batch"):
            images.append(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels += batch_labels
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))
    return np.concatenate(images), labels


def cifar10_checksums(root: Path) -> dict:
    """``train_list``, ``test_list`` and ``meta`` of ``datasets.CIFAR10`` with the md5s of the files under ``root``."""
    folder = root / datasets.CIFAR10.base_folder

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()
    return {"train_list": [[name, md5(name)] for name, _ in datasets.CIFAR10.train_list],
            "test_list": [[name, md5(name)] for name, _ in datasets.CIFAR10.test_list],
            "meta": {**datasets.CIFAR10.meta, "md5": md5("batches.meta")}}
