"""Seeds and devices: what every program derives its random streams and its device from."""

import numpy as np
import torch


def has_accelerator() -> bool:
    """Whether torch sees a GPU (or other accelerator); without one, accelerate must be told ``cpu=True``
    to run ``torchrun``'s processes as one multi-CPU job with gloo."""
    return torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()


def default_device() -> torch.device:
    """The accelerator when there is one, else the CPU."""
    if not has_accelerator():
        return torch.device("cpu")
    return torch.accelerator.current_accelerator() if hasattr(torch, "accelerator") else torch.device("cuda")


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers, with numpy's SeedSequence hashing."""
    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint64)[0] >> np.uint64(1))


def loader_generator(seed: int) -> torch.Generator:
    """A generator for a DataLoader, which would otherwise draw its worker seed from the global RNG
    and shift the training noise after a resume."""
    return torch.Generator().manual_seed(derive_seed(seed, 3))


def same_randomness(device: torch.device):
    """Context whose random draws are replayed by the code after it (its RNG state is restored on exit)."""
    if device.type == "cpu":
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(devices=[device], device_type=device.type)
