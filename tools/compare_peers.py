"""Quantize the same float ONNX models with edgesense and with onnxruntime's ``quantize_static``; compare INT8 metrics.

Every INT8 model is run on onnxruntime (CPU, one thread) over the same evaluation inputs and scored
against the labels (classification accuracy, or NRMSE for regression targets) and against the float
model (output SQNR; argmax agreement for classifiers). Peers (reference quantization.md §2.1):
``quantize_static`` with ``QuantFormat.QDQ``, ``QuantType.QInt8`` activations and weights, per-channel,
calibration ``MinMax``, ``Entropy`` and ``Percentile`` (99.999), each with and without ``reduce_range``
(ORT's advice for x86 without VNNI). All options are passed explicitly because ORT's defaults changed
across releases. The optional aimet-onnx peer runs in its own environment: ``tools/peer_aimet.py`` (and
``tools/build_zoo.py``, which adds its rows where that environment exists).

    python tools/compare_peers.py --model M_float.onnx --calib calib.npy --eval x.npy [--labels y.npy] [--json]
    python tools/compare_peers.py --examples            # the committed example models with random data
    python tools/compare_peers.py --paired A.tflite B.onnx --gesture-data /work/data/radar-clips [--split val]
    python tools/compare_peers.py --score A.onnx B.onnx C.tflite --gesture-data /work/data/radar-clips --split test \
        --gesture-data /work/data/radar-clips-eval --split all   # each set, their union; A paired with each other
    python tools/compare_peers.py --excursion-score A.onnx B.onnx --excursion-set /work/data/speaker/known:test:first \
        --excursion-set /work/data/speaker/known_extra:test:every   # build_zoo's scoring per set and pooled
    python tools/compare_peers.py --model models/gesture_cnn/gesture_cnn.onnx --gesture-data /work/data/radar-clips \
        --gesture-calib calib.npy                       # the zoo's calibration windows, for tools/peer_aimet.py
    python tools/compare_peers.py --model models/fftnet/fftnet.onnx --excursion-dataset /work/data/speaker/known \
        --out /tmp/peers && edgesense eval excursion --data /work/data/speaker/known --model ... (each written file)

``--labels``: int labels (N,) -> accuracy; float targets shaped like the output -> NRMSE.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _ort_quantize(src: Path, dst: Path, calib: np.ndarray, method: str, reduce_range: bool) -> Path:
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    ins = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()
    name = ins[0].name
    # a streaming model's state inputs are fed zeros (ORT's reader cannot feed outputs back)
    zeros = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32) for i in ins[1:]}
    step = 32 if not zeros else 1

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{name: calib[i:i + step], **zeros} for i in range(0, len(calib), step)])

        def get_next(self):
            return next(self.it, None)

    extra = {"CalibPercentile": 99.999} if method == "Percentile" else {}
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=reduce_range, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, method), extra_options=extra)
    return dst


def _edgesense_quantize(src: Path, dst: Path, calib: np.ndarray, method: str, target: str,
                        weight_method: str = "minmax", stream_block: int = 12) -> Path:
    import torch

    from edgesense.quant import AnalyzerConfig, QuantConfig, QuantSim, calibrate, export_qdq_onnx
    from edgesense.quant.sim import calibrate_streaming

    sim = QuantSim.from_onnx(src, target, QuantConfig(activations=AnalyzerConfig(method),
                                                      weights=AnalyzerConfig(weight_method)))
    if len(sim.input_shapes) > 1:     # streaming: whole signals, fed back block by block
        calibrate_streaming(sim, [s[None] for s in torch.from_numpy(calib)], stream_block)
    else:
        calibrate(sim, torch.from_numpy(calib).split(64))
    export_qdq_onnx(sim, dst)
    return dst


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    from edgesense.runtime import load_model
    m = load_model(path, threads=1, warmup=0)
    return np.concatenate([m.run(x[i:i + 256]) for i in range(0, len(x), 256)])


def _metrics(y: np.ndarray, y_float: np.ndarray, labels: np.ndarray | None) -> dict:
    out = {"sqnr_vs_float_db": float(10 * np.log10(np.sum(y_float.astype(np.float64) ** 2)
                                                   / max(np.sum((y_float - y).astype(np.float64) ** 2), 1e-30)))}
    classifier = y.ndim == 2 and y.shape[1] > 1
    if classifier:
        out["argmax_agreement"] = float((y.argmax(1) == y_float.argmax(1)).mean())
    if labels is not None:
        if labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
            out["accuracy"] = float((y.argmax(1) == labels).mean())
        else:
            out["nrmse"] = float(np.sqrt(np.mean((y - labels) ** 2)) / max(np.std(labels), 1e-12))
    return out


def quantize_all(model: Path, calib: np.ndarray, out: Path, targets: tuple[str, ...] = ("ort-cpu", "ort-vnni"),
                 ) -> list[Path]:
    """Write every edgesense and ORT INT8 variant of ``model`` into ``out`` (for task-specific scoring,
    e.g. ``edgesense eval excursion --model ...`` for streaming excursion models); returns the paths."""
    import shutil
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    sidecar = model.with_suffix(".json")
    for target in targets:
        for method in ("minmax", "percentile", "mse"):
            paths.append(_edgesense_quantize(model, out / f"{model.stem}_es_{method}_{target}.onnx", calib, method,
                                             target))
    for method in ("MinMax", "Entropy", "Percentile"):
        for rr in (False, True):
            try:
                paths.append(_ort_quantize(model, out / f"{model.stem}_ort_{method}{'_rr' if rr else ''}.onnx",
                                           calib, method, rr))
            except Exception as exc:  # a peer failing is a result
                print(f"ORT {method} reduce_range={rr}: {str(exc).splitlines()[0][:200]}", file=sys.stderr)
    if sidecar.is_file():
        for p in paths:
            shutil.copyfile(sidecar, p.with_suffix(".json"))
    return paths


def compare(model: Path, calib: np.ndarray, x: np.ndarray, labels: np.ndarray | None,
            targets: tuple[str, ...] = ("ort-cpu", "ort-vnni")) -> list[dict]:
    """Rows: float, edgesense {minmax, percentile, mse}, ORT {MinMax, Entropy, Percentile} x reduce_range."""
    rows = []
    y_float = _run(model, x)
    float_row = _metrics(y_float, y_float, labels)
    float_row.pop("sqnr_vs_float_db")
    rows.append({"quantizer": "float", **float_row, "seconds": 0.0})
    with tempfile.TemporaryDirectory() as tmp:
        for target in targets:
            for method, wmethod in (("minmax", "minmax"), ("percentile", "minmax"), ("mse", "minmax"), ("mse", "mse")):
                t0 = time.time()
                q = _edgesense_quantize(model, Path(tmp) / f"es_{method}_{wmethod}_{target}.onnx", calib, method,
                                        target, wmethod)
                label = f"edgesense {method}" + (" + mse weights" if wmethod == "mse" else "") + f" ({target})"
                rows.append({"quantizer": label, **_metrics(_run(q, x), y_float, labels), "seconds": time.time() - t0})
        for method in ("MinMax", "Entropy", "Percentile"):
            for rr in (False, True):
                t0 = time.time()
                try:
                    q = _ort_quantize(model, Path(tmp) / f"ort_{method}_{rr}.onnx", calib, method, rr)
                    m = _metrics(_run(q, x), y_float, labels)
                except Exception as exc:  # a peer failing is a result, not a crash
                    m = {"error": str(exc).splitlines()[0][:200]}
                rows.append({"quantizer": f"ort quantize_static {method}" + (" reduce_range" if rr else ""), **m,
                             "seconds": time.time() - t0})
    return rows


def mcnemar(correct_a, correct_b) -> dict:
    """Paired comparison of two classifiers on the same samples: how many only ``a`` / only ``b`` gets right, the
    exact two-sided McNemar p-value (binomial test on those discordant samples, p = 1/2), and the accuracy difference
    ``b - a`` with its 95 % Wald interval for paired proportions (how large the true gap can plausibly be)."""
    from math import comb, sqrt

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n, k = only_a + only_b, min(only_a, only_b)
    p = min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0
    size = max(int(a.size), 1)
    diff = (only_b - only_a) / size
    half = 1.959964 * sqrt(max(n - (only_b - only_a) ** 2 / size, 0.0)) / size
    return {"samples": int(a.size), "correct_a": int(a.sum()), "correct_b": int(b.sum()), "only_a": only_a,
            "only_b": only_b, "p_value": float(p), "difference": float(diff),
            "difference_ci95": [float(diff - half), float(diff + half)]}


def _gesture_sets(data, split) -> list[tuple[Path, str]]:
    """``(dataset, split)`` pairs from one or several datasets and one split for all or one split per dataset."""
    data = [data] if isinstance(data, (str, Path)) else list(data)
    split = [split] if isinstance(split, str) else list(split)
    if len(split) == 1:
        split = split * len(data)
    if not data or len(split) != len(data):
        raise ValueError(f"give one split for all datasets or one per dataset ({len(data)} datasets, "
                         f"{len(split)} splits)")
    return [(Path(d), s) for d, s in zip(data, split)]


def score_gesture(models: list[Path], data, split="test", seed: int = 0) -> dict:
    """Clip accuracy of several gesture model files on one or several (dataset, split) sets and on their union
    (the clips of every set together, in order), with the exact McNemar test of the first model against each other
    one; ``wrong`` lists the indices of the clips a model gets wrong, for other pairings.

    The windows of every set are built once, with the first model's description (``edgesense eval gesture``'s
    classified window per clip), so every model sees the same inputs."""
    from edgesense.cli.cmd_quantize import gesture_windows

    sets = _gesture_sets(data, split)
    per_set, correct = [], [[] for _ in models]
    for d, s in sets:
        x, y = gesture_windows(d, models[0], s, None, seed=seed)
        ok = [_run_batched(m, x).argmax(1) == y for m in models]
        for k, o in enumerate(ok):
            correct[k].append(o)
        per_set.append(_score_rows(models, ok, {"data": str(d), "split": s}))
    union = _score_rows(models, [np.concatenate(c) for c in correct], {"data": "union", "split": "+".join(
        f"{d.name}:{s}" for d, s in sets)})
    return {"sets": per_set, "union": union}


def _score_rows(models: list[Path], ok: list[np.ndarray], head: dict) -> dict:
    return {**head, "clips": int(ok[0].size),
            "models": [{"model": str(m), "correct": int(o.sum()), "accuracy": float(o.mean()),
                        "wrong": np.flatnonzero(~o).tolist(), **({"vs_first": mcnemar(ok[0], o)} if k else {})}
                       for k, (m, o) in enumerate(zip(models, ok))]}


def paired_gesture(model_a: Path, model_b: Path, data, split="test", seed: int = 0) -> dict:
    """Two gesture model files (.onnx or .tflite) on the clip windows ``edgesense eval gesture`` classifies (built once,
    with ``model_a``'s description): the McNemar comparison and, for every clip on which they disagree in
    correctness, the label, both predictions and both true-class probabilities. ``data`` / ``split``: one dataset or
    several (their clips pooled), one split for all or one per dataset."""
    from edgesense.cli.cmd_quantize import gesture_windows

    xs, ys = zip(*(gesture_windows(d, model_a, s, None, seed=seed) for d, s in _gesture_sets(data, split)))
    x, y = np.concatenate(xs), np.concatenate(ys)
    probs = [_run_batched(m, x) for m in (model_a, model_b)]
    ok = [p.argmax(1) == y for p in probs]
    out = mcnemar(*ok)
    out["disagreements"] = [{"clip": int(i), "label": int(y[i]), "pred_a": int(probs[0][i].argmax()),
                             "pred_b": int(probs[1][i].argmax()), "p_true_a": float(probs[0][i, y[i]]),
                             "p_true_b": float(probs[1][i, y[i]])} for i in np.flatnonzero(ok[0] != ok[1])]
    return out


def _build_zoo():
    import importlib.util

    if "build_zoo" not in sys.modules:
        spec = importlib.util.spec_from_file_location("build_zoo", ROOT / "tools" / "build_zoo.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["build_zoo"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["build_zoo"]


def score_excursion(models: list[Path], sets: list[tuple[Path, str, bool]], skip_ms: float = 500.0) -> dict:
    """Excursion metrics of several model files on several speaker sets and on their union, scored by
    ``tools/build_zoo.py``'s ``ExcursionTask`` (each stream run causally from its start, the first ``skip_ms``
    never scored). ``sets``: ``(dataset, split, every_clip)``; ``every_clip`` False scores each stream's first clip
    of the split only (the zoo's test set), True every clip of the split. The union pools the scored samples of
    every set (one NRMSE / peak error over all of them, ``combined_metrics``), as the zoo pools its streams; there
    each model also gets the mean squared error of every scored clip alone (``clip_mse_mm2``, in order) and, from
    the second model on, the paired test against the first (:func:`paired_errors`)."""
    from types import SimpleNamespace

    bz = _build_zoo()
    task = bz.ExcursionTask.__new__(bz.ExcursionTask)       # only the scoring parts: no validation or calibration
    task.skip_ms, task.tracks = skip_ms, {}
    streams = []
    for d, split, every_clip in sets:
        task.opts = SimpleNamespace(excursion_data=Path(d), sizes={"clip_seconds": None})
        streams.append(task._streams(split, None, every_clip=every_clip))
    flat = [st for part in streams for st in part]
    heads = [{"data": str(d), "split": s, "every_clip": e} for d, s, e in sets]
    out = {"sets": [{**h, "models": []} for h in heads], "union": {"data": "union", "models": []}}
    predict = bz.ExcursionTask._predict
    for m in models:
        preds = predict(task, Path(m), flat, "all")        # the tracker's output is cached per stream across models
        k = 0
        for part, row in zip(streams, out["sets"]):
            sub = preds[k:k + len(part)]
            k += len(part)
            task.test, task._predict = part, (lambda *_a, _p=sub: _p)
            row["models"].append({"model": str(m), **task.score(Path(m))})
        task.test, task._predict = flat, (lambda *_a, _p=preds: _p)
        row = {"model": str(m), **task.score(Path(m)), "clip_mse_mm2": [], "clip_seconds": []}
        for (sig, spans), p in zip(flat, preds):        # every scored clip alone, for the paired test
            for span in spans:
                task.test, task._predict = [(sig, [span])], (lambda *_a, _p=p: [_p])
                clip = task.score(Path(m))
                row["clip_mse_mm2"].append(clip["rmse_mm"] ** 2)
                row["clip_seconds"].append(clip["scored_seconds"])
        if out["union"]["models"]:
            row["vs_first"] = paired_errors(out["union"]["models"][0]["clip_mse_mm2"], row["clip_mse_mm2"],
                                            weights=row["clip_seconds"])
        out["union"]["models"].append(row)
        del task._predict
    return out


def paired_errors(mse_a, mse_b, weights=None, resamples: int = 10_000, seed: int = 0) -> dict:
    """Paired comparison of two regressors on the same clips (their per-clip mean squared errors): how many clips
    each has the lower error on, the exact two-sided sign test on those, the Wilcoxon signed-rank test's p, and the
    ratio of their pooled RMSEs ``b / a`` (``weights``: samples per clip; equal by default) with a 95 % paired
    bootstrap interval over clips (``resamples``, seeded): how large the true gap can plausibly be."""
    from scipy.stats import wilcoxon

    a, b = np.asarray(mse_a, np.float64), np.asarray(mse_b, np.float64)
    sign = mcnemar(a < b, b < a)          # the sign test is McNemar's binomial test on the clips each wins
    d = a - b
    w = float(wilcoxon(a, b).pvalue) if np.any(d != 0) else 1.0
    wt = np.ones_like(a) if weights is None else np.asarray(weights, np.float64)
    ratio = float(np.sqrt(np.sum(wt * b) / np.sum(wt * a)))
    idx = np.random.default_rng(seed).integers(0, a.size, (resamples, a.size))
    boot = np.sqrt(np.sum(wt[idx] * b[idx], 1) / np.sum(wt[idx] * a[idx], 1))
    return {"clips": int(a.size), "lower_a": sign["only_a"], "lower_b": sign["only_b"], "sign_p": sign["p_value"],
            "wilcoxon_p": w, "rmse_ratio": ratio,
            "rmse_ratio_ci95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]}


def _run_batched(path: Path, x: np.ndarray) -> np.ndarray:
    """Run any model file on ``x`` (a .tflite with a fixed batch of 1 one sample at a time, by the runtime)."""
    from edgesense.runtime import load_model

    m = load_model(path, threads=1, warmup=0)
    return np.concatenate([np.asarray(m.run(x[i:i + 64]), np.float32) for i in range(0, len(x), 64)])


def _table(name: str, rows: list[dict]) -> str:
    keys = [k for k in ("accuracy", "nrmse", "argmax_agreement", "sqnr_vs_float_db") if any(k in r for r in rows)]
    lines = [f"## {name}", "", "| quantizer | " + " | ".join(keys) + " | seconds |",
             "|---|" + "---|" * (len(keys) + 1)]
    for r in rows:
        cells = [("%.4f" % r[k]) if k in r else r.get("error", "-") for k in keys]
        lines.append(f"| {r['quantizer']} | " + " | ".join(cells) + f" | {r['seconds']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, action="append", default=[], help="float ONNX model (repeatable)")
    p.add_argument("--calib", type=Path, help="calibration inputs .npy (N, ...)")
    p.add_argument("--eval", type=Path, help="evaluation inputs .npy (N, ...)")
    p.add_argument("--labels", type=Path, help="evaluation labels/targets .npy")
    p.add_argument("--targets", default="ort-cpu,ort-vnni", help="edgesense target profiles, comma-separated")
    p.add_argument("--examples", action="store_true", help="run on tests/quant/data example models, random data")
    p.add_argument("--out", type=Path, help="only write every INT8 variant of --model here (score them elsewhere, "
                   "e.g. streaming excursion models with 'edgesense eval excursion')")
    p.add_argument("--excursion-dataset", type=Path,
                   help="calibration for an excursion --model: frame this speaker dataset's train split")
    p.add_argument("--paired", type=Path, nargs=2, metavar=("A", "B"),
                   help="compare two gesture model files clip by clip on --gesture-data (exact McNemar test)")
    p.add_argument("--score", type=Path, nargs="+", metavar="FILE", help="clip accuracy of gesture model files on "
                   "each --gesture-data set and their union, the first file paired (McNemar) against each other one")
    p.add_argument("--gesture-data", type=Path, action="append", default=[],
                   help="radar gesture dataset for --paired / --score / --gesture-calib (repeatable: --paired and "
                   "--score pool the clips of every set)")
    p.add_argument("--split", action="append", default=[], help="--paired / --score: the dataset split, one for "
                   "every --gesture-data or one each, in order ('all': every clip; default test)")
    p.add_argument("--gesture-calib", type=Path, metavar="NPY", help="write the zoo's calibration windows of "
                   "--model (512 train-split windows of --gesture-data, seed 0) to NPY, e.g. for tools/peer_aimet.py")
    p.add_argument("--excursion-score", type=Path, nargs="+", metavar="FILE", help="excursion metrics of model "
                   "files on each --excursion-set and their union (build_zoo's ExcursionTask scoring)")
    p.add_argument("--excursion-set", action="append", default=[], metavar="DIR:SPLIT:first|every",
                   help="a speaker dataset, its split and whether each stream's first clip of it (the zoo's test "
                   "set) or every clip is scored (repeatable)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if a.excursion_score:
        sets = []
        for spec in a.excursion_set:
            parts = spec.rsplit(":", 2)
            if len(parts) != 3 or parts[2] not in ("first", "every"):
                p.error(f"--excursion-set {spec!r}: give DIR:SPLIT:first or DIR:SPLIT:every")
            sets.append((Path(parts[0]), parts[1], parts[2] == "every"))
        if not sets:
            p.error("--excursion-score needs --excursion-set")
        r = score_excursion(a.excursion_score, sets)
        if a.json:
            json.dump(r, sys.stdout, indent=1)
            print()
        else:
            for part in (*r["sets"], r["union"]):
                print(f"{part['data']} ({part.get('split', 'all sets')}"
                      f"{', every clip' if part.get('every_clip') else ''})")
                for m in part["models"]:
                    v = m.get("vs_first")
                    pair = (f"; vs first: lower on {v['lower_a']} / {v['lower_b']} clips, sign p = {v['sign_p']:.3f}, "
                            f"RMSE ratio {v['rmse_ratio']:.4f} (95 % {v['rmse_ratio_ci95'][0]:.4f}-"
                            f"{v['rmse_ratio_ci95'][1]:.4f})" if v else "")
                    print(f"  NRMSE {m['nrmse'] * 100:.4f} %, peak {m['peak_error_mm']:.4f} mm, "
                          f"{m['streams']} streams, {m['scored_seconds']:.1f} s: {m['model']}{pair}")
        return 0
    if a.paired or a.gesture_calib or a.score:
        if not a.gesture_data:
            p.error("--paired, --score and --gesture-calib need --gesture-data")
        splits = a.split or ["test"]
        if len(splits) not in (1, len(a.gesture_data)):
            p.error("give one --split for every --gesture-data, or one for all")
        if a.gesture_calib:
            if len(a.gesture_data) != 1:
                p.error("--gesture-calib takes exactly one --gesture-data")
            from edgesense.cli.cmd_quantize import gesture_calibration_windows
            if len(a.model) != 1:
                p.error("--gesture-calib takes exactly one --model")
            np.save(a.gesture_calib, gesture_calibration_windows(a.gesture_data[0], a.model[0], "train", 512, 0))
            print(a.gesture_calib)
        if a.paired:
            r = paired_gesture(a.paired[0], a.paired[1], a.gesture_data, splits)
            if a.json:
                json.dump(r, sys.stdout, indent=1)
                print()
            else:
                print(f"{'+'.join(splits)}: A {r['correct_a']}/{r['samples']}, B {r['correct_b']}/{r['samples']}; only A right "
                      f"{r['only_a']}, only B right {r['only_b']}; exact McNemar p = {r['p_value']:.3f}")
                for d in r["disagreements"]:
                    print(f"  clip {d['clip']}: label {d['label']}, A {d['pred_a']} (p_true {d['p_true_a']:.3f}), "
                          f"B {d['pred_b']} (p_true {d['p_true_b']:.3f})")
        if a.score:
            r = score_gesture(a.score, a.gesture_data, splits)
            if a.json:
                json.dump(r, sys.stdout, indent=1)
                print()
            else:
                for part in (*r["sets"], r["union"]):
                    print(f"{part['data']} ({part['split']}, {part['clips']} clips)")
                    for m in part["models"]:
                        v = m.get("vs_first")
                        pair = (f"; vs first: only first {v['only_a']}, only this {v['only_b']}, p = {v['p_value']:.3f}, "
                                f"difference {v['difference'] * 100:+.3f} pts (95 % {v['difference_ci95'][0] * 100:+.3f} "
                                f"to {v['difference_ci95'][1] * 100:+.3f})" if v else "")
                        print(f"  {m['accuracy'] * 100:7.3f} % ({m['correct']}/{part['clips']}) {m['model']}{pair}")
        return 0
    import torch
    torch.set_num_threads(1)
    jobs = []
    if a.out:
        if len(a.model) != 1:
            p.error("--out takes exactly one --model")
        if a.excursion_dataset:
            from edgesense.quant.model_io import excursion_calibration_signals
            calib = excursion_calibration_signals(a.excursion_dataset, a.model[0])
        elif a.calib:
            calib = np.load(a.calib, allow_pickle=False).astype(np.float32)
        else:
            p.error("--out needs --calib or --excursion-dataset")
        targets = tuple(t.strip() for t in a.targets.split(",") if t.strip())
        for path in quantize_all(a.model[0], calib, a.out, targets):
            print(path)
        return 0
    if a.examples:
        rng = np.random.default_rng(0)
        for name, shape in (("cnn2d", (2, 16, 16)), ("conv1d", (8, 32))):
            model = ROOT / "tests" / "quant" / "data" / f"example_{name}_float.onnx"
            jobs.append((model, rng.standard_normal((256, *shape)).astype(np.float32),
                         rng.standard_normal((512, *shape)).astype(np.float32), None))
    for model in a.model:
        if not (a.calib and a.eval):
            p.error("--model needs --calib and --eval")
        load = lambda f: np.load(f, allow_pickle=False)  # noqa: E731
        jobs.append((model, load(a.calib).astype(np.float32), load(a.eval).astype(np.float32),
                     load(a.labels) if a.labels else None))
    if not jobs:
        p.error("give --model ... or --examples")
    targets = tuple(t.strip() for t in a.targets.split(",") if t.strip())
    report = {str(m): compare(m, c, x, y, targets) for m, c, x, y in jobs}
    if a.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print("\n\n".join(_table(Path(k).name, v) for k, v in report.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
