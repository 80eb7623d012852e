"""A cheap, independent judge of digit samples: a small classifier trained on half of the data set.

Inception FID costs about 0.15 s an image on a 2-core CPU, too slow to repeat along many runs, and it
was never trained on 8x8 digits. This judge is scikit-learn's ``MLPClassifier`` (100 hidden units)
fitted on one half of the data (the "reference" half) and checked on the other (the "held-out"
half). For images in [-1, 1] it reports three figures:

- ``confident``: the share of images classified with probability >= 0.9;
- ``coverage``: ``exp(H) / n_classes``, with ``H`` the entropy of the histogram of predicted classes
  (1 when the classes are balanced, 0.1 when every image gets the same class);
- ``frechet``: the Frechet distance between the classifier's hidden features on the images and on the
  reference half (k-diffusion's ``evaluation.fid`` applied to these features);
- ``frechet_held_out``: the same against the held-out half, which neither the classifier nor (in
  bench/evidence.py, whose generators train on the reference half only: :func:`get_dataset`) the
  generator saw. Below the real floor (:meth:`Judge.floor`), ``frechet`` alone would mean copies of the
  reference half; :meth:`Judge.memorisation` looks for them directly.

The command line also splits ``frechet_held_out`` into its two terms (:meth:`Judge.frechet_parts`), so that a
rise can be told apart: the features' average moving (a drift in, say, brightness) or their spread and shape.

On scikit-learn's digits, the held-out half scores 0.91 / 1.00 / 0.38 and uniform noise
0.48 / 0.35 / 41.

    python -m bench.judge runs/digits_gc/digits_gc_00002400.pth          # 1000 1- and 2-step samples
    python -m bench.judge A.pth B.pth -n 2000 --seed 3                   # several checkpoints
"""

import json
import math
import os
from pathlib import Path

os.environ.setdefault("K_DIFFUSION_USE_COMPILE", "0")

import k_diffusion as K
import numpy as np
import torch
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from torch.utils import data

from kdiff_gc.data import make_dataset
from kdiff_gc.sampling import sample_fixed_noise
from bench.report import parser

CONFIDENT = 0.9


def dataset_tensors(config: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of the config's data set as the training program sees them (in [-1, 1], at the model's
    input size), with their labels."""
    dataset = make_dataset(config)
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([item[0][0] for item in items]), torch.tensor([item[1] for item in items])


def halves(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random split of ``range(n)`` into the reference half and the held-out half."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[: n // 2], order[n // 2:]


def fit_classifier(images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> MLPClassifier:
    """scikit-learn's ``MLPClassifier`` (one hidden layer of 100 ReLU units, Adam) on pixels in [0, 1],
    fitted on one BLAS thread: 500 epochs amplify the rounding of a multi-threaded product, so that a judge
    fitted on 2 threads put the real floor a relative 1e-4 away from one fitted on 1."""
    with threadpool_limits(limits=1):
        return MLPClassifier((100,), max_iter=500, random_state=seed).fit(pixels(images), labels.numpy())


def pixels(images: torch.Tensor) -> np.ndarray:
    """Images in [-1, 1] (clamped, as saved images are) as rows of pixels in [0, 1]."""
    return ((images.float().clamp(-1, 1).flatten(1) + 1) / 2).cpu().numpy()


class HiddenFeatures(torch.nn.Module):
    """A fitted classifier's last hidden layer, ``relu(x W + b)`` layer after layer on pixels in [0, 1],
    computed in float64, so that the Frechet distance is the same to a relative 1e-8 whatever the thread
    count."""

    def __init__(self, classifier: MLPClassifier):
        super().__init__()
        layers = zip(classifier.coefs_[:-1], classifier.intercepts_[:-1])
        self.layers = [(torch.from_numpy(w).double(), torch.from_numpy(b).double()) for w, b in layers]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        rows = torch.from_numpy(pixels(images)).double()
        for weights, bias in self.layers:
            rows = (rows @ weights + bias).relu()
        return rows.to(images.device)


def confident_share(probabilities: torch.Tensor) -> float:
    """Share of rows whose largest class probability is at least 0.9."""
    return (probabilities.max(1).values >= CONFIDENT).double().mean().item()


def coverage(predicted: torch.Tensor, classes: int) -> float:
    """``exp(entropy of the predicted-class histogram) / classes``."""
    p = torch.bincount(predicted, minlength=classes).double() / len(predicted)
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return math.exp(entropy.item()) / classes


def nearest_distances(images: torch.Tensor, to: torch.Tensor) -> torch.Tensor:
    """Each image's Euclidean distance, in pixels in [-1, 1], to its nearest image in ``to``."""
    return torch.cdist(images.float().clamp(-1, 1).flatten(1), to.float().flatten(1)).min(1).values


class Judge:
    """The classifier and the reference features of one data set (at the model's input size)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, seed: int = 0):
        reference, held_out = halves(len(images), seed)
        self.classes = int(labels.max()) + 1
        self.classifier = fit_classifier(images[reference], labels[reference], seed)
        self.features = HiddenFeatures(self.classifier)
        self.reference = images[reference]
        self.reference_features = self.features(self.reference)
        self.held_out = images[held_out]
        self.held_out_features = self.features(self.held_out)
        self.accuracy = self.classifier.score(pixels(self.held_out), labels[held_out].numpy())
        # how far a real image that no one trained on lies from its nearest reference image
        self.held_out_nearest = nearest_distances(self.held_out, self.reference)

    @classmethod
    def for_config(cls, config: dict, seed: int = 0) -> "Judge":
        """The judge of the config's whole data set (:func:`whole_data_set`), also where the config trains on
        the reference half: judged on that half's own halves, the held-out quarter would be images the
        generator trained on."""
        return cls(*dataset_tensors(whole_data_set(config)), seed=seed)

    def score(self, images: torch.Tensor) -> dict:
        """``confident``, ``coverage``, ``frechet`` and ``frechet_held_out`` of images in [-1, 1]."""
        with threadpool_limits(limits=1):  # as fitted: a probability near 0.9 must not depend on the threads
            probabilities = torch.from_numpy(self.classifier.predict_proba(pixels(images)))
        features = self.features(images)
        return {"confident": confident_share(probabilities),
                "coverage": coverage(probabilities.argmax(1), self.classes),
                "frechet": K.evaluation.fid(features, self.reference_features).item(),
                "frechet_held_out": K.evaluation.fid(features, self.held_out_features).item()}

    def frechet_parts(self, images: torch.Tensor) -> dict:
        """Where the held-out Frechet distance ``|m - m_h|^2 + tr(C + C_h - 2 (C C_h)^(1/2))`` of images in
        [-1, 1] comes from: ``frechet_held_out_means``, its first term (the features' average has moved),
        ``frechet_held_out_covariances``, the rest (their spread and shape), and ``brightness``, the average
        pixel in [0, 1]."""
        features = self.features(images)
        means = (features.mean(0) - self.held_out_features.mean(0)).pow(2).sum().item()
        total = K.evaluation.fid(features, self.held_out_features).item()
        return {"frechet_held_out_means": means, "frechet_held_out_covariances": total - means,
                "brightness": pixels(images).mean().item()}

    def floor(self) -> dict:
        """What real images score: the held-out half's ``confident`` and ``coverage`` (images the classifier
        was not fitted on), and the Frechet distance between the two real halves, the floor of both Frechet
        figures (the distance is symmetric)."""
        real = self.score(self.held_out)
        return {"confident": real["confident"], "coverage": real["coverage"], "frechet": real["frechet"]}

    def memorisation(self, images: torch.Tensor) -> dict:
        """Each image's distance to its nearest reference image against the held-out half's: ``nearest_ratio``
        is the ratio of their medians (about 1 for a model that generalises, near 0 for one that copies), and
        ``closer_share`` the share of images nearer to a reference image than 95% of held-out images are
        (about 0.05, or less, unless the model copies)."""
        mine = nearest_distances(images, self.reference)
        return {"nearest_ratio": (mine.median() / self.held_out_nearest.median()).item(),
                "closer_share": (mine < self.held_out_nearest.quantile(0.05)).double().mean().item()}


def get_dataset(config: dict, transform=None) -> data.Dataset:
    """The reference half of a data set, as ``dataset.type: custom`` loads it: ``dataset.config`` holds the
    recipe's ``model`` and ``dataset`` sections. A generator trained on it leaves the held-out half unseen,
    as the judge does. (``transform`` is not needed: the data set converts its own images.)"""
    full = make_dataset({"model": config["model"], "dataset": config["dataset"]})
    reference, _ = halves(len(full))
    return data.Subset(full, reference.tolist())


def reference_half(config: dict) -> dict:
    """``config`` with its data set replaced by its reference half (:func:`get_dataset`)."""
    inner = {"model": config["model"], "dataset": config["dataset"]}
    return {**config, "dataset": {"type": "custom", "location": str(Path(__file__).resolve()),
                                  "config": inner}}


def whole_data_set(config: dict) -> dict:
    """The inverse of :func:`reference_half`; other configs as they are. A reference half is known by its
    loader's file name, bench/judge.py, so that a checkpoint made in another checkout is known too."""
    dataset = config["dataset"]
    location = Path(str(dataset.get("location", "")))
    if dataset.get("type") == "custom" and (location.parent.name, location.name) == ("bench", "judge.py"):
        return {**config, "dataset": dataset["config"]["dataset"]}
    return config


@torch.no_grad()
def consistency_samples(model, config: dict, n: int, steps: int, seed: int,
                        batch_size: int = 500) -> torch.Tensor:
    """``n`` samples of ``steps`` consistency steps from ``sigma_max``, with noise from ``seed`` (the same
    noise for 1 and 2 steps); random classes for a class-conditional model."""
    generator = torch.Generator().manual_seed(seed)
    return sample_fixed_noise(model, config, n, [steps], generator, batch_size=batch_size)[0]


def main() -> None:
    from kdiff_gc.inference import load_model

    p = parser(__doc__)
    p.add_argument("checkpoints", nargs="+", type=Path, help="train_gc.py checkpoints or inference files")
    p.add_argument("-n", type=int, default=1000, help="samples per checkpoint and number of steps")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling noise")
    args = p.parse_args()
    if args.n < 2:
        p.error(f"-n {args.n}: the Frechet distance needs at least 2 samples")
    judges = {}
    for path in args.checkpoints:
        model, config = load_model(path)
        key = json.dumps([whole_data_set(config)["dataset"], config["model"]["input_size"]], sort_keys=True)
        if key not in judges:
            judges[key] = Judge.for_config(config)
        judge = judges[key]
        row = {"checkpoint": str(path), "judge_accuracy": round(judge.accuracy, 4)}
        for name, steps in (("held_out", None), ("1step", 1), ("2step", 2)):
            if steps is None:
                images = judge.held_out
            else:
                images = consistency_samples(model, config, args.n, steps, args.seed)
            scores = {**judge.score(images), **judge.frechet_parts(images)}
            row[name] = {k: round(v, 4) for k, v in scores.items()}
        print(json.dumps(row))


if __name__ == "__main__":
    main()
