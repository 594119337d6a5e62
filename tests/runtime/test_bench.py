import json

import numpy as np
import pytest

pytest.importorskip("onnx")
tiny = pytest.importorskip("tiny_models")

from edgesense.errors import EdgesenseError  # noqa: E402
from edgesense.runtime.bench import (bench_isolated, bench_model, describe_machine, is_int8_onnx,  # noqa: E402
                                     machine_info)


def test_bench_model_reports_sane_numbers(tmp_path):
    tiny.onnx_affine(tmp_path / "m.onnx")
    r = bench_model(tmp_path / "m.onnx", "onnxruntime", runs=50, warmup=5)
    assert r.backend == "ORT float" and r.runs == 50 and r.threads == 1
    assert 0 < r.median_us <= r.p99_us
    # throughput = 1 / mean time; at least half the runs take >= the median, so mean >= median / 2 whatever
    # the machine's load (a timing-free bound: a unit slip, per-µs or per-run, breaks it)
    assert 0 < r.throughput_per_s <= 2e6 / r.median_us
    # p99 of 50 runs interpolates the two largest (0.49·t[48] + 0.51·t[49]), so max < 2·p99 and mean < 2·p99
    assert r.throughput_per_s >= 1e6 / (2 * r.p99_us)
    assert not is_int8_onnx(tmp_path / "m.onnx")
    with pytest.raises(EdgesenseError):
        bench_model(tmp_path / "m.onnx", "tensorrt")


def test_bench_litert_isolated_has_memory_figure(tmp_path):
    pytest.importorskip("tflite")
    tiny.tflite_add(tmp_path / "a.tflite", (1, 8), np.ones((1, 8), np.float32), int8=True)
    r = bench_isolated(tmp_path / "a.tflite", "litert", runs=30, warmup=3)
    assert r.backend == "LiteRT INT8" and r.peak_memory_mb is not None and r.peak_memory_mb >= 0
    assert r.median_us > 0


def test_bench_command_side_by_side(tmp_path, capsys):
    pytest.importorskip("tflite")
    from edgesense.cli.main import main
    d = tmp_path / "models" / "toy"
    d.mkdir(parents=True)
    tiny.onnx_affine(d / "toy_float.onnx")
    tiny.tflite_add(d / "toy_int8.tflite", (1, 4), np.ones((1, 4), np.float32), int8=True)
    rc = main(["bench", str(d), "--runs", "20", "--warmup", "2", "--no-torch", "--no-isolate", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and not out["failures"]
    assert sorted(r["backend"] for r in out["results"]) == ["LiteRT INT8", "ORT float"]
    assert {r["model"] for r in out["results"]} == {"toy"}
    rc = main(["bench", str(tmp_path / "nothing-here")])
    assert rc == 2 and "not a model directory" in capsys.readouterr().err


def test_one_cpu_pins_and_restores():
    import os

    from edgesense.runtime.bench import one_cpu

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this OS")
    before = os.sched_getaffinity(0)
    with one_cpu() as cpu:
        assert cpu == min(before) and os.sched_getaffinity(0) == {cpu}
    assert os.sched_getaffinity(0) == before


def test_machine_info_names_the_cpu_its_kernel_features_and_runtimes():
    """Latency rankings differ between CPUs (AVX2 against AVX-512 VNNI): every benchmark says where it ran."""
    import onnxruntime

    from edgesense.runtime import bench

    info = machine_info()
    assert info["cpu"] and info["logical_cpus"] >= 1
    assert set(info["isa"]) <= set(bench._ISA_FLAGS)
    assert info["onnxruntime"] == onnxruntime.__version__
    line = describe_machine({"cpu": "Some CPU", "logical_cpus": 2, "isa": ["avx2", "avx512_vnni"],
                             "onnxruntime": "1.0", "ai-edge-litert": "2.0"})
    assert line == "Some CPU, 2 logical CPUs (avx2, avx512_vnni); onnxruntime 1.0, ai-edge-litert 2.0"
    assert describe_machine({"cpu": "arm", "logical_cpus": 4, "isa": []}) == "arm, 4 logical CPUs"
