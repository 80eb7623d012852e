"""The paper-scale path end to end on the CPU: configs/cifar10_gc.json at its full model size trains a few
steps at a small batch, saves, resumes, exports, samples and evaluates, each stage through its program as a
user runs it.

The data: CIFAR-10 at ``--data`` if given (read, never downloaded), else random 32x32 PNGs in an imagefolder.
Each stage's seconds, the checkpoint's size and the FID of a handful of samples go to
docs/bench/paper_scale.json, so that nothing on this path is first exercised on a rented GPU.

    python -m bench.paper_scale          # the full model (tens of millions of parameters): minutes on 2 cores
    python -m bench.paper_scale --quick  # the model shrunk: the plumbing only, in seconds
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")

import k_diffusion as K

from kdiff_gc import load_config, make_denoiser
from bench.loop_overhead import SHRUNK_CIFAR_MODEL, random_imagefolder
from bench.report import ROOT, command, machine, parser, write_json

ENV = {**os.environ, "K_DIFFUSION_USE_COMPILE": "0", "PYTHONWARNINGS": "ignore"}


def stage(name: str, argv: list[str], cwd: Path, seconds: dict) -> None:
    """Run one program; its seconds land in ``seconds``; a failure ends the benchmark with the program's
    stderr."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, str(ROOT / argv[0]), *argv[1:]], cwd=cwd, env=ENV,
                         capture_output=True, text=True)
    seconds[name] = round(time.perf_counter() - start, 1)
    if out.returncode:
        sys.exit(f"{name} failed ({' '.join(argv)}):\n{out.stderr[-3000:]}")
    print(f"{name:>9}  {seconds[name]:7.1f} s", flush=True)


def main() -> None:
    p = parser(__doc__, "the CIFAR-10 model shrunk (the plumbing only)")
    p.add_argument("--data", type=Path, help="a CIFAR-10 location (default: random 32x32 PNGs)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--evaluate-n", type=int, default=8, help="samples (and real images) for FID")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "paper_scale", help="output prefix")
    args = p.parse_args()
    config = json.loads((ROOT / "configs" / "cifar10_gc.json").read_text())
    if args.quick:
        config["model"].update(SHRUNK_CIFAR_MODEL)
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.data:
            config["dataset"] = {"type": "cifar10", "location": str(args.data.resolve()), "download": False}
        else:
            (tmp / "images").mkdir()
            random_imagefolder(tmp / "images", max(4 * args.batch_size, args.evaluate_n))
            config["dataset"] = {"type": "imagefolder", "location": str(tmp / "images")}
        (tmp / "cifar10.json").write_text(json.dumps(config))
        train = ["train_gc.py", "--config", "cifar10.json", "--name", "paper", "--out-dir", "run",
                 "--batch-size", str(args.batch_size), "--seed", "0", "--demo-every", "2", "--sample-n", "4",
                 "--save-every", "2"]
        stage("train", train + ["--end-step", "2"], tmp, seconds)
        stage("resume", train + ["--end-step", "3", "--resume"], tmp, seconds)
        checkpoint = tmp / "run" / "paper_00000003.pth"
        stage("export", ["convert_for_inference_gc.py", str(checkpoint), "-o", "paper.safetensors"],
              tmp, seconds)
        stage("sample", ["sample_gc.py", "paper.safetensors", "-n", "4", "--steps", "2", "-o", "grid.png"],
              tmp, seconds)
        stage("evaluate", ["evaluate_gc.py", str(checkpoint), "-n", str(args.evaluate_n), "--batch-size",
                           str(args.batch_size), "--output", "scores.json"], tmp, seconds)
        scores = json.loads((tmp / "scores.json").read_text())
        files = {"checkpoint_mib": checkpoint.stat().st_size / 2 ** 20,
                 "inference_mib": (tmp / "paper.safetensors").stat().st_size / 2 ** 20,
                 "demo_grid": (tmp / "run" / "paper_demo_00000002.png").is_file(),
                 "sample_grid": (tmp / "grid.png").is_file()}
    parameters = K.utils.n_params(make_denoiser(load_config(config)))
    meta = {"machine": machine(), "model": "shrunk" if args.quick else "full", "parameters": parameters,
            "data": "cifar10" if args.data else "random 32x32 PNGs", "batch": args.batch_size,
            "evaluate_n": args.evaluate_n, "seconds": seconds, **files,
            "fid_1step": scores["fid_1step"], "fid_2step": scores["fid_2step"],
            "ran_end_to_end": (all(files[k] for k in ("demo_grid", "sample_grid"))
                               and math.isfinite(scores["fid_1step"])),
            "command": command()}
    write_json(meta, args.out.with_suffix(".json"))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
