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

from .. import cli, evaluation
from ..checkpoint import atomic_write, safe_load
from ..config import load_config
from ..data import make_dataset
from ..errors import UserError, exits_on_user_error
from ..inference import load_model
from ..runtime import has_accelerator

EXTRACTOR = "inception-2015-12-05"


def build_parser() -> argparse.ArgumentParser:
    p = cli.Parser(description="FID and KID of a consistency model's 1- and 2-step samples.")
    p.add_argument("checkpoint", type=Path, help="a training checkpoint (.pth) or an inference file (.safetensors)")
    p.add_argument("--reference", type=Path,
                   help="cached reference features: read if it exists, else computed from the data set and written")
    p.add_argument("--data-config", type=Path, help="take the reference data set from this config (default: the model's)")
    p.add_argument("-n", type=cli.integer(2), default=2000, help="samples (and reference images) to use")
    p.add_argument("--steps", type=cli.integers(1, 2), default=[1, 2],
                   help="comma-separated consistency sampling steps to score")
    p.add_argument("--batch-size", type=cli.integer(1), default=100, help="images per forward pass")
    p.add_argument("--inception-weights", help="path to inception-2015-12-05.pt")
    p.add_argument("--seed", type=cli.integer(*cli.SEED), default=0, help="the random seed")
    p.add_argument("--output", type=Path, help="also write the results as JSON here (never overwritten)")
    return p


def reals(accelerator, extractor, config: dict, args) -> torch.Tensor:
    """The reference features: read from ``--reference``, else computed from the data set (and written there)."""
    if args.reference is not None and args.reference.exists():
        cached = safe_load(args.reference, f"--reference {args.reference}", ": delete it to recompute")
        if not isinstance(cached, dict) or cached.get("extractor") != EXTRACTOR or cached.get("n", 0) < args.n \
                or not isinstance(cached.get("features"), torch.Tensor):
            held = f"{cached.get('n')} features of {cached.get('extractor')}" if isinstance(cached, dict) else "no features"
            raise UserError(f"--reference {args.reference} holds {held}; -n {args.n} needs as many of {EXTRACTOR}: "
                            "delete it to recompute")
        return cached["features"][:args.n].to(accelerator.device)
    if args.data_config is not None:
        try:
            config = load_config(args.data_config)
        except ValueError as e:
            raise UserError(f"--data-config {e}") from None
    dataset = make_dataset(config, args.data_config.parent if args.data_config else Path("."))
    if len(dataset) < args.n:  # before minutes of Inception features
        raise UserError(f"the data set has {len(dataset)} images, fewer than -n {args.n}: lower -n to at most "
                        f"{len(dataset)}, or pass --data-config with a larger data set")
    features = evaluation.reference_features(accelerator, extractor, dataset, config["dataset"].get("image_key", 0),
                                             args.n, args.batch_size)
    if args.reference is not None and accelerator.is_main_process:
        payload = {"features": features.cpu(), "n": args.n, "extractor": EXTRACTOR}
        atomic_write(args.reference, lambda tmp: torch.save(payload, tmp))
    return features


@exits_on_user_error
def main(argv: list[str] | None = None, make_extractor=None) -> dict:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")
    if args.output is not None and args.output.exists():
        raise UserError(f"{args.output} exists: choose another --output")
    accelerator = accelerate.Accelerator(cpu=not has_accelerator())
    model, config = load_model(args.checkpoint)
    model.to(accelerator.device)
    extractor = (make_extractor or partial(evaluation.inception, args.inception_weights))(accelerator.device)
    results = evaluation.scores(accelerator, model, config, extractor, reals(accelerator, extractor, config, args),
                                args.n, args.batch_size, args.seed, args.steps)
    if accelerator.is_main_process:
        tqdm.write(json.dumps(results))
        if args.output is not None:
            atomic_write(args.output, lambda tmp: tmp.write_text(json.dumps(results, indent=2) + "\n"))
    return results
