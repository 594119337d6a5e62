"""Build the model zoo: INT8 ONNX, INT8 TFLite and the INT8 section of every shipped model's card.

For each model ``models/<name>/<name>.onnx`` (a gesture classifier or a streaming excursion model):

1. quantize the float ONNX with ``edgesense quantize`` (``--target``, default ``ort-cpu``) for each activation range
   method (min/max, percentile, MSE), calibrated on the training split of the model's dataset (gesture
   models: windows built by the gesture pipeline; excursion models: framed speaker signals streamed in
   1 ms blocks), and for ``mse-adaround`` / ``mse-refine`` (``edgesense quantize --adaround`` / ``--refine``);
   then QAT candidates from the best of those (``edgesense quantize --qat-steps``: ``qat-<m>`` with the default
   objective, ``qat-task-<m>`` on the labels, see :func:`_method_args`); keep the method with the best validation
   metric (gesture clip accuracy on validation users, or with ``--select fidelity`` the candidate closest to the float
   model: lowest mean KL divergence of its clip probabilities; excursion NRMSE on validation clips) as
   ``<name>_int8.onnx`` (QDQ). Every candidate is built by ``edgesense quantize``'s own code path, and the card's
   reproduce line is that command;
2. build ``<name>_int8.tflite`` (full integer, int8 I/O; streaming models for 1 ms blocks of 12 frames) for its
   own target (``--tflite-target``, default ``tflite-int8``: 8-bit weights, which LiteRT computes exactly, where
   ORT on x86 without VNNI needs ``ort-cpu``'s 7-bit ones): the same candidates for that target, each converted and
   scored on LiteRT on validation, the same rule choosing (``--tflite-target same``: converted from the ONNX
   artefact); check LiteRT against its QDQ model and its integer simulation, and ORT against IntegerSim (share of
   outputs within 1 LSB, target 99.9 %);
3. score float, INT8 on ORT, INT8 on LiteRT, the other edgesense methods and onnxruntime's
   ``quantize_static`` peers (MinMax / Entropy / Percentile, per channel, with and without reduce_range;
   ``tools/compare_peers.py``) on the test set with the pipelines' own scoring (gesture: clip accuracy of
   the window ``edgesense eval gesture`` classifies, on held-out users; excursion: the NRMSE / peak error of
   ``edgesense eval excursion``, streams run causally from their start, test clips scored);
4. run ``edgesense bench`` on the model directory (batch 1, one thread; median, p99, throughput, peak
   memory), plus, for streaming models, every backend on the deployed 1 ms block (12 frames per call);
5. write the marked INT8 section of ``MODEL_CARD.md`` (``<!-- zoo:int8 begin -->`` ... ``end``; the rest
   of the card is left untouched), ``<name>_int8.report.json`` and the table in ``models/README.md``.

    python tools/build_zoo.py [--models gesture_cnn fftnet] [--quick] [--json] [--reuse OLD_MODELS_DIR]
                              [--qat-steps N] [--tflite-target tflite-int8|same|TARGET]
                              [--val-data DIR[:SPLIT] ...]   # more validation data to choose on (pooled)
                              [--select accuracy|fidelity]   # gesture candidates: best accuracy / closest to float

Seeded (``--seed``, default 0): calibration subsets, evaluation subsets and peers are deterministic;
latency figures depend on the machine. ``--quick`` uses small calibration/evaluation subsets and few
benchmark runs (for tests and smoke runs; its figures are not the zoo's).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# "<range method>-<step>[-<step>]": the range method, then these steps in this order (edgesense quantize --adaround,
# --refine): "adaround" learned weight rounding (edgesense.quant.adaround), "refine" output-aware activation range
# refinement (edgesense.quant.ptq.refine_activation_ranges)
STEPS = ("adaround", "refine")
METHODS = ("minmax", "percentile", "mse", "mse-adaround", "mse-refine")
PEERS = (("MinMax", False), ("Entropy", False), ("Percentile", False),
         ("MinMax", True), ("Entropy", True), ("Percentile", True))
BLOCK_FRAMES = 12          # streaming excursion models: 1 ms blocks = 12 frames of 4 samples at 48 kHz
# calibration streams each 3000-frame crop from zero state in one call: the models are causal and their state
# carries exactly, so every tensor sees the same values as in 1 ms blocks (ranges equal to float rounding;
# checked on convnet), about 20x faster
CALIB_BLOCK = 3000
SELECT_RULES = ("accuracy", "fidelity")
BEGIN, END = "<!-- zoo:int8 begin -->", "<!-- zoo:int8 end -->"
README_BEGIN, README_END = "<!-- zoo:index begin -->", "<!-- zoo:index end -->"


@dataclass
class ZooOptions:
    """What to build and on which data."""

    models_dir: Path = ROOT / "models"
    gesture_data: Path = Path("/work/data/radar-clips")
    excursion_data: Path = Path("/work/data/speaker/known")
    quick: bool = False
    seed: int = 0
    target: str = "ort-cpu"
    # the .tflite artefact's own target (None: converted from the ONNX artefact). LiteRT's XNNPACK computes 8-bit
    # weights exactly, so it gets tflite-int8 candidates (8-bit per-channel weights), chosen on validation in LiteRT;
    # the ONNX artefact keeps `target` (ort-cpu: 7-bit weights, exact on ORT without VNNI; ort-cpu-w8: 8-bit
    # weights, exact where the session uses ORT's precise u8 x u8 kernels, as edgesense.runtime does; §4)
    tflite_target: str | None = "tflite-int8"
    bench: bool = True
    bench_runs: int = 300
    peers: bool = True
    readme: bool = True
    qat_steps: int = 200       # QAT fine-tune candidate from the best PTQ method (0: none; quick: at most 8)
    qat_lrs: tuple[float, ...] = (1e-4, 3e-5)   # one QAT candidate (per objective) per learning rate
    aimet_python: Path | None = None   # an interpreter with aimet-onnx (tools/peer_aimet.py): adds aimet peer rows
    # more validation data, pooled with the model's own validation split: (dataset dir, split) pairs, the split
    # "all" for every clip (gesture: clip sets of other simulated users; excursion: speaker sets whose clips of that
    # split are scored, each stream run from its start). Candidates are chosen on the pool; test data is unchanged
    extra_val: tuple[tuple[Path, str], ...] = ()
    # how gesture candidates are chosen on validation (SELECT_RULES): "accuracy" (clip accuracy, then balanced
    # accuracy, then NLL of the true class) or "fidelity" (closest to the float model: the lowest mean KL divergence
    # of the INT8 clip probabilities from the float ones, then accuracy). Excursion models: "accuracy" only
    select: str = "accuracy"

    @property
    def litert_target(self) -> str:
        """The target the ``.tflite`` artefact is built for."""
        return self.tflite_target or self.target

    @property
    def sizes(self) -> dict:
        """Subset sizes: calibration samples, validation and test clips / streams."""
        if self.quick:
            return {"calib": 32, "val_clips": 10, "test_clips": 15, "calib_signals": 2, "val_streams": 1,
                    "test_streams": 1, "parity": 20, "clip_seconds": 3.0, "qat_steps": min(self.qat_steps, 8),
                    "qat_lrs": self.qat_lrs[:1], "task_clips": 10, "gesture_task_qat": False,
                    "adaround_iterations": 20}
        return {"calib": 512, "val_clips": None, "test_clips": None, "calib_signals": 12, "val_streams": 6,
                "test_streams": 6, "parity": 200, "clip_seconds": None, "qat_steps": self.qat_steps,
                "qat_lrs": self.qat_lrs, "task_clips": 1050, "gesture_task_qat": True,
                "adaround_iterations": 500}


def _log(msg: str) -> None:
    print(f"[zoo {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def discover(models_dir: Path, names: list[str] | None) -> list[tuple[str, str, Path]]:
    """(name, kind, float ONNX) of every shipped model: ``<dir>/<name>/<name>.onnx`` with its ``.json``."""
    from edgesense.errors import EdgesenseError

    found = []
    for d in sorted(p for p in Path(models_dir).iterdir() if p.is_dir()):
        onnx_path, side = d / f"{d.name}.onnx", d / f"{d.name}.json"
        if not (onnx_path.is_file() and side.is_file()):
            continue
        desc = json.loads(side.read_text())
        kind = "gesture" if desc.get("edgesense_gesture_model") else "excursion" if "frame" in desc else None
        if kind and (not names or d.name in names):
            found.append((d.name, kind, onnx_path))
    missing = set(names or []) - {n for n, _, _ in found}
    if missing:
        raise EdgesenseError(f"no shipped model {sorted(missing)} under {models_dir}")
    return found


# -- quantization --------------------------------------------------------------------------------

def split_method(method: str) -> tuple[str, bool]:
    """``"qat-mse"`` / ``"qat-task-mse@3e-05"`` -> ("mse", True): the PTQ range method and whether a QAT fine-tune
    follows (``qat-task-``: excursion QAT on the task loss alone, gesture QAT on labels; ``qat-``: the default
    objective; ``@LR``: its learning rate when not the first of ``ZooOptions.qat_lrs``)."""
    method = method.split("@")[0]
    for prefix in ("qat-task-", "qat-"):
        if method.startswith(prefix):
            return method[len(prefix):], True
    return method, False


def _method_args(method: str, opts: ZooOptions, stream: bool) -> list[str]:
    """The ``edgesense quantize`` options of a zoo method: ``<range>`` -> ``--method``; steps ``adaround`` ->
    ``--adaround --adaround-iters N``, ``refine`` -> ``--refine``; ``qat-`` -> ``--qat-steps N --qat-lr LR`` with
    the default objective (excursion: task+float, gesture: float outputs); ``qat-task-`` -> excursion
    ``--qat-objective task``, gesture ``--qat-objective task+float --qat-clips N`` (labels plus the float model's
    probabilities)."""
    ptq, qat = split_method(method)
    base, steps = _steps(ptq)
    argv = ["--method", base]
    if "adaround" in steps:
        argv += ["--adaround", "--adaround-iters", str(opts.sizes["adaround_iterations"])]
    if "refine" in steps:
        argv += ["--refine"]
    if qat:
        lr = float(method.split("@")[1]) if "@" in method else opts.qat_lrs[0]
        argv += ["--qat-steps", str(opts.sizes["qat_steps"]), "--qat-lr", f"{lr:g}"]
        if method.startswith("qat-task-"):
            argv += (["--qat-objective", "task"] if stream else
                     ["--qat-objective", "task+float", "--qat-clips", str(opts.sizes["task_clips"])])
    return argv


def _quantize(float_onnx: Path, calib: Path, out: Path, method: str, opts: ZooOptions, stream: bool):
    """``edgesense quantize`` of ``float_onnx`` with a zoo ``method`` (:func:`_method_args` gives its options:
    range method, AdaRound / range refinement, QAT) on ``calib`` (the dataset's train split); returns (sim, graph,
    summary), the summary's ``method`` being the zoo method's name."""
    from edgesense.cli import cmd_quantize

    p = argparse.ArgumentParser()
    cmd_quantize.configure(p)
    sim, graph, summary = cmd_quantize.quantize(p.parse_args(_quantize_argv(float_onnx, calib, out, method, opts,
                                                                            stream)))
    return sim, graph, {**summary, "method": method}


def _quantize_argv(float_onnx, calib, out, method: str, opts: ZooOptions, stream: bool) -> list[str]:
    """The ``edgesense quantize`` arguments :func:`_quantize` runs (and the card's reproduce line shows)."""
    argv = ["--model", str(float_onnx), "--calib", str(calib), *_method_args(method, opts, stream),
            "--target", opts.target, "--seed", str(opts.seed), "--max-samples",
            str(opts.sizes["calib_signals"] if stream else opts.sizes["calib"])]
    if stream:
        argv += ["--stream-block", str(CALIB_BLOCK)]
    return argv + ["--out", str(out)]


def _steps(ptq: str) -> tuple[str, list[str]]:
    """``"mse-adaround"`` -> ("mse", ["adaround"]): the range method and the steps after it (in the order
    ``edgesense quantize`` runs them: :data:`STEPS`)."""
    from edgesense.errors import EdgesenseError

    base, *steps = ptq.split("-")
    unknown = [x for x in steps if x not in STEPS]
    if unknown:
        raise EdgesenseError(f"unknown quantization step(s) {unknown} in {ptq!r}; known: {', '.join(STEPS)}")
    if steps != sorted(set(steps), key=STEPS.index):
        raise EdgesenseError(f"{ptq!r}: steps run once each, in the order {'-'.join(STEPS)}")
    return base, steps


def _command_quantize(name: str, kind: str, method: str, opts: ZooOptions, target: str | None = None) -> str:
    """The ``edgesense quantize`` command line that builds a model's INT8 ONNX with ``method`` (as :func:`_quantize`
    does: same arguments, paths relative to the repository) for ``target`` (default ``opts.target``; another target
    writes into ``/tmp/zoo/<name>_<target>``)."""
    import dataclasses

    stream = kind == "excursion"
    data = opts.excursion_data if stream else opts.gesture_data
    out = Path(f"/tmp/zoo/{name}" + (f"_{target}" if target and target != opts.target else ""))
    topts = dataclasses.replace(opts, target=target or opts.target)
    argv = _quantize_argv(Path(f"models/{name}/{name}.onnx"), data, out, method, topts, stream)
    return "edgesense quantize " + " ".join(argv)


def zoo_command(name: str, opts: ZooOptions) -> str:
    """The ``tools/build_zoo.py`` line that rebuilds ``name`` with these options (defaults left out)."""
    return (f"python tools/build_zoo.py --models {name}" + (" --quick" if opts.quick else "")
            + ("" if opts.target == "ort-cpu" else f" --target {opts.target}")
            + ("" if opts.qat_steps == 200 else f" --qat-steps {opts.qat_steps}")
            + "".join(f" --val-data {d}:{sp}" for d, sp in opts.extra_val)
            + ("" if opts.select == "accuracy" else f" --select {opts.select}"))


def _command_export(name: str, opts: ZooOptions, target: str, shapes: dict | None) -> str:
    """The ``edgesense export tflite`` line that converts the QDQ model :func:`_command_quantize` wrote for
    ``target`` (streaming models: for 1 ms blocks, ``shapes``, with channel-last I/O as the zoo ships them)."""
    src = f"/tmp/zoo/{name}" + (f"_{target}" if target != opts.target else "") + f"/{name}_int8.onnx"
    shape = "".join(f" --input-shape {k}={','.join(str(d) for d in v)}" for k, v in (shapes or {}).items())
    return f"edgesense export tflite {src} /tmp/zoo/{name}_int8.tflite{shape}" + (" --channel-last" if shapes else "")


def _copy_sidecar(float_onnx: Path, model: Path) -> None:
    shutil.copyfile(float_onnx.with_suffix(".json"), model.with_suffix(".json"))


def _litert_scoring_file(qdq: Path, dst: Path, float_onnx: Path, stream: bool) -> Path:
    """The ``.tflite`` a candidate is scored with: the gesture model as shipped (batch 1); a streaming model
    converted for 1 s blocks (Python cost per call; a causal model's outputs do not depend on the block)."""
    import onnx

    from edgesense.quant.tflite import export_tflite

    shapes = None
    if stream:
        x_in = onnx.load(str(qdq)).graph.input[0]
        shapes = {x_in.name: (1, x_in.type.tensor_type.shape.dim[1].dim_value, 12_000)}
    export_tflite(qdq, dst, input_shapes=shapes)
    _copy_sidecar(float_onnx, dst)
    return dst


def _select_candidates(name: str, float_onnx: Path, task, opts: ZooOptions, work: Path, target: str, calib_src: Path,
                       stream: bool, litert: bool) -> tuple[dict, str]:
    """Every zoo candidate for ``target`` (:data:`METHODS`, then QAT fine-tunes from the best of them), each scored
    on validation -- on ORT, or (``litert``) converted to ``.tflite`` and run on LiteRT -- and the best by
    ``task.better``. Returns ({method: {path, graph, summary, val[, lite]}}, chosen method)."""
    import dataclasses

    topts = dataclasses.replace(opts, target=target)
    where = f"{target}, LiteRT" if litert else target
    candidates: dict[str, dict] = {}

    def add_candidate(method: str, what: str) -> None:
        _log(f"{name}: quantize ({what}; {where})")
        d = work / method
        _, graph, summary = _quantize(float_onnx, calib_src, d, method, topts, stream)
        q = d / f"{name}_int8.onnx"
        _copy_sidecar(float_onnx, q)
        c = {"path": q, "graph": graph, "summary": summary}
        if litert:
            c["lite"] = _litert_scoring_file(q, d / f"{name}_int8.tflite", float_onnx, stream)
        c["val"] = task.score(c.get("lite", q), "val")
        candidates[method] = c

    def best() -> str:
        out = None
        for method in candidates:
            if out is None or task.better(candidates[method]["val"], candidates[out]["val"]):
                out = method
        return out

    for method in METHODS:
        add_candidate(method, method)
    if opts.sizes["qat_steps"] > 0:     # QAT fine-tunes from the best range method (edgesense's own method)
        start = best()
        # excursion: task + float-output loss, and task loss alone; gesture: label-free, towards the float outputs
        methods = []
        for k, lr in enumerate(opts.sizes["qat_lrs"]):
            suffix = "" if k == 0 else f"@{lr:g}"
            methods += ([f"qat-{start}{suffix}", f"qat-task-{start}{suffix}"]
                        if stream or opts.sizes["gesture_task_qat"] else [f"qat-{start}{suffix}"])
        for method in methods:
            add_candidate(method, f"{method}, {opts.sizes['qat_steps']} steps")
    return candidates, best()


def row_name(method: str, backend: str, target: str | None = None) -> str:
    """A test-table row of an edgesense candidate: ``edgesense INT8 <method>[ <target>] (<backend>)`` (the target
    named where the LiteRT artefact has its own)."""
    return f"edgesense INT8 {method}{' ' + target if target else ''} ({backend})"


def shipped_rows(report: dict) -> tuple[str, str]:
    """Names of the shipped ONNX (ORT) and ``.tflite`` (LiteRT) artefacts' test rows in ``report`` (reports written
    before the LiteRT artefact had its own target: both from ``chosen_method``)."""
    lite = report.get("litert") or {}
    method, target = lite.get("chosen_method", report["chosen_method"]), lite.get("target", report["target"])
    return (row_name(report["chosen_method"], "ORT"),
            row_name(method, "LiteRT", target if target != report["target"] else None))


# -- gesture evaluation --------------------------------------------------------------------------

class GestureTask:
    """Held-out clip windows (built once by the gesture pipeline) and clip accuracy of any model file."""

    def __init__(self, float_onnx: Path, opts: ZooOptions) -> None:
        from edgesense.cli.cmd_quantize import gesture_calibration_windows, gesture_windows

        s = opts.sizes
        self.float_onnx, self.select = Path(float_onnx), opts.select
        self._p_float_val: np.ndarray | None = None
        self.calib = gesture_calibration_windows(opts.gesture_data, float_onnx, "train", s["calib"], opts.seed)
        self.x_val, self.y_val = gesture_windows(opts.gesture_data, float_onnx, "val", s["val_clips"], seed=opts.seed)
        for data, split in opts.extra_val:      # more validation users, pooled clip by clip
            x, y = gesture_windows(Path(data), float_onnx, split, s["val_clips"], seed=opts.seed)
            self.x_val, self.y_val = np.concatenate([self.x_val, x]), np.concatenate([self.y_val, y])
        self.x_test, self.y_test = gesture_windows(opts.gesture_data, float_onnx, "test", s["test_clips"],
                                                   seed=opts.seed)
        self.y_float_test = None

    def _probs(self, path: Path, x: np.ndarray) -> np.ndarray:
        from edgesense.runtime import load_model

        m = load_model(path, threads=1, warmup=0)
        return np.concatenate([np.asarray(m.run(x[i:i + 64]), np.float32) for i in range(0, len(x), 64)])

    def score(self, path: Path, split: str = "test") -> dict:
        from edgesense.radar.pipeline import GestureModelInfo
        from edgesense.radar.metrics import clip_metrics

        x, y = (self.x_test, self.y_test) if split == "test" else (self.x_val, self.y_val)
        p = self._probs(path, x)
        classes = list(GestureModelInfo.for_model(path).classes)
        m = clip_metrics(y.tolist(), p.argmax(1).tolist(), classes)
        p_true = np.clip(p[np.arange(len(y)), y], 1.0 / 512, 1.0)     # int8 softmax: 1/256 grid, 0 possible
        out = {"accuracy": m.accuracy, "balanced_accuracy": m.balanced_accuracy, "nll": float(-np.log(p_true).mean()),
               "clips": int(len(y))}
        if split == "val":
            if self._p_float_val is None:
                self._p_float_val = p if path == self.float_onnx else self._probs(self.float_onnx, x)
            out.update(fidelity_to_float(self._p_float_val, p))
        if split == "test":
            if self.y_float_test is None:
                self.y_float_test = p
            out["argmax_agreement_vs_float"] = float((p.argmax(1) == self.y_float_test.argmax(1)).mean())
        return out

    def better(self, a: dict, b: dict) -> bool:
        """True when validation result ``a`` beats ``b`` by this task's rule (:attr:`ZooOptions.select`)."""
        return better_gesture(a, b, self.select)

    def parity_inputs(self, n: int) -> list:
        return [self.x_test[i:i + 1] for i in range(min(n, len(self.x_test)))]

    def peer_calib(self) -> np.ndarray:
        return self.calib


def fidelity_to_float(p_float: np.ndarray, p: np.ndarray) -> dict:
    """How closely clip probabilities ``p`` (N, classes) follow the float model's ``p_float``: the mean KL
    divergence KL(p_float || p) in nats (both clipped at 1/512, half the int8 softmax's step, as for the NLL: an
    int8 softmax can output 0; then renormalised) and the number of clips whose top class differs."""
    def grid(v) -> np.ndarray:
        v = np.clip(np.asarray(v, np.float64), 1.0 / 512, 1.0)
        return v / v.sum(axis=1, keepdims=True)

    pf, q = grid(p_float), grid(p)
    kl = (pf * (np.log(pf) - np.log(q))).sum(axis=1)
    return {"kl_vs_float": float(kl.mean()), "flips_vs_float": int((pf.argmax(1) != q.argmax(1)).sum())}


def better_gesture(a: dict, b: dict, select: str = "accuracy") -> bool:
    """True when validation result ``a`` beats ``b``. ``accuracy``: clip accuracy, then balanced accuracy, then the
    mean negative log-likelihood of the true class (a continuous tie-break: one validation clip is 0.4 points).
    ``fidelity``: the lower mean KL divergence from the float model's probabilities, then the accuracy rule."""
    acc_a = (a["accuracy"], a["balanced_accuracy"], -a.get("nll", 0.0))
    acc_b = (b["accuracy"], b["balanced_accuracy"], -b.get("nll", 0.0))
    if select == "fidelity":
        return (-a["kl_vs_float"], *acc_a) > (-b["kl_vs_float"], *acc_b)
    if select != "accuracy":
        raise ValueError(f"unknown selection rule {select!r} (one of {', '.join(SELECT_RULES)})")
    return acc_a > acc_b


# -- excursion evaluation ------------------------------------------------------------------------

class ExcursionTask:
    """Speaker streams (run causally from their start, scored on one split's clips) and excursion metrics."""

    def __init__(self, float_onnx: Path, opts: ZooOptions) -> None:
        from edgesense.quant.model_io import excursion_calibration_signals

        self.opts = opts
        s = opts.sizes
        self.val = self._streams("val", s["val_streams"], every_clip=True)
        for data, split in opts.extra_val:      # more validation streams (every clip of that split), pooled
            self.val += self._streams(split, s["val_streams"], every_clip=True, data=Path(data))
        self.test = self._streams("test", s["test_streams"])
        self.calib = excursion_calibration_signals(opts.excursion_data, float_onnx,
                                                   max_signals=s["calib_signals"], seed=opts.seed)
        self.skip_ms = 500.0
        self.tracks: dict[tuple[str, int], np.ndarray] = {}

    def _streams(self, split: str, limit: int, every_clip: bool = False, data: Path | None = None):
        """Streams of ``split`` of ``data`` (default: the model's dataset) cut after their first scored clip
        (``every_clip``: after their last, all of the split's clips scored; validation uses every clip, twice the
        data of the first alone), so a stream runs up to what is scored, no further. Returns (signal,
        [(start, end), ...]) per stream."""
        import dataclasses

        from edgesense.cli.cmd_eval_excursion import load_streams
        from edgesense.errors import EdgesenseError

        data = self.opts.excursion_data if data is None else data
        signals, segments = load_streams(data, None if split == "all" else split, limit)
        if not signals:
            raise EdgesenseError(f"{data}: no speaker streams with clips of split {split!r}")
        out = []
        for sig, segs in zip(signals, segments):
            a, b = segs[0]
            if self.opts.sizes["clip_seconds"]:          # quick: a short piece of the clip, run from rest
                n = int(self.opts.sizes["clip_seconds"] * sig.fs)
                sig = dataclasses.replace(sig, v=sig.v[a:a + n], i=sig.i[a:a + n], x=sig.x[a:a + n])
                out.append((sig, [(0, len(sig.x))]))
            else:
                spans = list(segs) if every_clip else [(a, b)]
                end = spans[-1][1]
                sig = dataclasses.replace(sig, v=sig.v[:end], i=sig.i[:end], x=sig.x[:end])
                out.append((sig, spans))
        return out

    def _predict(self, path: Path, streams, split: str) -> list[np.ndarray]:
        from edgesense.runtime import load_model
        from edgesense.speaker.pipeline import tracked_prediction
        from edgesense.speaker.streaming import ExcursionStreamer, predict_signal

        model = load_model(path, threads=1, warmup=0)
        # 1 s per call (ONNX: dynamic block; a .tflite has a fixed block: signals are zero-padded to whole
        # blocks after their end, which a causal model never sees)
        chunk = 48_000
        if path.suffix == ".tflite":
            chunk = 4 * int(next(s for s in model.input_specs if s.name == "x").shape[2])  # steps, either layout
        preds = []
        for k, (sig, _) in enumerate(streams):
            bl = sig.speaker.bl
            streamer = ExcursionStreamer(model, bl)
            track = None
            if streamer.spec.needs_tracker:
                key = (split, k)
                if key not in self.tracks:
                    self.tracks[key] = tracked_prediction(sig.v, sig.i, sig.profile)
                track = self.tracks[key]
            v, i, n = sig.v, sig.i, len(sig.v)
            pad = (-n) % chunk if path.suffix == ".tflite" else 0
            if pad:
                v, i = np.pad(v, (0, pad)), np.pad(i, (0, pad))
                track = None if track is None else np.pad(track, (0, pad))
            preds.append(predict_signal(streamer, v, i, bl, track, chunk=chunk)[:n])
        return preds

    def block_equivalence(self, block_1ms: Path, block_1s: Path, seconds: float = 0.5) -> float:
        """Largest |difference| (mm) between the shipped 1 ms-block LiteRT model and the 1 s-block one used to
        score the test set, over the first ``seconds`` of the first test stream (0: identical)."""
        import dataclasses

        sig, _ = self.test[0]
        n = int(seconds * sig.fs)
        piece = [(dataclasses.replace(sig, v=sig.v[:n], i=sig.i[:n], x=sig.x[:n]), [(0, n)])]
        a = self._predict(block_1ms, piece, "equivalence")[0]
        b = self._predict(block_1s, piece, "equivalence")[0]
        return float(np.max(np.abs(a - b)))

    def score(self, path: Path, split: str = "test") -> dict:
        from edgesense.speaker.metrics import combined_metrics

        streams = self.test if split == "test" else self.val
        preds = self._predict(path, streams, split)
        fs = streams[0][0].fs
        skip = int(round(self.skip_ms * fs / 1000))
        pairs = []
        for (sig, spans), p in zip(streams, preds):
            p = np.asarray(p, np.float32)[:len(sig.x)]
            for a, b in spans:
                a = max(a, skip)
                pairs.append((sig.x[a:b], p[a:b]))
        m = combined_metrics(pairs, fs).to_dict()
        return {"nrmse": m["nrmse"], "rmse_mm": m["rmse_mm"], "peak_error_mm": m["peak_error_mm"],
                "loud_within_0_02": m["loud_within_0_02"], "streams": len(streams),
                "scored_seconds": sum(len(x) for x, _ in pairs) / fs}

    reference: dict | None = None      # the float model's validation metrics, once measured

    def meets_targets(self, a: dict) -> bool:
        """Issue 6's INT8 targets against the float model, on validation (False before ``reference`` is set)."""
        f = self.reference
        return bool(f and a["nrmse"] <= 1.10 * f["nrmse"] and a["peak_error_mm"] <= f["peak_error_mm"] + 0.01)

    def better(self, a: dict, b: dict) -> bool:
        """True when validation result ``a`` beats ``b``: meeting both INT8 targets (NRMSE within 10 % of float,
        peak error within 0.01 mm) first, then lower NRMSE, then lower peak error."""
        key = lambda r: (not self.meets_targets(r), r["nrmse"], r["peak_error_mm"])  # noqa: E731
        return key(a) < key(b)

    def parity_inputs(self, n: int) -> list:
        """Realistic streaming samples: 1 ms blocks of a calibration signal with the float model's states."""
        return self._blocks

    def prepare_parity(self, int8_onnx: Path, n: int) -> None:
        from edgesense.runtime import load_model

        m = load_model(int8_onnx, threads=1, warmup=0)
        names = [s.name for s in m.input_specs]
        shapes = {s.name: s.shape for s in m.input_specs}
        states = {k: np.zeros((1, *[int(d) for d in shapes[k][1:]]), np.float32) for k in names[1:]}
        sig = self.calib[0]
        blocks = []
        for t0 in range(0, min(sig.shape[-1], (n + 50) * BLOCK_FRAMES) - BLOCK_FRAMES + 1, BLOCK_FRAMES):
            feed = {"x": sig[None, :, t0:t0 + BLOCK_FRAMES], **states}
            out = m.run(feed)
            states = {k: np.asarray(out[k + "_out"], np.float32) for k in names[1:]}
            if t0 >= 50 * BLOCK_FRAMES:        # past the start-up from zero state
                blocks.append(feed)
        self._blocks = blocks[:n]

    def peer_calib(self) -> np.ndarray:
        return self.calib


# -- parity, size, latency -----------------------------------------------------------------------

def integer_sim_parity(graph, model_path: Path, samples: list, add: str = "float",
                       io_names: tuple[list[str], list[str]] | None = None) -> dict:
    """A runtime (the QDQ ``.onnx`` on ORT or the ``.tflite`` on LiteRT, as ``edgesense.runtime`` runs them)
    against edgesense's IntegerSim with the runtime's Add arithmetic (``add``: "float" for ORT, "xnnpack" for
    LiteRT): output codes within 1 LSB over ``samples``; the worst output's shares. ``io_names``: the graph's
    input and output names in its order (default: the model file's)."""
    from edgesense.quant import IntegerSim
    from edgesense.runtime import load_model

    m = load_model(model_path, threads=1, warmup=0)
    sim = IntegerSim(graph, add=add)
    in_names, out_names = io_names or ([s.name for s in m.input_specs], [s.name for s in m.output_specs])
    per_out: dict[int, list] = {}
    for sample in samples:
        if isinstance(sample, dict):
            feeds = [sample[n] for n in in_names]
            y = m.run(sample)
            ys = [y[n] for n in out_names] if isinstance(y, dict) else [y]
        else:
            feeds = sample
            y = m.run(sample)
            ys = [next(iter(y.values()))] if isinstance(y, dict) else [y]
        for k, ((codes, enc), yo) in enumerate(zip(sim.outputs(feeds), ys)):
            per_out.setdefault(k, []).append(np.abs(enc.quantize(np.asarray(yo, np.float32)).astype(np.int64)
                                                    - codes.astype(np.int64)).ravel())
    ds = {k: np.concatenate(v) for k, v in per_out.items()}
    worst = min(ds, key=lambda k: ((ds[k] <= 1).mean(), (ds[k] == 0).mean()))
    d = ds[worst]
    return {"values": int(sum(v.size for v in ds.values())), "exact": float((d == 0).mean()),
            "within_1_lsb": float((d <= 1).mean()), "max_lsb": int(max(v.max() for v in ds.values())),
            "worst_output": out_names[worst] if worst < len(out_names) else str(worst)}


def litert_parity(int8_onnx: Path, tflite: Path, samples: list) -> dict:
    """LiteRT (XNNPACK, default) against ORT on the QDQ model, via ``edgesense.quant.tflite.parity``."""
    from edgesense.quant.tflite.parity import compare_with_onnx

    r = compare_with_onnx(int8_onnx, tflite, samples)
    values = sum(o.values for o in r.outputs)
    worst = min(r.outputs, key=lambda o: (o.within_1_lsb, -o.max_lsb))
    return {"values": int(values), "exact": float(min(o.exact for o in r.outputs)),
            "within_1_lsb": float(r.within_1_lsb), "max_lsb": int(r.max_lsb), "worst_output": worst.name,
            "samples": len(samples)}


def packed_variant(tflite: Path, dst: Path, checks: int = 64) -> dict | None:
    """``<name>_int8_amx.tflite``: ``tflite`` with its narrow int8 convolutions packed for XNNPACK's 64-channel AMX
    tile (:mod:`edgesense.quant.tflite.pack_channels`; exact by construction), written only where the pass packs
    something (a stale ``dst`` is removed otherwise). Checked here on ``checks`` random int8 inputs: every output
    equal to the unpacked file's, else ModelError. Returns {file, packed (per convolution), checked}."""
    import dataclasses

    from edgesense.errors import ModelError
    from edgesense.quant.tflite.pack_channels import pack_channels
    from edgesense.quant.tflite.parity import tflite_interpreter

    data, packed = pack_channels(tflite.read_bytes(), 64)
    if not packed:
        dst.unlink(missing_ok=True)
        return None
    dst.write_bytes(data)
    rng = np.random.default_rng(0)
    ref, new = tflite_interpreter(tflite), tflite_interpreter(dst)
    for _ in range(checks):
        feeds = {}
        for it in (ref, new):
            for d in it.get_input_details():
                x = feeds.setdefault(d["name"], rng.integers(-128, 128, d["shape"]).astype(d["dtype"]))
                it.set_tensor(d["index"], x)
            it.invoke()
        outs = [[it.get_tensor(d["index"]) for d in it.get_output_details()] for it in (ref, new)]
        if not all(np.array_equal(a, b) for a, b in zip(*outs)):
            dst.unlink()
            raise ModelError(f"{dst.name}: packed convolutions changed an output; not written")
    return {"file": dst.name, "packed": [dataclasses.asdict(c) for c in packed], "checked": checks}


def params_and_macs(float_onnx: Path, steps: int | None) -> dict:
    """Parameter count (float initializers of the exported ONNX, BatchNorm folded) and MACs (Conv/Gemm/MatMul) of
    one inference at batch 1 (streaming models: one block of ``steps`` frames), from ONNX shape inference."""
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(float_onnx))
    for vi in list(model.graph.input) + list(model.graph.output):
        for i, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.dim_param:
                d.dim_value = 1 if i == 0 else (steps or 1)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    params = int(sum(v.size for v in inits.values() if v.dtype.kind == "f"))
    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    macs = 0
    for node in model.graph.node:
        out = shapes.get(node.output[0])
        if node.op_type == "Conv" and out and node.input[1] in inits:
            w = inits[node.input[1]]
            macs += int(np.prod(out)) * int(np.prod(w.shape[1:]))
        elif node.op_type in ("Gemm", "MatMul") and out and node.input[1] in inits:
            w = inits[node.input[1]]
            trans = any(a.name == "transB" and a.i for a in node.attribute)
            k = w.shape[1] if (node.op_type == "Gemm" and trans) else w.shape[0]
            macs += int(np.prod(out)) * int(k)
    return {"parameters": params, "macs": int(macs)}


def io_quantization(tflite: Path) -> list[dict]:
    """Inputs and outputs of the INT8 TFLite model: name, shape, dtype, scale, zero point."""
    from edgesense.quant.tflite.parity import tflite_interpreter

    it = tflite_interpreter(tflite)
    rows = []
    for kind, details in (("input", it.get_input_details()), ("output", it.get_output_details())):
        for d in details:
            s, z = d["quantization"]
            rows.append({"kind": kind, "name": d["name"], "shape": [int(v) for v in d["shape"]],
                         "dtype": np.dtype(d["dtype"]).name, "scale": float(s), "zero_point": int(z)})
    return rows


def run_bench(model_dir: Path, runs: int) -> list[dict]:
    """``edgesense bench MODEL_DIR --json`` (every backend in a fresh process: peak memory is meaningful; the
    pipeline rows are not part of a model card's latency table, so they are skipped)."""
    cmd = [sys.executable, "-m", "edgesense.cli.main", "bench", str(model_dir), "--runs", str(runs), "--json",
           "--no-pipelines"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1200)
    if proc.returncode != 0:
        _log(f"bench failed: {proc.stderr.strip().splitlines()[-1:] if proc.stderr else proc.returncode}")
        return []
    rows = json.loads(proc.stdout)["results"]
    return [{k: r[k] for k in ("backend", "path", "median_us", "p99_us", "throughput_per_s", "peak_memory_mb")}
            for r in rows]


def block_latency(paths: list[Path], runs: int, frames: int = BLOCK_FRAMES) -> list[dict]:
    """Streaming models on the deployed block (``frames`` frames per call, states fed back): median and p99
    per call at batch 1, one thread, every backend on the same block length."""
    from edgesense.runtime import load_model
    from edgesense.runtime.bench import backend_label, time_calls
    from edgesense.runtime.model import quantize

    rows = []
    for path in paths:
        m = load_model(path, threads=1, warmup=0)
        rng = np.random.default_rng(0)
        feeds = {}
        for s in m.input_specs:
            shape = [1] + [int(d) if isinstance(d, int) and d > 0 else frames for d in s.shape[1:]]
            feeds[s.name] = rng.standard_normal(shape).astype(np.float32)
        raw = all(s.quantized for s in m.input_specs)
        if raw:
            feeds = {s.name: quantize(feeds[s.name], s.scale, s.zero_point, s.dtype) for s in m.input_specs}
        t = time_calls(lambda: m.run(feeds, raw=raw), runs, warmup=max(10, runs // 10))
        rows.append({"backend": backend_label(path, "litert" if path.suffix == ".tflite" else "onnxruntime"),
                     "path": str(path), "frames_per_call": frames, "median_us": float(np.median(t) * 1e6),
                     "p99_us": float(np.percentile(t, 99) * 1e6)})
        if path.suffix == ".tflite":
            rows.append(_litert_views_latency(path, feeds, runs, frames))
    return rows


def _litert_views_latency(path: Path, feeds: dict, runs: int, frames: int) -> dict:
    """LiteRT with zero-copy I/O: inputs written into the interpreter's tensor views, outputs copied out of
    them (``set_tensor``/``get_tensor`` cost several µs per tensor, which dominates 9-in/9-out streaming
    models)."""
    from edgesense.quant.tflite.parity import tflite_interpreter

    it = tflite_interpreter(path)
    ins = [(it.tensor(d["index"]), feeds[d["name"]]) for d in it.get_input_details()]
    outs = [it.tensor(d["index"]) for d in it.get_output_details()]

    def call():
        for view, value in ins:
            view()[...] = value
        it.invoke()
        return [o().copy() for o in outs]

    from edgesense.runtime.bench import time_calls

    t = time_calls(call, runs, warmup=max(10, runs // 10))
    from edgesense.runtime.bench import backend_label

    return {"backend": backend_label(path, "litert") + " (zero-copy I/O)", "path": str(path), "frames_per_call": frames,
            "median_us": float(np.median(t) * 1e6), "p99_us": float(np.percentile(t, 99) * 1e6)}


# -- one model -----------------------------------------------------------------------------------

def build_model(name: str, kind: str, float_onnx: Path, opts: ZooOptions, work: Path) -> dict:
    """Everything of one model; writes ``<name>_int8.{onnx,tflite,json,report.json}`` beside the float model."""
    import onnx

    from edgesense.quant.tflite import export_tflite

    sys.path.insert(0, str(ROOT / "tools"))
    import compare_peers

    t_start = time.time()
    out_dir = float_onnx.parent
    stream = kind == "excursion"
    _log(f"{name}: preparing {kind} data")
    task = ExcursionTask(float_onnx, opts) if stream else GestureTask(float_onnx, opts)
    calib_file = work / f"{name}_calib"
    calib_src = opts.excursion_data if stream else opts.gesture_data

    # (1) quantize with each method, choose by validation metric: the ONNX artefact for `opts.target` scored on
    # ORT; the LiteRT artefact for `opts.tflite_target` scored on LiteRT (when that is another target)
    val_float = task.score(float_onnx, "val")
    task.reference = val_float
    candidates, chosen = _select_candidates(name, float_onnx, task, opts, work / "ort", opts.target, calib_src,
                                            stream, litert=False)
    _log(f"{name}: chose {chosen} ({candidates[chosen]['val']})")
    int8_onnx = out_dir / f"{name}_int8.onnx"
    shutil.copyfile(candidates[chosen]["path"], int8_onnx)
    _copy_sidecar(float_onnx, int8_onnx)
    lite_target = opts.litert_target
    if lite_target != opts.target:
        lite_cands, lite_chosen = _select_candidates(name, float_onnx, task, opts, work / "litert", lite_target,
                                                     calib_src, stream, litert=True)
        _log(f"{name}: LiteRT ({lite_target}) chose {lite_chosen} ({lite_cands[lite_chosen]['val']})")
        lite_qdq, lite_graph = lite_cands[lite_chosen]["path"], lite_cands[lite_chosen]["graph"]
    else:
        lite_cands, lite_chosen, lite_qdq, lite_graph = None, chosen, int8_onnx, candidates[chosen]["graph"]

    # (2) TFLite export and parity
    int8_tflite = out_dir / f"{name}_int8.tflite"
    shapes = None
    if stream:
        x_in = onnx.load(str(int8_onnx)).graph.input[0]
        ch = x_in.type.tensor_type.shape.dim[1].dim_value
        shapes = {x_in.name: (1, ch, BLOCK_FRAMES)}
    export_tflite(lite_qdq, int8_tflite, input_shapes=shapes)
    n_par = opts.sizes["parity"]
    graph = candidates[chosen]["graph"]
    q_model = onnx.load(str(int8_onnx))
    io = ([i.name for i in q_model.graph.input], [o.name for o in q_model.graph.output])
    if stream:
        task.prepare_parity(int8_onnx, n_par)
    samples = task.parity_inputs(n_par)
    _log(f"{name}: parity on {len(samples)} samples")
    parity = {"ort_vs_integer_sim": integer_sim_parity(graph, int8_onnx, samples, io_names=io)}
    if stream and lite_qdq != int8_onnx:      # realistic states of the LiteRT artefact's own QDQ model
        task.prepare_parity(lite_qdq, n_par)
        samples = task.parity_inputs(n_par)
    # LiteRT against the QDQ ONNX it was converted from (ORT at the basic level: float Conv between Q/DQ, exact
    # for 8-bit weights too) and against the integer simulation of that model
    parity["litert_vs_ort"] = litert_parity(lite_qdq, int8_tflite, samples)
    packed = packed_variant(int8_tflite, out_dir / f"{name}_int8_amx.tflite")
    parity["litert_vs_integer_sim"] = integer_sim_parity(lite_graph, int8_tflite, samples, add="xnnpack",
                                                         io_names=io)
    if stream:      # ship channel-last state I/O (no layout ops); checked bit for bit against the file just compared
        from edgesense.quant.tflite.state_layout import channel_last_file
        channel_last_file(int8_tflite, which="all")

    # (3) task metrics on the test set
    _log(f"{name}: test metrics")
    lite_eval = int8_tflite
    if stream:      # the same INT8 model converted for 1 s blocks: scoring speed (Python cost per call)
        lite_eval = _litert_scoring_file(lite_qdq, work / f"{name}_int8_1s.tflite", float_onnx, stream)
        parity["litert_1ms_vs_1s_block_max_abs_mm"] = task.block_equivalence(int8_tflite, lite_eval)
    lite_label = lite_target if lite_target != opts.target else None
    rows = [{"model": "float (ORT)", "file": float_onnx.name, **task.score(float_onnx)},
            {"model": row_name(chosen, "ORT"), "file": int8_onnx.name, **task.score(int8_onnx)},
            {"model": row_name(lite_chosen, "LiteRT", lite_label), "file": int8_tflite.name, **task.score(lite_eval)}]
    for method in candidates:
        if method != chosen:
            rows.append({"model": row_name(method, "ORT"), "file": None, **task.score(candidates[method]["path"])})
    for method in lite_cands or {}:
        if method != lite_chosen:
            rows.append({"model": row_name(method, "LiteRT", lite_label), "file": None,
                         **task.score(lite_cands[method]["lite"])})
    if opts.peers:
        calib = task.peer_calib()
        for method, rr in PEERS:
            label = f"ORT quantize_static {method}" + (" reduce_range" if rr else "") + " (ORT)"
            dst = work / f"{name}_peer_{method}{'_rr' if rr else ''}.onnx"
            _log(f"{name}: peer {label}")
            try:
                with contextlib.redirect_stdout(sys.stderr):     # ORT prints calibration progress
                    compare_peers._ort_quantize(float_onnx, dst, calib, method, rr)
                _copy_sidecar(float_onnx, dst)
                rows.append({"model": label, "file": None, **task.score(dst)})
            except Exception as exc:  # a peer failing is a result
                rows.append({"model": label, "file": None, "error": str(exc).splitlines()[0][:160]})
        if opts.aimet_python is not None:
            rows += aimet_peer_rows(name, float_onnx, calib, work, opts.aimet_python, task)

    # (4) latency
    from edgesense.runtime.bench import machine_info

    load = os.getloadavg()[0]
    bench = run_bench(out_dir, opts.bench_runs) if opts.bench else []
    lite_files = [int8_tflite] + ([out_dir / packed["file"]] if packed else [])
    blocks = (block_latency([float_onnx, int8_onnx, *lite_files], opts.bench_runs, BLOCK_FRAMES if stream else 1)
              if opts.bench else [])

    size = params_and_macs(float_onnx, BLOCK_FRAMES if stream else None)
    report = {
        "name": name, "kind": kind, "seed": opts.seed, "quick": opts.quick, "target": opts.target,
        "select": opts.select,
        "float_sha256": sha256(float_onnx),
        "chosen_method": chosen,
        "validation": {"float": val_float, **{m: candidates[m]["val"] for m in candidates}},
        "litert": {"target": lite_target, "chosen_method": lite_chosen,
                   "validation": ({m: lite_cands[m]["val"] for m in lite_cands} if lite_cands else None),
                   "quantize_summary": ({k: v for k, v in lite_cands[lite_chosen]["summary"].items()
                                         if k not in ("int8_onnx", "float_folded_onnx", "encodings")}
                                        if lite_cands else None)},
        "quantize_summary": {k: v for k, v in candidates[chosen]["summary"].items()
                             if k not in ("int8_onnx", "float_folded_onnx", "encodings")},
        "parity": parity, "test": rows, "bench": bench, "block_latency": blocks, "bench_load_average": load,
        "bench_machine": machine_info() if bench else None, **size,
        "files": {p.name: p.stat().st_size for p in (float_onnx, int8_onnx, *lite_files)}, "amx_packed": packed,
        "io": io_quantization(int8_tflite),
        "data": {"calibration": str(calib_src), "sizes": opts.sizes, "validation": _validation_sets(kind, opts)},
        "commands": {"quantize": _command_quantize(name, kind, chosen, opts),
                     "quantize_litert": _command_quantize(name, kind, lite_chosen, opts, lite_target)
                     + " && " + _command_export(name, opts, lite_target, shapes),
                     "zoo": zoo_command(name, opts),
                     "eval": _eval_command(name, kind, opts)},
        "seconds": round(time.time() - t_start, 1),
    }
    report["targets"] = targets(report)
    (out_dir / f"{name}_int8.report.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    del calib_file
    return report


AIMET_SCHEMES = ("min_max", "tf_enhanced", "percentile")


def default_aimet_python() -> Path | None:
    """``$EDGESENSE_AIMET_PYTHON``, else ``../aimet-venv/bin/python`` beside the checkout when it exists."""
    env = os.environ.get("EDGESENSE_AIMET_PYTHON")
    if env:
        return Path(env)
    guess = ROOT.parent / "aimet-venv" / "bin" / "python"
    return guess if guess.is_file() else None


def aimet_peer_rows(name: str, float_onnx: Path, calib: np.ndarray, work: Path, python: Path, task) -> list[dict]:
    """The optional aimet-onnx peer (per-channel weights, BN folded), one row per range scheme, scored like the rest.

    aimet-onnx lives in its own environment (``tools/peer_aimet.py`` says how to make it), so it runs there as a
    subprocess on the same calibration array the onnxruntime peers get."""
    calib_npy = work / f"{name}_aimet_calib.npy"
    np.save(calib_npy, np.ascontiguousarray(calib, np.float32))
    rows = []
    for scheme in AIMET_SCHEMES:
        label = f"aimet-onnx {scheme} (ORT)"
        dst = work / f"{name}_aimet_{scheme}.onnx"
        _log(f"{name}: peer {label}")
        r = subprocess.run([str(python), str(ROOT / "tools" / "peer_aimet.py"), "--model", str(float_onnx),
                            "--calib", str(calib_npy), "--out", str(dst), "--scheme", scheme, "--json"],
                           capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if r.returncode != 0 or not dst.is_file():
            tail = (r.stderr.strip().splitlines() or ["failed"])[-1]
            rows.append({"model": label, "file": None, "error": tail[:160]})
            continue
        _copy_sidecar(float_onnx, dst)
        try:
            rows.append({"model": label, "file": None, **task.score(dst)})
        except Exception as exc:  # a peer failing is a result
            rows.append({"model": label, "file": None, "error": str(exc).splitlines()[0][:160]})
    return rows


def _eval_command(name: str, kind: str, opts: ZooOptions) -> str:
    if kind == "gesture":
        return (f"edgesense eval gesture --data {opts.gesture_data} --split test --model models/{name}/{name}.onnx "
                f"--json   # also {name}_int8.onnx, {name}_int8.tflite")
    return (f"edgesense eval excursion --data {opts.excursion_data} --split test --no-baselines "
            f"--model models/{name}/{name}.onnx --model models/{name}/{name}_int8.onnx --json")


def targets(report: dict) -> dict:
    """The issue's targets, met or missed (measured, never assumed)."""
    rows = {r["model"]: r for r in report["test"]}
    f = rows["float (ORT)"]
    ort_name, lite_name = shipped_rows(report)
    ort, lite = rows[ort_name], rows[lite_name]
    peers = [r for r in report["test"] if r["model"].startswith(("ORT quantize_static", "aimet-onnx"))
             and "error" not in r]
    out = {}
    if report["kind"] == "gesture":
        for key, r in (("ort", ort), ("litert", lite)):
            out[f"int8_{key}_within_0.5_points"] = bool((f["accuracy"] - r["accuracy"]) * 100 <= 0.5)
        out["edgesense_at_least_as_accurate_as_every_peer"] = bool(all(ort["accuracy"] >= p["accuracy"] for p in peers))
        out["edgesense_litert_at_least_as_accurate_as_every_peer"] = bool(all(lite["accuracy"] >= p["accuracy"]
                                                                              for p in peers))
    else:
        for key, r in (("ort", ort), ("litert", lite)):
            out[f"int8_{key}_nrmse_within_10pct"] = bool(r["nrmse"] <= 1.10 * f["nrmse"])
            out[f"int8_{key}_peak_within_0.01mm"] = bool(r["peak_error_mm"] <= f["peak_error_mm"] + 0.01)
        out["edgesense_at_least_as_accurate_as_every_peer"] = bool(all(ort["nrmse"] <= p["nrmse"] for p in peers))
        out["edgesense_litert_at_least_as_accurate_as_every_peer"] = bool(all(lite["nrmse"] <= p["nrmse"]
                                                                              for p in peers))
    par = report["parity"]
    out["parity_ort_vs_integer_sim_99.9"] = bool(par["ort_vs_integer_sim"]["within_1_lsb"] >= 0.999)
    if "litert_vs_integer_sim" in par:
        out["parity_litert_vs_integer_sim_99.9"] = bool(par["litert_vs_integer_sim"]["within_1_lsb"] >= 0.999)
    out.update(latency_targets(report["block_latency"] or []))
    return out


def latency_targets(lat: list[dict]) -> dict:
    """"LiteRT INT8 the fastest backend", from latency rows ({backend, median_us}): the portable ``.tflite`` or,
    where shipped, its AMX-packed twin (the file for CPUs with AMX) against every other backend; with and without
    LiteRT's zero-copy I/O."""
    out = {}
    others = [r["median_us"] for r in lat if not r["backend"].startswith("LiteRT INT8")]
    for zero_copy, key in ((False, "litert_int8_fastest"), (True, "litert_int8_zero_copy_fastest")):
        mine = [r["median_us"] for r in lat if r["backend"].startswith("LiteRT INT8")
                and r["backend"].endswith("(zero-copy I/O)") == zero_copy]
        if mine and others:
            out[key] = bool(min(mine) < min(others))
    return out


# -- model card and index ------------------------------------------------------------------------

def _fmt_metric(r: dict, kind: str) -> str:
    if "error" in r:
        return f"failed: {r['error']}"
    if kind == "gesture":
        return (f"{r['accuracy'] * 100:.2f} | {r['balanced_accuracy'] * 100:.2f} | "
                f"{r.get('argmax_agreement_vs_float', float('nan')) * 100:.2f}")
    return f"{r['nrmse'] * 100:.2f} | {r['rmse_mm'] * 1000:.1f} | {r['peak_error_mm']:.4f}"


def _select_text(select: str) -> str:
    """The card's words for a gesture selection rule."""
    if select == "fidelity":
        return ("closest to the float model: the lowest mean KL divergence of the INT8 clip probabilities from the "
                "float model's, then clip accuracy; `--select fidelity`, docs/quantization.md §19")
    return "clip accuracy, then balanced accuracy, then mean negative log-likelihood of the true class"


def _gesture_val_text(r: dict, select: str) -> str:
    """One gesture candidate's validation figures, the deciding one first."""
    acc = f"{r['accuracy'] * 100:.2f} %"
    if select == "fidelity" and "kl_vs_float" in r:
        return f"KL {r['kl_vs_float']:.5f} ({acc}, {r['flips_vs_float']} clips off float's class)"
    return acc + (f" (NLL {r['nll']:.4f})" if "nll" in r else "")


def _val_sets_text(report: dict) -> str:
    """`` of A:val, B:all`` when the candidates were chosen on more than the model's own validation split."""
    sets = report.get("data", {}).get("validation") or []
    return f" of {', '.join(f'`{v}`' for v in sets)}" if len(sets) > 1 else ""


def card_section(report: dict) -> str:
    """The INT8 section of a model card (markdown, between the zoo markers)."""
    from edgesense.runtime.bench import describe_machine
    from edgesense.quant.target import get_target

    kind, name = report["kind"], report["name"]
    L = [BEGIN, "", "## INT8 (model zoo)", "",
         f"Generated by `{report['commands']['zoo']}` "
         f"(seed {report['seed']}, target `{report['target']}`"
         + (f"; the `.tflite`: `{report['litert']['target']}`"
            if (report.get("litert") or {}).get("target", report["target"]) != report["target"] else "")
         + f"); full figures in `{name}_int8.report.json`."
         + (" **Quick run: small subsets, not the zoo's figures.**" if report["quick"] else ""), ""]
    L += ["| file | size |", "|---|---|"] + [f"| `{k}` | {v / 1024:.1f} KiB |" for k, v in report["files"].items()]
    per = f" per {BLOCK_FRAMES}-frame (1 ms) block" if kind == "excursion" else " per inference"
    L += ["", f"Parameters: {report['parameters']:,}; MACs{per}: {report['macs']:,}.", "",
          "Inputs and outputs of the INT8 models (int8; real value = scale · (q − zero point)); shapes as the "
          ".tflite declares them" + (" -- channel-last, without layout ops (`edgesense.quant.tflite.state_layout`); "
                                     "the INT8 ONNX keeps the float ONNX's (1, channels, steps) layout"
                                     if report["kind"] == "excursion" else "") + ":", "",
          "| | name | shape | dtype | scale | zero point |", "|---|---|---|---|---|---|"]
    L += [f"| {r['kind']} | `{r['name']}` | {r['shape']} | {r['dtype']} | {r['scale']:.6g} | {r['zero_point']} |"
          for r in report["io"]]
    val = report["validation"]
    if kind == "gesture":
        vtxt = ", ".join(f"{m} {_gesture_val_text(val[m], report.get('select', 'accuracy'))}"
                         for m in val if m != "float")
        L += ["", f"Method chosen on validation users ({_select_text(report.get('select', 'accuracy'))}; "
              f"{val['float']['clips']} clips{_val_sets_text(report)}; float "
              f"{val['float']['accuracy'] * 100:.2f} %): {vtxt} → **{report['chosen_method']}**."]
        head = "| model | accuracy % | balanced accuracy % | agreement with float % |"
        first = report["test"][0]
        desc = (f"Test set: {first['clips']} clips of held-out users (split `test`), each classified by the window "
                f"`edgesense eval gesture` uses (pipeline windows: RDI, normalisation, validity channel).")
    else:
        vtxt = ", ".join(f"{m} {val[m]['nrmse'] * 100:.2f} % / {val[m]['peak_error_mm']:.4f} mm"
                         for m in val if m != "float")
        L += ["", f"Method chosen on validation clips (every validation clip of {val['float'].get('streams', '?')} "
              f"streams{_val_sets_text(report)}, {val['float'].get('scored_seconds', float('nan')):.0f} s scored; "
              f"NRMSE / peak error; float "
              f"{val['float']['nrmse'] * 100:.2f} % / {val['float']['peak_error_mm']:.4f} mm): {vtxt} → "
              f"**{report['chosen_method']}** (candidates meeting both INT8 targets on validation first, then the "
              "lowest NRMSE)."]
        head = "| model | NRMSE % | RMSE µm | peak error mm |"
        first = report["test"][0]
        desc = (f"Test set: {first['streams']} streams run causally from their start, scored on their first test "
                f"clip after a 500 ms warm-up ({first['scored_seconds']:.0f} s scored), metrics of "
                f"`edgesense eval excursion`; every model in 1 s calls (LiteRT: the same INT8 model converted for "
                f"1 s blocks; it matches the shipped 1 ms-block `.tflite` to "
                f"{report['parity'].get('litert_1ms_vs_1s_block_max_abs_mm', float('nan')):.3g} mm).")
    L += _litert_card_lines(report)
    qsum = report.get("quantize_summary", {})
    qat = qsum.get("qat")
    ref, ada = qsum.get("refinement"), qsum.get("adaround")
    what = f"calibration {'signals' if kind == 'excursion' else 'windows'} (train split)"
    if ada:
        L += ["", f"`{split_method(report['chosen_method'])[0]}`: {_steps(split_method(report['chosen_method'])[0])[0]} "
              f"ranges, then AdaRound (`edgesense quantize --adaround`: `edgesense.quant.adaround`, learned rounding "
              f"of the {get_target(report['target']).weight_bitwidth}-bit weights, layer by layer, {ada['iterations']} iterations each) on {ada['samples']} {what}: {ada['flipped']:,} of "
              f"{ada['weights']:,} weights rounded the other way, output SQNR against float "
              f"{ada['output_sqnr_db_before']:.2f} → {ada['output_sqnr_db_after']:.2f} dB."]
    if ref:
        L += ["", f"`{split_method(report['chosen_method'])[0]}`: {_steps(split_method(report['chosen_method'])[0])[0]} "
              f"ranges, then output-aware range refinement (`edgesense quantize --refine`: "
              f"`edgesense.quant.ptq.refine_activation_ranges`): the activation ranges that cost the output most re-scaled greedily for the best output SQNR against the "
              f"float model on {ref['samples']} {what}, {ref['output_sqnr_db_before']:.2f} → "
              f"{ref['output_sqnr_db_after']:.2f} dB, {len(ref['changed'])} range(s) changed."]
    if qat and qat.get("objective") in ("labels+float", "labels"):
        both = qat["objective"] == "labels+float"
        L += ["", f"`{report['chosen_method']}`: then a quantization-aware fine-tune on labels (`edgesense quantize "
              f"--qat-objective {'task+float' if both else 'task'}`) of {qat['steps']} steps: batches of 32 of the "
              f"classified windows of {qat['clips']} train-split clips, cross-entropy against the clip labels"
              + (" plus MSE to the float model's probabilities" if both else "") + f", Adam lr {qat['lr']:g}, "
              "learnable min/max ranges. It keeps training on the task, so the INT8 model can score better than the "
              "float one it started from; the peers are post-training only."]
    elif qat and str(qat.get("objective", "")).startswith("task"):
        L += ["", f"`{report['chosen_method']}`: {split_method(report['chosen_method'])[0]} ranges, then a "
              f"quantization-aware fine-tune (edgesense's QAT, `edgesense quantize --qat-steps`) of {qat['steps']} "
              f"steps: batches of 8 crops of 256 frames from {qat['signals']} train-split recordings spread evenly over the split, "
              f"each run from zero state over the receptive field, MSE against the true excursion"
              + (" plus MSE against the float model's output" if qat["objective"] == "task+float" else "")
              + f", Adam lr "
              f"{qat['lr']:g} for weights, learnable min/max ranges. It keeps training on the task, so the INT8 "
              "model can score better than the float one it started from; the peers are post-training only."]
    elif qat:
        L += ["", f"`{report['chosen_method']}`: {split_method(report['chosen_method'])[0]} ranges, then a label-free "
              f"quantization-aware fine-tune (`edgesense quantize --qat-steps`) of {qat['steps']} steps: batches of "
              f"32 calibration windows, MSE between the INT8 simulation's and the float model's outputs, Adam lr "
              f"{qat['lr']:g}, learnable min/max ranges."]
    L += ["", desc, "", head, "|---|---|---|---|"]
    L += [f"| {r['model']} | {_fmt_metric(r, kind)} |" for r in report["test"]]
    par = report["parity"]
    what = ("test windows" if kind == "gesture" else
            "1 ms blocks of a calibration signal, states fed back from ORT, after 50 blocks of start-up")
    def fig(key: str) -> str:
        r = par.get(key)
        if r is None:
            return "not measured"
        w = f", worst output `{r['worst_output']}`" if r.get("worst_output") else ""
        return f"{r['within_1_lsb'] * 100:.3f} % / {r['exact'] * 100:.3f} % / {r['max_lsb']}{w}"

    L += ["", f"Parity on {par['litert_vs_ort'].get('samples', 'the')} {what} (share of the worst output's values "
          "within 1 LSB / bit-exact / max LSB over all outputs). Target: each runtime against edgesense's integer "
          "simulation (`IntegerSim`) with that runtime's Add arithmetic (ORT: float; LiteRT's XNNPACK: 20-bit "
          "fixed-point multipliers, docs/tflite-export.md §4):", "",
          f"- ORT (as `edgesense.runtime` runs it) vs IntegerSim: {fig('ort_vs_integer_sim')}",
          f"- LiteRT (XNNPACK) vs IntegerSim (XNNPACK Add): {fig('litert_vs_integer_sim')}",
          f"- LiteRT (XNNPACK) vs ORT at `ORT_ENABLE_BASIC` (the QDQ graph as written; the two runtimes round an "
          f"int8 Add differently about once in 30,000 values, and later layers amplify it): {fig('litert_vs_ort')}"]
    if report["bench"]:
        shapes = ("; streaming ONNX models at their dynamic block length = 1 frame, the .tflite at its fixed 1 ms "
                  "block" if kind == "excursion" else "")
        L += ["", f"Latency, `edgesense bench` (batch 1, one thread, each backend in a fresh process{shapes}; "
              + (f"measured on {describe_machine(report['bench_machine'])}" if report.get("bench_machine")
                 else "measured on the shared 2-core build machine")
              + (f", at load average {report['bench_load_average']:.1f}" if "bench_load_average" in report else "")
              + ": other jobs inflate medians and dominate p99):", "", "| backend | file | median µs | p99 µs | inferences/s | peak memory MB |",
              "|---|---|---|---|---|---|"]
        L += [f"| {r['backend']} | `{Path(r['path']).name}` | {r['median_us']:.1f} | {r['p99_us']:.1f} | "
              f"{r['throughput_per_s']:.0f} | {r['peak_memory_mb'] if r['peak_memory_mb'] is not None else '-'} |"
              for r in report["bench"]]
    if report["block_latency"]:
        what = (f"on the deployed block ({BLOCK_FRAMES} frames = 1 ms of audio per call, same block on every "
                "backend)" if kind == "excursion" else "in one process, one backend after the other, same input")
        L += ["", f"Latency {what}, batch 1, one thread; `edgesense.runtime` `Model.run` on int8 data for the INT8 "
              "models, and LiteRT driven through the interpreter's tensor views (no `set_tensor`/`get_tensor` "
              "copies):", "", "| backend | median µs | p99 µs |", "|---|---|---|"]
        L += [f"| {r['backend']} | {r['median_us']:.1f} | {r['p99_us']:.1f} |" for r in report["block_latency"]]
    amx = report.get("amx_packed")
    if amx:
        L += ["", f"`{amx['file']}`: the same INT8 model with its narrow convolutions packed for XNNPACK's int8 "
              "convolution tile on x86 CPUs with AMX (16 pixels × 64 channels; `edgesense export tflite "
              "--pack-channels 64`, `edgesense.quant.tflite.pack_channels`, docs/tflite-export.md): blocks of output "
              "pixels computed as extra output channels, the other weights zero, so every output is bit-identical "
              f"(checked on {amx['checked']} random int8 inputs; {len(amx['packed'])} convolution(s) packed). Deploy "
              "it on CPUs with AMX; elsewhere (AVX2, ARM) the zero weights are extra work and the portable "
              f"`{report['name']}_int8.tflite` is the file to use. The LiteRT latency target counts the faster of "
              "the two on the machine measured."]
    L += ["", "Targets: " + ", ".join(f"{k} {'met' if v else '**missed**'}" for k, v in report["targets"].items())
          + ".", "", "Reproduce:", "", "```", report["commands"]["zoo"], report["commands"]["quantize"],
          *([report["commands"]["quantize_litert"]] if "quantize_litert" in report["commands"] else []),
          report["commands"]["eval"], f"edgesense bench models/{name} --json", "```", "", END]
    return "\n".join(L)


def _litert_card_lines(report: dict) -> list[str]:
    """The card's paragraph on the ``.tflite`` artefact when it has its own target (session 6)."""
    from edgesense.quant.target import get_target

    lite = report.get("litert") or {}
    if not lite.get("validation"):
        return []
    val, gesture = lite["validation"], report["kind"] == "gesture"
    fmt = ((lambda r: _gesture_val_text(r, report.get("select", "accuracy"))) if gesture
           else (lambda r: f"{r['nrmse'] * 100:.2f} % / {r['peak_error_mm']:.4f} mm"))
    t_lite, t_ort = get_target(lite["target"]), get_target(report["target"])
    steps = []
    summary = lite.get("quantize_summary") or {}
    if summary.get("adaround"):
        a = summary["adaround"]
        steps.append(f"AdaRound {a['flipped']:,} of {a['weights']:,} weights rounded the other way, output SQNR "
                     f"{a['output_sqnr_db_before']:.2f} → {a['output_sqnr_db_after']:.2f} dB")
    if summary.get("refinement"):
        r = summary["refinement"]
        steps.append(f"range refinement {r['output_sqnr_db_before']:.2f} → {r['output_sqnr_db_after']:.2f} dB")
    if summary.get("qat"):
        q = summary["qat"]
        steps.append(f"QAT {q['steps']} steps, objective {q.get('objective')}, lr {q['lr']:g}")
    return ["", f"The `.tflite` artefact has its own target, `{lite['target']}` ({t_lite.weight_bitwidth}-bit "
            f"per-channel weights, which LiteRT's default XNNPACK delegate computes exactly), while the ONNX artefact "
            f"keeps `{report['target']}` ({t_ort.weight_bitwidth}-bit weights: "
            + ("exact on ONNX Runtime on x86 without VNNI" if t_ort.weight_bitwidth < 8 else
               "exact on ONNX Runtime where the session sets `session.x64quantprecision=1`, as `edgesense.runtime` "
               "does") + ", docs/quantization.md §4, §14). Its candidates are built the same way for that target, each "
            "converted and run on LiteRT, and chosen on the same validation data by the same rule: "
            + ", ".join(f"{m} {fmt(val[m])}" for m in val) + f" → **{lite['chosen_method']}**"
            + (f" ({'; '.join(steps)})" if steps else "") + "."]


def write_card(card: Path, section: str) -> None:
    """Replace the marked zoo section of ``card`` (or append it); everything else stays as it is."""
    text = card.read_text() if card.is_file() else f"# {card.parent.name}\n"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    card.write_text(text)


def readme_table(reports: list[dict]) -> str:
    lines = [README_BEGIN, "", "| model | task | parameters | float | INT8 ORT | INT8 LiteRT | INT8 method | "
             "LiteRT INT8 median µs | fastest other backend µs | targets missed |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        rows = {x["model"]: x for x in r["test"]}
        c = r["chosen_method"]
        ort_name, lite_name = shipped_rows(r)
        f, o, li = rows["float (ORT)"], rows[ort_name], rows[lite_name]
        lite = r.get("litert") or {}
        if lite.get("chosen_method", c) != c or lite.get("target", r["target"]) != r["target"]:
            c = f"{c} (ORT); {lite['chosen_method']} {lite['target']} (LiteRT)"
        if r["kind"] == "gesture":
            task, m = "radar gesture (clip accuracy %)", lambda x: f"{x['accuracy'] * 100:.2f}"
        else:
            task, m = "speaker excursion (NRMSE % / peak mm)", \
                lambda x: f"{x['nrmse'] * 100:.2f} / {x['peak_error_mm']:.3f}"
        lat = r["block_latency"] or r["bench"]
        lite = [x["median_us"] for x in lat if x["backend"].startswith("LiteRT INT8")]
        other = [x["median_us"] for x in lat if not x["backend"].startswith("LiteRT INT8")]
        lines.append(f"| [{r['name']}]({r['name']}/MODEL_CARD.md) | {task} | {r['parameters']:,} | {m(f)} | {m(o)} | "
                     f"{m(li)} | {c} | {min(lite) if lite else float('nan'):.1f} | "
                     f"{min(other) if other else float('nan'):.1f} | "
                     + (", ".join(k for k, v in r["targets"].items() if not v) or "none") + " |")
    lines += ["", "Latency: batch 1, one thread, in one process (streaming models: per 1 ms block of 12 frames; "
              "LiteRT: the faster of `Model.run` and zero-copy tensor views, and of the portable `.tflite` and, where shipped, "
              "its AMX-packed twin `<name>_int8_amx.tflite`, the file for x86 CPUs with AMX; each card names the "
              "machine). The peer targets in the last column are on each model's own test split; issue 6's peer "
              "verdicts, on far more held-out data, are in docs/quantization.md §19.2. Regenerate with "
              "`python tools/build_zoo.py` (15-20 minutes on a loaded 2-core machine); targets are those of issue 6, "
              "measured (see each card).", "", README_END]
    return "\n".join(lines)


def write_readme(path: Path, reports: list[dict]) -> None:
    """Update the zoo table in ``models/README.md`` (rows of models not rebuilt this run are kept from their
    reports)."""
    by_name = {}
    for rep in sorted(path.parent.glob("*/*_int8.report.json")):
        try:
            r = json.loads(rep.read_text())
            by_name[r["name"]] = r
        except (OSError, json.JSONDecodeError, KeyError):
            continue
    for r in reports:
        by_name[r["name"]] = r
    table = readme_table([by_name[k] for k in sorted(by_name)])
    text = path.read_text() if path.is_file() else (
        "# edgesense model zoo\n\n"
        "Every model directory ships `<name>.onnx` (float), `<name>_int8.onnx` (INT8 QDQ for the zoo's "
        "`--target`, named in each card), `<name>_int8.tflite` (full integer, int8 "
        "inputs and outputs, LiteRT; streaming excursion models take 1 ms blocks of 12 frames), the JSON "
        "description the pipelines read (`<name>.json`, copied as `<name>_int8.json`), `MODEL_CARD.md` (its "
        "INT8 section is generated) and `<name>_int8.report.json` (every figure of the INT8 section).\n\n"
        "```python\nfrom edgesense.runtime import load_model\n"
        "m = load_model(\"models/gesture_cnn/gesture_cnn_int8.tflite\")   # or .onnx: same interface\n```\n")
    pattern = re.compile(re.escape(README_BEGIN) + r".*?" + re.escape(README_END), re.S)
    text = pattern.sub(lambda _: table, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + table + "\n"
    path.write_text(text)


# -- command line --------------------------------------------------------------------------------

def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def reuse_built(name: str, float_onnx: Path, opts: ZooOptions, reuse_dir: Path) -> dict | None:
    """Copy a model's INT8 files from an earlier run into ``reuse_dir/<name>/`` when that run quantized exactly
    this float model (same SHA-256, seed, target and --quick); returns its report, else None."""
    src = Path(reuse_dir) / name
    rep_path = src / f"{name}_int8.report.json"
    if not rep_path.is_file():
        return None
    rep = json.loads(rep_path.read_text())
    same = (rep.get("float_sha256") == sha256(float_onnx) and rep.get("seed") == opts.seed
            and rep.get("target") == opts.target and rep.get("quick") == opts.quick
            and (rep.get("litert") or {}).get("target", rep.get("target")) == opts.litert_target)
    if not same:
        return None
    for suffix in (".onnx", ".tflite", ".json", ".report.json"):
        shutil.copyfile(src / f"{name}_int8{suffix}", float_onnx.parent / f"{name}_int8{suffix}")
    return rep

def refresh_model(name: str, kind: str, float_onnx: Path, opts: ZooOptions) -> dict:
    """Re-measure a shipped model's INT8 I/O table, file sizes and latency (nothing re-quantized, no metric
    re-scored): for an exact re-export of the same INT8 model (e.g. a graph pass) or a quieter machine. Refuses
    when the shipped report was made from a different float model."""
    from edgesense.errors import EdgesenseError

    d = float_onnx.parent
    rep_path = d / f"{name}_int8.report.json"
    if not rep_path.is_file():
        raise EdgesenseError(f"{name}: no {rep_path.name} to refresh; build it first")
    rep = json.loads(rep_path.read_text())
    if rep.get("float_sha256") != sha256(float_onnx):
        raise EdgesenseError(f"{name}: {float_onnx.name} changed since {rep_path.name} was made; rebuild it")
    t_start = time.time()
    paths = [float_onnx, d / f"{name}_int8.onnx", d / f"{name}_int8.tflite"]
    rep["amx_packed"] = packed_variant(paths[2], d / f"{name}_int8_amx.tflite")     # deterministic from the .tflite
    if rep["amx_packed"]:
        paths.append(d / rep["amx_packed"]["file"])
    if opts.bench:
        rep["bench_load_average"] = os.getloadavg()[0]
        from edgesense.runtime.bench import machine_info

        rep["bench_machine"] = machine_info()
        rep["bench"] = run_bench(d, opts.bench_runs)
        rep["block_latency"] = block_latency(paths, opts.bench_runs, BLOCK_FRAMES if kind == "excursion" else 1)
    rep["files"] = {p.name: p.stat().st_size for p in paths}
    rep["io"] = io_quantization(paths[2])
    rep["targets"] = targets(rep)
    rep["refreshed_seconds"] = round(time.time() - t_start, 1)
    rep_path.write_text(json.dumps(rep, indent=1, default=float) + "\n")
    return rep


def build(opts: ZooOptions, names: list[str] | None = None, reuse_dir: Path | None = None,
          refresh: bool = False) -> list[dict]:
    """Build the zoo for ``names`` (default: every shipped model); returns the reports. With ``reuse_dir``,
    models whose float ONNX is unchanged since a run there are copied from it instead of rebuilt; with
    ``refresh``, only the shipped files' I/O table, sizes and latency are re-measured (:func:`refresh_model`)."""
    import torch

    from edgesense.errors import EdgesenseError
    from edgesense.quant.target import get_target

    for t in (opts.target, opts.litert_target):     # an unknown target: a one-line error before anything is built
        get_target(t)
    torch.manual_seed(opts.seed)
    torch.set_num_threads(1)
    logging.getLogger().setLevel(logging.ERROR)        # onnxruntime.quantization's pre-processing advice
    found = discover(opts.models_dir, names)
    if opts.select != "accuracy" and any(kind == "excursion" for _, kind, _ in found):
        raise EdgesenseError(f"--select {opts.select} applies to the gesture classifiers only; the excursion models "
                             "are chosen on validation NRMSE (leave out --select or build them separately)")
    reports = []
    for name, kind, float_onnx in found:
        rep = reuse_built(name, float_onnx, opts, reuse_dir) if reuse_dir else None
        if refresh:
            rep = refresh_model(name, kind, float_onnx, opts)
            _log(f"{name}: latency, sizes and I/O re-measured in {rep['refreshed_seconds']:.0f} s")
        elif rep is not None:
            _log(f"{name}: float model unchanged since the run in {reuse_dir}: its INT8 files reused")
        else:
            with tempfile.TemporaryDirectory(prefix=f"zoo_{name}_") as tmp:
                rep = build_model(name, kind, float_onnx, opts, Path(tmp))
        write_card(float_onnx.parent / "MODEL_CARD.md", card_section(rep))
        reports.append(rep)
        _log(f"{name}: done in {rep['seconds']:.0f} s; targets {rep['targets']}")
    if opts.readme and reports:
        write_readme(Path(opts.models_dir) / "README.md", reports)
    return reports


def _validation_sets(kind: str, opts: ZooOptions) -> list[str]:
    """``DIR:SPLIT`` of every validation set the candidates are chosen on (the model's own first)."""
    own = opts.gesture_data if kind == "gesture" else opts.excursion_data
    return [f"{own}:val"] + [f"{d}:{sp}" for d, sp in opts.extra_val]


def _val_data(arg: str) -> tuple[Path, str]:
    """``DIR[:SPLIT]`` of ``--val-data`` -> (DIR, SPLIT), SPLIT default ``val``; the directory must exist."""
    path, _, split = arg.rpartition(":") if ":" in arg and not Path(arg).is_dir() else (arg, "", "")
    if not Path(path).is_dir():
        raise argparse.ArgumentTypeError(f"--val-data {arg}: no directory {path}")
    return Path(path), split or "val"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=None,
                   help="model names, space- or comma-separated (default: every shipped model)")
    p.add_argument("--quick", action="store_true", help="small subsets and few benchmark runs (smoke test)")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.add_argument("--models-dir", type=Path, default=ROOT / "models")
    p.add_argument("--gesture-data", type=Path, default=Path("/work/data/radar-clips"))
    p.add_argument("--excursion-data", type=Path, default=Path("/work/data/speaker/known"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bench-runs", type=int, default=None, help="timed runs per backend (default 300; quick 30)")
    p.add_argument("--no-bench", action="store_true")
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--qat-steps", type=int, default=200, help="steps of the QAT candidate (fine-tune from the "
                   "best range method; 0: PTQ candidates only; default 200)")
    p.add_argument("--aimet-python", type=Path, default=default_aimet_python(),
                   help="interpreter with aimet-onnx installed, for the optional aimet peer rows (default: "
                   "$EDGESENSE_AIMET_PYTHON or ../aimet-venv/bin/python when present; see tools/peer_aimet.py)")
    p.add_argument("--no-aimet", action="store_true", help="skip the aimet-onnx peer even where it is installed")
    p.add_argument("--target", default="ort-cpu", help="target of the INT8 ONNX artefact (default ort-cpu: 7-bit "
                   "weights, exact on any ORT; ort-cpu-w8: 8-bit weights, exact with edgesense.runtime's ORT "
                   "sessions, docs/quantization.md §4)")
    p.add_argument("--tflite-target", default="tflite-int8", help="target of the .tflite artefact, chosen on "
                   "validation in LiteRT among its own candidates (default tflite-int8: 8-bit weights, which LiteRT "
                   "computes exactly); 'same': converted from the ONNX artefact (ort-cpu), as before session 6")
    p.add_argument("--val-data", action="append", default=[], type=_val_data, metavar="DIR[:SPLIT]",
                   help="more validation data, pooled with the model's own validation split to choose among the "
                   "candidates (repeatable; SPLIT default 'val', 'all' = every clip): gesture clip sets of other "
                   "users, or speaker sets (every clip of SPLIT scored, streams run from their start)")
    p.add_argument("--select", choices=SELECT_RULES, default="accuracy", help="how gesture candidates are chosen "
                   "on validation: 'accuracy' (clip accuracy, then balanced accuracy, then NLL; default) or "
                   "'fidelity' (the lowest mean KL divergence from the float model's clip probabilities, then "
                   "accuracy; docs/quantization.md §19)")
    p.add_argument("--reuse", type=Path, default=None, help="a models directory of an earlier run: models whose "
                   "float ONNX is byte-identical to the one quantized there are copied from it, not rebuilt")
    p.add_argument("--refresh", action="store_true", help="re-measure the shipped INT8 files' latency, sizes and "
                   "I/O table and rewrite the cards (no re-quantization, no re-scoring; float model must be unchanged)")
    a = p.parse_args(argv)
    from edgesense.errors import EdgesenseError

    opts = ZooOptions(models_dir=a.models_dir, gesture_data=a.gesture_data, excursion_data=a.excursion_data,
                      quick=a.quick, seed=a.seed, target=a.target, bench=not a.no_bench, peers=not a.no_peers,
                      bench_runs=a.bench_runs or (30 if a.quick else 300), qat_steps=a.qat_steps,
                      aimet_python=None if a.no_aimet else a.aimet_python,
                      tflite_target=None if a.tflite_target == "same" else a.tflite_target,
                      extra_val=tuple(a.val_data), select=a.select)
    names = [n.strip() for m in a.models for n in m.split(",") if n.strip()] if a.models else None
    try:
        reports = build(opts, names, a.reuse, refresh=a.refresh)
    except EdgesenseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if a.json:
        json.dump(reports, sys.stdout, indent=1, default=float)
        print()
    else:
        for r in reports:
            print(f"{r['name']}: {r['chosen_method']}, targets: "
                  + ", ".join(f"{k}={'met' if v else 'MISSED'}" for k, v in r["targets"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
