"""The sampling program behind ``sample_gc.py``: draw images from a consistency model.

Reads a training checkpoint or an inference file; samples with the multistep consistency sampler
(1 step, 2 steps, or given sigmas) or, for comparison, with any k-diffusion sampler; writes a PNG
grid, a folder of PNGs, or an ``.npz`` of uint8 images (``arr_0``, NHWC, as FID tools read, and for a
class-conditional model the classes in ``arr_1``, as guided-diffusion's sample files).
"""

import argparse
import inspect
import io
import math
import os
import sys
from pathlib import Path

import k_diffusion as K
import numpy as np
import torch
from PIL import Image
from torchvision import utils as tv_utils
from tqdm.auto import trange

from .. import cli, memory
from ..checkpoint import atomic_write
from ..errors import UserError, exits_on_user_error
from ..config import load_config
from ..inference import load_model
from ..runtime import default_device
from ..sampling import get_sigmas_consistency, random_classes, sample_consistency, sample_shape


def build_parser() -> argparse.ArgumentParser:
    p = cli.Parser(description="Sample a consistency model trained with train_gc.py.")
    p.add_argument("checkpoint", type=Path,
                   help="a training checkpoint (.pth) or an inference file (.safetensors)")
    p.add_argument("--config", type=Path, help="override the config stored in the file")
    p.add_argument("-n", type=cli.integer(1, cli.MAX_SAMPLES), default=64, help="the number of images")
    p.add_argument("--batch-size", type=cli.integer(1, cli.MAX_BATCH), default=64,
                   help="images per forward pass")
    p.add_argument("--steps", type=int, default=1, choices=[1, 2], help="consistency sampling steps")
    p.add_argument("--sigma-mid", type=cli.number(exclusive_minimum=0),
                   help="the intermediate sigma of 2-step sampling (default: the config's "
                   "consistency.sigma_mid, 0.821 unless set)")
    p.add_argument("--sigmas", type=cli.descending_sigmas,
                   help="explicit descending sigmas for multistep sampling, e.g. 80,2,0.5 (overrides "
                   "--steps)")
    p.add_argument("--sampler", default="consistency",
                   help="'consistency', or a k-diffusion sampler name (euler, heun, dpmpp_2m, ...) for "
                   "comparison")
    p.add_argument("--sampler-steps", type=cli.integer(1), default=50,
                   help="Karras schedule length for k-diffusion samplers")
    p.add_argument("--class", dest="class_label", type=cli.integer(0),
                   help="the class of every image, for class-conditional models (default: drawn at random "
                   "per image)")
    p.add_argument("--seed", type=cli.integer(*cli.SEED), default=0, help="the random seed")
    p.add_argument("--output", "-o", type=Path, default=Path("samples.png"),
                   help="a .png grid, a .npz of uint8 images, or a folder for one PNG per image")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    return p


# k-diffusion samplers that fail with fewer steps (their multistep update reads the previous step's
# variables: UnboundLocalError); tests/test_sampling.py finds them by trying every sampler
MIN_SAMPLER_STEPS = {"dpmpp_2m_sde": 2, "dpmpp_3m_sde": 2}


def k_diffusion_samplers() -> dict:
    """k-diffusion's samplers called as ``sampler(model, x, sigmas, ...)`` (not ``dpm_fast`` and
    ``dpm_adaptive``, which take a sigma range instead of a schedule), by name."""
    samplers = {n[len("sample_"):]: getattr(K.sampling, n)
                for n in dir(K.sampling) if n.startswith("sample_")}
    return {name: f for name, f in samplers.items()
            if list(inspect.signature(f).parameters)[:3] == ["model", "x", "sigmas"]}


def pick_sampler(name: str):
    if name == "consistency":
        return sample_consistency
    samplers = k_diffusion_samplers()
    if name not in samplers:
        why = "takes a sigma range, not a schedule" if hasattr(K.sampling, f"sample_{name}") else "is unknown"
        raise UserError(f"--sampler {name!r} {why}: use consistency or one of k-diffusion's: "
                        f"{', '.join(sorted(samplers))}")
    return samplers[name]


def check_sigmas(args: argparse.Namespace, c: dict) -> None:
    """The noise levels asked for against the model's range (its ``consistency`` section): below sigma_min
    the sampler's fresh noise ``sqrt(sigma^2 - sigma_min^2)`` is NaN (refused); above sigma_max the model was
    never trained, but a user may want it (a warning). Also k-diffusion samplers' least number of steps."""
    if args.sampler_steps < MIN_SAMPLER_STEPS.get(args.sampler, 1):
        raise UserError(f"--sampler {args.sampler} takes at least {MIN_SAMPLER_STEPS[args.sampler]} "
                        "--sampler-steps (its update reads the step before): raise --sampler-steps")
    asked = [("--sigmas " + ",".join(f"{s:g}" for s in args.sigmas), s) for s in args.sigmas or []]
    if args.sigma_mid is not None and not args.sigmas:
        asked.append((f"--sigma-mid {args.sigma_mid:g}", args.sigma_mid))
    for flag, sigma in asked:
        if sigma < c["sigma_min"]:
            raise UserError(f"{flag}: {sigma:g} is below the model's sigma_min {c['sigma_min']:g}, where the "
                            "sampler's noise is the square root of a negative number: use sigmas of at least "
                            f"{c['sigma_min']:g}")
        if sigma > c["sigma_max"] and flag.startswith("--sigmas"):  # a --sigma-mid above it is refused later
            print(f"warning: {flag}: {sigma:g} is above the model's sigma_max {c['sigma_max']:g}, where it "
                  "was never trained: its images may be gray", file=sys.stderr)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``[-1, 1]`` NCHW floats to NHWC uint8: ``round(127.5 (x + 1))``."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def write_images(images: np.ndarray, output: Path, labels: np.ndarray | None = None) -> None:
    """A grid (.png), an array (.npz: ``arr_0``, and the classes as ``arr_1`` when given) or one PNG per
    image (a folder)."""
    squeeze = images.shape[-1] == 1
    if output.suffix == ".npz":
        buffer = io.BytesIO()
        np.savez(buffer, arr_0=images, **({} if labels is None else {"arr_1": labels}))
        atomic_write(output, lambda tmp: tmp.write_bytes(buffer.getvalue()))
    elif output.suffix == ".png":
        nrow = math.ceil(len(images) ** 0.5)
        grid = tv_utils.make_grid(torch.from_numpy(images).permute(0, 3, 1, 2), nrow=nrow,
                                  padding=0).permute(1, 2, 0)
        image = Image.fromarray(grid.numpy()[..., 0] if squeeze else grid.numpy())
        atomic_write(output, lambda tmp: image.save(tmp, format="PNG"))
    else:
        output.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            Image.fromarray(image[..., 0] if squeeze else image).save(output / f"{i:05}.png")


@torch.no_grad()
def generate(model, config: dict, args: argparse.Namespace,
             device: torch.device) -> tuple[np.ndarray, np.ndarray | None]:
    """The images, NHWC uint8, and their classes (None for a model without classes). Each batch draws its
    noise, then (without ``--class``) its classes, from one generator seeded with ``--seed``."""
    c = config["consistency"]
    sampler = pick_sampler(args.sampler)
    check_sigmas(args, c)
    if args.sampler == "consistency":
        try:
            sigma_mid = c["sigma_mid"] if args.sigma_mid is None else args.sigma_mid
            sigmas = get_sigmas_consistency(args.sigmas or args.steps, c["sigma_max"], sigma_mid,
                                            device=device)
        except ValueError:  # --sigmas are checked by argparse; --sigma-mid must be below sigma_max
            raise UserError(f"--sigma-mid {args.sigma_mid} is not below the model's sigma_max "
                            f"{c['sigma_max']}: lower it") from None
    else:
        sigmas = K.sampling.get_sigmas_karras(args.sampler_steps, c["sigma_min"], c["sigma_max"],
                                              device=device)
    classes = config["dataset"].get("num_classes", 0)
    if args.class_label is not None and not 0 <= args.class_label < classes:
        raise UserError(f"--class {args.class_label}: the model has classes 0..{classes - 1}" if classes
                        else "--class: the model is not class-conditional")
    gen = torch.Generator().manual_seed(args.seed)
    out, labels = [], []
    for start in trange(0, args.n, args.batch_size, disable=None):
        n = min(args.batch_size, args.n - start)
        x = torch.randn([n, *sample_shape(config)], generator=gen).to(device) * sigmas[0]
        extra_args = ({"class_cond": torch.full([n], args.class_label, device=device)}
                      if args.class_label is not None
                      else random_classes(config, n, gen, device))
        if classes:
            labels.append(extra_args["class_cond"].cpu().numpy())
        out.append(to_uint8(sampler(model, x, sigmas, extra_args=extra_args, disable=True)))
    return np.concatenate(out), np.concatenate(labels) if labels else None


@exits_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")
    if args.output.suffix not in (".png", ".npz", ""):
        raise UserError(f"--output {args.output}: name a .png (a grid), a .npz (an array) or a folder "
                        "without a suffix (one PNG per image)")
    if args.output.exists() and not args.overwrite:
        raise UserError(f"{args.output} exists: choose another --output or pass --overwrite")
    if args.output.suffix:
        cli.check_output_folder(args.output, "--output")
    pick_sampler(args.sampler)  # before the model is loaded
    config_override = None
    if args.config is not None:
        try:
            config_override = load_config(args.config)
        except ValueError as e:
            raise UserError(f"--config {e}") from None
    device = default_device()
    model, config = load_model(args.checkpoint, config_override)
    image = memory.image_floats(config)  # the uint8 images kept, and a batch's noise, input and output
    memory.require(args.n * image + 3 * args.batch_size * image * memory.FLOAT_BYTES,
                   f"-n {args.n} images in batches of --batch-size {args.batch_size}",
                   "lower -n or --batch-size", device)
    images, labels = generate(model.to(device), config, args, device)
    write_images(images, args.output, labels)
    print(f"wrote {len(images)} images to {args.output}")
