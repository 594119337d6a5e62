"""Excursion metrics."""

import numpy as np

from edgesense.speaker.metrics import combined_metrics, excursion_metrics, offset_component, zero_predictor

FS = 48_000.0


def _signal():
    t = np.arange(int(FS)) / FS
    return 0.3 * np.sin(2 * np.pi * 500 * t) * (t < 0.5)


def test_perfect_prediction():
    x = _signal()
    m = excursion_metrics(x, x)
    assert m.nrmse == 0 and m.peak_error_mm == 0
    assert m.loud_within_0_02 == 1 and m.within_0_1 == 1 and m.offset_within_0_01 == 1
    assert abs(m.max_abs_x_mm - 0.3) < 1e-3


def test_zero_predictor_figures():
    x = _signal()
    m = excursion_metrics(x, zero_predictor(x))
    assert abs(m.nrmse - np.sqrt(np.mean(x ** 2)) / np.max(np.abs(x))) < 1e-12
    assert m.loud_within_0_02 == 0.0
    # |x| < 0.1 mm on the silent half and near zero crossings: the paper's metric flatters zero
    assert abs(m.within_0_1 - np.mean(np.abs(x) < 0.1)) < 1e-12 and m.within_0_1 > 0.6
    assert abs(m.peak_error_mm - 0.3) < 1e-3


def test_offset_error_is_seen_only_by_the_offset_metric():
    x = _signal()
    m = excursion_metrics(x, x + 0.015)
    assert m.within_0_1 == 1.0 and m.loud_within_0_02 == 1.0
    assert m.offset_within_0_01 < 0.01
    low = offset_component(np.full(4800, 0.2))
    assert np.allclose(low, 0.2)


def test_loud_share_counts_only_loud_samples_and_pools_signals():
    x = _signal()
    pred = x + np.where(np.abs(x) >= 0.1, 0.03, 0.0)
    m = excursion_metrics(x, pred)
    assert m.loud_within_0_02 == 0.0 and m.loud_samples == int(np.sum(np.abs(x) >= 0.1))
    pooled = combined_metrics([(x, x), (x, pred)])
    assert pooled.samples == 2 * len(x) and abs(pooled.loud_within_0_02 - 0.5) < 1e-12
    assert excursion_metrics(x, pred, skip=100).samples == len(x) - 100
