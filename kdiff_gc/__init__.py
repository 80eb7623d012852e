"""kdiff-gc: consistency training with generator-induced coupling for k-diffusion models."""

from .config import load_config, make_consistency_loss, make_coupling, make_denoiser
from .coupling import CouplingContext, Distillation, GeneratorInduced, Independent, MinibatchOT, Pair
from .denoiser import ConsistencyDenoiser
from .distances import l2, pseudo_huber
from .inference import export_inference, load_model
from .sampling import get_sigmas_consistency, sample_consistency
from .training import ConsistencyLoss, LossOutput

__all__ = ["ConsistencyDenoiser", "ConsistencyLoss", "CouplingContext", "Distillation", "GeneratorInduced",
           "Independent", "LossOutput", "MinibatchOT", "Pair", "export_inference", "get_sigmas_consistency", "l2",
           "load_config", "load_model", "make_consistency_loss", "make_coupling", "make_denoiser", "pseudo_huber",
           "sample_consistency"]
__version__ = "0.1.0"
