"""Inference files in k-diffusion's format, and loading models from any of the files we read.

An inference file is the EMA inner model's state dict as safetensors, with the config as JSON in the
metadata (what k-diffusion's ``convert_for_inference.py`` writes). Nothing here unpickles code:
safetensors holds tensors only, and training checkpoints load with ``weights_only=True``.
"""

import json
from pathlib import Path

import k_diffusion as K
import safetensors
import safetensors.torch as safetorch
import torch

from . import checkpoint, schema
from .builders import make_denoiser, make_inner_model
from .config import inference_file_config, load_config_value
from .denoiser import ConsistencyDenoiser
from .errors import UserError
from .train_state import load_checkpoint

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class ArgumentError(UserError, ValueError):
    """A bad argument of :func:`export_inference` or :func:`load_model`: a ``ValueError`` to a caller of the
    API, and one ``error:`` line from a program, which passes them its paths unchecked."""


def _refuse(name: str, value, allowed: str) -> ArgumentError:
    return ArgumentError(*schema.argument_error(name, value, allowed).args)


def export_inference(ckpt_path: Path, out_path: Path, dtype: str = "fp32") -> None:
    """Write a training checkpoint's EMA model and config as an inference file (atomically)."""
    if Path(out_path).suffix != ".safetensors":
        raise _refuse("out_path", str(out_path), "a path ending in .safetensors")
    if not (isinstance(dtype, str) and dtype in DTYPES):
        raise _refuse("dtype", dtype, schema.allowed({"enum": list(DTYPES)}))
    try:
        ckpt = load_checkpoint(ckpt_path, "give a .pth checkpoint that train_gc.py wrote")
    except UserError as e:  # a missing or unreadable ckpt_path, in convert_for_inference_gc.py's words
        raise ArgumentError(*e.args) from None
    weights = ckpt["model_ema"]
    if (problem := checkpoint.weights_problem(weights)) is not None:
        raise UserError(f"the EMA weights in {ckpt_path} are damaged: {problem}: use another checkpoint")
    largest = torch.finfo(DTYPES[dtype]).max
    for key, value in weights.items():
        if (peak := value.abs().max().item() if value.numel() else 0.0) > largest:
            raise UserError(f"{key} holds {peak:g}, beyond {dtype}'s largest {largest:g}: use --dtype bf16 "
                            "or fp32")
    write_inference({k: v.to(DTYPES[dtype]) for k, v in weights.items()}, ckpt["config"], out_path)


def write_inference(state: dict, config: dict, path: Path) -> None:
    """An inference file: ``state`` as safetensors with ``config`` as JSON in its metadata (atomically)."""
    state = {k: v.contiguous() for k, v in state.items()}
    metadata = {"config": json.dumps(config, indent=4)}
    checkpoint.atomic_write(path, lambda tmp: safetorch.save_file(state, str(tmp), metadata=metadata))


def read_safetensors(path: Path) -> dict:
    """The state dict of a safetensors file, or a clear error."""
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise UserError(f"{path} is not a readable safetensors file ({e})") from None


def read_weights(path: Path) -> tuple[dict, dict | None]:
    """``(EMA weights, config or None)`` of an inference ``.safetensors`` file or of a training checkpoint
    (ours or k-diffusion's: ``model_ema``, else ``model``)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        state = read_safetensors(path)
        try:
            return state, inference_file_config(path)
        except ValueError as e:
            raise UserError(f"{path} is {e}") from None
    ckpt = checkpoint.safe_load(path)
    for key in ("model_ema", "model"):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            return ckpt[key], ckpt.get("config")
    raise UserError(f"{path} holds no model_ema or model state dict")


def _config_of(path: Path, stored: dict | None, override: dict | None) -> dict:
    config = override if override is not None else stored
    if config is None:
        raise UserError(f"{path} carries no config: pass one with --config")
    return config


def load_model(path: Path, config: dict | None = None) -> tuple[ConsistencyDenoiser, dict]:
    """The EMA consistency model and config of an inference file or a training checkpoint;
    ``config`` overrides the one stored in the file."""
    if not Path(path).is_file():
        raise _refuse("path", str(path), f"a file (it {checkpoint.not_a_file(Path(path))})")
    if not (config is None or isinstance(config, dict)):
        raise _refuse("config", config, "a config dict or None")
    state, stored = read_weights(path)
    try:
        config = load_config_value(_config_of(path, stored, config))
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None
    model = make_denoiser(config)
    checkpoint.load_state(model.inner_model, state, path)
    return model.eval().requires_grad_(False), config


def load_k_diffusion_denoiser(path: Path, config: dict | None = None) -> K.layers.Denoiser:
    """A k-diffusion diffusion model (its ``Denoiser``) from its checkpoint or inference file, to use as
    a CD teacher; ``config`` overrides the one stored in the file."""
    state, stored = read_weights(path)
    raw = _config_of(path, stored, config)
    try:
        # k-diffusion's sections are in the schema; a diffusion config has no consistency section
        schema.check(raw)
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None
    config = K.config.load_config(raw)
    inner = make_inner_model(config)
    checkpoint.load_state(inner, state, path)
    return K.config.make_denoiser_wrapper(config)(inner).eval().requires_grad_(False)
