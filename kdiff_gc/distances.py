"""Per-sample distances between two batches, over the whole flattened sample (iCT, arXiv 2310.14189)."""

import math
from functools import partial

import torch


def pseudo_huber_constant(d: int) -> float:
    """iCT's constant ``c = 0.00054 * sqrt(d)``, with ``d = C*H*W`` the size of one sample
    (docs/algorithm.md §6.1)."""
    return 0.00054 * math.sqrt(d)


def pseudo_huber(a: torch.Tensor, b: torch.Tensor, c: float | None = None) -> torch.Tensor:
    """Pseudo-Huber distance ``sqrt(||a - b||^2 + c^2) - c`` per sample (docs/algorithm.md §6.1).

    ``c`` defaults to :func:`pseudo_huber_constant` of the per-sample size (not per pixel).
    """
    if c is None:
        c = pseudo_huber_constant(a[0].numel())
    sq = (a - b).flatten(1).pow(2).sum(1)
    return torch.sqrt(sq + c ** 2) - c


def l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distance ``||a - b||^2`` per sample (docs/algorithm.md §6.2)."""
    return (a - b).flatten(1).pow(2).sum(1)


DISTANCES = {"pseudo_huber": pseudo_huber, "l2": l2}


def make_distance(kind: str, c: float | None = None):
    """The distance a config's ``consistency.distance`` names (``c`` is pseudo-Huber's; None: iCT's)."""
    return partial(pseudo_huber, c=c) if kind == "pseudo_huber" else DISTANCES[kind]
