"""kdiff-gc: consistency training with generator-induced coupling for k-diffusion models.

The names below load on first use, so that the light modules (``kdiff_gc.schema``, and the programs'
flag parsing) do not import torch and k-diffusion.
"""

import importlib
import warnings

# clip-anytorch, which k-diffusion imports, warns on every import that pkg_resources is deprecated, and
# torch on every load of clean-fid's TorchScript Inception; neither is the user's to act on
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
warnings.filterwarnings("ignore", message="`torch.jit.", category=FutureWarning)

# what a k-diffusion user calls: configs and builders, the denoiser, the loss step and its schedule, the
# couplings (with the context and pair a coupling of one's own takes and returns), the training state and
# step, sampling, and inference files
_HOMES = {
    "builders": ["make_consistency_loss", "make_coupling", "make_denoiser"],
    "config": ["load_config"],
    "coupling": ["CouplingContext", "Distillation", "GeneratorInduced", "Independent", "MinibatchOT", "Pair"],
    "denoiser": ["ConsistencyDenoiser"],
    "inference": ["export_inference", "load_model"],
    "loss": ["ConsistencyLoss", "NoiseSchedule"],
    "optim": ["EmaSchedule"],
    "sampling": ["get_sigmas_consistency", "sample_consistency", "sample_fixed_noise"],
    "train_state": ["TrainState", "train_step"],
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_HOME_OF)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _HOME_OF:
        raise AttributeError(f"module 'kdiff_gc' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME_OF[name]}", __name__), name)
