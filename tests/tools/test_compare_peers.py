"""tools/compare_peers.py: gesture scoring of several model files on several clip sets and their union."""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "gesture_cnn"


@pytest.fixture(scope="module")
def cp():
    sys.path.insert(0, str(ROOT / "tools"))
    import compare_peers

    return compare_peers


@pytest.fixture(scope="module")
def files():
    if not (MODEL / "gesture_cnn_int8.tflite").is_file():
        pytest.skip("models/gesture_cnn is not shipped")
    return [MODEL / "gesture_cnn_int8.tflite", MODEL / "gesture_cnn.onnx", MODEL / "gesture_cnn_int8.onnx"]


def test_union_pools_every_set_and_agrees_with_paired(cp, files, tiny_radar_clips):
    data = tiny_radar_clips
    r = cp.score_gesture(files, [data, data], ["test", "all"])
    test, every = r["sets"]
    assert (test["split"], every["split"]) == ("test", "all")
    assert every["clips"] == 20 and 0 < test["clips"] < every["clips"]      # 4 users x 5 classes, split by user
    assert r["union"]["clips"] == test["clips"] + every["clips"]
    for k, m in enumerate(r["union"]["models"]):
        assert m["correct"] == test["models"][k]["correct"] + every["models"][k]["correct"]
        assert m["accuracy"] == pytest.approx(m["correct"] / r["union"]["clips"])
    assert "vs_first" not in r["union"]["models"][0]
    for k in (1, 2):       # the first file paired against each other one, as --paired A B pairs them
        p = cp.paired_gesture(files[0], files[k], [data, data], ["test", "all"])
        v = r["union"]["models"][k]["vs_first"]
        assert (v["only_a"], v["only_b"], v["correct_a"], v["correct_b"]) == (
            p["only_a"], p["only_b"], p["correct_a"], p["correct_b"])
        assert len(p["disagreements"]) == p["only_a"] + p["only_b"]


def test_split_count_must_match_the_datasets(cp, tmp_path):
    with pytest.raises(ValueError, match="one split for all datasets or one per dataset"):
        cp._gesture_sets([tmp_path, tmp_path, tmp_path], ["test", "val"])
    assert cp._gesture_sets(tmp_path, "val") == [(tmp_path, "val")]
    assert cp._gesture_sets([tmp_path, tmp_path], ["test"]) == [(tmp_path, "test"), (tmp_path, "test")]


def test_cli_refuses_mismatched_splits(cp, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cp.main(["--score", str(tmp_path / "a.onnx"), "--gesture-data", str(tmp_path), "--gesture-data",
                 str(tmp_path), "--split", "test", "--split", "val", "--split", "all"])
    assert "one --split for every --gesture-data" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_speaker(tmp_path_factory):
    from edgesense.sim.speaker_dataset import write_speaker_dataset

    d = tmp_path_factory.mktemp("speaker")
    write_speaker_dataset(d, "ref", "nominal", seconds=3.0, seed=0, clip_s=0.25, show_progress=False)
    return d          # one 3 s stream of 12 clips; clips 5 and 11 are its test split


def test_excursion_union_pools_the_scored_samples(cp, tiny_speaker):
    hybrid = ROOT / "models" / "hybrid"
    if not (hybrid / "hybrid_int8.onnx").is_file():
        pytest.skip("models/hybrid is not shipped")
    files = [hybrid / "hybrid.onnx", hybrid / "hybrid_int8.onnx"]
    r = cp.score_excursion(files, [(tiny_speaker, "test", False), (tiny_speaker, "test", True)])
    first, every = r["sets"]
    for k in range(2):
        a, b, u = first["models"][k], every["models"][k], r["union"]["models"][k]
        assert (a["scored_seconds"], b["scored_seconds"], u["scored_seconds"]) == pytest.approx((0.25, 0.5, 0.75))
        assert u["streams"] == 2 and a["streams"] == b["streams"] == 1
        # one pool of samples: squared errors add up, the peak error is the larger one
        assert u["rmse_mm"] ** 2 * 3 == pytest.approx(a["rmse_mm"] ** 2 + b["rmse_mm"] ** 2 * 2, rel=1e-4)
        assert u["peak_error_mm"] == pytest.approx(max(a["peak_error_mm"], b["peak_error_mm"]))
        assert 0 < a["nrmse"] < 1
    assert first["models"][0]["rmse_mm"] != first["models"][1]["rmse_mm"]        # float and INT8 both scored
    for k in range(2):         # the union's clips one by one: 1 + 2 clips of 0.25 s, pooling to the union's RMSE
        clip = r["union"]["models"][k]["clip_mse_mm2"]
        assert len(clip) == 3 and sum(clip) / 3 == pytest.approx(r["union"]["models"][k]["rmse_mm"] ** 2, rel=1e-4)
    v = r["union"]["models"][1]["vs_first"]
    assert v["clips"] == 3 and v["lower_a"] + v["lower_b"] == 3


def test_paired_errors_counts_the_clips_each_model_wins(cp):
    r = cp.paired_errors([1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 4.0, 5.0, 5.0])
    assert (r["clips"], r["lower_a"], r["lower_b"]) == (5, 3, 1)
    assert r["sign_p"] == pytest.approx(2 * (1 + 4) / 16)
    assert 0 < r["wilcoxon_p"] <= 1
    assert cp.paired_errors([1.0, 2.0], [1.0, 2.0])["wilcoxon_p"] == 1.0


def test_accuracy_difference_interval(cp):
    """b - a with the paired Wald interval: 2 / 7 discordant of 4,000 (the session-6 / 7 comparison's counts)."""
    a = np.ones(4000, bool)
    b = np.ones(4000, bool)
    a[:7] = False          # only b right on 7
    b[7:9] = False         # only a right on 2
    r = cp.mcnemar(a, b)
    assert r["difference"] == pytest.approx(5 / 4000)
    half = 1.959964 * np.sqrt(9 - 25 / 4000) / 4000
    assert r["difference_ci95"] == pytest.approx([5 / 4000 - half, 5 / 4000 + half])
    assert r["difference_ci95"][0] < 0 < r["difference_ci95"][1]          # a tie the interval cannot break
    same = cp.mcnemar(a, a)
    assert same["difference"] == 0 and same["difference_ci95"] == [0.0, 0.0]


def test_rmse_ratio_interval_covers_the_pooled_ratio(cp):
    rng = np.random.default_rng(1)
    a = rng.uniform(1, 2, 60)
    b = a * 1.2                              # every clip 1.2x the squared error: RMSE ratio sqrt(1.2)
    r = cp.paired_errors(a, b)
    assert r["rmse_ratio"] == pytest.approx(np.sqrt(1.2))
    assert r["rmse_ratio_ci95"] == pytest.approx([np.sqrt(1.2)] * 2)        # no spread: every resample the same
    noisy = cp.paired_errors(a, a * rng.uniform(0.8, 1.3, 60))
    lo, hi = noisy["rmse_ratio_ci95"]
    assert lo < noisy["rmse_ratio"] < hi and hi - lo < 0.2
    w = cp.paired_errors([1.0, 4.0], [2.0, 4.0], weights=[3, 1])            # pooled over samples, not clips
    assert w["rmse_ratio"] == pytest.approx(np.sqrt((3 * 2 + 4) / (3 * 1 + 4)))
