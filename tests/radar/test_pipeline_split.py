"""GesturePipeline on the streaming split of an INT8 .tflite (edgesense.quant.tflite.split) against the whole
graph: identical probabilities on every frame and identical events on a stream with drops and an outage, for the
plain and the row-pair export and the CRNN; batch runs that skip inferences; the fallbacks and their reasons."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from edgesense.radar.pipeline import GesturePipeline
from edgesense.stream.frame import Frame

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def stream(dropped_ad60_stream):
    """A 12 s simulated ad60 stream, 25 % random+bursty drops and one 14-frame outage (padded, spotter reset)."""
    _, received, payloads = dropped_ad60_stream(12.0, seed=11, drop_rate=0.25, mask_seed=4, outage=slice(200, 214))
    return received, payloads


def _row_pair_model(tmp_path: Path) -> Path:
    pytest.importorskip("onnx")
    from edgesense.quant.tflite import export_tflite

    src = MODELS / "gesture_cnn"
    out = export_tflite(src / "gesture_cnn_int8.onnx", tmp_path / "gesture_cnn_int8.tflite", pair_rows=True)
    shutil.copy(src / "gesture_cnn_int8.json", tmp_path / "gesture_cnn_int8.json")
    return out


def _events(pipe):
    return [(e.label, e.start, e.onset, e.end, e.confidence) for e in pipe.finish()]


@pytest.mark.parametrize("which", ["gesture_cnn", "gesture_cnn row pairs", "gesture_crnn"])
def test_split_pipeline_equals_the_whole_graph_on_a_stream_with_drops(stream, tmp_path, which, shipped_int8_tflite):
    path = (_row_pair_model(tmp_path) if which == "gesture_cnn row pairs"
            else shipped_int8_tflite(which.split()[0]))
    received, payloads = stream
    split, whole = GesturePipeline(path), GesturePipeline(path, split=False)
    assert split.split is not None and split.split_reason is None
    assert whole.split is None and whole.split_reason == "split=False"
    for k, payload in zip(received, payloads):
        fr = Frame("radar_cir", int(k), 0, 0.0, payload)
        split.process(fr)
        whole.process(fr)
        np.testing.assert_array_equal(split.model_input, whole.model_input)
        np.testing.assert_array_equal(split.last_probs, whole.last_probs)
    assert split.stats.frames_restored > 20 and split.stats.frames_padded >= 14
    assert _events(split) == _events(whole)


def test_batch_with_sparse_inferences_and_a_reset_between_runs(stream, shipped_int8_tflite):
    """Inference only every 7th frame (columns pile up between calls), twice on one pipeline (reset in between)."""
    path = shipped_int8_tflite("gesture_cnn")
    received, payloads = stream
    seq = received.astype(np.uint32)
    split, whole = GesturePipeline(path), GesturePipeline(path, split=False)
    for start in (0, 3):
        at = range(start, len(seq), 7)
        ev_s, p_s = split.run_batch(payloads, seq, infer_at=at)
        ev_w, p_w = whole.run_batch(payloads, seq, infer_at=at)
        assert np.isfinite(p_s[list(at)]).all()
        np.testing.assert_array_equal(p_s, p_w)
        assert [(e.label, e.start) for e in ev_s] == [(e.label, e.start) for e in ev_w]


def test_models_that_cannot_split_run_whole_with_a_reason(monkeypatch, shipped_int8_tflite):
    onnx_model = MODELS / "gesture_cnn" / "gesture_cnn.onnx"
    if not onnx_model.is_file():
        pytest.skip("gesture_cnn.onnx not shipped")
    pipe = GesturePipeline(onnx_model)
    assert pipe.split is None and "not a LiteRT" in pipe.split_reason
    # a run-time-only install (no flatbuffers / tflite packages): the whole graph, and the reason says so
    monkeypatch.setitem(sys.modules, "edgesense.quant.tflite.split", None)
    pipe = GesturePipeline(shipped_int8_tflite("gesture_cnn"))
    assert pipe.split is None and "flatbuffers and tflite" in pipe.split_reason
    pipe.push_rdi(0, np.zeros(pipe.info.rdi_shape, np.float32))
    assert pipe.last_probs.shape == (len(pipe.info.classes),)


def test_a_split_that_disagrees_with_the_loaded_model_is_not_used(monkeypatch, shipped_int8_tflite):
    """The split is cut from the file; it is checked against the loaded model on probe windows first."""
    from edgesense.quant.tflite import split as split_module

    path = shipped_int8_tflite("gesture_cnn")
    call = split_module.SplitModel.__call__
    monkeypatch.setattr(split_module.SplitModel, "__call__", lambda self, x, new: call(self, x, new) + 1)
    pipe = GesturePipeline(path)
    assert pipe.split is None and "differ from the loaded model" in pipe.split_reason
