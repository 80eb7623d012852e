"""The data path: items equal k-diffusion's transform, seeded items equal a global reseed, and nothing leaks."""

import random

import k_diffusion as K
import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from kdiff_gc import load_config
from kdiff_gc.data import SeededItems, Unaugmented, make_dataset
from models import IMAGE_V1


def test_unaugmented_equals_k_diffusions_disabled_pipeline():
    rng = np.random.default_rng(0)
    pipeline = K.augmentation.KarrasAugmentationPipeline(0.0, disable_all=True)
    for shape in [(8, 8), (5, 7, 3)]:
        image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        ours, theirs = Unaugmented()(image), pipeline(image)
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs))


def test_digits_items_equal_k_diffusions_transform_of_the_raw_images():
    from sklearn.datasets import load_digits

    config = load_config({"model": {**IMAGE_V1, "input_size": [12, 12], "augment_prob": 0.0},
                          "dataset": {"type": "digits"}})
    raw = np.round(load_digits().images * (255 / 16)).astype(np.uint8)
    k_transform = transforms.Compose([transforms.Resize(12, interpolation=transforms.InterpolationMode.BICUBIC),
                                      transforms.CenterCrop(12),
                                      K.augmentation.KarrasAugmentationPipeline(0.0, disable_all=True)])
    dataset = make_dataset(config)
    for i in (0, 17, 1796):
        (image, image_orig, aug_cond), label = dataset[i]
        expected = k_transform(Image.fromarray(raw[i]).convert("L"))
        assert torch.equal(image, expected[0]) and torch.equal(image_orig, expected[1])
        assert torch.equal(aug_cond, expected[2]) and label == load_digits().target[i]


class RandomItems:
    """Items drawn from all three global RNGs, as augmentations and custom datasets may."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return torch.rand(3), np.random.rand(3), random.random()


def test_seeded_items_equal_a_global_reseed_and_leave_the_callers_rngs_alone():
    items = SeededItems(RandomItems(), seed=7)
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    before = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    got = items[(3, 4)]
    assert torch.equal(torch.get_rng_state(), before[0]) and np.array_equal(np.random.get_state()[1], before[1])
    assert random.getstate() == before[2]
    item_seed = int(np.random.SeedSequence([7, 3, 4]).generate_state(1)[0])
    torch.manual_seed(item_seed), np.random.seed(item_seed), random.seed(item_seed)
    expected = RandomItems()[4]
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]
    assert not torch.equal(items[(3, 5)][0], got[0]) and not torch.equal(items[(4, 4)][0], got[0])


def test_augmented_items_repeat_for_the_same_epoch_and_index():
    config = load_config({"model": {**IMAGE_V1, "augment_prob": 0.5}, "dataset": {"type": "digits"}})
    items = SeededItems(make_dataset(config), seed=3)
    first, again = items[(2, 5)], items[(2, 5)]
    assert all(torch.equal(a, b) for a, b in zip(first[0], again[0]))
    flips = {items[(epoch, 5)][0][2][0].item() for epoch in range(20)}  # aug_cond[0] is k-diffusion's x-flip
    assert flips == {0.0, 1.0}
