from types import SimpleNamespace as E

import numpy as np
import pytest

from edgesense.radar.metrics import clip_decision_row, clip_metrics, clip_wait_frames, event_metrics, plot_confusion


def test_clip_metrics_balanced_accuracy_and_confusion():
    classes = ["noise", "swipe", "hold"]
    y_true = [0] * 8 + [1, 1] + [2, 2]
    y_pred = [0] * 8 + [1, 0] + [2, 1]
    m = clip_metrics(y_true, y_pred, classes)
    assert m.accuracy == pytest.approx(10 / 12)
    assert m.per_class_recall == {"noise": 1.0, "swipe": 0.5, "hold": 0.5}
    assert m.balanced_accuracy == pytest.approx(2 / 3)
    assert m.confusion == [[8, 0, 0], [1, 1, 0], [0, 1, 1]]


def test_event_metrics_matching_false_triggers_and_latency():
    rate = 40.0
    truth = [E(label="swipe", start=100, end=140), E(label="swipe", start=300, end=340),
             E(label="hold", start=500, end=560), E(label="noise", start=600, end=700)]
    det = [E(label="swipe", onset=141),            # matches, latency 2 frames = 50 ms
           E(label="swipe", onset=342),            # matches second swipe (75 ms)
           E(label="swipe", onset=520),            # wrong class during the hold: false trigger
           E(label="hold", onset=2000)]            # far away: false trigger; the hold is missed
    m = event_metrics([(truth, det, 2400)], rate, tolerance_s=0.25)
    assert (m.true_events, m.detections, m.true_positives) == (3, 4, 2)
    assert m.precision == pytest.approx(0.5) and m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert m.false_triggers == 2 and m.duration_min == pytest.approx(1.0)
    assert m.false_triggers_per_min == pytest.approx(2.0)
    assert sorted(m.latencies) == pytest.approx([0.05, 0.075])
    assert m.latency_s["max"] == pytest.approx(0.075)


def test_one_detection_matches_only_one_event():
    truth = [E(label="swipe", start=10, end=20), E(label="swipe", start=22, end=30)]
    det = [E(label="swipe", onset=21)]
    m = event_metrics([(truth, det, 400)], 40.0, tolerance_s=0.5)
    assert m.true_positives == 1 and m.recall == pytest.approx(0.5)


def test_clip_decision_waits_for_the_next_received_frame_within_the_latency_bound():
    assert clip_wait_frames(0.1, 40.0) == 3          # decided at t + 3 ends 100 ms after the gesture
    assert clip_wait_frames(0.025, 40.0) == 0 and clip_wait_frames(0.0, 40.0) == 0
    assert clip_wait_frames(0.1, 100.0) == 9
    rows = np.array([0, 1, 2, 6, 7, 12])             # frames 3-5 and 8-11 lost
    assert rows[clip_decision_row(rows, 2, 3)] == 2  # t received: t itself, whatever the wait
    assert rows[clip_decision_row(rows, 4, 0)] == 2  # no wait: the last received frame before t
    assert rows[clip_decision_row(rows, 4, 1)] == 2  # the next one (6) is 2 frames late
    assert rows[clip_decision_row(rows, 4, 2)] == 6
    assert rows[clip_decision_row(rows, 8, 3)] == 7  # 12 is 4 frames late: fall back to 7
    assert rows[clip_decision_row(rows, 9, 3)] == 12
    assert rows[clip_decision_row(rows, 13, 3)] == 12   # past the last frame


def test_plot_confusion_writes_png(tmp_path):
    m = clip_metrics([0, 1, 1], [0, 1, 0], ["a", "b"])
    out = plot_confusion(m, tmp_path / "cm.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_spotter_tuning_refuses_the_test_split_and_save_needs_tune(tmp_path, capsys):
    from edgesense.cli.main import main

    from pathlib import Path

    model = str(Path(__file__).resolve().parents[2] / "models" / "gesture_cnn" / "gesture_cnn.onnx")
    assert main(["eval", "gesture", "--data", str(tmp_path), "--model", model, "--split", "test",
                 "--tune-spotter"]) == 2
    assert "refuses the test split" in capsys.readouterr().err
    assert main(["eval", "gesture", "--data", str(tmp_path), "--model", model, "--save-spotter"]) == 2
    assert "--save-spotter needs --tune-spotter" in capsys.readouterr().err


def test_tune_spotter_saves_the_chosen_thresholds_in_the_description(tmp_path, capsys):
    import json
    import shutil
    from pathlib import Path

    import onnx

    from edgesense.cli.main import main
    from edgesense.profiles import load_profile
    from edgesense.sim.radar_dataset import write_stream_dataset

    shipped = Path(__file__).resolve().parents[2] / "models" / "gesture_cnn"
    model = tmp_path / "m" / "gesture_cnn.onnx"
    model.parent.mkdir()
    for suffix in (".onnx", ".json"):
        shutil.copy(shipped / f"gesture_cnn{suffix}", model.with_suffix(suffix))
    side = json.loads(model.with_suffix(".json").read_text())
    side["spotter"] = {"on_threshold": 0.99, "off_threshold": 0.1, "k": 1, "n": 1, "release_frames": 9}
    model.with_suffix(".json").write_text(json.dumps(side))
    write_stream_dataset(tmp_path / "s", load_profile("ad60"), users=1, minutes=0.3, seed=5)
    assert main(["eval", "gesture", "--data", str(tmp_path / "s"), "--split", "all", "--model", str(model),
                 "--tune-spotter", "--save-spotter", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    chosen = out["spotter"]
    assert chosen["k"] >= 2 and chosen["n"] >= chosen["k"] and chosen["off_threshold"] <= chosen["on_threshold"]
    assert 0.0 <= out["scores"]["f1"] <= 1.0 and out["scores"]["events"] > 0
    saved = json.loads(model.with_suffix(".json").read_text())
    assert saved["spotter"] == chosen and saved["metrics"]["spotter_tuning"]["f1"] == out["scores"]["f1"]
    embedded = {e.key: e.value for e in onnx.load(str(model)).metadata_props}["edgesense_gesture_model"]
    assert json.loads(embedded)["spotter"] == chosen
