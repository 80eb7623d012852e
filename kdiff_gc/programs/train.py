"""``train_gc.py``: k-diffusion's ``train.py`` flags, for consistency training (the loop is
:class:`kdiff_gc.trainer.Run`)."""

import argparse
import os
import sys

from .. import cli
from ..options import RunOptions
from ..errors import exits_on_user_error
from ..preemption import STOPPED_EXIT, signal_numbers


DEFAULTS = RunOptions(config="")  # the flags' defaults are the options' own


def build_parser() -> argparse.ArgumentParser:
    p = cli.Parser(description="Train a k-diffusion model as a consistency model with GC.")
    p.add_argument("--config", required=True, help="the configuration file (k-diffusion JSON)")
    p.add_argument("--name", type=cli.run_name, default=DEFAULTS.name,
                   help="the name of the run (file prefix)")
    p.add_argument("--out-dir", default=DEFAULTS.out_dir,
                   help="the folder for checkpoints, demos and metrics")
    p.add_argument("--batch-size", type=cli.integer(1, cli.MAX_BATCH),
                   help="the global batch size (default: training.batch_size)")
    p.add_argument("--lr", type=cli.number(exclusive_minimum=0),
                   help="the learning rate (default: optimizer.lr)")
    p.add_argument("--grad-accum-steps", type=cli.integer(1), default=DEFAULTS.grad_accum_steps,
                   help="gradient accumulation steps")
    p.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default=DEFAULTS.mixed_precision,
                   help="mixed precision")
    p.add_argument("--seed", type=cli.integer(*cli.SEED),
                   help="the random seed (default: drawn, and saved in checkpoints)")
    p.add_argument("--num-workers", type=cli.integer(0, 256),
                   help="data loader workers per process (default: 8 with a GPU, bounded by the CPUs; 0 "
                   "without)")
    p.add_argument("--demo-every", type=cli.integer(0), default=DEFAULTS.demo_every,
                   help="save a demo grid every this many steps (0: never)")
    p.add_argument("--sample-n", type=cli.integer(1, cli.MAX_GRID), default=DEFAULTS.sample_n,
                   help="images per demo grid and sampling mode")
    p.add_argument("--save-every", type=cli.integer(1), default=DEFAULTS.save_every,
                   help="save a checkpoint every this many steps")
    p.add_argument("--save-every-minutes", type=cli.number(minimum=0, maximum=cli.WEEK),
                   default=DEFAULTS.save_every_minutes,
                   help="also save when this many minutes have passed since the last save (0: never)")
    p.add_argument("--collective-timeout-minutes", type=cli.number(exclusive_minimum=0, maximum=cli.WEEK),
                   default=DEFAULTS.collective_timeout_minutes,
                   help="how long a process waits for the others at a collective before it stops")
    p.add_argument("--stop-signals", type=signals, default=DEFAULTS.stop_signals,
                   help="on these signals, finish the step, save and exit with code "
                   f"{STOPPED_EXIT} (comma-separated; '' for none)")
    p.add_argument("--evaluate-every", type=cli.integer(0), default=DEFAULTS.evaluate_every,
                   help="FID/KID every this many steps (0: never)")
    p.add_argument("--evaluate-n", type=cli.off_or_integer(2, cli.MAX_SAMPLES), default=DEFAULTS.evaluate_n,
                   help="samples drawn for FID/KID (0: no evaluation, as in k-diffusion)")
    p.add_argument("--evaluate-with", choices=["inception"], default=DEFAULTS.evaluate_with,
                   help="the feature extractor")
    p.add_argument("--inception-weights", help="path to inception-2015-12-05.pt for offline FID")
    p.add_argument("--end-step", type=cli.integer(1),
                   help="stop at this step (default: consistency.total_steps)")
    p.add_argument("--resume", nargs="?", const="latest",
                   help="continue from the given checkpoint; without a path, insist on continuing from "
                   "{name}_state.json's (a run whose state file exists continues without the flag, as in "
                   "k-diffusion)")
    p.add_argument("--init-from", help="start from a k-diffusion model's weights (its train.py checkpoint or "
                   "inference .safetensors); ignored on resume")
    p.add_argument("--config-override", action="store_true",
                   help="on resume, train on with --config even where it differs from the checkpoint's "
                   "config")
    p.add_argument("--reset-ema", action="store_true",
                   help="on resume, continue from the EMA weights with a fresh EMA schedule (as "
                   "k-diffusion)")
    p.add_argument("--compile", action="store_true", help="compile the model (k-diffusion's torch.compile)")
    p.add_argument("--checkpointing", action="store_true", help="gradient checkpointing")
    p.add_argument("--wandb-project", help="log to this wandb project (off unless given)")
    p.add_argument("--wandb-entity", help="the wandb entity")
    p.add_argument("--wandb-group", help="the wandb group")
    p.add_argument("--wandb-save-model", action="store_true", help="also upload each checkpoint to wandb")
    p.add_argument("--start-method", choices=["fork", "forkserver", "spawn"],
                   help="how data workers start (default: the platform's)")
    return p


def signals(text: str) -> str:
    """An argparse type: signal names that :func:`kdiff_gc.preemption.signal_numbers` reads."""
    try:
        signal_numbers(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


@exits_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if not args.compile:
        os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")
    from ..trainer import Run  # after the flags are checked: it imports torch, accelerate and k-diffusion

    if not Run(RunOptions(**vars(args))).run():
        sys.exit(STOPPED_EXIT)
