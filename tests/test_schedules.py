import math

import numpy as np
import pytest
import torch

from kdiff_gc import distances, schedules


def test_curriculum_breakpoints_for_100k_steps():
    # K' = floor(100000 / (log2(floor(1280 / 10)) + 1)) = floor(100000 / 8) = 12500
    total = 100_000
    assert schedules.num_scales(0, total) == 11
    for stage in range(8):
        first, last = stage * 12500, stage * 12500 + 12499
        want = 10 * 2 ** stage + 1
        assert schedules.num_scales(first, total) == want
        assert schedules.num_scales(last, total) == want
    assert schedules.num_scales(total - 1, total) == 1281
    assert schedules.num_scales(10 ** 7, total) == 1281


def test_curriculum_stage_length_takes_log2_without_a_floor_when_s1_over_s0_is_not_a_power_of_two():
    # iCT and the official code: K' = floor(1000 / (log2(floor(200 / 10)) + 1)) = floor(1000 / 5.3219...) =
    # 187; a floor around log2 would give floor(1000 / 5) = 200
    assert math.floor(1000 / (math.log2(20) + 1)) == 187
    assert [schedules.num_scales(k, 1000, 10, 200) for k in (0, 186, 187, 373, 374, 561, 999)] == \
        [11, 11, 21, 21, 41, 81, 201]


def test_grid_is_the_karras_formula_ascending():
    n, lo, hi, rho = 11, 0.002, 80.0, 7.0
    got = schedules.karras_grid(n, lo, hi, rho).numpy()
    want = np.array([(lo ** (1 / rho) + i / (n - 1) * (hi ** (1 / rho) - lo ** (1 / rho))) ** rho
                     for i in range(n)])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[0] == lo and got[-1] == hi
    assert np.all(np.diff(got) > 0)


def test_index_probabilities_against_direct_erf():
    sigmas = schedules.karras_grid(21)
    got = schedules.index_probabilities(sigmas, -1.1, 2.0).numpy()
    s = sigmas.tolist()
    mass = [math.erf((math.log(s[i + 1]) + 1.1) / (math.sqrt(2) * 2.0))
            - math.erf((math.log(s[i]) + 1.1) / (math.sqrt(2) * 2.0)) for i in range(20)]
    np.testing.assert_allclose(got, np.array(mass) / sum(mass), rtol=1e-10)
    assert got.shape == (20,)


def test_index_probabilities_peak_near_exp_p_mean():
    # The lognormal's median exp(-1.1) ~ 0.33: the most likely interval must straddle or border it,
    # which would fail with the known +1.1 sign bug (median ~3.0).
    sigmas = schedules.karras_grid(1281)
    p = schedules.index_probabilities(sigmas)
    density = p / (sigmas[1:].log() - sigmas[:-1].log())
    i = int(density.argmax())
    assert 0.25 < sigmas[i].item() < 0.45


def test_sampled_indices_follow_the_probabilities():
    p = torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64)
    draws = schedules.sample_indices(p, 60_000, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=3).double() / 60_000
    torch.testing.assert_close(freq, p, atol=0.01, rtol=0)


def test_improved_weighting_is_inverse_gap():
    sigmas = torch.tensor([0.002, 0.5, 2.0, 80.0], dtype=torch.float64)
    got = schedules.improved_weighting(sigmas)
    want = torch.tensor([1 / 0.498, 1 / 1.5, 1 / 78.0], dtype=torch.float64)
    torch.testing.assert_close(got, want)
    assert torch.equal(schedules.uniform_weighting(sigmas), torch.ones(3, dtype=torch.float64))


def test_pseudo_huber_constant_for_cifar10():
    # iCT: c = 0.00054 * sqrt(3 * 32 * 32) = 0.0299298 (the paper's "about 0.03")
    assert distances.pseudo_huber_constant(3 * 32 * 32) == pytest.approx(0.0299298, abs=1e-7)


def test_pseudo_huber_is_over_the_whole_sample():
    a = torch.zeros(2, 3, 4, 4)
    b = torch.zeros(2, 3, 4, 4)
    b[0, 0, 0, 0], b[0, 1, 2, 3] = 3.0, 4.0  # ||a - b|| = 5 for the first sample
    c = 0.00054 * math.sqrt(48)
    got = distances.pseudo_huber(a, b)
    assert got[0].item() == pytest.approx(math.sqrt(25 + c * c) - c, rel=1e-6)
    assert got[1].item() == 0.0
    assert distances.pseudo_huber(a, b, c=1.0)[0].item() == pytest.approx(math.sqrt(26) - 1, rel=1e-6)
    assert distances.l2(a, b)[0].item() == 25.0
