"""Checkpoints as k-diffusion writes them (``{name}_{step:08}.pth`` and ``{name}_state.json``),
written atomically and read without unpickling code."""

import errno
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

from .errors import UserError, writing

def not_a_file(path: Path) -> str:
    """Why ``path``, which is not a regular file, cannot be read: in words."""
    return "is a folder" if path.is_dir() else "is not a regular file" if path.exists() else "does not exist"


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


def load_state(module: torch.nn.Module, state: dict, path: Path, what: str = "the weights",
               advice: str = "") -> None:
    """``load_state_dict`` (floating tensors cast to float32), with a mismatch as one line naming the file,
    ``what`` was loaded and the first difference, then ``advice``."""
    if not is_state_dict(state):
        raise UserError(f"{what} in {path} are not a state dict of tensors{advice}")
    try:
        module.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v
                                for k, v in state.items()})
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"{what} in {path} do not fit the config's model ({first}){advice}") from None


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
