"""Channel-last streaming .tflite (state_layout): no layout operators, same grids, bit-identical numbers."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from tflite_export_helpers import tflite_ops

from edgesense.errors import ModelError
from edgesense.quant.tflite import export_tflite
from edgesense.quant.tflite.flatbuffer import read_model
from edgesense.quant.tflite.parity import tflite_interpreter
from edgesense.quant.tflite.state_layout import (_random_stream_feeds, channel_last_file, channel_last_states,
                                                 check_same_outputs, to_model_layout, to_onnx_layout)

torch = pytest.importorskip("torch")
MODELS = Path(__file__).resolve().parents[3] / "models"
STREAMING = ["hybrid", "fftnet", "convnet"]


def _ncl_export(tmp_path, name, steps=12):
    """The shipped QDQ model exported as before the pass: ONNX (1, C, L) I/O with RESHAPE/TRANSPOSE chains."""
    qdq = MODELS / name / f"{name}_int8.onnx"
    if not qdq.is_file():
        pytest.skip(f"no shipped {name} QDQ model")
    import onnx

    ch = onnx.load(str(qdq)).graph.input[0].type.tensor_type.shape.dim[1].dim_value
    return export_tflite(qdq, tmp_path / f"{name}_ncl_{steps}.tflite", input_shapes={"x": (1, ch, steps)})


def _io(data):
    it = tflite_interpreter(data)
    return ({d["name"]: d for d in it.get_input_details()}, {d["name"]: d for d in it.get_output_details()})


@pytest.mark.parametrize("name", ["hybrid", "convnet"])
def test_pass_drops_every_layout_operator_and_keeps_every_grid(tmp_path, name):
    old = _ncl_export(tmp_path, name).read_bytes()
    new, change = channel_last_states(old, which="all")
    ops_old, ops_new = tflite_ops(old), tflite_ops(new)
    assert "TRANSPOSE" in ops_old and "RESHAPE" in ops_old
    assert "TRANSPOSE" not in ops_new and "RESHAPE" not in ops_new
    assert change.removed_ops == len(ops_old) - len(ops_new) == ops_old.count("TRANSPOSE") + ops_old.count("RESHAPE")
    # every remaining operator's tensors keep their quantization parameters (by name; I/O renamed to the old names)
    fo, fn = read_model(old), read_model(new)
    by_name = {t.name: t for t in fo.tensors}
    for t in fn.tensors:
        if t.quant is not None:
            ref = by_name[t.name].quant
            assert t.quant.same_as(ref) and t.dtype == by_name[t.name].dtype, t.name
    (ins_o, outs_o), (ins_n, outs_n) = _io(old), _io(new)
    assert list(ins_o) == list(ins_n) and list(outs_o) == list(outs_n)
    for a, b in [*zip(ins_o.values(), ins_n.values()), *zip(outs_o.values(), outs_n.values())]:
        assert a["quantization"] == b["quantization"] and a["dtype"] == b["dtype"]
        c, length = a["shape"][1:]
        assert tuple(b["shape"]) == (1, 1, length, c)           # channel last
    # nothing left to do on the result
    again, change2 = channel_last_states(new, which="all")
    assert change2.removed_ops == 0 and again == new


def test_states_only_keeps_x_and_y(tmp_path):
    old = _ncl_export(tmp_path, "convnet").read_bytes()
    new, change = channel_last_states(old)                      # which="states"
    assert set(change.inputs) == {n for n in change.inputs if n.startswith("state")} and "x" not in change.inputs
    assert "y" not in change.outputs and len(change.outputs) == len(change.inputs) > 0
    ins, outs = _io(new)
    assert ins["x"]["shape"].tolist() == [1, 8, 12] and outs["y"]["shape"].tolist() == [1, 4, 12]
    check_same_outputs(old, new, _random_stream_feeds(old, 6, seed=1))


@pytest.mark.parametrize("name", STREAMING)
@pytest.mark.parametrize("steps", [12, 5])
def test_new_graph_outputs_and_states_equal_the_old_bit_for_bit(tmp_path, name, steps):
    """Random int8 signals streamed through both graphs (states fed back), plus arbitrary states, two block
    sizes: y and every state output (re-laid out) identical."""
    old = _ncl_export(tmp_path, name, steps).read_bytes()
    new, _ = channel_last_states(old, which="all")
    for seed in (0, 1):
        n = check_same_outputs(old, new, _random_stream_feeds(old, 8, seed))
        assert n > 8 * 100
    # the check can fail: the largest weight code of the last convolution moved by one towards zero
    fb = read_model(new)
    w = fb.tensors[[op for op in fb.operators if op.options_name == "Conv2DOptions"][-1].inputs[1]]
    codes = np.frombuffer(fb.buffers[w.buffer], np.int8).copy()
    k = int(np.argmax(np.abs(codes.astype(int))))
    codes[k] -= np.sign(codes[k])
    fb.buffers[w.buffer] = codes.tobytes()
    with pytest.raises(ModelError, match="differs"):
        check_same_outputs(old, fb.serialize(), _random_stream_feeds(old, 4, 0))


def test_export_hook_and_file_pass_give_the_same_bytes(tmp_path):
    qdq = MODELS / "hybrid" / "hybrid_int8.onnx"
    if not qdq.is_file():
        pytest.skip("no shipped hybrid QDQ model")
    hooked = export_tflite(qdq, tmp_path / "a.tflite", input_shapes={"x": (1, 12, 12)}, channel_last=True)
    plain = export_tflite(qdq, tmp_path / "b.tflite", input_shapes={"x": (1, 12, 12)})
    change = channel_last_file(plain, tmp_path / "c.tflite", which="all")
    assert change.removed_ops > 30
    assert hooked.read_bytes() == (tmp_path / "c.tflite").read_bytes() != plain.read_bytes()


def test_export_command_channel_last_gives_the_zoo_file(tmp_path, build_zoo_tool):
    """``edgesense export tflite --channel-last`` writes what the zoo ships for a streaming model (the card's
    reproduce line uses it), and the zoo's command line carries the flag for streaming models only."""
    from edgesense.cli.main import main

    qdq = MODELS / "hybrid" / "hybrid_int8.onnx"
    if not qdq.is_file():
        pytest.skip("no shipped hybrid QDQ model")
    hooked = export_tflite(qdq, tmp_path / "a.tflite", input_shapes={"x": (1, 12, 12)}, channel_last=True)
    assert main(["export", "tflite", str(qdq), str(tmp_path / "cli.tflite"), "--input-shape", "x=1,12,12",
                 "--channel-last"]) == 0
    assert (tmp_path / "cli.tflite").read_bytes() == hooked.read_bytes()
    bz = build_zoo_tool
    opts = bz.ZooOptions()
    assert bz._command_export("hybrid", opts, "tflite-int8", {"x": (1, 12, 12)}).endswith(
        "--input-shape x=1,12,12 --channel-last")
    assert "--channel-last" not in bz._command_export("gesture_cnn", opts, "tflite-int8", None)


def test_model_without_layout_chains_is_left_alone():
    path = MODELS / "gesture_cnn" / "gesture_cnn_int8.tflite"
    if not path.is_file():
        pytest.skip("no shipped gesture model")
    data = path.read_bytes()
    new, change = channel_last_states(data)
    assert new == data and change.removed_ops == 0 and not change.inputs
    with pytest.raises(ModelError, match="which"):
        channel_last_states(data, which="some")


def test_layout_helpers_round_trip_and_refuse_other_shapes():
    a = np.arange(2 * 24 * 5, dtype=np.int8)[: 24 * 5].reshape(1, 24, 5)
    m = to_model_layout(a, (1, 1, 5, 24))
    assert m.shape == (1, 1, 5, 24) and m[0, 0, 3, 7] == a[0, 7, 3]
    assert np.array_equal(to_onnx_layout(m), a)
    assert to_model_layout(a, (1, 24, 5)) is a and to_onnx_layout(a) is a
    with pytest.raises(ModelError):
        to_model_layout(a, (1, 1, 24, 5))
    with pytest.raises(ModelError):
        to_onnx_layout(np.zeros((2, 1, 5, 24)))


@pytest.mark.parametrize("name", STREAMING)
def test_shipped_streaming_models_are_channel_last(name):
    """The zoo ships the pass's output: no layout operators, 4-D I/O, and the same numbers as the NCL export."""
    path = MODELS / name / f"{name}_int8.tflite"
    if not path.is_file():
        pytest.skip(f"no shipped {name}")
    ops = tflite_ops(path.read_bytes())
    assert "TRANSPOSE" not in ops and "RESHAPE" not in ops
    ins, outs = _io(path.read_bytes())
    assert all(len(d["shape"]) == 4 for d in [*ins.values(), *outs.values()])


@pytest.mark.parametrize("name", ["hybrid", "fftnet"])
def test_streamer_outputs_equal_with_the_old_and_the_new_file(tmp_path, name):
    """ExcursionStreamer on the NCL export and on the channel-last file: identical excursion, direct path at
    several block sizes and the generic Model.run path at 1 ms blocks."""
    from edgesense.runtime import load_model
    from edgesense.speaker.streaming import ExcursionStreamer, predict_signal

    old = _ncl_export(tmp_path, name)
    (tmp_path / "new").mkdir()
    new = tmp_path / "new" / f"{name}_int8.tflite"
    channel_last_file(old, new, which="all")
    for p in (old, new):
        shutil.copyfile(MODELS / name / f"{name}_int8.json", p.with_suffix(".json"))
    rng = np.random.default_rng(4)
    n = 48 * 120
    v = (2 * rng.standard_normal(n)).astype(np.float32)
    i = (0.1 * v + 0.01 * rng.standard_normal(n)).astype(np.float32)
    track = (0.05 * np.sin(np.arange(n) / 30.0)).astype(np.float32) if name == "hybrid" else None
    mo, mn = load_model(old), load_model(new)
    for direct, blocks in [(True, (48, 4, 100, 13, n)), (False, (48,))]:
        for blk in blocks:
            a, b = ExcursionStreamer(mo, 0.8, direct=direct), ExcursionStreamer(mn, 0.8, direct=direct)
            assert (a._direct is not None) == (b._direct is not None) == direct
            ya = predict_signal(a, v, i, 0.8, track, chunk=blk)
            yb = predict_signal(b, v, i, 0.8, track, chunk=blk)
            assert np.abs(ya).max() > 0 and np.array_equal(ya, yb), (direct, blk)
    s = ExcursionStreamer(mn, 0.8, direct=False)
    with pytest.raises(ModelError, match="frames per call"):
        s.process(v[:40], i[:40], None if track is None else track[:40])


class _TinyStream(torch.nn.Module):
    """x (1, 4, B), state (1, 6, 2) -> y (1, 2, B), new state: conv1x1-ReLU, cat, dilated conv."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.inp = torch.nn.Conv1d(4, 6, 1)
        self.conv = torch.nn.Conv1d(6, 6, 2, dilation=2)
        self.head = torch.nn.Conv1d(6, 2, 1)

    def forward(self, x, state):
        h = torch.relu(self.inp(x))
        full = torch.cat([state, h], dim=2)
        return self.head(torch.relu(self.conv(full)) + h), full[:, :, -2:]


def test_channel_last_file_matches_integer_sim(tmp_path):
    """IntegerSim (XNNPACK Add arithmetic) against LiteRT on the channel-last file, states fed back as codes:
    the parity the zoo reports holds on the new layout (every output within 1 LSB, nearly all exact)."""
    from edgesense.quant import IntegerSim, QuantSim, export_qdq_onnx
    from edgesense.quant.sim import calibrate_streaming

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_TinyStream().eval(), (torch.zeros(1, 4, 8), torch.zeros(1, 6, 2)), str(tmp_path / "s.onnx"),
                          input_names=["x", "state0"], output_names=["y", "state0_out"], opset_version=17,
                          dynamo=False, dynamic_axes={"x": {2: "steps"}, "y": {2: "steps"}})
    sim = QuantSim.from_onnx(tmp_path / "s.onnx")
    rng = np.random.default_rng(0)
    signals = [torch.from_numpy(np.cumsum(rng.standard_normal((1, 4, 96)), -1).astype(np.float32) * 0.2)
               for _ in range(4)]
    calibrate_streaming(sim, signals, block=8)
    graph = sim.eval().lower()
    qdq = export_qdq_onnx(sim, tmp_path / "q.onnx", graph)
    path = export_tflite(qdq, tmp_path / "q.tflite", input_shapes={"x": (1, 4, 8)}, channel_last=True)
    assert "TRANSPOSE" not in tflite_ops(path.read_bytes())
    it = tflite_interpreter(path)
    ins, outs = {d["name"]: d for d in it.get_input_details()}, {d["name"]: d for d in it.get_output_details()}
    isim = IntegerSim(graph, add="xnnpack")
    x = signals[1].numpy()
    senc = graph.input_encoding(1)
    istate = np.zeros((1, 6, 2), np.float32)
    qstate = to_model_layout(senc.quantize(istate), ins["state0"]["shape"])
    diffs = []
    for t0 in range(0, 96, 8):
        blk = x[..., t0:t0 + 8]
        xq = graph.input_encoding(0).quantize(blk)
        it.set_tensor(ins["x"]["index"], to_model_layout(xq, ins["x"]["shape"]))
        it.set_tensor(ins["state0"]["index"], qstate)
        it.invoke()
        codes = isim.run([blk, istate])
        yc, _ = codes[graph.outputs[0]]
        sc, enc = codes[graph.outputs[1]]
        y = to_onnx_layout(it.get_tensor(outs["y"]["index"]))
        s = it.get_tensor(outs["state0_out"]["index"])
        diffs += [np.abs(y.astype(int) - yc.astype(int)).ravel(), np.abs(to_onnx_layout(s).astype(int)
                                                                        - sc.astype(int)).ravel()]
        qstate, istate = s.copy(), enc.dequantize(sc)
    d = np.concatenate(diffs)
    assert d.max() <= 1 and (d == 0).mean() >= 0.99


def test_command_rewrites_in_place_once(tmp_path, capsys):
    from edgesense.quant.tflite.state_layout import main

    path = _ncl_export(tmp_path, "convnet")
    old = path.read_bytes()
    assert main([str(path)]) == 0
    assert path.read_bytes() == channel_last_states(old, which="all")[0] != old
    assert "28 layout operators removed" in capsys.readouterr().out
    assert main([str(path)]) == 0 and "0 layout operators removed" in capsys.readouterr().out
    with pytest.raises(ModelError, match="not found"):
        main([str(tmp_path / "missing.tflite")])
