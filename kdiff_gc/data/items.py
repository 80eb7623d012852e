"""What an item of a training set must be, checked for the first item before anything is built and for every
item as training reads it: k-diffusion's ``(image, image_orig, aug_cond)`` at ``dataset.image_key``, the image
float32, finite and of the model's shape, ``aug_cond`` of k-diffusion's 9 augmentation numbers, and for a
class-conditional model a class at ``dataset.class_key``. A bad item is one :class:`UserError` that names its
index and, where the data set has files, its file."""

import torch
from torch.utils import data

from ..errors import UserError, one_line

AUG_COND = [9]  # k-diffusion's augmentation conditioning: KarrasAugmentationPipeline's 9 numbers


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


def item_name(dataset, i: int) -> str:
    """``dataset item i``, with its file where the data set reads files (k-diffusion's folder of images,
    torchvision's folder of class folders)."""
    paths = getattr(dataset, "paths", None)
    if paths is None and isinstance(getattr(dataset, "samples", None), list):
        paths = [sample[0] for sample in dataset.samples]
    try:
        return f"dataset item {i} ({paths[i]})"
    except (TypeError, IndexError):
        return f"dataset item {i}"


def problem(item, config: dict) -> str | None:
    """What is wrong with ``item`` for this config's model, in words; None when nothing is."""
    image_at, shape = image_key(config), [config["model"]["input_channels"], *config["model"]["input_size"]]
    try:
        triple = item[image_at]
    except (IndexError, KeyError, TypeError):
        return f"holds no dataset.image_key {image_at!r} (the item's type is {type(item).__name__})"
    if not (isinstance(triple, (tuple, list)) and len(triple) == 3
            and all(torch.is_tensor(t) for t in triple)):
        return (f"its dataset.image_key {image_at!r} holds no (image, original, aug_cond) of tensors: pass "
                "the transform given to get_dataset, or check the key")
    image, _, aug_cond = triple
    if list(image.shape) != shape:
        return f"its image has shape {list(image.shape)}, not the model's {shape}"
    if image.dtype != torch.float32:
        return f"its image is {image.dtype}, not torch.float32 (k-diffusion's transform gives float32)"
    if list(aug_cond.shape) != AUG_COND:
        return f"its aug_cond has shape {list(aug_cond.shape)}, not k-diffusion's {AUG_COND}"
    if not torch.isfinite(image).all():
        return "its image is not finite (NaN or infinity)"
    classes = config["dataset"].get("num_classes", 0)
    if classes:
        try:
            label = int(item[class_key(config)])
        except (IndexError, KeyError, TypeError, ValueError):
            return (f"holds no class at dataset.class_key {class_key(config)!r}, and dataset.num_classes is "
                    f"{classes}")
        if not 0 <= label < classes:
            return f"has class {label}: dataset.num_classes = {classes} allows 0..{classes - 1}"
    return None


def read_item(dataset, i: int, config: dict):
    """Item ``i``, checked; a data set's own error (its code, an image that does not decode) is one
    :class:`UserError` naming the item."""
    try:
        item = dataset[i]
    except (Exception, SystemExit) as e:  # the user's code may call sys.exit: it must not end training with 0
        raise UserError(f"{item_name(dataset, i)}: could not be read ({one_line(e)}): fix or remove it, or "
                        "fix the data set's code") from None
    if (why := problem(item, config)) is not None:
        raise UserError(f"{item_name(dataset, i)}: {why}")
    return item


class CheckedItems(data.Dataset):
    """A data set whose items are read with :func:`read_item`: a bad item past the first ends training in one
    line that names it, here or in a loader worker."""

    def __init__(self, dataset: data.Dataset, config: dict):
        self.dataset, self.config = dataset, config

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return read_item(self.dataset, i, self.config)
