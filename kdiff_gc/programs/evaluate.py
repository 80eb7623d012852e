"""The evaluation program behind ``evaluate_gc.py``: FID and KID of a consistency model's samples.

The reference is a data set (the config's, or another config's) or a cached reference file of
Inception features (``torch.save`` of ``{"features", "n", "extractor"}``; written the first time,
then reused). The Inception weights are resolved as in training (``kdiff_gc.evaluation``).
"""

import argparse
import json
import os
from functools import partial
from pathlib import Path

import accelerate
import torch
from tqdm.auto import tqdm

from .. import cli, evaluation, memory
from ..checkpoint import atomic_write, safe_load
from ..config import load_config
from ..data import image_key, make_dataset
from ..errors import UserError, exits_on_user_error
from ..inference import load_model
from ..runtime import has_accelerator

EXTRACTOR = "inception-2015-12-05"


def build_parser() -> argparse.ArgumentParser:
    p = cli.Parser(description="FID and KID of a consistency model's 1- and 2-step samples.")
    p.add_argument("checkpoint", type=Path,
                   help="a training checkpoint (.pth) or an inference file (.safetensors)")
    p.add_argument("--reference", type=Path,
                   help="cached reference features: read if it exists, else computed from the data set and "
                   "written")
    p.add_argument("--data-config", type=Path,
                   help="take the reference data set from this config (default: the model's)")
    p.add_argument("-n", type=cli.integer(2, cli.MAX_SAMPLES), default=2000,
                   help="samples (and reference images) to use")
    p.add_argument("--steps", type=cli.integers(1, 2), default=[1, 2],
                   help="comma-separated consistency sampling steps to score")
    p.add_argument("--batch-size", type=cli.integer(1, cli.MAX_BATCH), default=100,
                   help="images per forward pass")
    p.add_argument("--inception-weights", help="path to inception-2015-12-05.pt")
    p.add_argument("--seed", type=cli.integer(*cli.SEED), default=0, help="the random seed")
    p.add_argument("--output", type=Path, help="also write the results as JSON here (never overwritten)")
    return p


def cached_reference(args) -> torch.Tensor | None:
    """The features in ``--reference`` when it exists, checked; None when it is to be computed."""
    if args.reference is None or not args.reference.exists():
        return None
    cached = safe_load(args.reference, f"--reference {args.reference}", ": delete it to recompute")
    if not (isinstance(cached, dict) and cached.get("extractor") == EXTRACTOR
            and isinstance(cached.get("n"), int)
            and isinstance(cached.get("features"), torch.Tensor) and cached["features"].ndim == 2):
        raise UserError(f"--reference {args.reference} holds no features of {EXTRACTOR}: delete it to "
                        "recompute")
    features = cached["features"]
    why = (f"holds {features.dtype} features, not floating point" if not features.is_floating_point()
           else "holds NaN or infinite features" if not torch.isfinite(features).all() else None)
    if why:
        raise UserError(f"--reference {args.reference} {why}: delete it to recompute")
    if cached["n"] < args.n or len(cached["features"]) < args.n:
        raise UserError(f"--reference {args.reference} holds {cached['n']} features; -n {args.n} needs as "
                        "many: delete it to recompute")
    return cached["features"][:args.n]


def check_reference_width(args, reals: torch.Tensor, extractor, config: dict, device: torch.device) -> None:
    """The cached features must be as wide as ``extractor``'s: another width was made by another network."""
    width = evaluation.feature_width(extractor, config, device)
    if reals.shape[1] != width:
        raise UserError(f"--reference {args.reference} holds features of width {reals.shape[1]}, not the "
                        f"{width} of the feature network: delete it to recompute")


def reference_data(config: dict, args):
    """The data set the reference features come from (``--data-config``'s, else the model's), checked to hold
    ``-n`` images before minutes of Inception features."""
    if args.data_config is not None:
        try:
            config = load_config(args.data_config)
        except ValueError as e:
            raise UserError(f"--data-config {e}") from None
    dataset = make_dataset(config, args.data_config.parent if args.data_config else Path("."))
    if len(dataset) < args.n:
        raise UserError(f"the data set has {len(dataset)} images, fewer than -n {args.n}: lower -n to at "
                        f"most {len(dataset)}, or pass --data-config with a larger data set")
    return dataset, image_key(config)


@exits_on_user_error
def main(argv: list[str] | None = None, make_extractor=None) -> dict:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")
    if args.output is not None and args.output.exists():
        raise UserError(f"{args.output} exists: choose another --output")
    if args.output is not None and args.reference is not None \
            and args.output.resolve() == args.reference.resolve():
        raise UserError(f"--output and --reference are the same file ({args.output}): the results would "
                        "replace the reference features; choose another --output")
    for path, flag in [(args.output, "--output"), (args.reference, "--reference")]:
        if path is not None:
            cli.check_output_folder(path, flag)
    accelerator = accelerate.Accelerator(cpu=not has_accelerator())
    model, config = load_model(args.checkpoint)
    features = 2 * args.n * evaluation.FEATURES  # the real and the sampled images' features, kept
    memory.require((features + 3 * args.batch_size * memory.image_floats(config)) * memory.FLOAT_BYTES,
                   f"-n {args.n} in batches of --batch-size {args.batch_size}", "lower -n or --batch-size",
                   accelerator.device)
    model.to(accelerator.device)
    reals = cached_reference(args)
    source = reference_data(config, args) if reals is None else None
    extractor = (make_extractor or partial(evaluation.inception, args.inception_weights))(accelerator.device)
    if reals is not None:
        check_reference_width(args, reals, extractor, config, accelerator.device)
    else:
        reals = evaluation.reference_features(accelerator, extractor, *source, args.n, args.batch_size)
        if args.reference is not None and accelerator.is_main_process:
            payload = {"features": reals.cpu(), "n": args.n, "extractor": EXTRACTOR}
            atomic_write(args.reference, lambda tmp: torch.save(payload, tmp))
    results = evaluation.scores(accelerator, model, config, extractor, reals.to(accelerator.device), args.n,
                                args.batch_size, args.seed, args.steps)
    if accelerator.is_main_process:
        tqdm.write(json.dumps(results))
        if args.output is not None:
            atomic_write(args.output, lambda tmp: tmp.write_text(json.dumps(results, indent=2) + "\n"))
    return results
