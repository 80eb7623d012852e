"""``convert_for_inference_gc.py``: a train_gc.py checkpoint to a slim inference file in k-diffusion's
format (the EMA model as safetensors, the config as JSON metadata).

    python convert_for_inference_gc.py runs/digits_gc/digits_gc_00002400.pth -o digits_gc.safetensors
"""

import argparse
from pathlib import Path

from .. import cli
from ..errors import UserError, exits_on_user_error
from ..inference import DTYPES, export_inference


@exits_on_user_error
def main(argv: list[str] | None = None) -> None:
    p = cli.Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="the training checkpoint")
    p.add_argument("--output", "-o", type=Path,
                   help="the inference file (default: the checkpoint's name, .safetensors)")
    p.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="the stored dtype")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    args = p.parse_args(argv)
    output = args.output or args.checkpoint.with_suffix(".safetensors")
    if output.suffix != ".safetensors":
        raise UserError(f"--output {output}: name a .safetensors file")
    if output.exists() and not args.overwrite:
        raise UserError(f"{output} exists: choose another --output or pass --overwrite")
    export_inference(args.checkpoint, output, args.dtype)
    print(f"wrote {output}")
