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

``--labels`` int (N,) -> accuracy (higher is better); float targets -> NRMSE (lower is better).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

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


def study(model, x_tr, y_tr, x_te, y_te, bits=(8, 6, 4), lrs=(1e-4, 1e-3, 1e-2),
          params=("minmax", "scale_offset", "beta_gamma"), epochs: int = 3, seed: int = 0) -> list[dict]:
    import torch

    from edgesense.quant import TargetProfile
    from edgesense.quant.ptq import PTQConfig, quantize_ptq
    from edgesense.quant.qat import QATConfig, train_qat

    classify = y_tr.ndim == 1 and np.issubdtype(y_tr.dtype, np.integer)
    xt_tr, xt_te = torch.from_numpy(x_tr), torch.from_numpy(x_te)
    yt_tr = torch.from_numpy(y_tr)
    loss_fn = torch.nn.functional.cross_entropy if classify else (lambda o, t: ((o - t) ** 2).mean())
    with torch.no_grad():
        float_metric = metric(model(xt_te).numpy(), y_te)
    # control: the float model fine-tuned the same way (separates QAT's effect from extra training)
    import copy
    float_ft = {}
    for lr in lrs:
        torch.manual_seed(seed)
        fm = copy.deepcopy(model).train()
        opt = torch.optim.Adam(fm.parameters(), lr=lr)
        g = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            perm = torch.randperm(len(xt_tr), generator=g)
            for i in range(0, len(perm), 64):
                opt.zero_grad()
                loss_fn(fm(xt_tr[perm[i:i + 64]]), yt_tr[perm[i:i + 64]]).backward()
                opt.step()
        with torch.no_grad():
            float_ft[lr] = metric(fm.eval()(xt_te).numpy(), y_te)
    rows = []
    for b in bits:
        target = TargetProfile(f"w{b}a{b}", weight_bitwidth=b, activation_bitwidth=b)
        for param in params:
            for lr in lrs:
                torch.manual_seed(seed)
                t0 = time.time()
                sim = quantize_ptq(model, xt_tr[:1], xt_tr[:512].split(128), target=target,
                                   config=PTQConfig(range_param=param))
                with torch.no_grad():
                    ptq = metric(sim(xt_te).numpy(), y_te)
                g = torch.Generator().manual_seed(seed)

                def batches():
                    perm = torch.randperm(len(xt_tr), generator=g)
                    return [(xt_tr[perm[i:i + 64]], yt_tr[perm[i:i + 64]]) for i in range(0, len(perm), 64)]
                try:
                    hist = train_qat(sim, batches, loss_fn, QATConfig(epochs=epochs, lr=lr))
                    with torch.no_grad():
                        qat = metric(sim(xt_te).numpy(), y_te)
                except Exception as exc:  # divergence is a result of the study
                    hist, qat = [], float("nan")
                    print(f"  w{b}a{b} {param} lr={lr:g}: {exc}", file=sys.stderr)
                rows.append({"bits": b, "param": param, "lr": lr, "float": float_metric,
                             "float_finetuned": float_ft[lr], "ptq": ptq, "qat": qat,
                             "final_loss": hist[-1] if hist else None, "seconds": round(time.time() - t0, 1)})
                print(f"  w{b}a{b} {param:12s} lr={lr:<7g} PTQ {ptq:.4f} -> QAT {qat:.4f}", file=sys.stderr)
    return rows


def table(rows: list[dict], name: str) -> str:
    lrs = sorted({r["lr"] for r in rows})
    out = [f"## {name}: QAT metric by bit width, parameterisation and learning rate "
           f"(float {rows[0]['float']:.4f})", "",
           "| bits | parameterisation | PTQ | " + " | ".join(f"QAT lr={lr:g}" for lr in lrs) + " |",
           "|---|---|---|" + "---|" * len(lrs),
           "| 32 | float fine-tuned (control) | - | " + " | ".join(
               f"{next(r for r in rows if r['lr'] == lr)['float_finetuned']:.4f}" for lr in lrs) + " |"]
    for b in sorted({r["bits"] for r in rows}, reverse=True):
        for p in dict.fromkeys(r["param"] for r in rows):
            sel = {r["lr"]: r for r in rows if r["bits"] == b and r["param"] == p}
            ptq = next(iter(sel.values()))["ptq"]
            out.append(f"| {b} | {p} | {ptq:.4f} | " + " | ".join(f"{sel[lr]['qat']:.4f}" for lr in lrs) + " |")
    return "\n".join(out)


def _load_model(a):
    """The float torch model of ``--model`` (.onnx, or a .pt state_dict with ``--arch``)."""
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
    else:
        if not a.model or not ((a.data and a.labels) or a.gesture_data):
            p.error("give --demo, or --model with --data and --labels or --gesture-data")
        from edgesense.errors import EdgesenseError

        try:
            model, (x_tr, y_tr, x_te, y_te) = _load_model(a), _load_data(a)
        except EdgesenseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        name = a.model.name
    rows = study(model, x_tr.astype(np.float32), y_tr, x_te.astype(np.float32), y_te,
                 tuple(int(b) for b in a.bits.split(",")),
                 tuple(float(v) for v in a.lrs.split(",")), epochs=a.epochs, seed=a.seed)
    if a.json:
        json.dump({"model": name, "rows": rows}, sys.stdout, indent=1)
        print()
    else:
        print(table(rows, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
