"""torchvision's CIFAR-10 and MNIST, downloaded into ``dataset.location`` when it lacks them (unless
``dataset.download`` is false): the download is made in a staging folder beside its target and moved into
place whole, so that a failed or interrupted one leaves nothing half-written. One process downloads at a
time, under a file lock in the folder: the others wait on the lock, not in a collective of their process
group, and then find the files; a staging folder that a killed download left behind is removed there."""

import contextlib
import shutil
import socket
import tempfile
from pathlib import Path

from filelock import FileLock
from torchvision import datasets

from .. import schema
from ..errors import UserError, writing

DOWNLOAD_TIMEOUT = 60  # seconds a download may stall before it fails (torchvision's urlopen sets none)
# dataset.type: torchvision's class, its name, the folder its files unpack into, the step to do by hand
TORCHVISION = {
    "cifar10": (datasets.CIFAR10, "CIFAR-10", "cifar-10-batches-py",
                "extract cifar-10-python.tar.gz there so that it holds cifar-10-batches-py/"),
    "mnist": (datasets.MNIST, "MNIST", "MNIST", "place MNIST's four files, unpacked from their .gz "
              "(train-images-idx3-ubyte, ...), in MNIST/raw/ under it"),
}


def torchvision_training_set(kind: str, dataset_config: dict):
    """torchvision's training split of ``kind`` (``cifar10`` or ``mnist``), downloaded into ``location`` when
    it lacks the files and downloads are on."""
    cls, name, folder, by_hand = TORCHVISION[kind]
    location = Path(dataset_config["location"])
    try:
        return cls(str(location), train=True, download=False)
    except RuntimeError:  # missing or damaged files
        if not dataset_config.get("download", schema.default(schema.DATASET, "download")):
            raise UserError(f"dataset.location {str(location)!r} has no {name} data (dataset.download is "
                            f"false): {by_hand}") from None
        return _download(cls, name, location / folder, by_hand)


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _download(cls, name: str, target: Path, by_hand: str):
    """torchvision's download (its checksums verified) of the data set whose files unpack into ``target``,
    made in a temporary folder beside it and moved into place whole: a failed or interrupted download leaves
    nothing half-written."""
    location = target.parent
    created = not location.exists()
    with writing(location):
        location.mkdir(parents=True, exist_ok=True)
    lock = location / f".{target.name}-download.lock"
    try:
        with FileLock(lock):
            with contextlib.suppress(RuntimeError):  # another process's download, finished while we waited
                return cls(str(location), train=True, download=False)
            if target.exists():
                raise UserError(f"dataset.location {str(location)!r}: {target} holds a damaged or incomplete "
                                f"copy of {name}: delete it to download {name} afresh, or {by_hand}")
            for stale in location.glob(f".{target.name}-download-*"):  # left by a killed download
                shutil.rmtree(stale, ignore_errors=True)
            return _download_unlocked(cls, name, target, by_hand)
    except UserError:
        if created:  # the folder was made for the download: it goes too, if nothing else landed in it
            lock.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                location.rmdir()
        raise


def _download_unlocked(cls, name: str, target: Path, by_hand: str):
    location = target.parent
    with writing(location):
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-download-", dir=location))
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT):
            cls(str(staging), train=True, download=True)
        try:
            (staging / target.name).rename(target)
        except OSError:
            if not target.exists():  # else another machine's download landed first: use it
                raise
    except Exception as e:  # the network, a checksum, the disk: torchvision's reasons, in one line
        reason = "; ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"dataset.location {str(location)!r} has no {name} data, and downloading it failed "
                        f"({reason}): {by_hand}, or run where the network reaches it (set dataset.download "
                        "to false to skip the download)") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cls(str(location), train=True, download=False)
