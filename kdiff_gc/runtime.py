"""Seeds, devices and processes: what every program derives its random streams, its device and its
agreement between processes from."""

import os

import accelerate
import numpy as np
import torch

from .errors import UserError, os_error_message


def has_accelerator() -> bool:
    """Whether torch sees a GPU (or other accelerator); without one, accelerate must be told ``cpu=True``
    to run ``torchrun``'s processes as one multi-CPU job with gloo."""
    return torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()


def default_device() -> torch.device:
    """The accelerator when there is one, else the CPU."""
    if not has_accelerator():
        return torch.device("cpu")
    return torch.accelerator.current_accelerator() if hasattr(torch, "accelerator") else torch.device("cuda")


def default_workers(accelerator: accelerate.Accelerator) -> int:
    """Data loader workers per process when ``--num-workers`` is not given: k-diffusion's 8 where there is an
    accelerator, bounded by this machine's CPUs shared among its processes with one left to each process;
    none on the CPU, where a worker takes its core from the model."""
    if accelerator.device.type == "cpu":
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes))
    return max(1, min(8, cpus // local_processes - 1))


class HostCopy:
    """A device tensor's values on their way to the host: the copy starts now and is read later, so the
    device's queue does not stall on it (a CUDA copy into pinned memory with an event; elsewhere a plain
    copy)."""

    def __init__(self, tensor: torch.Tensor):
        asynchronous = tensor.device.type == "cuda"
        self.values = tensor.detach().to("cpu", non_blocking=asynchronous)
        self.copied = None
        if asynchronous:
            self.copied = torch.cuda.Event()
            self.copied.record()

    def tolist(self) -> list:
        if self.copied is not None:
            self.copied.synchronize()
        return self.values.tolist()


def lost_peer(e: BaseException) -> bool:
    """Whether ``e`` is a collective that failed because another process died or cannot be reached:
    torch.distributed's own errors, gloo's connection errors, NCCL's."""
    text = str(e)
    return isinstance(e, torch.distributed.DistError) or isinstance(e, RuntimeError) and any(
        key in text for key in ("gloo", "NCCL", "Connection reset by peer", "Connection closed by peer"))


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


def broadcast(accelerator: accelerate.Accelerator, value):
    """The main process's ``value``, on every process; every process must call it."""
    box = [value]
    if accelerator.num_processes > 1:
        accelerate.utils.broadcast_object_list(box)
    return box[0]


def gather(accelerator: accelerate.Accelerator, value) -> list:
    """``value`` from every process, in rank order; every process must call it."""
    if accelerator.num_processes == 1:
        return [value]
    values = [None] * accelerator.num_processes
    torch.distributed.all_gather_object(values, value)
    return values


def _attempt(work, advice: str) -> tuple:
    """``work()``'s (result, refusal, unexpected exception): a :class:`UserError` or ``OSError`` is a
    refusal (an ``OSError``'s message followed by ``advice``); any other exception, a bug or a library's
    error, is unexpected."""
    try:
        return work(), None, None
    except UserError as e:
        return None, str(e), None
    except OSError as e:
        return None, os_error_message(e) + advice, None
    except Exception as e:
        return None, f"({type(e).__name__}: {e})".replace("\n", " "), e


def on_main(accelerator: accelerate.Accelerator, work, advice: str = ""):
    """``work()`` on the main process, and its result there (None elsewhere), as :func:`on_every` agrees on
    it: a refusal is one :class:`UserError` on every process. No process waits forever for one that
    stopped; every process must call it."""
    return on_every(accelerator, work if accelerator.is_main_process else lambda: None, advice)


def on_every(accelerator: accelerate.Accelerator, work, advice: str = ""):
    """``work()`` on every process, and its result. The first refusal of any process (see
    :func:`_attempt`) is raised on every process as one :class:`UserError`, naming the process where it is
    not the main one; an unexpected exception is raised as it is where it happened. Every process must call
    it."""
    result, refusal, unexpected = _attempt(work, advice)
    if unexpected is not None:
        refusal = f"{'the main process' if accelerator.is_main_process else 'it'} stopped {refusal}"
    refusals = gather(accelerator, refusal)
    if unexpected is not None:
        raise unexpected
    rank, first = next(((r, m) for r, m in enumerate(refusals) if m is not None), (None, None))
    if first is not None:
        raise UserError(first if rank == 0 else f"process {rank}: {first}")
    return result


def shared_seed(accelerator: accelerate.Accelerator) -> int:
    """A fresh seed, drawn on the main process and sent to the others (weights, EMA and data order must
    agree)."""
    return broadcast(accelerator, derive_seed(*os.urandom(8)))
