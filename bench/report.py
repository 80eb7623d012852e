"""Writing benchmark results: a CSV of rows and a PNG of curves with their seed spread."""

import csv
import io
import json
import platform
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kdiff_gc.checkpoint import atomic_write


def machine() -> str:
    """The machine a result came from, for the results page."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads (torch {torch.__version__})"


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
    """Save a PIL image ``factor`` times larger with nearest-neighbour pixels: a grid of 8x8 digits is too small
    to see, and the pixels stay as the model made them."""
    image.resize((image.width * factor, image.height * factor), Image.NEAREST).save(path)


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
