"""Training on a toy RDI-only dataset: any vocabulary, RDI size and channel count."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgesense.errors import EdgesenseError
from edgesense.nn.train_gesture import (IGNORE, TrainConfig, export_onnx, train_gesture, window_labels)
from edgesense.profiles import RDIProfile
from edgesense.radar.pipeline import GestureModelInfo
from edgesense.radar.metrics import evaluate_gesture_dataset
from edgesense.recording import Dataset, Event, Labels, RecordingWriter, write_dataset_index

PROFILE = RDIProfile(name="toy-rdi", range_bins=10, doppler_bins=6, channels=2, frame_rate=20.0)


def toy_clip(label: str, rng: np.random.Generator, n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """A blob that moves along Doppler ('rise'), along range ('sweep'), or nothing ('idle')."""
    c, d, r = PROFILE.payload_shape
    x = rng.normal(0, 0.3, (n, c, d, r)).astype(np.float32)
    act = np.zeros(n, np.uint8)
    s = int(rng.integers(6, 10))
    e = s + int(rng.integers(10, 14))
    act[s:e] = 1
    for k in range(s, e):
        u = (k - s) / (e - s)
        if label == "rise":
            x[k, :, int(u * (d - 1)), int(rng.integers(2, 4))] += 3.0
        elif label == "sweep":
            x[k, 0, d // 2, int(u * (r - 1))] += 3.0
    return x, act


def make_dataset(root, subjects=6, clips_per_class=6, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for s in range(subjects):
        for label in ("idle", "rise", "sweep"):
            for i in range(clips_per_class):
                x, act = toy_clip(label, rng)
                with RecordingWriter(root / f"u{s}_{label}_{i}.esr", PROFILE,
                                     metadata={"subject": f"u{s}", "session": "s1"}) as w:
                    n = len(x)
                    w.write_batch(np.arange(n, dtype=np.uint32), np.arange(n, dtype=np.int64) * 50_000, x)
                    span = np.flatnonzero(act)
                    events = [] if label == "idle" else [Event(label, int(span[0]), int(span[-1]) + 1)]
                    w.set_labels(Labels(clip_label=label, events=events,   # clips may carry their event
                                        activity=act if label != "idle" else np.zeros(n, np.uint8)))
    return write_dataset_index(root, {"train": 0.5, "val": 0.17, "test": 0.33}, seed=0)


def test_window_labels_zones():
    lab = window_labels(40, [(1, 10, 20)], noise=0, early=2, late=3, guard=2)
    assert list(lab[17:23]) == [1] * 6          # last frame 19: zone 17..22
    assert list(lab[15:17]) == [IGNORE] * 2 and list(lab[23:25]) == [IGNORE] * 2
    assert lab[14] == 0 and lab[25] == 0 and lab[5] == 0


def test_train_export_and_run_on_toy_rdi_dataset(tmp_path):
    make_dataset(tmp_path / "ds")
    cfg = TrainConfig(model="gesture_cnn", frames=16, epochs=12, batch_size=32, lr=1e-2, seed=1,
                      noise_label="idle", drop_variants=1)
    model, result = train_gesture(tmp_path / "ds", cfg)
    info = result.info
    assert info.classes == ("idle", "rise", "sweep")
    assert info.rdi_shape == (2, 6, 10) and info.in_channels == 3 and info.rows == 16
    assert result.test["accuracy"] >= 0.9, result.test
    assert len(result.history) == 12

    path = export_onnx(model, info, tmp_path / "out" / "toy.onnx")
    side = GestureModelInfo.for_model(path)
    assert side == info
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(3, *info.input_shape[1:])).astype(np.float32)
    probs = sess.run(None, {"gesture_map": x})[0]
    with torch.no_grad():
        ref = torch.softmax(model(torch.from_numpy(x)), 1).numpy()
    np.testing.assert_allclose(probs, ref, atol=1e-5)
    assert json.loads(path.with_suffix(".json").read_text())["edgesense_gesture_model"] == 1

    # the run-time pipeline (ONNX Runtime, no torch) agrees with training-time evaluation
    ev = evaluate_gesture_dataset(path, tmp_path / "ds", "test")
    assert "streams" not in ev and ev["clips"].n == len(Dataset.open(tmp_path / "ds").split("test"))
    assert ev["clips"].accuracy == pytest.approx(result.test["accuracy"], abs=0.06)
    dropped = evaluate_gesture_dataset(path, tmp_path / "ds", "test", drop_rate=0.2, seed=1)
    assert dropped["clips"].n == ev["clips"].n


def test_training_is_seeded(tmp_path):
    make_dataset(tmp_path / "ds", subjects=3, clips_per_class=2)
    cfg = TrainConfig(model="gesture_crnn", frames=16, epochs=2, batch_size=16, seed=3, noise_label="idle",
                      drop_variants=1)
    _, a = train_gesture(tmp_path / "ds", cfg)
    _, b = train_gesture(tmp_path / "ds", cfg)
    assert a.history == b.history


def test_dropped_variant_windows_equal_what_the_pipeline_sees():
    """Augmentation reproduces the live pipeline: restored short gaps, padded long ones, validity flags."""
    from edgesense.nn.train_gesture import PreparedRecording, _Windows, dropped_variant
    from edgesense.radar.pipeline import GesturePipeline, make_rdi_processor

    rng = np.random.default_rng(4)
    n, t = 60, 24
    x = rng.normal(0, 1, (n, *PROFILE.payload_shape)).astype(np.float32)
    lost = np.zeros(n, bool)
    lost[[5, 6, 20, 33]] = True
    lost[40:52] = True                      # 12 frames: longer than max_restore, padded
    info = GestureModelInfo(name="toy", classes=("idle", "rise"), frames=t, rdi_shape=PROFILE.payload_shape,
                            mean=(0.1, -0.2), std=(1.5, 0.7), frame_rate_hz=PROFILE.frame_rate, profile=PROFILE.to_dict())
    prof, valid, padded = dropped_variant(make_rdi_processor(PROFILE), x, lost, max_restore=8)
    assert padded.sum() == 12 and valid.sum() == n - 16
    prep = PreparedRecording(None, [prof, prof], [valid, valid], [], None, [None, padded])
    windows = _Windows([prep], info)

    class Recorder:
        def run(self, inp):
            return np.array([[1.0, 0.0]], np.float32)

    pipe = GesturePipeline(Recorder(), info=info, max_restore=8)
    for i in np.flatnonzero(~lost):
        pipe.push_rdi(int(i), x[i], infer=False)
        got = windows.batch(np.array([0]), np.array([1]), np.array([i]))[0]
        np.testing.assert_allclose(got, pipe._x[0], atol=1e-6, err_msg=f"frame {i}")
    assert pipe.stats.frames_padded == 12


def test_fine_tuning_starts_from_the_given_weights_and_keeps_normalisation(tmp_path):
    make_dataset(tmp_path / "ds", subjects=3, clips_per_class=2)
    cfg = TrainConfig(model="gesture_cnn", frames=16, epochs=1, batch_size=16, seed=3, noise_label="idle",
                      drop_variants=1)
    model, first = train_gesture(tmp_path / "ds", cfg)
    export_onnx(model, first.info, tmp_path / "m" / "m.onnx")
    torch.save(model.state_dict(), tmp_path / "m" / "m.pt")
    tuned_cfg = TrainConfig(**{**cfg.__dict__, "init": str(tmp_path / "m" / "m.pt"), "lr": 1e-9, "seed": 5,
                               "val_drop_rate": 0.2})
    tuned, second = train_gesture(tmp_path / "ds", tuned_cfg)
    assert second.info.mean == first.info.mean and second.info.std == first.info.std
    assert "val_acc_dropped" in second.history[0]
    for k, v in model.state_dict().items():     # lr ~ 0: the weights are the initial ones (BN stats may move)
        if "running" not in k and "num_batches" not in k:
            torch.testing.assert_close(tuned.state_dict()[k], v, atol=1e-5, rtol=0)
    side = tmp_path / "m" / "m.json"             # a model of other classes is refused
    side.write_text(side.read_text().replace('"sweep"', '"other"'))
    with pytest.raises(EdgesenseError, match="classes"):
        train_gesture(tmp_path / "ds", tuned_cfg)


def test_validation_gets_several_dropped_copies_at_the_fixed_rate(tmp_path):
    from edgesense.nn.train_gesture import prepare_recordings

    make_dataset(tmp_path / "ds", subjects=2, clips_per_class=1)
    ds = Dataset.open(tmp_path / "ds")
    cfg = TrainConfig(model="gesture_cnn", frames=16, noise_label="idle", val_drop_variants=3)
    preps = prepare_recordings([(ds, e) for e in ds.entries], ["idle", "rise", "sweep"], cfg,
                               np.random.default_rng(0), augment=True, desc="val", fixed_rate=0.3)
    lost = 0
    for p in preps:
        assert len(p.profiles) == 4 and len(p.valid) == 4
        assert p.valid[0].all()                                    # variant 0 is clean
        masks = {tuple(v.astype(bool)) for v in p.valid[1:]}
        assert len(masks) >= 2                                     # different loss patterns
        lost += sum(int((v == 0).sum()) for v in p.valid[1:])
    share = lost / sum(3 * p.n for p in preps)
    assert 0.15 < share < 0.45


def test_near_negatives_are_drawn_from_windows_holding_part_of_a_gesture():
    from types import SimpleNamespace

    from edgesense.nn.train_gesture import _near_gesture, _sample_epoch

    gestures = [(1, 100, 130)]
    assert list(_near_gesture(np.array([99, 100, 129, 150, 168, 169, 300]), gestures, 40)) == [100, 129, 150, 168]
    n = 400
    lab = window_labels(n, gestures, noise=0, early=3, late=6, guard=4)
    near = set(range(100, 169)) - set(np.flatnonzero(lab != 0))
    prep = SimpleNamespace(gestures=gestures, profiles=[None])
    for share, lo, hi in ((0.0, 0, 6), (1.0, 19, 20)):
        cfg = TrainConfig(frames=40, negatives_per_positive=2.0, near_negatives=share)
        got = []
        for seed in range(20):
            _, _, ends, ys = _sample_epoch([prep], [lab], cfg, 0, np.random.default_rng(seed))
            neg = ends[ys == 0]
            assert len(neg) == 2 * int((ys != 0).sum())     # 2 negatives per positive either way
            got.append(sum(int(e) in near for e in neg))
        assert lo <= np.mean(got) <= hi, (share, np.mean(got))


def test_teacher_sees_its_own_input_scaling_and_distillation_trains(tmp_path):
    from dataclasses import replace

    from edgesense.nn.train_gesture import _teacher
    from edgesense.radar.pipeline import gesture_map

    make_dataset(tmp_path / "ds", subjects=3, clips_per_class=2)
    cfg = TrainConfig(model="gesture_cnn", frames=16, epochs=1, batch_size=16, seed=3, noise_label="idle",
                      drop_variants=1)
    model, res = train_gesture(tmp_path / "ds", cfg)
    teacher_path = export_onnx(model, res.info, tmp_path / "t" / "t.onnx")
    student = replace(res.info, mean=tuple(m + 0.3 for m in res.info.mean), std=tuple(2 * s for s in res.info.std))
    rng = np.random.default_rng(0)
    prof = rng.normal(0, 1, (3, 16, 2, 16)).astype(np.float32)
    valid = np.ones((3, 16), np.float32)
    valid[:, 4] = 0
    run = _teacher(str(teacher_path), student)
    want = ort.InferenceSession(str(teacher_path)).run(None, {"gesture_map": gesture_map(prof, valid, res.info)})[0]
    np.testing.assert_allclose(run(gesture_map(prof, valid, student)), want, atol=1e-5)
    assert not np.allclose(gesture_map(prof, valid, student), gesture_map(prof, valid, res.info))
    _, distilled = train_gesture(tmp_path / "ds", TrainConfig(**{**cfg.__dict__, "teacher": str(teacher_path),
                                                                 "distill_weight": 1.0, "seed": 4}))
    assert distilled.history and np.isfinite(distilled.history[0]["loss"])
    side = tmp_path / "t" / "t.json"              # a teacher of other classes is refused
    side.write_text(side.read_text().replace('"sweep"', '"other"'))
    with pytest.raises(EdgesenseError, match="teacher"):
        _teacher(str(teacher_path), student)
