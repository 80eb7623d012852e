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


ALPHA = 0.05  # the protocol's level (docs/evidence-protocol.md), two-sided


def direction(mean: float, significant: bool, lower_is_better: bool) -> str:
    """"better" or "worse" when ``significant``, by the sign of the mean difference; else "no detectable
    difference"."""
    if not significant:
        return "no detectable difference"
    return "better" if (mean < 0) == lower_is_better else "worse"


def paired_test(differences: list[float], lower_is_better: bool, confidence: float = 0.95) -> dict:
    """Paired differences (a method minus the baseline, seed by seed): their mean with the two-sided Student
    t interval ``mean +- t_{n-1} s / sqrt(n)``, the paired t-test's p-value, and the exact sign-flip p-value
    (the share of the 2^n sign patterns whose mean is at least as far from 0, each equally likely when the
    two methods do not differ). ``verdict`` is the t-test's at level :data:`ALPHA`, before any correction
    for multiple comparisons (:func:`holm` corrects a family)."""
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    mean = float(d.mean())
    if len(d) < 2:
        return {"n": len(d), "mean": mean, "low": None, "high": None, "p_t": None, "p_sign_flip": None,
                "verdict": "too few seeds", "same_sign": False}
    t = stats.ttest_1samp(d, 0.0)
    ci = t.confidence_interval(confidence)
    flip = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                  alternative="two-sided").pvalue
    p_t = float(t.pvalue) if np.isfinite(t.pvalue) else 1.0  # all differences equal: no spread to test
    return {"n": len(d), "mean": mean, "low": float(ci.low), "high": float(ci.high), "p_t": p_t,
            "p_sign_flip": float(flip), "verdict": direction(mean, p_t < ALPHA, lower_is_better),
            "same_sign": bool((d < 0).all() or (d > 0).all())}


def checkpoint_spread(values: list[float]) -> float:
    """How far one checkpoint's figure strays from its run's smooth course, from the figures at successive
    checkpoints: ``sqrt(sum_i (v_{i+1} - v_i)^2 / (2 (n - 1)))``, von Neumann's estimator, which a slow trend
    barely inflates (a difference of two checkpoints then varies by ``sqrt(2)`` times this)."""
    if len(values) < 2:
        raise ValueError(f"checkpoint_spread needs at least 2 checkpoints, got {len(values)}")
    return math.sqrt(sum((b - a) ** 2 for a, b in zip(values, values[1:])) / (2 * (len(values) - 1)))


def holm_adjusted(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values: with the m p-values sorted, the i-th smallest (i from 1) becomes
    ``max over j <= i of min(1, (m - j + 1) p_(j))``; rejecting where the adjusted value is below alpha keeps
    the family-wise error rate at alpha."""
    m = len(p_values)
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def holm(family: list[dict], lower_is_better: list[bool], size: int | None = None) -> None:
    """Correct a family of :func:`paired_test` results in place: each gains ``p_t_holm`` and
    ``p_sign_flip_holm``, and its ``verdict`` becomes the Holm-corrected t-test's; ``sign_flip_agrees`` says
    whether the corrected sign-flip test reaches the same verdict. ``size`` is the family's number of tests
    where some have not run: each missing one counts as p = 1, so the correction never loosens."""
    tested = [(entry, lower) for entry, lower in zip(family, lower_is_better) if entry["p_t"] is not None]
    missing = [1.0] * max(0, (size or 0) - len(tested))
    for key in ("p_t", "p_sign_flip"):
        for (entry, _), adjusted in zip(tested, holm_adjusted([e[key] for e, _ in tested] + missing)):
            entry[f"{key}_holm"] = adjusted
    for entry, lower in tested:
        entry["verdict"] = direction(entry["mean"], entry["p_t_holm"] < ALPHA, lower)
        entry["sign_flip_agrees"] = (entry["p_sign_flip_holm"] < ALPHA) == (entry["p_t_holm"] < ALPHA)


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
