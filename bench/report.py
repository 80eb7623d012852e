"""Writing benchmark results: a CSV of rows and a PNG of curves with their seed spread."""

import argparse
import csv
import io
import json
import math
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kdiff_gc.checkpoint import atomic_write

ROOT = Path(__file__).resolve().parents[1]  # the repository


def parser(doc: str, quick: str | None = None, seeds: int | None = None) -> argparse.ArgumentParser:
    """A benchmark's flags, its module docstring as their help; where it has them, ``--quick`` (``quick``
    says what it shrinks to: seconds, for the tests) and ``--seeds N`` (seeds 0 .. N-1, by default
    ``seeds``, 1 with ``--quick``)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if quick is not None:
        p.add_argument("--quick", action="store_true", help=quick)
    if seeds is not None:
        p.add_argument("--seeds", type=int, help=f"seeds 0 .. N-1 (default {seeds}; 1 with --quick)")
    return p


def machine() -> str:
    """The machine a result came from, for the results page."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return (f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads "
            f"(torch {torch.__version__})")


def command() -> str:
    """The command that ran this benchmark, as the results page shows it: ``python -m bench.NAME ARGS``."""
    return " ".join(["python", "-m", sys.modules["__main__"].__spec__.name, *sys.argv[1:]])


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda tmp: tmp.write_text(text.getvalue()))


def write_json(obj: dict, path: Path) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


def enlarge(image, path: Path, factor: int = 4) -> None:
    """Save a PIL image ``factor`` times larger with nearest-neighbour pixels: a grid of 8x8 digits is too
    small to see, and the pixels stay as the model made them."""
    image.resize((image.width * factor, image.height * factor), Image.NEAREST).save(path)


def sample_grid(samples: torch.Tensor, path: Path) -> None:
    """Images in [-1, 1] as a square grid, enlarged (:func:`enlarge`) so that small images can be seen."""
    import k_diffusion as K
    from torchvision import utils as tv_utils

    grid = tv_utils.make_grid(samples.clamp(-1, 1), nrow=math.ceil(len(samples) ** 0.5), padding=1,
                              pad_value=1)
    enlarge(K.utils.to_pil_image(grid), path, max(1, 320 // grid.shape[-1]))


def paired_bootstrap(differences: list[float], lower_is_better: bool, confidence: float = 0.95) -> dict:
    """The mean of paired differences (a method minus the baseline, seed by seed) with scipy's percentile
    bootstrap CI of that mean (10,000 resamples of the seeds, fixed random state), and a verdict: "better" or
    "worse" when the interval excludes 0, else "no detectable difference" (with fewer than 2 seeds: "too few
    seeds")."""
    from scipy import stats

    mean = float(np.mean(differences))
    if len(differences) < 2:
        return {"n": len(differences), "mean": mean, "low": None, "high": None, "verdict": "too few seeds"}
    ci = stats.bootstrap((np.asarray(differences),), np.mean, confidence_level=confidence, n_resamples=10_000,
                         method="percentile", random_state=0).confidence_interval
    low, high = float(ci.low), float(ci.high)
    improves = high < 0 if lower_is_better else low > 0
    harms = low > 0 if lower_is_better else high < 0
    verdict = "better" if improves else "worse" if harms else "no detectable difference"
    return {"n": len(differences), "mean": mean, "low": low, "high": high, "verdict": verdict}


def plot_curves(rows: list[dict], x: str, ys: list[str], group: str, path: Path, log_y: bool = True,
                linear: tuple[str, ...] = ()) -> None:
    """One panel per metric: the mean over seeds of each group, with a band from min to max; a log scale
    (with ``log_y``) except for the metrics in ``linear``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ys), figsize=(5 * len(ys), 3.6), squeeze=False)
    groups = list(dict.fromkeys(r[group] for r in rows))
    for ax, y in zip(axes[0], ys):
        for g in groups:
            mine = [r for r in rows if r[group] == g]
            steps = sorted({r[x] for r in mine})
            values = [[r[y] for r in mine if r[x] == s] for s in steps]
            mean = np.array([np.mean(v) for v in values])
            ax.plot(steps, mean, label=g)
            ax.fill_between(steps, [min(v) for v in values], [max(v) for v in values], alpha=0.2)
        ax.set_xlabel(x)
        ax.set_title(y)
        if log_y and y not in linear:
            ax.set_yscale("log")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
