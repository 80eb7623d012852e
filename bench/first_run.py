"""The README's first command, as a new user runs it, judged over several seeds.

Reads the training command from README.md's quickstart (``accelerate launch train_gc.py --config
configs/digits_gc.json ...``), runs it once per seed with ``--seed S`` and a checkpoint at the midpoint
added (neither changes the training), times it, and scores the final and midpoint EMA models with the
classifier judge (bench/judge.py): 1- and 2-step samples, the same noise for every run. Each seed's
final demo grid is copied, enlarged, next to the outputs.

    python -m bench.first_run --quick        # 1 seed, 20 steps: a smoke run
    python -m bench.first_run                # 5 seeds of the full command (about 5 minutes each on 2 cores)

Time it with nothing else running: the minutes are part of the result.
"""

import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")

from PIL import Image

from kdiff_gc.config import load_config
from kdiff_gc.inference import load_model
from kdiff_gc.monitor import largest_ratio
from bench.judge import Judge, consistency_samples
from bench.report import ROOT, command, enlarge, machine, parser, write_csv, write_json

# The bar for "digits the judge reads" (held-out real digits: 0.91 / 1.00 / 0.38); below the evidence
# protocol's "legible" (confident >= 0.8), which the first run does not claim.
BAR = {"confident": (">=", 0.6), "coverage": (">=", 0.9), "frechet": ("<=", 3.0)}


def readme_command() -> list[str]:
    """The quickstart's training command, from ``accelerate launch`` on."""
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("python3 -m venv") and "train_gc.py" in line:
            command = shlex.split(line.split("&&")[-1])
            return [str(Path(sys.executable).parent / "accelerate"), *command[1:]]
    raise SystemExit("README.md has no quickstart line that runs train_gc.py")


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def judge_checkpoint(judge: Judge, path: Path, n: int) -> dict:
    model, config = load_model(path)
    out = {}
    for steps in (1, 2):
        scores = judge.score(consistency_samples(model, config, n, steps, seed=12345))
        out.update({f"{k}_{steps}step": v for k, v in scores.items()})
    return out


def main() -> None:
    p = parser(__doc__, "1 seed, 20 steps, judge on 100 samples", seeds=5)
    p.add_argument("-n", type=int, help="samples judged per model and number of steps (default 1000)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "first_run",
                   help="output prefix: PREFIX.{csv,json}, grids PREFIX_grid_s{seed}.png, runs in "
                        "PREFIX_runs/")
    args = p.parse_args()
    seeds, n = args.seeds or (1 if args.quick else 5), args.n or (100 if args.quick else 1000)
    if seeds < 1 or n < 2:
        p.error("--seeds must be at least 1 and -n at least 2")
    readme = readme_command()
    config = load_config(ROOT / option(readme, "--config"))
    total = 20 if args.quick else config["consistency"]["total_steps"]
    midpoint = total // 2
    judge = Judge.for_config(config)
    work = args.out.parent / f"{args.out.name}_runs"
    rows = []
    for seed in range(seeds):
        folder = work / f"s{seed}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        argv = [a if a != option(readme, "--out-dir") else str(folder) for a in readme]
        argv = [str(ROOT / a) if a in ("train_gc.py", option(readme, "--config")) else a for a in argv]
        argv += ["--seed", str(seed), "--save-every", str(midpoint), "--end-step", str(total)]
        if args.quick:  # the default --demo-every would leave no grid in 20 steps
            argv += ["--demo-every", str(total)]
        started = time.time()
        done = subprocess.run(argv, cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"},
                              capture_output=True, text=True)
        seconds = time.time() - started
        if done.returncode != 0:
            raise SystemExit(f"seed {seed}: {' '.join(argv)} failed:\n{done.stderr[-3000:]}")
        name = option(readme, "--name")
        with open(folder / f"{name}_metrics.csv", newline="") as f:
            losses = [float(r["loss"]) for r in csv.DictReader(f)]
        row = {"seed": seed, "seconds": round(seconds, 1), "steps": total,
               "warned": "warning: the loss is running away" in done.stdout + done.stderr,
               "largest_loss_ratio": largest_ratio(losses)}
        for when, step in (("mid", midpoint), ("final", total)):
            scores = judge_checkpoint(judge, folder / f"{name}_{step:08}.pth", n)
            row.update({f"{when}_{k}": round(v, 4) for k, v in scores.items()})
        demos = sorted(folder.glob(f"{name}_demo_*.png"))
        if demos:
            enlarge(Image.open(demos[-1]), args.out.with_name(f"{args.out.name}_grid_s{seed}.png"))
        rows.append(row)
        print(json.dumps(row), flush=True)
    write_csv(rows, args.out.with_suffix(".csv"))
    write_json({"machine": machine(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                "command": command(),
                "readme_command": " ".join(["accelerate", *readme[1:]]), "seeds": seeds, "steps": total,
                "n": n, "bar": BAR,
                "judge_accuracy": judge.accuracy, "held_out": judge.score(judge.held_out)},
               args.out.with_suffix(".json"))


if __name__ == "__main__":
    main()
