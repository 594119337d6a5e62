"""QAT study: task accuracy against bit width (8, 6, 4) and learning rate, for each range parameterisation.

Reproduces, on our own models, the experiment of You, Park, Lee, An, Patel, Nagel (arXiv 2404.16898;
reference quantization.md §4.2): asymmetric activation ranges learned as scale/offset, min/max or
beta/gamma (sigmoid-free), weights symmetric per channel. For every (bits, parameterisation, lr):
PTQ with min/max calibration, then ``--epochs`` of QAT (Adam; range parameters at the parameterisation's
default learning-rate multiplier: 2^b for min/max, 1 otherwise), then the metric on held-out data in the
simulation (which equals the integer runtimes within 1 LSB, tests/quant/test_parity.py).

    python tools/quant_study.py --demo                       # gesture_cnn on a seeded synthetic 5-class task
    python tools/quant_study.py --model m.pt --arch gesture_cnn --data x.npy --labels y.npy [--json]
    python tools/quant_study.py --model models/gesture_cnn/gesture_cnn.pt --arch gesture_cnn \
        --gesture-data /work/data/radar-clips          # pipeline windows: train-split clips, scored on val users
    python tools/quant_study.py --model models/gesture_crnn/gesture_crnn.pt --arch gesture_crnn --gesture-data \
        /work/data/radar-clips --arch-args '{"in_channels": 3, "rows": 64, "frames": 40, "num_classes": 5,
        "width": 24, "dropout": 0.3}'
    python tools/quant_study.py --model models/fftnet/fftnet.onnx \
        --excursion-data /work/data/speaker/known      # streaming excursion model: crops, scored on val clips

``--labels`` int (N,) -> accuracy (higher is better); float targets -> RMSE / std of the targets (lower is
better). ``--excursion-data``: the project's NRMSE in % (RMSE / max|x_true| in mm over the scored validation
samples, :func:`edgesense.speaker.metrics.combined_metrics`; lower is better). An excursion model is run on
crops from zero state, non-streaming: it is causal with a finite receptive field and its int8 state is on its
partner's grid, so past the first receptive field (not scored, not in the loss) this equals streaming.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def synthetic_task(n: int = 2000, seed: int = 0):
    """5 classes of 2x16x16 maps: a class-specific moving blob (Doppler-vs-time like) plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    t = np.arange(16)[None, :]
    x = rng.normal(0, 1.0, (n, 2, 16, 16)).astype(np.float32)
    for i in range(n):
        slope = [-0.6, -0.25, 0.0, 0.25, 0.6][y[i]]
        row = np.clip(np.round(8 + slope * (t - 8) + rng.normal(0, 1)), 0, 15).astype(int)[0]
        x[i, 0, row, np.arange(16)] += 1.2
        x[i, 1, :, :] += 0.15 * y[i] / 4.0 + rng.normal(0, 0.3)
    return x, y


def train_float(model, x, y, epochs: int, lr: float = 3e-3, seed: int = 0):
    import torch
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
        sched.step()
    return model.eval()


def metric(pred, labels) -> float:
    if labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
        return float((pred.argmax(1) == labels).mean())
    return float(np.sqrt(np.mean((pred - labels) ** 2)) / max(np.std(labels), 1e-12))


@dataclass(frozen=True)
class Task:
    """How the study feeds, trains and scores one kind of model.

    ``inputs(x)``: the model inputs of a batch ``x`` (a tuple); ``output(out)``: the prediction part of the model
    output; ``loss(out, y)``: the training loss on the raw output; ``score(pred, y_test)``: the metric of the
    stacked predictions; ``ptq(target, param)``: a calibrated simulation (min/max ranges)."""

    metric: str                                   # the metric's name in the table ("metric": the label metric)
    lower_is_better: bool
    score: Callable[[np.ndarray, Any], float]
    loss: Callable
    ptq: Callable[[Any, str], Any]
    inputs: Callable = lambda x: (x,)
    output: Callable = lambda out: out
    batch: int = 64                               # training batch (float control and QAT)
    eval_batch: int | None = None                 # scoring chunk (None: the whole test set at once)
    digits: int = 4


def label_task(model, x_tr: np.ndarray, y_tr: np.ndarray) -> Task:
    """The task of ``--data/--labels``, ``--gesture-data`` and ``--demo``: cross entropy and accuracy for int
    labels, else MSE and :func:`metric`; PTQ = :func:`edgesense.quant.ptq.quantize_ptq` on 512 training inputs."""
    import torch

    from edgesense.quant.ptq import PTQConfig, quantize_ptq

    classify = y_tr.ndim == 1 and np.issubdtype(y_tr.dtype, np.integer)
    xt = torch.from_numpy(x_tr)

    def ptq(target, param: str):
        return quantize_ptq(model, xt[:1], xt[:512].split(128), target=target, config=PTQConfig(range_param=param))
    loss = torch.nn.functional.cross_entropy if classify else (lambda o, t: ((o - t) ** 2).mean())
    return Task("metric", not classify, metric, loss, ptq)


def study(model, x_tr, y_tr, x_te, y_te, bits=(8, 6, 4), lrs=(1e-4, 1e-3, 1e-2),
          params=("minmax", "scale_offset", "beta_gamma"), epochs: int = 3, seed: int = 0,
          task: Task | None = None) -> list[dict]:
    """Rows of (bits, param, lr): the float metric, the float fine-tuned control, PTQ and QAT (``task``: how to
    feed, train and score the model; default :func:`label_task`)."""
    import copy

    import torch

    from edgesense.quant import TargetProfile
    from edgesense.quant.qat import QATConfig, train_qat

    task = task or label_task(model, x_tr, y_tr)
    xt_tr, xt_te = torch.from_numpy(x_tr), torch.from_numpy(x_te)
    yt_tr = torch.from_numpy(y_tr)

    def evaluate(m) -> float:
        with torch.no_grad():
            chunks = xt_te.split(task.eval_batch) if task.eval_batch else [xt_te]
            pred = torch.cat([task.output(m(*task.inputs(c))) for c in chunks])
        return task.score(pred.numpy(), y_te)

    float_metric = evaluate(model)
    # control: the float model fine-tuned the same way (separates QAT's effect from extra training)
    float_ft = {}
    for lr in lrs:
        torch.manual_seed(seed)
        fm = copy.deepcopy(model).train()
        opt = torch.optim.Adam(fm.parameters(), lr=lr)
        g = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            perm = torch.randperm(len(xt_tr), generator=g)
            for i in range(0, len(perm), task.batch):
                idx = perm[i:i + task.batch]
                opt.zero_grad()
                task.loss(fm(*task.inputs(xt_tr[idx])), yt_tr[idx]).backward()
                opt.step()
        float_ft[lr] = evaluate(fm.eval())
    rows = []
    for b in bits:
        target = TargetProfile(f"w{b}a{b}", weight_bitwidth=b, activation_bitwidth=b)
        for param in params:
            torch.manual_seed(seed)
            t0 = time.time()
            calibrated = task.ptq(target, param)      # min/max PTQ: the same for every lr, calibrated once
            ptq = evaluate(calibrated)
            ptq_s = time.time() - t0
            for lr in lrs:
                torch.manual_seed(seed)
                t0 = time.time()
                sim = copy.deepcopy(calibrated)
                g = torch.Generator().manual_seed(seed)

                def batches():
                    perm = torch.randperm(len(xt_tr), generator=g)
                    return [(task.inputs(xt_tr[perm[i:i + task.batch]]), yt_tr[perm[i:i + task.batch]])
                            for i in range(0, len(perm), task.batch)]
                try:
                    hist = train_qat(sim, batches, task.loss, QATConfig(epochs=epochs, lr=lr))
                    qat = evaluate(sim)
                except Exception as exc:  # divergence is a result of the study
                    hist, qat = [], float("nan")
                    print(f"  w{b}a{b} {param} lr={lr:g}: {exc}", file=sys.stderr)
                rows.append({"bits": b, "param": param, "lr": lr, "float": float_metric,
                             "float_finetuned": float_ft[lr], "ptq": ptq, "qat": qat,
                             "final_loss": hist[-1] if hist else None,
                             "seconds": round(ptq_s + time.time() - t0, 1)})
                print(f"  w{b}a{b} {param:12s} lr={lr:<7g} PTQ {ptq:.4f} -> QAT {qat:.4f}", file=sys.stderr)
    return rows


# -- streaming excursion models (--excursion-data) ------------------------------------------------------------

CROP = 256            # scored frames of a training crop, after the receptive field (as the zoo's excursion QAT)
VAL_FRAMES = 2048     # scored frames of a validation crop, after the receptive field


def excursion_spec(model_path: Path):
    """The excursion model description (``<model>.json``) of a float streaming ``.onnx``; a one-line
    :class:`~edgesense.errors.EdgesenseError` for any other model."""
    from edgesense.errors import EdgesenseError
    from edgesense.speaker.streaming import load_spec

    if not model_path.is_file():
        raise EdgesenseError(f"{model_path}: no such model file")
    try:
        if model_path.suffix != ".onnx":
            raise EdgesenseError("not an .onnx file")
        return load_spec(model_path)
    except EdgesenseError:
        raise EdgesenseError(f"{model_path}: --excursion-data needs a float streaming excursion .onnx with its "
                             f".json description (frame, scales, receptive_field)") from None


def nrmse_percent(pred_mm: list[np.ndarray], true_mm: list[np.ndarray], fs: float = 48_000.0) -> float:
    """The project's excursion NRMSE in %: pooled RMSE / max|x_true| over every scored sample (mm)."""
    from edgesense.speaker.metrics import combined_metrics

    return 100.0 * combined_metrics(list(zip(true_mm, pred_mm)), fs).nrmse


@dataclass
class ExcursionData:
    """Training crops and scored validation crops of a speaker dataset for one excursion model.

    ``x_train`` (N, C*frame, rf + CROP) framed inputs, ``y_train`` (N, frame, CROP) targets in model units
    (x * true Bl / x_scale, :func:`edgesense.quant.model_io.excursion_training_data`); ``x_val``
    (M, C*frame, rf + VAL_FRAMES), ``y_val`` (M, VAL_FRAMES*frame) true excursion in mm, ``bl_val`` the datasheet
    Bl the pipeline divides by, ``val_starts`` (recording name, first sample of the crop), ``spec`` the model's
    description."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    bl_val: np.ndarray
    val_starts: list[tuple[str, int]]
    train_recordings: int
    val_recordings: int
    fs: float
    spec: Any                          # the model's ExcursionModelSpec


def excursion_data(data: Path, model_path: Path, train_crops: int = 384, val_crops: int = 96,
                   seed: int = 0) -> ExcursionData:
    """``train_crops`` seeded random crops of the train-split recordings (the receptive field, then CROP scored
    frames) and ``val_crops`` crops of the val-split recordings (spread over them in turn, evenly spaced in each:
    the receptive field, then VAL_FRAMES scored frames), framed and normalised as the speaker pipeline does
    (:func:`edgesense.nn.train_excursion.prepare_inputs`, datasheet Bl)."""
    from edgesense.errors import EdgesenseError
    from edgesense.nn.train_excursion import prepare_inputs
    from edgesense.quant.model_io import excursion_training_data, is_dataset_dir
    from edgesense.speaker.pipeline import load_signals

    spec = excursion_spec(model_path)
    if not is_dataset_dir(data):
        raise EdgesenseError(f"{data}: not a speaker dataset directory (no index.json)")
    if train_crops < 1 or val_crops < 1:
        raise EdgesenseError("--train-crops and --val-crops must be at least 1")
    warm, fr = int(spec.receptive_field), spec.frame
    rng = np.random.default_rng(seed)
    xs, ys = excursion_training_data(data, model_path, "train", max_signals=None)
    usable = [k for k, x in enumerate(xs) if x.shape[-1] >= warm + CROP]
    if not usable:
        raise EdgesenseError(f"{data}: train recordings are shorter than {warm + CROP} frames")
    x_tr, y_tr = [], []
    for k in rng.choice(usable, size=train_crops):
        t0 = int(rng.integers(0, xs[k].shape[-1] - warm - CROP + 1))
        x_tr.append(xs[k][:, t0:t0 + warm + CROP])
        y_tr.append(ys[k][:, t0 + warm:t0 + warm + CROP])
    sigs = [s for s in load_signals(data, split="val") if s.x is not None
            and len(s.x) // fr >= warm + VAL_FRAMES]
    if not sigs:
        raise EdgesenseError(f"{data}: no labelled val-split recordings of {warm + VAL_FRAMES} frames or more")
    x_te, y_te, bl, starts = [], [], [], []
    for r, sig in enumerate(sigs):
        n = val_crops // len(sigs) + (r < val_crops % len(sigs))
        if not n:
            continue
        x = prepare_inputs(spec, sig)[0]
        for t0 in np.linspace(0, x.shape[-1] - warm - VAL_FRAMES, n).astype(int):
            x_te.append(x[:, t0:t0 + warm + VAL_FRAMES])
            y_te.append(np.asarray(sig.x[(t0 + warm) * fr:(t0 + warm + VAL_FRAMES) * fr], np.float32))
            bl.append(sig.speaker.bl)
            starts.append((sig.name, int(t0) * fr))
    return ExcursionData(np.stack(x_tr).astype(np.float32), np.stack(y_tr).astype(np.float32),
                         np.stack(x_te).astype(np.float32), np.stack(y_te), np.asarray(bl, np.float64), starts,
                         len(xs), len(sigs), float(sigs[0].fs), spec)


def excursion_task(model_path: Path, model, d: ExcursionData) -> Task:
    """Excursion: each crop run from zero states, the first receptive field frames dropped; loss MSE to the true
    excursion (model units, as the zoo's ``qat-task`` fine-tune); metric :func:`nrmse_percent` in mm (output
    * x_scale / datasheet Bl, :func:`edgesense.speaker.streaming.unframe`). PTQ: min/max ranges calibrated on
    (up to 512 of) the training crops, each run whole from zero state (as the zoo runs its calibration crops)."""
    import torch

    from edgesense.quant import QuantConfig, QuantSim
    from edgesense.quant.sim import calibrate_streaming
    from edgesense.speaker.streaming import unframe

    spec = d.spec
    warm = int(spec.receptive_field)
    state_shapes = model.input_shapes[1:]
    calib = torch.from_numpy(d.x_train[:512])

    def inputs(x):
        return (x, *[torch.zeros((len(x), *shp[1:])) for shp in state_shapes])

    def output(out):
        return out[0][..., warm:]

    def loss(out, y):
        return torch.mean((output(out) - y) ** 2)

    def score(pred: np.ndarray, y_val: np.ndarray) -> float:
        mm = [unframe(spec, pred[k:k + 1], float(d.bl_val[k])) for k in range(len(pred))]
        return nrmse_percent(mm, list(y_val), d.fs)

    def ptq(target, param: str):
        sim = QuantSim.from_onnx(model_path, target, QuantConfig(range_param=param))
        return calibrate_streaming(sim, calib.split(64), calib.shape[-1]).eval()

    return Task("validation NRMSE % (lower is better)", True, score, loss, ptq, inputs, output, batch=8,
                eval_batch=16, digits=2)


def table(rows: list[dict], name: str, metric_name: str = "metric", digits: int = 4) -> str:
    """The study as a markdown table (``metric_name`` in the title, values with ``digits`` decimals)."""
    lrs = sorted({r["lr"] for r in rows})
    f = f"{{:.{digits}f}}".format
    out = [(f"## {name}: QAT {metric_name} by bit width, parameterisation and learning rate "
            f"(float {f(rows[0]['float'])})"), "",
           "| bits | parameterisation | PTQ | " + " | ".join(f"QAT lr={lr:g}" for lr in lrs) + " |",
           "|---|---|---|" + "---|" * len(lrs),
           "| 32 | float fine-tuned (control) | - | " + " | ".join(
               f(next(r for r in rows if r['lr'] == lr)['float_finetuned']) for lr in lrs) + " |"]
    for b in sorted({r["bits"] for r in rows}, reverse=True):
        for p in dict.fromkeys(r["param"] for r in rows):
            sel = {r["lr"]: r for r in rows if r["bits"] == b and r["param"] == p}
            ptq = next(iter(sel.values()))["ptq"]
            out.append(f"| {b} | {p} | {f(ptq)} | " + " | ".join(f(sel[lr]['qat']) for lr in lrs) + " |")
    return "\n".join(out)


def _load_model(a):
    """The float torch model of ``--model`` (.onnx, or a .pt state_dict with ``--arch``)."""
    if a.excursion_data:
        excursion_spec(a.model)            # a one-line error for a model that is not a streaming excursion .onnx
    if a.model.suffix == ".onnx":
        from edgesense.quant import QuantSim
        return QuantSim.from_onnx(a.model).float_model()
    from edgesense.quant.model_io import architecture_args, load_torch_model
    return load_torch_model(a.model, a.arch, architecture_args(a.model, a.arch_args))


def _load_data(a):
    """(x_train, y_train, x_test, y_test): pipeline windows of ``--gesture-data`` (train-split clips / val users),
    else ``--data``/``--labels`` split 80/20 in order."""
    if a.gesture_data:
        from edgesense.cli.cmd_quantize import gesture_windows
        x_tr, y_tr = gesture_windows(a.gesture_data, a.model, "train", a.train_clips, seed=a.seed)
        x_te, y_te = gesture_windows(a.gesture_data, a.model, "val", None, seed=a.seed)
        return x_tr, y_tr, x_te, y_te
    x = np.load(a.data, allow_pickle=False).astype(np.float32)
    y = np.load(a.labels, allow_pickle=False)
    n_tr = int(0.8 * len(x))
    return x[:n_tr], y[:n_tr], x[n_tr:], y[n_tr:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo", action="store_true", help="gesture_cnn on a synthetic seeded task")
    p.add_argument("--model", type=Path, help="float .pt state_dict (with --arch) or .onnx")
    p.add_argument("--arch")
    p.add_argument("--arch-args")
    p.add_argument("--data", type=Path)
    p.add_argument("--labels", type=Path)
    p.add_argument("--gesture-data", type=Path, help="a radar gesture dataset instead of --data/--labels: QAT on the "
                   "classified pipeline windows of its train-split clips, scored on its val-split users (the "
                   "model's .json sidecar describes the windows)")
    p.add_argument("--train-clips", type=int, default=2000, help="train-split clips for --gesture-data (default "
                   "2000, class-stratified)")
    p.add_argument("--excursion-data", type=Path, help="a speaker dataset instead of --data/--labels, for a float "
                   "streaming excursion .onnx (its .json sidecar describes frames, scales and receptive field): QAT "
                   "and the float control on crops of its train-split recordings (batches of 8), scored by NRMSE %% "
                   "on crops of its val-split recordings")
    p.add_argument("--train-crops", type=int, default=384, help="--excursion-data: training crops (default 384), "
                   f"seeded, each the receptive field then {CROP} frames")
    p.add_argument("--val-crops", type=int, default=96, help="--excursion-data: scored validation crops (default "
                   f"96), spread over the val-split recordings, each the receptive field then {VAL_FRAMES} frames")
    p.add_argument("--epochs", type=int, default=3, help="QAT epochs")
    p.add_argument("--float-epochs", type=int, default=40, help="float training epochs of the --demo model")
    p.add_argument("--bits", default="8,6,4")
    p.add_argument("--lrs", default="1e-4,1e-3,1e-2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    if a.demo:
        from edgesense.nn.registry import create_model
        x, y = synthetic_task(seed=a.seed)
        model = train_float(create_model("gesture_cnn", rows=16, frames=16, num_classes=5), x[:1600], y[:1600],
                            epochs=a.float_epochs)
        name = "gesture_cnn (synthetic 5-class task, 16x16 maps)"
        x_tr, y_tr, x_te, y_te = x[:1600], y[:1600], x[1600:], y[1600:]
        task = None
    else:
        if not a.model or not ((a.data and a.labels) or a.gesture_data or a.excursion_data):
            p.error("give --demo, or --model with --data and --labels, --gesture-data or --excursion-data")
        if a.gesture_data and a.excursion_data:
            p.error("give one of --gesture-data and --excursion-data")
        from edgesense.errors import EdgesenseError

        try:
            model = _load_model(a)
            if a.excursion_data:
                d = excursion_data(a.excursion_data, a.model, a.train_crops, a.val_crops, seed=a.seed)
                task = excursion_task(a.model, model, d)
                x_tr, y_tr, x_te, y_te = d.x_train, d.y_train, d.x_val, d.y_val
                sizes = {"train_recordings": d.train_recordings, "train_crops": len(d.x_train),
                         "train_frames": int(d.x_train.shape[-1]), "val_recordings": d.val_recordings,
                         "val_crops": len(d.x_val), "val_scored_samples": int(d.y_val.size)}
                print(f"  {a.model.name}: {sizes}", file=sys.stderr)
            else:
                (x_tr, y_tr, x_te, y_te), task = _load_data(a), None
        except EdgesenseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        name = a.model.name
    rows = study(model, x_tr.astype(np.float32), y_tr, x_te.astype(np.float32), y_te,
                 tuple(int(b) for b in a.bits.split(",")),
                 tuple(float(v) for v in a.lrs.split(",")), epochs=a.epochs, seed=a.seed, task=task)
    if a.json:
        extra = ({"metric": "nrmse_pct", "lower_is_better": True, "epochs": a.epochs, **sizes}
                 if a.excursion_data else {})
        json.dump({"model": name, **extra, "rows": rows}, sys.stdout, indent=1)
        print()
    elif task is not None:
        print(table(rows, name, task.metric, task.digits))
    else:
        print(table(rows, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
