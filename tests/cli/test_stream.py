"""``edgesense stream --excursion``: the live excursion of a speaker source, from a network or a calibration."""

import json
from pathlib import Path

import pytest

from edgesense.cli.main import main

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.parametrize("model, clipping", [("hybrid/hybrid_int8.tflite", True),
                                             ("speaker_calibration/ref.json", False)])
def test_stream_excursion_reports_the_live_peak_and_cost(capsys, model, clipping):
    path = MODELS / model
    if not path.is_file():
        pytest.skip(f"{path} not shipped")
    assert main(["stream", "--source", "sim://speaker-ref?speed=0", "--excursion", str(path),
                 "--seconds", "1.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    e = out["excursion"]
    assert out["profile"] == "speaker-ref" and e["samples"] % 48 == 0
    assert 0 < e["samples"] <= 48 * out["frames_received"]           # the source may have read ahead
    assert 0.0 < e["excursion_peak_mm"] < 2 * e["xmax_mm"]          # the program moves the cone, within reason
    assert e["peak_share_of_xmax"] == pytest.approx(e["excursion_peak_mm"] / e["xmax_mm"], abs=1e-3)
    assert 0 < e["cpu_us_p50"] <= e["cpu_us_p99"] and e["real_time_factor"] > 0 and e["resets"] == 0
    assert ("clipped_share" in e) == clipping                        # INT8 networks have rails; the estimator none
    if clipping:
        assert 0.0 <= e["clipped_share"] < 1.0
