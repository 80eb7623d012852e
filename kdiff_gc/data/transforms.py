"""k-diffusion's training transform: colour conversion, bicubic resize and center crop to the model's
``input_size``, then its augmentation pipeline, each item coming out as ``(image, image_orig, aug_cond)`` in
[-1, 1]; without augmentation, a conversion that draws no random numbers."""

from functools import partial

import k_diffusion as K
import numpy as np
import torch
from PIL import Image
from torchvision import transforms


def resize_steps(config: dict) -> list:
    """k-diffusion's colour conversion, bicubic resize and center crop to the model's ``input_size``."""
    model = config["model"]
    size = model["input_size"]
    return [partial(Image.Image.convert, mode="L" if model["input_channels"] == 1 else "RGB"),
            transforms.Resize(size[0], interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(size[0])]


class Unaugmented:
    """What k-diffusion's ``KarrasAugmentationPipeline(disable_all=True)`` returns, ``(image, image,
    zeros(9))`` in [-1, 1], without the random draws and matrices it computes and then discards for every
    item. It takes a PIL image or its uint8 pixels ``(h, w)`` or ``(h, w, c)``, and draws no random
    numbers."""

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
