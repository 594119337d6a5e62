"""Streaming models (state inputs/outputs through Concat and Slice) quantize with exact int8 state round trips."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
from torch import nn  # noqa: E402

from edgesense.quant import IntegerSim, QuantSim, export_qdq_onnx  # noqa: E402
from edgesense.quant.sim import calibrate_streaming  # noqa: E402
from edgesense.runtime import load_model  # noqa: E402


class TinyStream(nn.Module):
    """x (1, 4, B) and a causal state (1, 6, 2) -> y (1, 2, B), new state: conv1x1-ReLU, cat, dilated conv."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.inp = nn.Conv1d(4, 6, 1)
        self.conv = nn.Conv1d(6, 6, 2, dilation=2)
        self.head = nn.Conv1d(6, 2, 1)

    def forward(self, x, state):
        h = torch.relu(self.inp(x))
        full = torch.cat([state, h], dim=2)
        new_state = full[:, :, -2:]
        return self.head(torch.relu(self.conv(full)) + h), new_state


def _export(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(TinyStream().eval(), (torch.zeros(1, 4, 8), torch.zeros(1, 6, 2)), str(path),
                          input_names=["x", "state0"], output_names=["y", "state0_out"], opset_version=17,
                          dynamo=False, dynamic_axes={"x": {2: "steps"}, "y": {2: "steps"}})
    return path


def test_streaming_model_quantizes_and_matches_integer_simulation(tmp_path):
    sim = QuantSim.from_onnx(_export(tmp_path / "s.onnx"))
    assert sim.io_names == (["x", "state0"], ["y", "state0_out"])
    # the state input shares the grid of the tensor it is concatenated with
    assert sim.grid_of["state0"] is sim.grid_of[[n for n in sim.nodes if n.kind == "concat"][0].inputs[1]]
    rng = np.random.default_rng(0)
    signals = [torch.from_numpy(np.cumsum(rng.standard_normal((1, 4, 96)), -1).astype(np.float32) * 0.2)
               for _ in range(4)]
    calibrate_streaming(sim, signals, block=8)
    graph = sim.eval().lower()
    model = load_model(export_qdq_onnx(sim, tmp_path / "q.onnx", graph))
    assert [s.name for s in model.input_specs] == ["x", "state0"]
    assert model.input_specs[0].shape == (1, 4, None)          # dynamic block length kept
    x = signals[0].numpy()
    state = np.zeros((1, 6, 2), np.float32)
    istate = state.copy()
    diffs = []
    for t0 in range(0, 96, 8):
        blk = x[..., t0:t0 + 8]
        out = model.run({"x": blk, "state0": state})
        codes = IntegerSim(graph).run([blk, istate])
        yc, enc = codes[graph.outputs[0]]
        sc, senc = codes[graph.outputs[1]]
        diffs.append(np.abs(enc.quantize(out["y"]).astype(int) - yc.astype(int)).ravel())
        # the state leaves as int8 codes on the grid it re-enters on: exact round trip
        np.testing.assert_array_equal(senc.quantize(out["state0_out"]), sc)
        assert senc == graph.input_encoding(1) or np.array_equal(senc.scale, graph.input_encoding(1).scale)
        state, istate = out["state0_out"], senc.dequantize(sc)
    d = np.concatenate(diffs)
    assert (d <= 1).mean() >= 0.999


def test_quantize_command_streams_calibration(tmp_path, capsys):
    from edgesense.cli.main import main
    src = _export(tmp_path / "s.onnx")
    rng = np.random.default_rng(1)
    np.save(tmp_path / "sig.npy", (np.cumsum(rng.standard_normal((6, 4, 64)), -1) * 0.2).astype(np.float32))
    rc = main(["quantize", "--model", str(src), "--calib", str(tmp_path / "sig.npy"), "--out", str(tmp_path / "o"),
               "--stream-block", "8", "--json"])
    import json
    summary = json.loads(capsys.readouterr().out)
    assert rc == 0 and summary["output_sqnr_db"] > 20
    assert [s.name for s in load_model(summary["int8_onnx"]).input_specs] == ["x", "state0"]
    rc = main(["quantize", "--model", str(src), "--calib", str(tmp_path / "sig.npy"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "--stream-block" in capsys.readouterr().err


def test_bench_runs_streaming_models_on_every_backend(tmp_path):
    from edgesense.runtime.bench import bench_model
    src = _export(tmp_path / "s.onnx")
    for backend, label in (("torch", "torch float"), ("onnxruntime", "ORT float")):
        r = bench_model(src, backend, runs=10, warmup=1)
        assert r.backend == label and r.median_us > 0
