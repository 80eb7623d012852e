"""The evaluation program behind ``evaluate_gc.py``: FID and KID of a consistency model's samples.

The reference is a data set (the config's, or another config's) or a cached reference file of
Inception features (``torch.save`` of ``{"features", "n", "extractor"}``; written the first time,
then reused). The Inception weights are resolved as in training (``kdiff_gc.evaluation``).
"""

import argparse
import json
import os
from pathlib import Path

import accelerate
import k_diffusion as K
import torch
from torch.utils import data
from tqdm.auto import tqdm

from .. import cli, evaluation
from ..checkpoint import atomic_write, safe_load
from ..config import load_config
from ..data import make_dataset
from ..errors import UserError, exits_on_user_error
from ..inference import load_model
from ..runtime import derive_seed, has_accelerator

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


def reference_features(accelerator, extractor, config: dict, args) -> torch.Tensor:
    if args.reference is not None and args.reference.exists():
        cached = safe_load(args.reference, f"--reference {args.reference}", ": delete it to recompute")
        if cached.get("extractor") != EXTRACTOR or cached.get("n", 0) < args.n:
            raise UserError(f"--reference {args.reference} holds {cached.get('n')} features of "
                            f"{cached.get('extractor')}; -n {args.n} needs as many of {EXTRACTOR}: delete it to recompute")
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
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(args.seed))
    mine = data.Subset(dataset, order[accelerator.process_index::accelerator.num_processes].tolist())  # a share per process
    loader = data.DataLoader(mine, args.batch_size, drop_last=False)
    image_key = config["dataset"].get("image_key", 0)
    batches = iter(loader)
    with torch.no_grad():
        features = K.evaluation.compute_features(
            accelerator, lambda n: next(batches)[image_key][1].to(accelerator.device), extractor, args.n, args.batch_size)
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
    extractor = (make_extractor or (lambda device: evaluation.InceptionFeatures(
        evaluation.find_inception_weights(args.inception_weights), device)))(accelerator.device)
    reals = reference_features(accelerator, extractor, config, args)
    m, c = config["model"], config["consistency"]
    classes = config["dataset"].get("num_classes", 0)
    random_classes = (lambda n: {"class_cond": torch.randint(0, classes, [n], device=accelerator.device)}) if classes else None
    results = {}
    for n_steps in args.steps:
        torch.manual_seed(derive_seed(args.seed, accelerator.process_index))  # same noise for every step count
        sample_fn = evaluation.consistency_sample_fn(model, [m["input_channels"], *m["input_size"]], c["sigma_max"],
                                                     n_steps, accelerator.device, random_classes)
        fid, kid = evaluation.fid_kid(accelerator, sample_fn, extractor, reals, args.n, args.batch_size)
        results[f"fid_{n_steps}step"], results[f"kid_{n_steps}step"] = fid, kid
    if accelerator.is_main_process:
        tqdm.write(json.dumps(results))
        if args.output is not None:
            atomic_write(args.output, lambda tmp: tmp.write_text(json.dumps(results, indent=2) + "\n"))
    return results
