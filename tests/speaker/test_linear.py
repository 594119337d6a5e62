"""Current-driven linear excursion model X/I with datasheet parameters."""

import numpy as np
import pytest

from edgesense.errors import ProfileError
from edgesense.profiles import SpeakerParams
from edgesense.sim.speaker import simulate
from edgesense.sim.speaker_params import Nonlinearity, named_speaker
from edgesense.speaker.linear import LinearExcursion, predict_linear

FS = 48_000.0
REF = named_speaker("ref")


def test_streaming_equals_whole_signal_for_any_blocks():
    i = np.random.default_rng(0).standard_normal(5000) * 0.2
    whole = predict_linear(i, REF.true_params())
    model = LinearExcursion(REF.true_params())
    rng = np.random.default_rng(1)
    parts, pos = [], 0
    while pos < len(i):
        n = int(rng.integers(1, 300))
        parts.append(model.process(i[pos:pos + n]))
        pos += n
    assert np.array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("f", [50.0, 800.0, 1500.0])
def test_frequency_response_matches_x_over_i(f):
    t = np.arange(int(0.2 * FS)) / FS
    x = predict_linear(np.sin(2 * np.pi * f * t), REF.true_params())
    s = 2j * np.pi * f
    expected = abs(REF.bl / (REF.mms * s * s + REF.rms * s + REF.kms)) * 1e3
    # bilinear frequency warping (0.6 % at 1.5 kHz) plus peak picking on the sample grid
    assert abs(np.max(np.abs(x[-2400:])) / expected - 1) < 0.015


def test_predicts_a_linear_simulated_speaker_from_its_current():
    sp = REF.replace(nonlinearity=Nonlinearity())
    u = np.random.default_rng(2).standard_normal(int(0.5 * FS)) * 0.5
    res = simulate([sp], u[None], thermal=False)
    x_hat = predict_linear(res.i[0], sp.true_params())
    x = res.x[0] * 1e3
    assert np.sqrt(np.mean((x_hat - x) ** 2)) < 0.01 * np.max(np.abs(x))


def test_missing_datasheet_values_are_a_profile_error():
    with pytest.raises(ProfileError):
        LinearExcursion(SpeakerParams(bl=1.0))
