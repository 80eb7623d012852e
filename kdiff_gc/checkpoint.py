"""Checkpoints as k-diffusion writes them (``{name}_{step:08}.pth`` and ``{name}_state.json``),
written atomically and read without unpickling code."""

import errno
import json
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

from .errors import UserError, writing

# what a path that is not a regular file is, by its stat mode
FILE_KINDS = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device",
              stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}


def file_kind(path: Path) -> str | None:
    """What ``path`` is when it exists and is not a regular file (links followed: a link to /dev/zero is a
    character device), in words; None for a regular file or nothing. Reading a FIFO waits forever, and a
    device never ends."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    return next((kind for is_kind, kind in FILE_KINDS.items() if is_kind(mode)), "not a regular file")


def not_a_file(path: Path) -> str:
    """Why ``path``, which is not a regular file, cannot be read: in words."""
    kind = file_kind(path)
    return "is a folder" if kind == "a folder" else f"is not a regular file ({kind})" if kind \
        else "does not exist"


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write) -> None:
    """``write(tmp_path)``, then rename over ``path``: a crash leaves the old file or none, never half of one.
    The temporary name is unique, so two writers never share it. The file gets the permissions the umask
    gives a new file (mkstemp, and some writers, safetensors among them, create theirs private). An
    ``OSError`` names ``path``."""
    path = Path(path)
    with writing(path):
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        try:
            try:
                write(tmp)
            except OSError:
                raise
            except Exception as e:
                raise full_disk(e, path.parent) or e
            os.chmod(tmp, 0o666 & ~current_umask())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def full_disk(e: Exception, folder: Path) -> OSError | None:
    """The full disk that a writer's own error stands for (torch.save's ``RuntimeError: ... unexpected pos``,
    safetensors' ``SafetensorError: ... No space left on device``), as the ``OSError`` it is; None for any
    other error. Asked while the partial file still fills the disk."""
    if "No space left" in str(e) or os.statvfs(folder).f_bavail == 0:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return None


def save_checkpoint(obj: dict, path: Path, state_path: Path | None = None) -> None:
    """Write ``obj`` to ``path``, then, if given, point ``state_path`` at it (``{"latest_checkpoint": file
    name}``, relative to the state file's folder)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
    if state_path is not None:
        atomic_write(state_path, lambda tmp: tmp.write_text(json.dumps({"latest_checkpoint": path.name})))


def latest_checkpoint(state_path: Path) -> Path | None:
    """The checkpoint that ``{name}_state.json`` points at, or None when there is no state file."""
    if not state_path.exists():
        return None
    try:
        name = json.loads(state_path.read_text())["latest_checkpoint"]
        if not isinstance(name, str) or not name or "/" in name:
            raise TypeError
        return state_path.parent / name
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        raise UserError(f"{state_path} is damaged (its latest_checkpoint): delete it and pass --resume PATH "
                        "to a checkpoint") from None


def safe_load(path: Path, name: str | None = None, advice: str = ""):
    """``torch.load(weights_only=True)``: tensors and plain containers only, never pickled code; a missing
    or unreadable file is one :class:`UserError` naming ``name`` (default: the path), then ``advice``."""
    name = name or str(path)
    if not Path(path).is_file():
        raise UserError(f"{name} {not_a_file(Path(path))}{advice}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{name} is unreadable ({reason}){advice}") from None


def is_state_dict(v) -> bool:
    """Whether ``v`` is a state dict of tensors."""
    return isinstance(v, dict) and all(isinstance(t, torch.Tensor) for t in v.values())


def weights_problem(state: dict) -> str | None:
    """What is wrong with the first bad tensor of a state dict, in words: not floating point (an int, bool or
    complex tensor would be cast without a word) or not finite (its samples would be NaN); None if nothing."""
    for key, value in state.items():
        if not value.is_floating_point():
            return f"{key} is {value.dtype}, not floating point"
        if not torch.isfinite(value).all():
            return f"{key} holds NaN or infinity"
    return None


def first_difference(module: torch.nn.Module, state: dict) -> str | None:
    """The first key, in the model's order, where ``state`` does not fit ``module``; None if it fits."""
    expected = module.state_dict()
    for key, value in expected.items():
        if key not in state:
            return f"{key} is missing"
        if state[key].shape != value.shape:
            return f"{key} has shape {list(state[key].shape)}, the model's {list(value.shape)}"
    extra = [key for key in state if key not in expected]
    return f"{extra[0]} is not in the model" if extra else None


def load_state(module: torch.nn.Module, state: dict, path: Path, what: str = "the weights",
               advice: str = "") -> None:
    """``load_state_dict`` (floating tensors cast to float32) of weights checked first: a state dict of
    tensors, of the model's keys and shapes, floating point and finite; one line naming the file, ``what``
    was loaded and the first bad key otherwise, then ``advice``."""
    if not is_state_dict(state):
        raise UserError(f"{what} in {path} are not a state dict of tensors{advice}")
    if (difference := first_difference(module, state)) is not None:
        raise UserError(f"{what} in {path} do not fit the config's model (first difference: {difference})"
                        f"{advice}")
    if (problem := weights_problem(state)) is not None:
        raise UserError(f"{what} in {path} are damaged: {problem}{advice or ': use another file'}")
    module.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})


@contextmanager
def damaged_key(path: Path, key: str, advice: str = "pass --resume PATH to another checkpoint"):
    """Restoring ``key`` of a checkpoint: a failure (a state dict of the wrong shape) is one line naming
    both."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"checkpoint {path} is damaged: {key} cannot be restored ({reason}): "
                        f"{advice}") from None


def rng_state(device: torch.device) -> dict:
    """This process's torch RNG states (CPU, and the accelerator's when there is one)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
