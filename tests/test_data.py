"""The data path: items equal k-diffusion's transform, seeded items equal a global reseed, and nothing
leaks."""

import random

import k_diffusion as K
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets, transforms

from fake_data import cifar10_checksums, fake_cifar10
from kdiff_gc import load_config
from kdiff_gc.data import SeededItems, Unaugmented, make_dataset, random_streams
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
    k_transform = transforms.Compose([transforms.Resize(12,
                                                        interpolation=transforms.InterpolationMode.BICUBIC),
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
    assert (torch.equal(torch.get_rng_state(), before[0])
            and np.array_equal(np.random.get_state()[1], before[1]))
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


def k_diffusion_transform(size: int, mode: str, augment_prob: float):
    """k-diffusion's train.py transform, written out from its parts; at ``augment_prob`` 0 its pipeline is off
    entirely (``disable_all``: k-diffusion's own train.py would still x-flip half the images)."""
    pipeline = K.augmentation.KarrasAugmentationPipeline(augment_prob, disable_all=augment_prob == 0)
    return transforms.Compose([transforms.Lambda(lambda image: image.convert(mode)),
                               transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
                               transforms.CenterCrop(size), pipeline])


@pytest.mark.parametrize("augment_prob", [0.0, 0.5])
def test_cifar10_held_in_memory_gives_torchvisions_items_through_k_diffusions_transform(tmp_path, monkeypatch,
                                                                                        augment_prob):
    fake_cifar10(tmp_path)
    for key, value in cifar10_checksums(tmp_path).items():
        monkeypatch.setattr(datasets.CIFAR10, key, value)
    model = {**IMAGE_V1, "input_channels": 3, "input_size": [16, 16], "augment_prob": augment_prob}
    config = load_config({"model": model, "dataset": {"type": "cifar10", "location": str(tmp_path)}})
    ours = SeededItems(make_dataset(config), seed=4, streams=random_streams(config))
    theirs = datasets.CIFAR10(str(tmp_path), transform=k_diffusion_transform(16, "RGB", augment_prob))
    assert len(ours) == len(theirs) == 20
    for index in (0, 7, 19):
        torch.manual_seed(int(np.random.SeedSequence([4, 2, index]).generate_state(1)[0]))
        (expected, label) = theirs[index]
        (image, label_ours) = ours[(2, index)]
        assert all(torch.equal(a, b) for a, b in zip(image, expected)) and label_ours == label


def test_random_streams_name_what_an_items_transform_draws_from():
    def config(kind, augment_prob):
        return {"dataset": {"type": kind}, "model": {"augment_prob": augment_prob}}
    assert random_streams(config("digits", 0.0)) == random_streams(config("imagefolder", 0.0)) == ()
    # KarrasAugmentationPipeline draws from torch only
    assert random_streams(config("cifar10", 0.12)) == ("torch",)
    assert random_streams(config("custom", 0.0)) == ("torch", "numpy", "python")


def test_items_that_draw_nothing_pass_through_and_torch_only_items_leave_numpy_alone():
    torch.manual_seed(1), np.random.seed(1)
    plain = SeededItems(RandomItems(), seed=7, streams=())[(3, 4)]
    torch.manual_seed(1), np.random.seed(1)
    expected = RandomItems()[4]
    assert torch.equal(plain[0], expected[0]) and np.array_equal(plain[1], expected[1])

    torch.manual_seed(1), np.random.seed(1)
    torch_state = torch.get_rng_state()
    seeded = SeededItems(RandomItems(), seed=7, streams=("torch",))[(3, 4)]
    assert torch.equal(torch.get_rng_state(), torch_state)
    torch.manual_seed(int(np.random.SeedSequence([7, 3, 4]).generate_state(1)[0])), np.random.seed(1)
    expected = RandomItems()[4]
    assert torch.equal(seeded[0], expected[0]) and np.array_equal(seeded[1], expected[1])
