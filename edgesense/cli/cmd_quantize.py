"""``edgesense quantize``: post-training INT8 quantization of a float model to QDQ ONNX (+ float twin, encodings)."""

from __future__ import annotations

import argparse
import functools
import json
import shutil
from pathlib import Path

from edgesense.cli.common import add_json_flag, positive_int, print_json
from edgesense.quant.target import TARGETS

QAT_OBJECTIVES = ("float", "task", "task+float")     # edgesense.quant.qat.QAT_OBJECTIVES (that module needs torch)

COMMAND = ("quantize",)
HELP = ("quantize a float model (.onnx or .pt) to INT8 QDQ ONNX with calibration data (range setting, optional "
        "AdaRound, range refinement, QAT); reports float-vs-INT8 SQNR")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="float model: .onnx, or a .pt state_dict with --arch")
    parser.add_argument("--arch", default=None, help="registry architecture of a .pt model (e.g. gesture_cnn)")
    parser.add_argument("--arch-args", default=None, help="JSON constructor arguments (default: from the model's "
                        "JSON sidecar)")
    parser.add_argument("--calib", type=Path, required=True,
                        help="calibration inputs: a .npy file or a directory of .npy arrays (N, ...); or a dataset "
                             "directory: a speaker dataset for excursion models (its train split is framed), a "
                             "radar gesture dataset for gesture models (its train split is windowed by the pipeline)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--method", choices=("minmax", "percentile", "mse"), default="minmax",
                        help="activation range setting (default minmax)")
    parser.add_argument("--weight-method", choices=("minmax", "mse"), default="minmax")
    parser.add_argument("--percentile", type=float, default=99.99)
    parser.add_argument("--target", default="ort-cpu",
                        help="target profile: " + ", ".join(f"{t} (default)" if t == "ort-cpu" else t for t in TARGETS)
                        + " (docs/quantization.md §4)")
    parser.add_argument("--cle", action="store_true", help="cross-layer equalisation + high-bias absorption "
                        "(before calibration; seconds)")
    parser.add_argument("--bias-correction", action="store_true", help="empirical bias correction after "
                        "calibration (non-streaming models; one run over the calibration inputs per layer)")
    parser.add_argument("--max-samples", type=int, default=512, help="calibration samples used (default 512)")
    parser.add_argument("--calib-split", default="train", help="dataset split used for calibration (default train)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the calibration clip/window choice (default 0)")
    parser.add_argument("--stream-block", type=int, default=None,
                        help="streaming models (inputs: block, then states; outputs: y, then <state>_out): the "
                             "calibration arrays are whole signals (N, C, T) fed in blocks of this many steps")
    steps = parser.add_argument_group(
        "steps after calibration",
        "Run in this order, each on the calibration inputs (or a dataset's train split), all seeded (--seed): "
        "bias correction, AdaRound, range refinement, QAT. Costs: CPU time on the shipped gesture_crnn with 512 "
        "calibration windows, one thread (calibration alone: ~6 s).")
    steps.add_argument("--adaround", action="store_true",
                       help="AdaRound: learn, layer by layer, whether each conv/linear weight rounds down or up so "
                            "the layer's output matches the float layer's (Nagel et al. 2020); scales unchanged, "
                            "so both exporters carry it. Needs --weight-method minmax. Costs --adaround-iters "
                            "optimiser steps per layer (gesture_crnn: ~35 s at 500)")
    steps.add_argument("--adaround-iters", type=positive_int, default=None, metavar="N",
                       help="AdaRound iterations per layer (default 500; AIMET's 10,000)")
    steps.add_argument("--refine", action="store_true",
                       help="output-aware range refinement: re-scale the 8 activation ranges that cost the output "
                            "most, keeping each change that raises the output SQNR against float on the "
                            "calibration inputs (classifiers: their logits); never lowers it. Costs about 1 + "
                            "(activation tensors) + at most 8 x 18 runs over the calibration inputs "
                            "(gesture_crnn: ~45 s)")
    steps.add_argument("--qat-steps", type=int, default=0, metavar="N",
                       help="then fine-tune this many steps with quantization-aware training (learnable ranges, "
                            "Adam; default 0: post-training quantization only). Costs as many training "
                            "steps (gesture_crnn: ~20 s at 200; on labels ~10 s more to build 1,050 clip windows)")
    steps.add_argument("--qat-lr", type=float, default=1e-4, metavar="LR",
                       help="QAT learning rate of weights (ranges: x 2^bits)")
    steps.add_argument("--qat-objective", choices=QAT_OBJECTIVES, default=None,
                       help="what QAT trains on: 'float' the float model's outputs on the calibration inputs "
                            "(label-free; default for non-streaming models), 'task' the labels of a dataset given "
                            "as --calib (excursion: MSE to the measured excursion on crops of --qat-signals "
                            "recordings; gesture classifiers: cross-entropy on the classified windows of "
                            "--qat-clips clips), 'task+float' both (default for streaming excursion models)")
    steps.add_argument("--qat-signals", type=positive_int, default=24, metavar="N",
                       help="excursion QAT: train-split recordings the crops come from (default 24)")
    steps.add_argument("--qat-clips", type=positive_int, default=1050, metavar="N",
                       help="gesture QAT on labels: train-split clips whose classified windows are the labelled "
                            "set (class-stratified, seeded; default 1050)")
    parser.add_argument("--name", default=None, help="output file stem (default: the model's stem)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    _, _, summary = quantize(args)
    if args.json:
        print_json(summary)
        return 0
    q_path = summary["int8_onnx"]
    print(f"{args.model.name} -> {q_path} (target {summary['target']}, {args.method} ranges)")
    print(f"  float vs INT8 output SQNR {summary['output_sqnr_db']:.1f} dB on {summary['holdout_samples']} held-out "
          f"samples" + (f", argmax agreement {summary['argmax_agreement']:.4f}" if summary["argmax_agreement"] is not None
                        else ""))
    ada, ref, qat = summary.get("adaround"), summary.get("refinement"), summary["qat"]
    if ada:
        print(f"  AdaRound: {ada['flipped']:,} of {ada['weights']:,} weights rounded the other way, output SQNR "
              f"{ada['output_sqnr_db_before']:.1f} -> {ada['output_sqnr_db_after']:.1f} dB on the calibration inputs")
    if ref:
        print(f"  range refinement: {len(ref['changed'])} range(s) changed, output SQNR "
              f"{ref['output_sqnr_db_before']:.1f} -> {ref['output_sqnr_db_after']:.1f} dB on the calibration inputs")
    if qat:
        print(f"  QAT ({qat['objective']}): {qat['steps']} steps at lr {qat['lr']:g}, mean loss {qat['loss'][-1]:.4g}")
    rows = summary["sensitivity"]
    if rows:
        worst = min(rows, key=lambda r: r["isolated_output_sqnr_db"])
        print(f"  most sensitive tensor: {worst['tensor']} ({worst['isolated_output_sqnr_db']:.1f} dB output SQNR alone)")
    print(f"  wrote {Path(summary['float_folded_onnx']).name}, {Path(summary['encodings']).name}, "
          f"{Path(q_path).stem}.report.json")
    return 0


def quantize(args: argparse.Namespace):
    """The work of ``edgesense quantize``: returns ``(sim, lowered graph, summary)`` (summary as in the report).

    Calibration, then the steps of :func:`step_configs` in the order of
    :class:`edgesense.quant.ptq.QuantizeSteps`; ``tools/build_zoo.py`` builds every zoo candidate through here."""
    from edgesense.errors import EdgesenseError, ModelError

    try:
        import torch
    except ImportError:
        raise EdgesenseError("quantization needs the 'train' extra: pip install 'edgesense[train]'") from None

    from edgesense.quant import QuantConfig, QuantSim, export_float_onnx, export_qdq_onnx, get_target
    from edgesense.quant.analyzers import AnalyzerConfig
    from edgesense.quant.model_io import (architecture_args, excursion_calibration_signals, is_dataset_dir,
                                          load_calibration_inputs, load_torch_model)
    from edgesense.quant.ptq import correct_bias, equalize
    from edgesense.quant.sensitivity import sensitivity_report, sqnr_db
    from edgesense.quant.sim import calibrate, calibrate_streaming

    check_step_flags(args)
    torch.set_num_threads(max(1, args.threads))
    target = get_target(args.target)
    model_path: Path = args.model
    if not model_path.is_file():
        raise ModelError(f"{model_path}: no such model file")
    gesture_data = is_dataset_dir(args.calib) and is_gesture_model(model_path)
    if gesture_data:
        x = gesture_calibration_windows(args.calib, model_path, split=args.calib_split,
                                        max_windows=args.max_samples, seed=args.seed)
    elif is_dataset_dir(args.calib):
        if not model_path.with_suffix(".json").is_file() or "frame" not in model_path.with_suffix(".json").read_text():
            raise EdgesenseError(f"{args.calib}: dataset calibration is available for excursion models (with their "
                                 f".json description); for other models pass .npy model inputs")
        x = excursion_calibration_signals(args.calib, model_path, split=args.calib_split,
                                          max_signals=min(12, args.max_samples), seed=args.seed)
        args.stream_block = args.stream_block or 12      # 1 ms blocks: 48 samples = 12 frames of 4
    else:
        x = load_calibration_inputs(args.calib, args.max_samples)
    cfg = QuantConfig(activations=AnalyzerConfig(args.method, percentile=args.percentile),
                      weights=AnalyzerConfig(args.weight_method))
    if model_path.suffix == ".onnx":
        sim = QuantSim.from_onnx(model_path, target, cfg)
    elif model_path.suffix == ".pt":
        if not args.arch:
            raise EdgesenseError("a .pt model needs --arch (its registry architecture name)")
        model = load_torch_model(model_path, args.arch, architecture_args(model_path, args.arch_args))
        sim = QuantSim(model, torch.from_numpy(x[:1]), target, cfg)
    else:
        raise ModelError(f"{model_path}: expected a float .onnx or a .pt state_dict")
    streaming = len(sim.input_shapes) > 1
    if streaming and not args.stream_block:
        raise EdgesenseError("this model has several inputs (a streaming model?): give --stream-block STEPS and "
                             "whole signals (N, C, T) as calibration data")
    if not streaming and tuple(sim.input_shape[1:]) != tuple(x.shape[1:]):
        raise EdgesenseError(f"calibration inputs have sample shape {list(x.shape[1:])}, the model expects "
                             f"{list(sim.input_shape[1:])}")
    if streaming and args.bias_correction:
        raise EdgesenseError("--bias-correction is not available for streaming models")
    labels = "speaker" if streaming and is_dataset_dir(args.calib) else "gesture" if gesture_data else None
    steps = step_configs(args, sim, streaming, labels)
    xt = torch.from_numpy(x)
    n_hold = max(1, len(x) // 5)
    calib, hold = xt[n_hold:] if len(x) > 1 else xt, xt[:n_hold]
    batches = list(calib.split(64))
    if args.cle:
        equalize(sim)
    if streaming:
        calibrate_streaming(sim, [s[None] for s in calib], args.stream_block)
    else:
        calibrate(sim, batches)
        if args.bias_correction:
            correct_bias(sim, batches)
    done = run_steps(sim, steps, calib, args.stream_block if streaming else None, args.calib, model_path,
                     args.calib_split)
    sim.eval()
    if streaming:
        y_f, y_q = _stream_outputs(sim, hold, args.stream_block)
    else:
        with torch.no_grad():
            y_f = sim.float_model()(hold)
            y_q = sim(hold)
    graph = sim.lower()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.name or model_path.stem
    q_path = export_qdq_onnx(sim, out / f"{stem}_int8.onnx", graph)
    f_path = export_float_onnx(sim, out / f"{stem}_float_folded.onnx")
    sidecar = model_path.with_suffix(".json")
    if sidecar.is_file():
        shutil.copyfile(sidecar, q_path.with_suffix(".json"))
    enc_path = out / f"{stem}_int8.encodings.json"
    enc_path.write_text(json.dumps({"version": "edgesense-1", "target": target.name,
                                    "encodings": {k: v.to_dict() for k, v in graph.encodings().items()}}, indent=1))
    rows = [] if streaming else sensitivity_report(sim, [hold[:64]])
    summary = {
        "model": str(model_path), "target": target.name, "method": args.method, "weight_method": args.weight_method,
        "cle": args.cle, "bias_correction": args.bias_correction, **done,
        "qat": done.get("qat"),
        "calibration_samples": int(len(calib)), "holdout_samples": int(len(hold)),
        "output_sqnr_db": sqnr_db(y_f, y_q),
        "argmax_agreement": (float((y_f.argmax(1) == y_q.argmax(1)).float().mean())
                             if y_f.ndim == 2 and y_f.shape[1] > 1 else None),
        "int8_onnx": str(q_path), "float_folded_onnx": str(f_path), "encodings": str(enc_path),
        "sensitivity": [{"tensor": r.tensor, "kind": r.kind, "sqnr_db": r.sqnr_db,
                         "isolated_output_sqnr_db": r.isolated_output_sqnr_db} for r in rows],
    }
    (out / f"{stem}_int8.report.json").write_text(json.dumps(summary, indent=1, default=float))
    return sim, graph, summary


def check_step_flags(args: argparse.Namespace) -> None:
    """Flag combinations of the steps after calibration that can never work, as one-line errors (checked before
    any data is read)."""
    from edgesense.errors import EdgesenseError

    if args.adaround_iters is not None and not args.adaround:
        raise EdgesenseError("--adaround-iters needs --adaround")
    if args.adaround and args.weight_method != "minmax":
        raise EdgesenseError("--adaround needs --weight-method minmax (AdaRound keeps each channel's min/max weight "
                             "scale; an MSE weight range would move with the rounded weights)")
    if args.qat_steps < 0:
        raise EdgesenseError(f"--qat-steps must be >= 0, got {args.qat_steps}")
    if args.qat_steps == 0 and args.qat_objective is not None:
        raise EdgesenseError("--qat-objective needs --qat-steps N (N > 0)")


def step_configs(args: argparse.Namespace, sim, streaming: bool, labels: str | None):
    """The steps after calibration the flags ask for, as :class:`edgesense.quant.ptq.QuantizeSteps`; ``labels``:
    what the calibration data can label ("speaker", "gesture" or None). Raises a one-line error for a step this
    model or data cannot run (the flags alone were checked by :func:`check_step_flags`)."""
    from edgesense.errors import EdgesenseError
    from edgesense.quant.adaround import AdaRoundConfig
    from edgesense.quant.ptq import QuantizeSteps
    from edgesense.quant.qat import FineTuneConfig

    if args.adaround and not any(nd.kind in ("conv", "linear") for nd in sim.nodes):
        raise EdgesenseError("--adaround: the model has no conv or linear layer whose weights it could round")
    qat = None
    if args.qat_steps > 0:
        objective = args.qat_objective or ("task+float" if streaming else "float")
        if streaming and objective == "float":
            raise EdgesenseError("--qat-objective float is not available for streaming models: use task or "
                                 "task+float with a speaker dataset as --calib")
        if streaming and labels != "speaker":
            raise EdgesenseError("--qat-steps on a streaming model needs a speaker dataset as --calib (QAT trains "
                                 "on its labels)")
        if not streaming and objective != "float":
            if labels != "gesture":
                raise EdgesenseError(f"--qat-objective {objective} needs labels: a gesture model with a radar "
                                     "gesture dataset as --calib (other models: --qat-objective float)")
            if not any(nd.kind == "softmax" for nd in sim.nodes):
                raise EdgesenseError(f"--qat-objective {objective} needs a classifier whose output is a softmax")
        qat = FineTuneConfig(steps=args.qat_steps, lr=args.qat_lr, objective=objective, signals=args.qat_signals,
                             clips=args.qat_clips, seed=args.seed)
    adaround = (AdaRoundConfig(iterations=args.adaround_iters or AdaRoundConfig.iterations, seed=args.seed)
                if args.adaround else None)
    return QuantizeSteps(adaround=adaround, refine=args.refine, qat=qat)


def run_steps(sim, steps, calib, stream_block: int | None, data: Path, model_path: Path,
              split: str = "train") -> dict:
    """Run ``steps`` (:class:`edgesense.quant.ptq.QuantizeSteps`) on a calibrated ``sim`` in place: AdaRound and
    range refinement on the calibration inputs ``calib`` (streaming models, ``stream_block`` set: whole signals,
    streamed from zero state), then the QAT fine-tune (labels from the dataset ``data``). Returns what each step
    did, keyed "adaround", "refinement", "qat" (the report's fields)."""
    import torch

    from edgesense.quant.ptq import refine_activation_ranges

    done: dict = {}
    if steps.adaround is not None or steps.refine:
        score = output_sqnr_score(sim, calib, stream_block)
    if steps.adaround is not None:
        from edgesense.quant.adaround import adaround

        before = score()
        if stream_block:
            zeros = [torch.zeros((len(calib), *shp[1:])) for shp in sim.input_shapes[1:]]
            batches = [(calib, *zeros)]
        else:
            batches = list(calib.split(64))
        layers = adaround(sim, batches, steps.adaround)
        done["adaround"] = {"output_sqnr_db_before": before, "output_sqnr_db_after": score(),
                            "samples": int(len(calib)), "iterations": steps.adaround.iterations,
                            "flipped": sum(r["flipped"] for r in layers.values()),
                            "weights": sum(r["weights"] for r in layers.values()), "layers": layers}
    if steps.refine:
        r = refine_activation_ranges(sim, score)
        done["refinement"] = {"output_sqnr_db_before": r.score_before, "output_sqnr_db_after": r.score_after,
                              "evaluations": r.evaluations, "samples": int(len(calib)),
                              "changed": {k: [list(a), list(b)] for k, (a, b) in r.changed.items()}}
    q = steps.qat
    if q is not None:
        torch.manual_seed(q.seed)
        row = {"steps": q.steps, "lr": q.lr}
        if stream_block:
            hist = excursion_qat(sim, data, model_path, q.steps, q.lr, q.signals, q.seed, objective=q.objective)
            row.update(objective=q.objective, signals=q.signals)
        elif q.objective == "float":
            from edgesense.quant.qat import train_qat_distill

            hist = train_qat_distill(sim, calib, q.steps, q.lr, seed=q.seed)
            row.update(objective="float outputs")
        else:
            from edgesense.quant.qat import train_qat_labels

            xw, yw = labelled_gesture_windows(data, model_path, split, q.clips, q.seed)
            hist = train_qat_labels(sim, torch.from_numpy(xw), torch.from_numpy(yw), q.steps, q.lr, seed=q.seed,
                                    float_term=q.objective == "task+float")
            row.update(objective="labels+float" if q.objective == "task+float" else "labels", clips=q.clips)
        done["qat"] = {**row, "loss": hist}
    return done


def output_sqnr_score(sim, x, stream_block: int | None = None):
    """What AdaRound's report and range refinement measure: a function returning the SQNR (dB) of the quantized
    ``sim``'s output against its float model's on the inputs ``x``, the float side computed once, now (streaming
    models, ``stream_block`` set: the first output, ``x`` whole signals streamed from zero state). A classifier's
    logits (the softmax input) are scored: its probabilities saturate, so their SQNR hangs on a few uncertain
    inputs."""
    import torch

    from edgesense.quant.sensitivity import sqnr_db

    logits = next((nd.inputs[0] for nd in sim.nodes if nd.kind == "softmax"), None)

    def signal(quantize: bool):
        if stream_block:
            return _stream_first(sim if quantize else sim.float_model(), x, stream_block, sim.input_shapes[1:])
        old, sim.quantize = sim.quantize, quantize
        try:
            out, env = sim.forward_all(x)
        finally:
            sim.quantize = old
        return env[logits] if logits else out[0]

    with torch.no_grad():
        ref = signal(False)

    def score() -> float:
        with torch.no_grad():
            return sqnr_db(ref, signal(True))
    return score


def excursion_qat(sim, dataset: Path, model_path: Path, steps: int, lr: float, signals: int = 24, seed: int = 0,
                  batch: int = 8, crop: int = 256, objective: str = "task+float") -> list[float]:
    """QAT fine-tune of a calibrated streaming excursion sim on its task loss: MSE between the sim's output and
    the true excursion on random crops of ``dataset``'s train split (each crop run from zero state over the
    model's receptive field first, which is not scored), plus, for ``objective="task+float"``, MSE to the
    float model's output on the same crop. Seeded; returns the mean loss."""
    import numpy as np
    import torch

    from edgesense.errors import EdgesenseError
    from edgesense.quant.model_io import excursion_training_data
    from edgesense.quant.qat import QATConfig, train_qat
    from edgesense.speaker.streaming import load_spec

    warm = int(load_spec(model_path).receptive_field)
    xs, ys = excursion_training_data(dataset, model_path, "train", signals)
    usable = [k for k, x in enumerate(xs) if x.shape[-1] > warm + crop]
    if not usable:
        raise EdgesenseError(f"{dataset}: train recordings are shorter than {(warm + crop)} frames")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    zeros = [torch.zeros((batch, *shp[1:])) for shp in sim.input_shapes[1:]]

    teacher = sim.float_model() if objective == "task+float" else None

    def batches():
        for _ in range(steps):
            xb, yb = [], []
            for k in rng.choice(usable, size=batch):
                t0 = int(rng.integers(0, xs[k].shape[-1] - warm - crop + 1))
                xb.append(xs[k][:, t0:t0 + warm + crop])
                yb.append(ys[k][:, t0 + warm:t0 + warm + crop])
            x = torch.from_numpy(np.stack(xb))
            y = torch.from_numpy(np.stack(yb))
            if teacher is not None:
                with torch.no_grad():
                    y = torch.stack([y, teacher(x, *zeros)[0][..., warm:]])
            yield (x, *zeros), y

    def loss_fn(out, y):
        o = out[0][..., warm:]
        if teacher is None:
            return torch.mean((o - y) ** 2)
        return torch.mean((o - y[0]) ** 2) + torch.mean((o - y[1]) ** 2)

    return train_qat(sim, batches, loss_fn, QATConfig(epochs=1, lr=lr))


def _stream_first(model, signals, block: int, state_shapes):
    """First output of a streaming ``model`` over ``signals`` (N, C, T) in blocks from zero states, concatenated."""
    import torch

    ys = []
    with torch.no_grad():
        for sig in signals:
            sig = sig[None]
            st = [torch.zeros((1, *shp[1:])) for shp in state_shapes]
            for t0 in range(0, sig.shape[-1] - block + 1, block):
                out = model(sig[..., t0:t0 + block], *st)
                st = list(out[1:1 + len(st)])
                ys.append(out[0])
    return torch.cat(ys, dim=-1)


def _stream_outputs(sim, signals, block: int):
    """First outputs of the float and quantized simulations streamed over ``signals`` (N, C, T), concatenated."""
    shapes = sim.input_shapes[1:]
    return _stream_first(sim.float_model(), signals, block, shapes), _stream_first(sim, signals, block, shapes)


def is_gesture_model(model_path: Path) -> bool:
    """True when ``model_path`` has a gesture model description (``edgesense_gesture_model`` sidecar)."""
    from edgesense.errors import ModelError
    from edgesense.radar.pipeline import GestureModelInfo

    try:
        GestureModelInfo.for_model(model_path)
    except ModelError:
        return False
    return True


class _WindowRecorder:
    """A stand-in gesture model that keeps every input window the pipeline builds (uniform output)."""

    def __init__(self, n_classes: int) -> None:
        self.windows: list = []
        self.n_classes = n_classes

    def run(self, x):
        import numpy as np

        self.windows.append(np.array(x, dtype=np.float32, copy=True))
        return np.full((1, self.n_classes), 1.0 / self.n_classes, np.float32)


def gesture_windows(data: Path, model_path: Path, split: str = "train", max_clips: int | None = None,
                    extra_per_clip: int = 0, seed: int = 0):
    """Model input windows of a radar clip dataset, built exactly as the gesture pipeline builds them.

    Every chosen clip runs through :class:`edgesense.radar.pipeline.GesturePipeline` (RDI, background,
    normalisation, validity channel) up to the frame that classifies it
    (:func:`edgesense.radar.metrics.clip_window_end`, as ``edgesense eval gesture`` does); its window
    there is kept with the clip's class index. ``extra_per_clip`` more windows per clip end at random
    earlier frames (as training samples windows along the clip; label -1). ``max_clips``: a seeded,
    class-stratified subset (every k-th clip of each class). Returns ``(windows (N, C, F, T), labels (N,))``.
    """
    import numpy as np

    from edgesense.errors import EdgesenseError
    from edgesense.progress import progress
    from edgesense.radar.metrics import clip_window_end, gesture_extents
    from edgesense.radar.pipeline import GestureModelInfo, GesturePipeline
    from edgesense.recording import Dataset

    info = GestureModelInfo.for_model(model_path)
    classes = list(info.classes)
    ds = Dataset.open(data)
    entries = [e for e in ds.entries if split in (None, "all") or e.split == split]
    entries = [e for e in entries if e.clip_label in classes]
    if not entries:
        raise EdgesenseError(f"{data}: no clips of the model's classes in split {split!r}")
    rng = np.random.default_rng(seed)
    if max_clips is not None and len(entries) > max_clips:
        by_class: dict[str, list] = {}
        for e in entries:
            by_class.setdefault(e.clip_label, []).append(e)
        per = max(1, max_clips // len(by_class))
        entries = []
        for c in sorted(by_class):
            group = by_class[c]
            idx = np.sort(rng.choice(len(group), size=min(per, len(group)), replace=False))
            entries += [group[i] for i in idx]
    rec_model = _WindowRecorder(len(classes))
    pipe = GesturePipeline(rec_model, info=info)
    xs, ys = [], []
    for entry in progress(entries, desc=f"gesture windows ({split})"):
        rec = ds.load(entry)
        n = rec.n_frames
        t = clip_window_end(n, gesture_extents(rec.labels, n, info.noise_label))
        rows = [t]
        if extra_per_clip > 0 and t >= info.frames // 2:
            rows += [int(r) for r in rng.integers(info.frames // 2, t + 1, size=extra_per_clip)]
        rows = sorted(set(rows))
        rec_model.windows.clear()
        pipe.run_batch(rec.payloads[:max(rows) + 1], rec.seq[:max(rows) + 1], infer_at=rows)
        label = classes.index(rec.labels.clip_label)
        for r, w in zip(rows, rec_model.windows):
            xs.append(w[0])
            ys.append(label if r == t else -1)
    return np.stack(xs).astype(np.float32), np.asarray(ys, np.int64)


def gesture_calibration_windows(data: Path, model_path: Path, split: str = "train", max_windows: int = 512,
                                seed: int = 0):
    """Calibration inputs of a gesture model: pipeline windows of ``split`` (4 per clip: the classified
    window and 3 earlier ones), at most ``max_windows``."""
    x, _ = gesture_windows(data, model_path, split, max_clips=max(1, max_windows // 4), extra_per_clip=3, seed=seed)
    return x[:max_windows]


@functools.lru_cache(maxsize=1)
def _labelled_windows(data: str, model_path: str, split: str, clips: int, seed: int):
    return gesture_windows(Path(data), Path(model_path), split, clips, seed=seed)


def labelled_gesture_windows(data: Path, model_path: Path, split: str, clips: int, seed: int = 0):
    """The classified window and clip label of ``clips`` class-stratified clips of ``split`` (seeded; see
    :func:`gesture_windows`), for QAT on labels; the last set is kept, so QAT candidates at several learning rates
    build it once."""
    return _labelled_windows(str(data), str(model_path), split, clips, seed)
