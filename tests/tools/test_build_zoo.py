"""tools/build_zoo.py on the shipped gesture_cnn and a tiny simulated radar clip dataset (--quick)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "gesture_cnn"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, tiny_radar_clips, build_zoo_tool):
    if not (MODEL / "gesture_cnn.onnx").is_file():
        pytest.skip("models/gesture_cnn is not shipped")
    tmp = tmp_path_factory.mktemp("zoo")
    data = tiny_radar_clips
    models = tmp / "models"
    (models / "gesture_cnn").mkdir(parents=True)
    for name in ("gesture_cnn.onnx", "gesture_cnn.json"):
        shutil.copyfile(MODEL / name, models / "gesture_cnn" / name)
    (models / "gesture_cnn" / "MODEL_CARD.md").write_text("# gesture_cnn\n\nwritten by its engineer\n")
    tool = build_zoo_tool
    opts = tool.ZooOptions(models_dir=models, gesture_data=data, quick=True, bench=False, bench_runs=20)
    reports = tool.build(opts, ["gesture_cnn"])
    return tool, opts, reports[0], models / "gesture_cnn", data


def test_files_and_report(zoo):
    tool, _, rep, d, _ = zoo
    from edgesense.runtime.bench import is_int8_onnx

    assert is_int8_onnx(d / "gesture_cnn_int8.onnx")
    assert (d / "gesture_cnn_int8.tflite").stat().st_size > 0
    saved = json.loads((d / "gesture_cnn_int8.report.json").read_text())
    assert saved["chosen_method"] == rep["chosen_method"]
    assert tool.split_method(rep["chosen_method"])[0] in tool.METHODS
    assert set(tool.METHODS) | {f"qat-{m}" for m in tool.METHODS} >= set(saved["validation"]) - {"float"}
    assert set(tool.METHODS) <= set(saved["validation"]) and any(m.startswith("qat-") for m in saved["validation"])
    assert all(r["dtype"] == "int8" for r in saved["io"])      # full integer, int8 I/O
    assert saved["parameters"] > 1000 and saved["macs"] > saved["parameters"]
    names = [r["model"] for r in saved["test"]]
    lite = saved["litert"]
    assert names[:3] == ["float (ORT)", f"edgesense INT8 {rep['chosen_method']} (ORT)",
                         f"edgesense INT8 {lite['chosen_method']} tflite-int8 (LiteRT)"]
    assert list(tool.shipped_rows(saved)) == names[1:3]
    assert sum(n.startswith("ORT quantize_static") for n in names) == len(tool.PEERS)


def test_litert_artefact_has_its_own_8bit_target_chosen_on_litert_validation(zoo):
    """The .tflite is built for tflite-int8 (8-bit weights, exact on LiteRT), its candidates scored on LiteRT; the
    ONNX keeps ort-cpu's 7-bit weights."""
    import onnx
    from onnx import numpy_helper

    from edgesense.quant.tflite.parity import tflite_interpreter

    tool, _, rep, d, _ = zoo
    lite = rep["litert"]
    assert rep["target"] == "ort-cpu" and lite["target"] == "tflite-int8"
    assert set(tool.METHODS) <= set(lite["validation"]) and lite["chosen_method"] in lite["validation"]
    best = lite["validation"][lite["chosen_method"]]
    assert not any(tool.better_gesture(v, best) for v in lite["validation"].values())
    onnx_w = [numpy_helper.to_array(i) for i in onnx.load(str(d / "gesture_cnn_int8.onnx")).graph.initializer
              if i.name.endswith(".weight_q")]
    assert onnx_w and max(int(np.abs(w).max()) for w in onnx_w) <= 63
    it = tflite_interpreter(d / "gesture_cnn_int8.tflite")
    lite_w = [it.get_tensor(t["index"]) for t in it.get_tensor_details()
              if t["dtype"] == np.int8 and len(t["quantization_parameters"]["scales"]) > 1]
    assert lite_w and max(int(np.abs(w).max()) for w in lite_w) == 127     # per-channel max at the 8-bit limit
    assert rep["targets"]["edgesense_litert_at_least_as_accurate_as_every_peer"] in (True, False)


def test_shipped_rows_of_reports_without_a_litert_target(build_zoo_tool):
    """Reports written before session 6 (the .tflite converted from the ONNX artefact) keep their row names."""
    old = {"chosen_method": "mse-adaround", "target": "ort-cpu"}
    assert build_zoo_tool.shipped_rows(old) == ("edgesense INT8 mse-adaround (ORT)",
                                                "edgesense INT8 mse-adaround (LiteRT)")
    same = {**old, "litert": {"target": "ort-cpu", "chosen_method": "mse-adaround", "validation": None}}
    assert build_zoo_tool.shipped_rows(same) == build_zoo_tool.shipped_rows(old)
    assert build_zoo_tool.ZooOptions(tflite_target=None).litert_target == "ort-cpu"


def test_unknown_tflite_target_is_a_one_line_error(build_zoo_tool, capsys):
    assert build_zoo_tool.main(["--models", "gesture_cnn", "--tflite-target", "bogus", "--no-bench"]) == 2
    assert "unknown target 'bogus'" in capsys.readouterr().err


def test_parity_targets_hold(zoo):
    _, _, rep, _, _ = zoo
    for key in ("litert_vs_ort", "ort_vs_integer_sim", "litert_vs_integer_sim"):
        assert rep["parity"][key]["values"] > 0
        assert rep["parity"][key]["within_1_lsb"] >= 0.999
    assert rep["parity"]["litert_vs_integer_sim"]["values"] == rep["parity"]["ort_vs_integer_sim"]["values"]
    assert rep["targets"]["parity_litert_vs_integer_sim_99.9"] and rep["targets"]["parity_ort_vs_integer_sim_99.9"]


def test_scores_equal_the_gesture_evaluator(zoo):
    """The zoo's clip windows are the pipeline's: its accuracies equal `edgesense eval gesture`'s."""
    _, _, rep, d, data = zoo
    from edgesense.radar.metrics import evaluate_gesture_dataset

    rows = {r["file"]: r for r in rep["test"] if r["file"]}
    for name in ("gesture_cnn.onnx", "gesture_cnn_int8.tflite"):
        ref = evaluate_gesture_dataset(d / name, data, "test")["clips"]
        assert rows[name]["clips"] == ref.n
        assert rows[name]["accuracy"] == pytest.approx(ref.accuracy)


def test_card_section_replaced_not_duplicated(zoo):
    tool, _, rep, d, _ = zoo
    card = d / "MODEL_CARD.md"
    text = card.read_text()
    assert text.startswith("# gesture_cnn\n\nwritten by its engineer\n")
    assert text.count(tool.BEGIN) == 1 and "gesture_cnn_int8.tflite" in text
    tool.write_card(card, tool.card_section({**rep, "chosen_method": rep["chosen_method"]}))
    tool.write_card(card, tool.card_section(rep))
    again = card.read_text()
    assert again.count(tool.BEGIN) == 1 and again.count(tool.END) == 1
    assert again.startswith("# gesture_cnn\n\nwritten by its engineer\n")
    readme = (d.parent / "README.md").read_text()
    assert "[gesture_cnn](gesture_cnn/MODEL_CARD.md)" in readme


def test_block_latency_rows(zoo):
    tool, _, _, d, _ = zoo
    rows = tool.block_latency([d / "gesture_cnn.onnx", d / "gesture_cnn_int8.tflite"], runs=20, frames=1)
    backends = [r["backend"] for r in rows]
    assert backends == ["ORT float", "LiteRT INT8", "LiteRT INT8 (zero-copy I/O)"]
    assert all(np.isfinite(r["median_us"]) and r["p99_us"] >= r["median_us"] > 0 for r in rows)


def test_unknown_model_is_a_clear_error(zoo):
    tool, opts, _, _, _ = zoo
    from edgesense.errors import EdgesenseError

    with pytest.raises(EdgesenseError, match="no shipped model"):
        tool.discover(opts.models_dir, ["nope"])


def test_quantize_command_calibrates_from_a_gesture_dataset(zoo, tmp_path):
    """`edgesense quantize --calib RADAR_DATASET` frames the train split with the gesture pipeline."""
    import argparse

    from edgesense.cli import cmd_quantize

    _, _, _, d, data = zoo
    x = cmd_quantize.gesture_calibration_windows(data, d / "gesture_cnn.onnx", "train", max_windows=16, seed=0)
    assert x.shape[1:] == (3, 64, 40) and 0 < len(x) <= 16
    assert np.all(np.isin(x[:, -1], (0.0, 1.0)))           # the validity channel
    p = argparse.ArgumentParser()
    cmd_quantize.configure(p)
    args = p.parse_args(["--model", str(d / "gesture_cnn.onnx"), "--calib", str(data), "--out", str(tmp_path),
                         "--max-samples", "16", "--json"])
    assert cmd_quantize.run(args) == 0
    rep = json.loads((tmp_path / "gesture_cnn_int8.report.json").read_text())
    assert rep["calibration_samples"] + rep["holdout_samples"] == len(x)
    assert rep["output_sqnr_db"] > 15


def test_refresh_remeasures_without_requantizing_and_refuses_a_changed_float_model(zoo):
    tool, opts, rep, d, _ = zoo
    from edgesense.errors import EdgesenseError

    before = json.loads((d / "gesture_cnn_int8.report.json").read_text())
    tflite = d / "gesture_cnn_int8.tflite"
    stamp = tflite.read_bytes()
    (refreshed,) = tool.build(opts, ["gesture_cnn"], refresh=True)
    after = json.loads((d / "gesture_cnn_int8.report.json").read_text())
    assert tflite.read_bytes() == stamp                          # nothing re-exported
    assert after["test"] == before["test"] and after["parity"] == before["parity"]
    assert after["io"] == tool.io_quantization(tflite) and after["files"]["gesture_cnn_int8.tflite"] == len(stamp)
    assert "refreshed_seconds" in after and refreshed["targets"] == tool.targets(after)
    float_onnx = d / "gesture_cnn.onnx"
    original = float_onnx.read_bytes()
    try:
        float_onnx.write_bytes(original + b"\0")
        with pytest.raises(EdgesenseError, match="changed since"):
            tool.build(opts, ["gesture_cnn"], refresh=True)
    finally:
        float_onnx.write_bytes(original)


@pytest.mark.parametrize("method,stream,expected", [
    ("mse", False, ["--method", "mse"]),
    ("mse-adaround", False, ["--method", "mse", "--adaround", "--adaround-iters", "500"]),
    ("mse-refine", True, ["--method", "mse", "--refine"]),
    ("qat-mse", False, ["--method", "mse", "--qat-steps", "200", "--qat-lr", "0.0001"]),
    ("qat-mse@3e-05", True, ["--method", "mse", "--qat-steps", "200", "--qat-lr", "3e-05"]),
    ("qat-task-minmax", True, ["--method", "minmax", "--qat-steps", "200", "--qat-lr", "0.0001", "--qat-objective",
                               "task"]),
    ("qat-task-mse-adaround@3e-05", False, ["--method", "mse", "--adaround", "--adaround-iters", "500", "--qat-steps",
                                            "200", "--qat-lr", "3e-05", "--qat-objective", "task+float",
                                            "--qat-clips", "1050"]),
])
def test_zoo_methods_map_onto_quantize_options(build_zoo_tool, method, stream, expected):
    """Every zoo method is an `edgesense quantize` command: its options, and the card's reproduce line parses as
    that command with them."""
    import argparse
    import shlex

    from edgesense.cli import cmd_quantize

    tool = build_zoo_tool
    opts = tool.ZooOptions()
    assert tool._method_args(method, opts, stream) == expected
    cmd = tool._command_quantize("m", "excursion" if stream else "gesture", method, opts)
    words = shlex.split(cmd)
    assert words[:2] == ["edgesense", "quantize"] and " ".join(expected) in cmd
    p = argparse.ArgumentParser()
    cmd_quantize.configure(p)
    args = p.parse_args(words[2:])
    cmd_quantize.check_step_flags(args)
    assert args.model == Path("models/m/m.onnx") and (args.stream_block == tool.CALIB_BLOCK) == stream


def test_zoo_step_names_outside_the_cli_order_are_refused(build_zoo_tool):
    from edgesense.errors import EdgesenseError

    assert build_zoo_tool._steps("mse-adaround-refine") == ("mse", ["adaround", "refine"])
    for bad in ("mse-refine-adaround", "mse-adaround-adaround", "mse-bogus"):
        with pytest.raises(EdgesenseError):
            build_zoo_tool._steps(bad)


def test_card_command_rebuilds_the_chosen_int8_model(zoo, tmp_path, capsys):
    """The report's `edgesense quantize` line, run as a command, writes the zoo's chosen INT8 ONNX byte for byte."""
    import shlex

    from edgesense.cli.main import main

    _, _, rep, d, _ = zoo
    words = shlex.split(rep["commands"]["quantize"])
    words[words.index("--model") + 1] = str(d / "gesture_cnn.onnx")
    words[words.index("--out") + 1] = str(tmp_path)
    assert main(words[1:]) == 0
    capsys.readouterr()
    assert (tmp_path / "gesture_cnn_int8.onnx").read_bytes() == (d / "gesture_cnn_int8.onnx").read_bytes()


def test_card_command_rebuilds_the_litert_artefact(zoo, tmp_path, capsys):
    """The report's LiteRT line (`edgesense quantize --target tflite-int8`, then `edgesense export tflite`) writes the
    shipped .tflite byte for byte."""
    import shlex

    from edgesense.cli.main import main

    _, _, rep, d, _ = zoo
    quantize, export = rep["commands"]["quantize_litert"].split(" && ")
    words = shlex.split(quantize)
    assert words[words.index("--target") + 1] == "tflite-int8"
    words[words.index("--model") + 1] = str(d / "gesture_cnn.onnx")
    words[words.index("--out") + 1] = str(tmp_path / "q")
    assert main(words[1:]) == 0
    ex = shlex.split(export)
    assert ex[:3] == ["edgesense", "export", "tflite"]
    assert main(["export", "tflite", str(tmp_path / "q" / "gesture_cnn_int8.onnx"), str(tmp_path / "m.tflite"),
                 *ex[5:]]) == 0
    capsys.readouterr()
    assert (tmp_path / "m.tflite").read_bytes() == (d / "gesture_cnn_int8.tflite").read_bytes()


def _compare_peers():
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    import compare_peers

    return compare_peers


def test_mcnemar_counts_discordant_samples_and_gives_the_exact_p():
    cp = _compare_peers()
    r = cp.mcnemar([1, 1, 0, 0, 1], [1, 0, 1, 1, 1])
    assert (r["only_a"], r["only_b"], r["correct_a"], r["correct_b"]) == (1, 2, 3, 4)
    assert r["p_value"] == pytest.approx(1.0)                     # 2 * (C(3,0) + C(3,1)) / 2^3, capped
    assert cp.mcnemar([0] * 5, [1] * 5)["p_value"] == pytest.approx(2 / 32)
    assert cp.mcnemar([1, 0], [1, 0])["p_value"] == 1.0           # no discordant sample


def test_paired_gesture_agrees_with_the_zoo_scores(zoo):
    """`compare_peers.py --paired` scores the clips the zoo scores: its correct counts are the report's accuracies."""
    _, _, rep, d, data = zoo
    cp = _compare_peers()
    r = cp.paired_gesture(d / "gesture_cnn_int8.tflite", d / "gesture_cnn.onnx", data, "test")
    rows = {x["file"]: x for x in rep["test"] if x["file"]}
    assert r["samples"] == rows["gesture_cnn.onnx"]["clips"]
    assert r["correct_a"] == round(rows["gesture_cnn_int8.tflite"]["accuracy"] * r["samples"])
    assert r["correct_b"] == round(rows["gesture_cnn.onnx"]["accuracy"] * r["samples"])
    assert len(r["disagreements"]) == r["only_a"] + r["only_b"]
    assert all((d_["pred_a"] == d_["label"]) != (d_["pred_b"] == d_["label"]) for d_ in r["disagreements"])


def test_run_bench_asks_for_the_model_table_only(build_zoo_tool, monkeypatch, tmp_path):
    """The card's latency table comes from `edgesense bench --json`'s model rows; the pipeline rows are skipped."""
    import subprocess
    from types import SimpleNamespace

    seen = {}
    row = {"backend": "LiteRT INT8", "path": "m.tflite", "median_us": 1.0, "p99_us": 2.0, "throughput_per_s": 3.0,
           "peak_memory_mb": 4.0, "model": "m"}

    def fake_run(cmd, **kwargs):
        seen["cmd"] = cmd
        return SimpleNamespace(returncode=0, stdout=json.dumps({"results": [row]}), stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    rows = build_zoo_tool.run_bench(tmp_path, 7)
    assert "--no-pipelines" in seen["cmd"] and seen["cmd"][seen["cmd"].index("--runs") + 1] == "7"
    assert rows == [{k: row[k] for k in ("backend", "path", "median_us", "p99_us", "throughput_per_s",
                                        "peak_memory_mb")}]


def test_extra_validation_clips_are_pooled_with_the_validation_split(build_zoo_tool, tiny_radar_clips):
    """``--val-data DIR:all`` adds every clip of another clip set to the validation pool; test data is unchanged."""
    from edgesense.cli.cmd_quantize import gesture_windows

    if not (MODEL / "gesture_cnn.onnx").is_file():
        pytest.skip("models/gesture_cnn is not shipped")
    tool, onnx_path = build_zoo_tool, MODEL / "gesture_cnn.onnx"
    own = tool.GestureTask(onnx_path, tool.ZooOptions(gesture_data=tiny_radar_clips, quick=True))
    pooled = tool.GestureTask(onnx_path, tool.ZooOptions(gesture_data=tiny_radar_clips, quick=True,
                                                         extra_val=((tiny_radar_clips, "all"),)))
    x_all, y_all = gesture_windows(tiny_radar_clips, onnx_path, "all", 10, seed=0)
    assert len(pooled.y_val) == len(own.y_val) + len(y_all) > len(own.y_val)
    np.testing.assert_array_equal(pooled.x_val[len(own.y_val):], x_all)
    np.testing.assert_array_equal(pooled.y_val, np.concatenate([own.y_val, y_all]))
    np.testing.assert_array_equal(pooled.x_test, own.x_test)
    assert pooled.score(onnx_path, "val")["clips"] == len(pooled.y_val)


def test_extra_validation_streams_are_scored_clip_by_clip(build_zoo_tool, tmp_path):
    """Excursion: the extra set's clips of the named split are scored, each stream run from its start."""
    from edgesense.sim.speaker_dataset import write_speaker_dataset

    d = tmp_path / "speaker"
    write_speaker_dataset(d, "ref", "nominal", seconds=3.0, seed=0, clip_s=0.25, show_progress=False)
    tool = build_zoo_tool
    hybrid = ROOT / "models" / "hybrid" / "hybrid.onnx"
    if not hybrid.is_file():
        pytest.skip("models/hybrid is not shipped")
    opts = tool.ZooOptions(excursion_data=d, extra_val=((d, "test"),))
    task = tool.ExcursionTask.__new__(tool.ExcursionTask)     # only the stream selection, no calibration
    task.opts = opts
    own = task._streams("val", 6, every_clip=True)
    extra = task._streams("test", 6, every_clip=True, data=d)
    # one 3 s stream of 12 clips of 0.25 s (12,000 samples at 48 kHz): clips 2 and 8 are val, 5 and 11 test
    assert [spans for _, spans in own] == [[(24000, 36000), (96000, 108000)]]
    assert [spans for _, spans in extra] == [[(60000, 72000), (132000, 144000)]]
    assert len(own[0][0].x) == 108000 and len(extra[0][0].x) == 144000   # run from the start to the last clip
    from edgesense.errors import EdgesenseError

    with pytest.raises(EdgesenseError, match="no speaker streams with clips of split 'tset'"):
        task._streams("tset", 6, data=d)          # a typo in --val-data DIR:SPLIT is an error, not an empty pool


def test_val_data_option(build_zoo_tool, tmp_path, capsys):
    assert build_zoo_tool._val_data(f"{tmp_path}:all") == (tmp_path, "all")
    assert build_zoo_tool._val_data(str(tmp_path)) == (tmp_path, "val")
    with pytest.raises(SystemExit):
        build_zoo_tool.main(["--models", "gesture_cnn", "--val-data", str(tmp_path / "nope")])
    assert "no directory" in capsys.readouterr().err
    opts = build_zoo_tool.ZooOptions(extra_val=((tmp_path, "all"),))
    assert build_zoo_tool._validation_sets("gesture", opts) == [f"{opts.gesture_data}:val", f"{tmp_path}:all"]


def test_onnx_target_option(build_zoo_tool, capsys, tmp_path):
    """--target picks the ONNX artefact's target; the zoo line carries it and the card explains 8-bit weights."""
    tool = build_zoo_tool
    assert tool.main(["--models", "gesture_cnn", "--target", "bogus", "--no-bench"]) == 2
    assert "unknown target 'bogus'" in capsys.readouterr().err
    opts = tool.ZooOptions(target="ort-cpu-w8", qat_steps=0, extra_val=((tmp_path, "all"),))
    assert tool.zoo_command("m", opts) == f"python tools/build_zoo.py --models m --target ort-cpu-w8 --qat-steps 0 " \
                                          f"--val-data {tmp_path}:all"
    assert tool.zoo_command("m", tool.ZooOptions()) == "python tools/build_zoo.py --models m"
    report = {"kind": "gesture", "target": "ort-cpu-w8",
              "litert": {"target": "tflite-int8", "chosen_method": "minmax",
                         "validation": {"minmax": {"accuracy": 0.9, "nll": 0.3}}}}
    text = " ".join(tool._litert_card_lines(report))
    assert "`ort-cpu-w8` (8-bit weights" in text and "session.x64quantprecision=1" in text
    report["target"] = "ort-cpu"
    assert "x86 without VNNI" in " ".join(tool._litert_card_lines(report))


def test_fidelity_to_float_measures_kl_and_top_class_changes(build_zoo_tool):
    p_float = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.4, 0.35, 0.25]])
    same = build_zoo_tool.fidelity_to_float(p_float, p_float)
    assert same["kl_vs_float"] == pytest.approx(0.0, abs=1e-12) and same["flips_vs_float"] == 0
    moved = p_float.copy()
    moved[2] = [0.3, 0.45, 0.25]                         # one clip's top class changes
    near = build_zoo_tool.fidelity_to_float(p_float, moved)
    assert near["flips_vs_float"] == 1 and near["kl_vs_float"] > 0
    far = build_zoo_tool.fidelity_to_float(p_float, np.array([[0.1, 0.8, 0.1], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]))
    assert far["flips_vs_float"] == 3 and far["kl_vs_float"] > near["kl_vs_float"]
    zero = build_zoo_tool.fidelity_to_float(p_float, np.array([[1.0, 0.0, 0.0]] * 3))    # an int8 softmax's 0
    assert np.isfinite(zero["kl_vs_float"])


def test_selection_rules_rank_candidates_differently(build_zoo_tool):
    """``accuracy`` prefers the more accurate candidate; ``fidelity`` the one closer to the float model."""
    accurate = {"accuracy": 0.99, "balanced_accuracy": 0.99, "nll": 0.05, "kl_vs_float": 0.020}
    faithful = {"accuracy": 0.98, "balanced_accuracy": 0.98, "nll": 0.06, "kl_vs_float": 0.004}
    better = build_zoo_tool.better_gesture
    assert better(accurate, faithful, "accuracy") and not better(faithful, accurate, "accuracy")
    assert better(faithful, accurate, "fidelity") and not better(accurate, faithful, "fidelity")
    tie = {**faithful, "accuracy": 0.985}                 # equal KL: the accuracy rule decides
    assert better(tie, faithful, "fidelity")
    with pytest.raises(ValueError, match="unknown selection rule"):
        better(accurate, faithful, "loss")


def test_select_fidelity_reaches_the_card_command_and_rejects_excursion_models(build_zoo_tool, capsys):
    tool = build_zoo_tool
    assert tool.zoo_command("gesture_cnn", tool.ZooOptions(select="fidelity")).endswith(" --select fidelity")
    assert "--select" not in tool.zoo_command("gesture_cnn", tool.ZooOptions())
    if not (ROOT / "models" / "hybrid" / "hybrid.onnx").is_file():
        pytest.skip("models/hybrid is not shipped")
    assert tool.main(["--models", "hybrid", "--select", "fidelity", "--no-bench"]) == 2
    assert "applies to the gesture classifiers only" in capsys.readouterr().err


def test_validation_scores_carry_fidelity_to_the_float_model(build_zoo_tool, tiny_radar_clips):
    """Every validation score has its KL divergence from the float model's probabilities; the float model's own is
    zero, an INT8 model's positive."""
    if not (MODEL / "gesture_cnn_int8.onnx").is_file():
        pytest.skip("models/gesture_cnn is not shipped")
    tool = build_zoo_tool
    task = tool.GestureTask(MODEL / "gesture_cnn.onnx", tool.ZooOptions(gesture_data=tiny_radar_clips, quick=True,
                                                                         select="fidelity"))
    own = task.score(MODEL / "gesture_cnn.onnx", "val")
    assert own["kl_vs_float"] == pytest.approx(0.0, abs=1e-9) and own["flips_vs_float"] == 0
    int8 = task.score(MODEL / "gesture_cnn_int8.onnx", "val")
    assert int8["kl_vs_float"] > 0 and 0 <= int8["flips_vs_float"] <= int8["clips"]
    assert task.better(own, int8)                      # nothing is closer to float than float


def test_amx_packed_twin_is_written_checked_and_labelled(build_zoo_tool, tmp_path):
    """gesture_cnn's .tflite gets an AMX-packed twin (bit-identical outputs, checked); a model the pass leaves
    alone gets none, and a stale twin is removed."""
    from edgesense.cli.cmd_bench import _family
    from edgesense.runtime.bench import backend_label

    lite = MODEL / "gesture_cnn_int8.tflite"
    if not lite.is_file():
        pytest.skip("models/gesture_cnn is not shipped")
    tool = build_zoo_tool
    dst = tmp_path / "gesture_cnn_int8_amx.tflite"
    info = tool.packed_variant(lite, dst, checks=8)
    assert info["file"] == dst.name and info["checked"] == 8 and len(info["packed"]) >= 1
    assert all(p["channels"][1] > p["channels"][0] for p in info["packed"])
    assert dst.stat().st_size > lite.stat().st_size             # the zero weights are stored
    assert backend_label(dst, "litert") == "LiteRT INT8 (AMX-packed)"
    assert backend_label(lite, "litert") == "LiteRT INT8"
    assert _family(dst) == _family(lite) == "gesture_cnn"
    fft = ROOT / "models" / "fftnet" / "fftnet_int8.tflite"
    if fft.is_file():
        stale = tmp_path / "fftnet_int8_amx.tflite"
        stale.write_bytes(b"old")
        assert tool.packed_variant(fft, stale) is None and not stale.exists()


def test_litert_target_counts_the_faster_litert_artefact(build_zoo_tool):
    rows = [{"backend": "ORT float", "median_us": 70.0}, {"backend": "LiteRT INT8", "median_us": 85.0},
            {"backend": "LiteRT INT8 (zero-copy I/O)", "median_us": 83.0},
            {"backend": "LiteRT INT8 (AMX-packed)", "median_us": 30.0},
            {"backend": "LiteRT INT8 (AMX-packed) (zero-copy I/O)", "median_us": 29.0}]
    fast = build_zoo_tool.latency_targets(rows)
    assert fast == {"litert_int8_fastest": True, "litert_int8_zero_copy_fastest": True}
    slow = build_zoo_tool.latency_targets(rows[:3])
    assert slow == {"litert_int8_fastest": False, "litert_int8_zero_copy_fastest": False}
