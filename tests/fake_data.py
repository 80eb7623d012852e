"""Data sets in their real on-disk layouts, made of random pixels, for tests that cannot download."""

import collections
import hashlib
import http.server
import pickle
import shutil
import tarfile
import threading
from pathlib import Path

import numpy as np
from torchvision import datasets


def fake_cifar10(root: Path, per_batch: int = 4, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """``root/cifar-10-batches-py`` as the CIFAR-10 archive unpacks (pickled batches of ``(n, 3072)`` uint8
    rows and labels, ``batches.meta``); returns the training images ``(n, 32, 32, 3)`` and labels. torchvision
    checks each file's md5, so :func:`cifar10_checksums` gives the ones to patch into ``datasets.CIFAR10``."""
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
    """``train_list``, ``test_list`` and ``meta`` of ``datasets.CIFAR10`` with the md5s of the files under
    ``root``."""
    folder = root / datasets.CIFAR10.base_folder

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()
    return {"train_list": [[name, md5(name)] for name, _ in datasets.CIFAR10.train_list],
            "test_list": [[name, md5(name)] for name, _ in datasets.CIFAR10.test_list],
            "meta": {**datasets.CIFAR10.meta, "md5": md5("batches.meta")}}


def cifar10_archive(folder: Path, per_batch: int = 4) -> tuple[Path, dict, np.ndarray]:
    """``folder/cifar-10-python.tar.gz`` as the CIFAR-10 site serves it (the batches under
    ``cifar-10-batches-py/``); returns it, the ``datasets.CIFAR10`` attributes that name its checksums
    (``tgz_md5`` and the files' md5s), and the training images."""
    source = folder / "source"
    images, _ = fake_cifar10(source, per_batch)
    archive = folder / datasets.CIFAR10.filename
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / datasets.CIFAR10.base_folder, arcname=datasets.CIFAR10.base_folder)
    checksums = {**cifar10_checksums(source), "tgz_md5": hashlib.md5(archive.read_bytes()).hexdigest()}
    shutil.rmtree(source)
    return archive, checksums, images


class FileServer:
    """An HTTP server on 127.0.0.1 for the files of ``folder``, in a thread; counts the GET requests per path
    (torchvision's download makes two: one to follow redirects, one to fetch)."""

    def __init__(self, folder: Path):
        self.gets = collections.Counter()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self):
                server.gets[self.path] += 1
                super().do_GET()

            def copyfile(self, source, destination):
                try:
                    super().copyfile(source, destination)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # torchvision reads only the headers of its first GET

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
