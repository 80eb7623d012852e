"""The training order: which items a process's batch holds at each step, and the random numbers an item's
augmentation draws, both functions of ``(seed, epoch, index)``, so that a resumed run, with any number of
workers, sees the same batches."""

import random
from functools import partial

import numpy as np
import torch
from torch.utils import data

from ..errors import UserError


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
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.n, generator=generator).tolist()
            for b in range(first, self.batches_per_epoch):
                lo = b * self.global_batch + self.rank * self.local_batch
                yield [(epoch, i) for i in order[lo:lo + self.local_batch]]
            epoch, first = epoch + 1, 0
