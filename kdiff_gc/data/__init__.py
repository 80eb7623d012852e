"""Training data, by job: :mod:`.sources` makes the data set a config names (:mod:`.downloads` fetches
CIFAR-10 and MNIST), :mod:`.items` checks its items, :mod:`.transforms` is k-diffusion's item transform, and
:mod:`.order` makes the data order and each item's augmentation functions of ``(seed, epoch, index)``.
These are the names the rest of the package uses."""

from .items import CheckedItems, class_key, image_key
from .order import EpochBatches, SeededItems, random_streams
from .sources import ArrayImages, make_dataset
from .transforms import Unaugmented

__all__ = ["ArrayImages", "CheckedItems", "EpochBatches", "SeededItems", "Unaugmented", "class_key",
           "image_key", "make_dataset", "random_streams"]
