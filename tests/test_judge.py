"""The classifier judge: its figures against hand computations, and real digits against noise."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.judge import Judge, confident_share, coverage, dataset_tensors
from kdiff_gc import load_config

DIGITS = Path(__file__).resolve().parents[1] / "configs" / "digits_gc.json"


@pytest.fixture(scope="module")
def judge():
    return Judge.for_config(load_config(DIGITS))


def test_figures_by_hand():
    probabilities = torch.tensor([[0.95, 0.05], [0.5, 0.5], [0.1, 0.9], [0.89, 0.11]])
    assert confident_share(probabilities) == 0.5
    # predicted classes 0, 0, 1, 1 of 10: entropy ln 2, so exp(ln 2) / 10
    assert coverage(torch.tensor([0, 0, 1, 1]), 10) == pytest.approx(0.2)
    assert coverage(torch.tensor([3] * 7), 10) == pytest.approx(0.1)
    assert coverage(torch.arange(10), 10) == pytest.approx(1.0)


def test_judge_tells_real_digits_from_noise_and_from_one_repeated_digit(judge):
    assert judge.accuracy > 0.95
    real = judge.score(judge.held_out)
    assert real["confident"] > 0.85 and real["coverage"] > 0.95 and real["frechet"] < 1
    noise = judge.score(torch.rand(500, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    assert noise["frechet"] > 20 * real["frechet"] and noise["confident"] < real["confident"]
    one_digit = judge.score(judge.held_out[:1].repeat(500, 1, 1, 1))
    assert one_digit["coverage"] == pytest.approx(0.1)  # every sample in one class
    assert one_digit["frechet"] > 10 * real["frechet"]


def test_features_are_the_classifiers_hidden_layer(judge):
    images = judge.held_out[:50]
    # the hidden layer written out, relu(x W1 + b1) on pixels in [0, 1], in float64
    rows = (images.flatten(1).double().numpy() + 1) / 2
    by_hand = np.maximum(rows @ judge.classifier.coefs_[0] + judge.classifier.intercepts_[0], 0)
    assert np.allclose(judge.features(images).numpy(), by_hand, atol=1e-5)  # the pixels are float32
    # and the classifier's own output layer on them gives its probabilities
    logits = by_hand @ judge.classifier.coefs_[1] + judge.classifier.intercepts_[1]
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    assert np.allclose(softmax, judge.classifier.predict_proba(rows.astype(np.float32)), atol=1e-5)


def test_dataset_tensors_are_the_training_images(judge):
    images, labels = dataset_tensors(load_config(DIGITS))
    from sklearn.datasets import load_digits

    raw = load_digits()
    assert images.shape == (1797, 1, 8, 8) and torch.equal(labels, torch.as_tensor(raw.target))
    assert torch.allclose(images[:, 0],
                          torch.as_tensor(np.round(raw.images * 255 / 16) / 255 * 2 - 1).float(), atol=1e-6)
    assert math.isclose(images.min().item(), -1) and math.isclose(images.max().item(), 1)


def test_the_held_out_frechet_and_the_real_floor(judge):
    """The two real halves are as far from each other either way (the distance is symmetric), and a model
    that copied the reference half would score 0 against it and the floor against the held-out half."""
    floor = judge.floor()["frechet"]
    copies = judge.score(judge.reference)
    assert copies["frechet"] == pytest.approx(0, abs=1e-6)
    assert copies["frechet_held_out"] == pytest.approx(floor, rel=1e-6)
    assert judge.score(judge.held_out)["frechet_held_out"] == pytest.approx(0, abs=1e-6)


def test_memorisation_tells_copies_from_unseen_digits(judge):
    copies = judge.memorisation(judge.reference[:500])
    assert copies == {"nearest_ratio": 0.0, "closer_share": 1.0}
    unseen = judge.memorisation(judge.held_out)
    assert unseen["nearest_ratio"] == pytest.approx(1.0)
    assert unseen["closer_share"] == pytest.approx(0.05, abs=0.002)
    # brute force: the nearest reference image of one held-out digit, by looping over all of them
    one = judge.held_out[7]
    assert judge.held_out_nearest[7] == pytest.approx(min(float((one - r).norm()) for r in judge.reference),
                                                      rel=1e-5)


def test_the_reference_half_data_set_holds_exactly_the_judge_s_reference_images(judge):
    from bench.judge import reference_half
    from kdiff_gc.data import make_dataset

    dataset = make_dataset(reference_half(load_config(DIGITS)))
    images = torch.stack([dataset[i][0][0] for i in range(len(dataset))])
    assert torch.equal(images, judge.reference)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core runs BLAS on one thread whatever the limit")
def test_the_judge_does_not_depend_on_the_thread_count(judge):
    """The same judge, fitted and scoring with 1 and with 2 threads (BLAS and torch): the same figures to
    every digit of the classifier and the Frechet distance within a relative 1e-8 (a multi-threaded fit
    moved the real floor by a relative 1e-4)."""
    from threadpoolctl import threadpool_limits

    images = judge.held_out[:200]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with threadpool_limits(limits=2):
            two = Judge.for_config(load_config(DIGITS))
            scores_two = two.score(images)
    finally:
        torch.set_num_threads(before)
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            scores_one = judge.score(images)
    finally:
        torch.set_num_threads(before)
    assert all(np.array_equal(a, b) for a, b in zip(two.classifier.coefs_, judge.classifier.coefs_))
    assert scores_two["confident"] == scores_one["confident"]
    assert scores_two["frechet_held_out"] == pytest.approx(scores_one["frechet_held_out"], rel=1e-8)


def test_frechet_parts_are_the_two_terms_written_out(judge):
    """Both terms by hand in numpy (float64; covariances with n - 1, as k-diffusion's; the trace of
    ``(C1 C2)^(1/2)`` as the sum of the square roots of ``C1 C2``'s eigenvalues, which are real and at
    least 0), and the brightness of images all black and all white."""
    images = judge.held_out[:300] * 0.8 + 0.1  # dimmer strokes on a brighter background: both terms move
    parts = judge.frechet_parts(images)
    mine, real = judge.features(images).numpy(), judge.held_out_features.numpy()
    means = ((mine.mean(0) - real.mean(0)) ** 2).sum()
    c1, c2 = np.cov(mine, rowvar=False), np.cov(real, rowvar=False)
    root_trace = np.sqrt(np.clip(np.linalg.eigvals(c1 @ c2).real, 0, None)).sum()
    covariances = np.trace(c1 + c2) - 2 * root_trace
    assert parts["frechet_held_out_means"] == pytest.approx(means, rel=1e-9)
    assert parts["frechet_held_out_covariances"] == pytest.approx(covariances, rel=1e-4)
    assert judge.frechet_parts(-torch.ones(4, 1, 8, 8))["brightness"] == 0
    assert judge.frechet_parts(torch.ones(4, 1, 8, 8))["brightness"] == 1


def test_a_config_that_trains_on_the_reference_half_gets_the_whole_data_sets_judge(judge):
    """bench/evidence.py's checkpoints store a config whose data set is the reference half; their judge must
    hold out the same images as the data set's own, none of which the generator trained on."""
    from bench.judge import reference_half

    halved = reference_half(load_config(DIGITS))
    assert torch.equal(Judge.for_config(halved).held_out, judge.held_out)
    assert len(judge.held_out) == 1797 - 1797 // 2
    # a checkpoint made in another checkout names its own copy of bench/judge.py
    elsewhere = {**halved, "dataset": {**halved["dataset"], "location": "/elsewhere/kdiff-gc/bench/judge.py"}}
    assert torch.equal(Judge.for_config(elsewhere).held_out, judge.held_out)
