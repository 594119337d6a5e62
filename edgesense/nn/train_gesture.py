"""Train a gesture model on any dataset in the recording format (``edgesense train gesture``).

**What the model learns.** A window of the last T frames (a gesture map, see
:mod:`edgesense.radar.pipeline`) is labelled with gesture *g* when g has *just ended*: the window's
last frame lies within ``[end - 1 - early, end - 1 + late]`` of g's last frame. Windows whose last
frame is within ``guard`` frames of that zone are not trained on (ambiguous); every other window --
no gesture, a gesture still going on, or one that ended a while ago -- is ``noise``. The model then
fires a short burst right at each gesture's end, which the spotter turns into exactly one event,
so repeats of the same gesture are separate bursts and latency is bounded by ``late``.

**Where gestures are.** Per recording: its event list if it has one (continuous streams, noise
events are ignored); else its clip label spanning the recording's activity mask; else the clip
label spanning the whole clip. Clips labelled with the noise class give only noise windows.

**Augmentation.** Each recording is also prepared ``drop_variants`` times with frames dropped by a
random-plus-bursty loss model (rate drawn from ``drop_rate_range``) exactly as the live
:class:`~edgesense.radar.pipeline.GesturePipeline` sees them: the RDIs are recomputed from the received
frames only (the background state skips lost frames), gaps of up to ``max_restore`` frames are filled
by the pipeline's restoration (:func:`edgesense.radar.pipeline.restore_sequence`) and longer ones are
padded (zero after normalisation); the validity channel marks both. Each training window picks a
variant at random.

**Hard negatives.** ``negatives_per_positive`` noise windows are drawn per gesture window each epoch;
``near_negatives`` of them come from windows that hold part of a gesture without being in its
just-ended zone (the gesture still going on, or ended a while ago but still in view), the windows a
stream spotter mistakes for gestures; the rest from all noise windows.

**Distillation.** With ``teacher`` (a float ONNX gesture model of the same classes and window, e.g.
the larger ``gesture_crnn``), each batch's windows are also run through the teacher (re-normalised to
its own input scaling) and the loss mixes the label cross-entropy with the cross-entropy to the
teacher's probabilities (weight ``distill_weight``), so a small model learns the teacher's soft
decisions on dropped and restored windows too (Hinton et al., 2015, "Distilling the knowledge in a
neural network", arXiv:1503.02531).

**Splits.** Train, validation and test splits come from the dataset index (split by subject).
Validation clips are also prepared once with ``val_drop_rate`` drops (fixed seed); the checkpoint
with the best validation clip accuracy (the mean of clean and dropped, when ``val_drop_rate`` > 0)
is kept.

**Fine-tuning.** ``init`` names a state_dict (``.pt``, loaded with ``weights_only=True``) to start
from; its sidecar ``.json`` supplies the normalisation, so the model keeps its input scaling.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgesense.errors import EdgesenseError, FormatError
from edgesense.nn.layers import count_macs, count_params
from edgesense.nn.registry import create_model
from edgesense.progress import progress
from edgesense.radar.metrics import (
    CLIP_LATENCY_S,
    clip_decision_row,
    clip_metrics,
    clip_wait_frames,
    gesture_extents,
)
from edgesense.radar.metrics import clip_window_end as _clip_window_end
from edgesense.radar.pipeline import GestureModelInfo, gesture_map, make_rdi_processor, rdi_profiles, restore_sequence
from edgesense.radar.restore import long_gap_mask
from edgesense.recording import Dataset, DatasetEntry
from edgesense.stream.faults import random_plus_bursty

__all__ = ["TrainConfig", "TrainResult", "PreparedRecording", "prepare_recordings", "dropped_variant", "window_labels",
           "clip_window_end", "train_gesture", "export_onnx", "write_model_card"]

IGNORE = -100


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved into the model card)."""

    model: str = "gesture_cnn"
    frames: int = 40
    epochs: int = 30
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    validity: bool = True
    noise_label: str = "noise"
    early: int = 3          # frames before a gesture's last frame that already count as "just ended"
    late: int = 6           # frames after it
    guard: int = 4          # ambiguous frames on both sides of that zone (not trained on)
    negatives_per_positive: float = 1.0
    near_negatives: float = 0.0   # share of noise windows drawn from those holding part of a gesture (hard ones)
    max_positives: int = 0  # positive windows per gesture per epoch (0 = all of its just-ended zone)
    drop_variants: int = 2
    drop_rate_range: tuple[float, float] = (0.05, 0.3)
    max_restore: int = 8    # gaps longer than this are padded, not restored (GesturePipeline's default)
    val_drop_rate: float = 0.0   # also score validation clips with this drop rate when picking the checkpoint
    val_drop_variants: int = 1   # dropped validation copies (different loss patterns) averaged in that score
    init: str | None = None      # state_dict to fine-tune from (its sidecar .json gives the normalisation)
    teacher: str | None = None   # float ONNX gesture model whose probabilities are distilled (same classes)
    distill_weight: float = 0.5  # loss = (1 - w)·cross-entropy + w·cross-entropy to the teacher's probabilities
    threads: int = 1
    model_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class PreparedRecording:
    """One recording reduced to per-frame profiles, with its gesture extents and augmented variants."""

    entry: DatasetEntry
    profiles: list[np.ndarray]      # variant -> (n, C, D+R); variant 0 is clean
    valid: list[np.ndarray]         # variant -> (n,) float32
    gestures: list[tuple[int, int, int]]   # (class index, start, end) of non-noise gestures
    clip_class: int | None          # the clip label's class index, if a clip
    padded: list[np.ndarray | None] = field(default_factory=list)   # variant -> frames padded (long gaps)

    @property
    def n(self) -> int:
        return len(self.valid[0])


@dataclass
class TrainResult:
    config: TrainConfig
    info: GestureModelInfo
    params: int
    macs: int
    val: dict[str, Any]
    test: dict[str, Any]
    history: list[dict[str, float]]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "params": self.params, "macs": self.macs, "val": self.val,
                "test": self.test, "history": self.history, "seconds": self.seconds,
                "classes": list(self.info.classes)}


def _extents(rec, classes: list[str], noise_label: str) -> tuple[list[tuple[int, int, int]], int | None]:
    labels = rec.labels
    if not labels.events and labels.clip_label is None:
        raise FormatError(f"{rec.path}: recording has neither a clip label nor events")
    gestures = [(classes.index(lab), s, e) for lab, s, e in gesture_extents(labels, rec.n_frames, noise_label)]
    clip = None if labels.clip_label is None else classes.index(labels.clip_label)
    return gestures, clip


def clip_window_end(prep: PreparedRecording) -> int:
    """The frame whose window classifies a clip (see :func:`edgesense.radar.metrics.clip_window_end`)."""
    return _clip_window_end(prep.n, prep.gestures)


def window_labels(n: int, gestures: list[tuple[int, int, int]], noise: int, early: int, late: int,
                  guard: int) -> np.ndarray:
    """Label of the window ending at each frame 0..n-1 (``IGNORE`` = not trained on)."""
    lab = np.full(n, noise, dtype=np.int64)
    for _, s, e in gestures:   # guard zones first, so a neighbouring gesture's positive zone wins
        last = e - 1
        lab[max(0, last - early - guard):max(0, min(n, last + late + guard + 1))] = IGNORE
    for cls, s, e in gestures:
        last = e - 1
        lo, hi = max(0, last - early), min(n, last + late + 1)
        if lo < hi:
            lab[lo:hi] = cls
    return lab


def dropped_variant(proc, payloads: np.ndarray, lost: np.ndarray, max_restore: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the live pipeline makes of a recording whose frames ``lost`` never arrived.

    RDIs of the received frames only (the processor's background skips the lost ones), gaps of up to
    ``max_restore`` frames restored, longer ones marked padded. Returns (profiles, valid, padded).
    """
    keep = ~np.asarray(lost, dtype=bool)
    proc.reset()
    got = proc.batch(payloads[keep])
    rdis = np.zeros((len(keep), *got.shape[1:]), np.float32)
    rdis[keep] = got
    restored = restore_sequence(rdis, keep)
    padded = long_gap_mask(keep, max_restore)
    return rdi_profiles(restored), keep.astype(np.float32), padded


def prepare_recordings(entries: list[tuple[Dataset, DatasetEntry]], classes: list[str], cfg: TrainConfig,
                       rng: np.random.Generator, augment: bool, desc: str,
                       fixed_rate: float | None = None) -> list[PreparedRecording]:
    """Load recordings, compute RDIs and profiles, and (``augment``) the dropped+restored variants.

    ``fixed_rate`` makes ``cfg.val_drop_variants`` variants at exactly that drop rate (validation) instead of
    ``cfg.drop_variants`` at rates drawn from ``cfg.drop_rate_range``.
    """
    out = []
    processors: dict[str, Any] = {}
    for ds, entry in progress(entries, desc=desc):
        rec = ds.load(entry)
        key = rec.profile.name + str(rec.profile.payload_shape)
        if key not in processors:
            processors[key] = make_rdi_processor(rec.profile)
        proc = processors[key]
        proc.reset()
        rdis = proc.batch(rec.payloads)
        gestures, clip = _extents(rec, classes, cfg.noise_label)
        profiles = [rdi_profiles(rdis)]
        valid = [np.ones(len(rdis), np.float32)]
        padded: list[np.ndarray | None] = [None]
        if augment:
            rates = ([fixed_rate] * max(1, cfg.val_drop_variants) if fixed_rate is not None
                     else [rng.uniform(*cfg.drop_rate_range) for _ in range(cfg.drop_variants)])
            for rate in rates:
                lost = random_plus_bursty(rate).mask(len(rdis), rng)
                lost[0] = False
                prof, val, pad = dropped_variant(proc, rec.payloads, lost, cfg.max_restore)
                profiles.append(prof)
                valid.append(val)
                padded.append(pad if pad.any() else None)
        out.append(PreparedRecording(entry, profiles, valid, gestures, clip, padded))
    return out


class _Windows:
    """Windows of prepared recordings as model inputs (normalised, left-padded with invalid frames)."""

    def __init__(self, preps: list[PreparedRecording], info: GestureModelInfo) -> None:
        self.info = info
        t = info.frames
        self.padded = []
        self.pvalid = []
        for p in preps:
            pv, vv = [], []
            for k, (prof, val) in enumerate(zip(p.profiles, p.valid)):
                pad = np.zeros((t - 1, *prof.shape[1:]), np.float32) + np.asarray(info.mean, np.float32)[None, :, None]
                gap = p.padded[k] if k < len(p.padded) else None
                if gap is not None:    # long gaps: the pipeline's padding, zero after normalisation
                    prof = prof.copy()
                    prof[gap] = np.asarray(info.mean, np.float32)[:, None]
                pv.append(np.concatenate([pad, prof]))
                vv.append(np.concatenate([np.zeros(t - 1, np.float32), val]))
            self.padded.append(pv)
            self.pvalid.append(vv)

    def batch(self, rec_ids: np.ndarray, variants: np.ndarray, ends: np.ndarray) -> np.ndarray:
        t = self.info.frames
        prof = np.stack([self.padded[r][v][e:e + t] for r, v, e in zip(rec_ids, variants, ends)])
        valid = np.stack([self.pvalid[r][v][e:e + t] for r, v, e in zip(rec_ids, variants, ends)])
        return gesture_map(prof, valid, self.info)


def _sample_epoch(preps, labels, cfg: TrainConfig, noise: int, rng: np.random.Generator):
    rec_ids, ends, ys = [], [], []
    for i, (p, lab) in enumerate(zip(preps, labels)):
        pos = np.flatnonzero((lab != IGNORE) & (lab != noise))
        neg = np.flatnonzero(lab == noise)
        if cfg.max_positives and len(pos):
            cap = cfg.max_positives * max(1, len(p.gestures))
            if len(pos) > cap:
                pos = np.sort(rng.choice(pos, size=cap, replace=False))
        n_neg = (max(1, int(round(cfg.negatives_per_positive * len(pos)))) if len(pos)
                 else cfg.max_positives or cfg.early + cfg.late + 1)
        chosen = list(pos)
        if len(neg):
            n_neg = min(n_neg, len(neg))
            near = _near_gesture(neg, p.gestures, cfg.frames) if cfg.near_negatives > 0 else neg[:0]
            n_near = min(int(round(cfg.near_negatives * n_neg)), len(near))
            if n_near:
                picked = rng.choice(near, size=n_near, replace=False)
                neg = np.setdiff1d(neg, picked, assume_unique=True)
                chosen += list(picked)
            chosen += list(rng.choice(neg, size=min(n_neg - n_near, len(neg)), replace=False))
        rec_ids += [i] * len(chosen)
        ends += chosen
        ys += [int(lab[c]) for c in chosen]
    rec_ids, ends, ys = np.array(rec_ids), np.array(ends), np.array(ys)
    variants = np.array([rng.integers(len(preps[r].profiles)) for r in rec_ids])
    order = rng.permutation(len(ys))
    return rec_ids[order], variants[order], ends[order], ys[order]


def _near_gesture(ends: np.ndarray, gestures: list[tuple[int, int, int]], frames: int) -> np.ndarray:
    """The window ends among ``ends`` whose window of ``frames`` frames holds part of a gesture."""
    hit = np.zeros(len(ends), dtype=bool)
    for _, s, e in gestures:
        hit |= (ends >= s) & (ends - frames + 1 < e)
    return ends[hit]


def _predict(model: nn.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            outs.append(torch.softmax(model(torch.from_numpy(x[i:i + batch])), dim=1).numpy())
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


def clip_accuracy_torch(model: nn.Module, windows: _Windows, preps: list[PreparedRecording], classes: list[str],
                        variant: int = 0) -> dict[str, Any]:
    """Clip metrics of the float model, each clip classified by the window at :func:`clip_window_end`."""
    clips = [i for i, p in enumerate(preps) if p.clip_class is not None]
    if not clips:
        return {}
    ends = np.array([clip_window_end(preps[i]) for i in clips])
    if variant:   # decided at a received frame, as evaluate_gesture_dataset does (clip_decision_row)
        wait = clip_wait_frames(CLIP_LATENCY_S, windows.info.frame_rate_hz)
        received = [np.flatnonzero(preps[i].valid[variant]) for i in clips]
        ends = np.array([r[clip_decision_row(r, e, wait)] for r, e in zip(received, ends)])
    x = windows.batch(np.array(clips), np.full(len(clips), variant), ends)
    pred = _predict(model, x).argmax(axis=1)
    return clip_metrics([preps[i].clip_class for i in clips], pred, classes).to_dict()


def _normalisation(preps: list[PreparedRecording]) -> tuple[list[float], list[float]]:
    stacked = np.concatenate([p.profiles[0] for p in preps])  # (N, C, F)
    mean = stacked.mean(axis=(0, 2))
    std = stacked.std(axis=(0, 2)) + 1e-6
    return [float(m) for m in mean], [float(s) for s in std]


def train_gesture(data: str | Path | list[str | Path], cfg: TrainConfig) -> tuple[nn.Module, TrainResult]:
    """Train ``cfg.model`` on the dataset at ``data``; returns the best model (eval mode) and results."""
    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    rng = np.random.default_rng(cfg.seed)
    datasets = [Dataset.open(d) for d in (data if isinstance(data, (list, tuple)) else [data])]
    train_e, val_e, test_e = ([(ds, e) for ds in datasets for e in _split(ds, name)] for name in ("train", "val", "test"))
    if not train_e:
        raise EdgesenseError(f"{data}: the dataset index has no 'train' split (run 'edgesense dataset index')")
    classes = sorted({c for ds in datasets for c in ds.classes})
    if cfg.noise_label not in classes:
        classes = [cfg.noise_label] + classes  # spotting needs a background class
    noise = classes.index(cfg.noise_label)

    train_p = prepare_recordings(train_e, classes, cfg, rng, augment=cfg.drop_variants > 0, desc="prepare train")
    val_p = prepare_recordings(val_e, classes, cfg, np.random.default_rng(cfg.seed + 1), augment=cfg.val_drop_rate > 0,
                               desc="prepare val", fixed_rate=cfg.val_drop_rate)
    test_p = prepare_recordings(test_e, classes, cfg, rng, augment=False, desc="prepare test")
    c, f = train_p[0].profiles[0].shape[1:]
    rec0 = train_e[0][0].load(train_e[0][1])
    shapes = {p.profiles[0].shape[1:] for p in train_p + val_p + test_p}
    if len(shapes) != 1:
        raise FormatError(f"{data}: recordings have different RDI sizes {sorted(shapes)}; train needs one size")
    rdi_shape = _rdi_shape(rec0, c, f)
    init_info = _init_info(cfg.init, classes) if cfg.init else None
    mean, std = (list(init_info.mean), list(init_info.std)) if init_info else _normalisation(train_p)
    info = GestureModelInfo(name=cfg.model, classes=tuple(classes), frames=cfg.frames, rdi_shape=rdi_shape,
                            validity=cfg.validity, mean=tuple(mean), std=tuple(std), noise_label=cfg.noise_label,
                            frame_rate_hz=rec0.profile.frame_rate_hz, profile=rec0.profile.to_dict())
    model = create_model(cfg.model, in_channels=info.in_channels, rows=info.rows, frames=info.frames,
                         num_classes=len(classes), **cfg.model_kwargs)
    if cfg.init:
        model.load_state_dict(torch.load(cfg.init, map_location="cpu", weights_only=True))
    example = torch.zeros(info.input_shape)
    params, macs = count_params(model), count_macs(model, example)

    tr_w, va_w, te_w = _Windows(train_p, info), _Windows(val_p, info), _Windows(test_p, info)
    labels = [window_labels(p.n, p.gestures, noise, cfg.early, cfg.late, cfg.guard) for p in train_p]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    probe = _sample_epoch(train_p, labels, cfg, noise, np.random.default_rng(cfg.seed))
    steps_per_epoch = max(1, int(np.ceil(len(probe[3]) / cfg.batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch + 10)
    counts = np.bincount(probe[3], minlength=len(classes)).astype(float)
    weight = torch.tensor(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(classes), 1.0),
                          dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE, label_smoothing=0.05)

    teacher = _teacher(cfg.teacher, info) if cfg.teacher else None
    history: list[dict[str, float]] = []
    best = (-1.0, None)
    for epoch in progress(range(cfg.epochs), desc=f"train {cfg.model}"):
        model.train()
        rec_ids, variants, ends, ys = _sample_epoch(train_p, labels, cfg, noise, rng)
        total, n_seen, correct = 0.0, 0, 0
        for i in range(0, len(ys), cfg.batch_size):
            if i // cfg.batch_size >= steps_per_epoch:
                break
            sl = slice(i, i + cfg.batch_size)
            x = torch.from_numpy(tr_w.batch(rec_ids[sl], variants[sl], ends[sl]))
            y = torch.from_numpy(ys[sl])
            logits = model(x)
            loss = loss_fn(logits, y)
            if teacher is not None:
                soft = torch.from_numpy(teacher(x.numpy()))
                kd = -(soft * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
                loss = (1.0 - cfg.distill_weight) * loss + cfg.distill_weight * kd
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(y)
            n_seen += len(y)
            correct += int((logits.argmax(1) == y).sum())
        val = clip_accuracy_torch(model, va_w, val_p, classes) if val_p else {}
        row = {"epoch": epoch + 1, "loss": total / max(n_seen, 1), "train_window_acc": correct / max(n_seen, 1),
               "val_acc": val.get("accuracy", float("nan"))}
        score = val.get("accuracy", -row["loss"]) if val else -row["loss"]
        if val and cfg.val_drop_rate > 0:
            row["val_acc_dropped"] = float(np.mean([
                clip_accuracy_torch(model, va_w, val_p, classes, variant=v).get("accuracy")
                for v in range(1, max(1, cfg.val_drop_variants) + 1)]))
            score = 0.5 * (score + row["val_acc_dropped"])
        history.append(row)
        if score >= best[0] or best[1] is None:
            best = (score, {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])
    model.eval()
    val = clip_accuracy_torch(model, va_w, val_p, classes) if val_p else {}
    test = clip_accuracy_torch(model, te_w, test_p, classes) if test_p else {}
    info = GestureModelInfo(**{**asdict(info), "classes": tuple(classes),
                               "metrics": {"val_clip_accuracy": val.get("accuracy"),
                                           "test_clip_accuracy": test.get("accuracy"),
                                           "test_balanced_accuracy": test.get("balanced_accuracy")}})
    result = TrainResult(cfg, info, params, macs, val, test, history, time.perf_counter() - t_start)
    return model, result


def _init_info(path: str, classes: list[str]) -> GestureModelInfo:
    """The sidecar of the state_dict to fine-tune from; its classes must be the data's."""
    side = Path(path).with_suffix(".json")
    if not Path(path).is_file() or not side.is_file():
        raise EdgesenseError(f"{path}: fine-tuning needs the state_dict and its .json description beside it")
    import json

    info = GestureModelInfo.from_dict(json.loads(side.read_text()))
    if list(info.classes) != list(classes):
        raise EdgesenseError(f"{path}: model classes {list(info.classes)} differ from the data's {classes}")
    return info


def _teacher(path: str, info: GestureModelInfo):
    """A callable: student inputs (N, C, rows, T) -> the teacher model's probabilities (N, classes)."""
    from edgesense.runtime import load_model

    if Path(path).suffix != ".onnx":
        raise EdgesenseError(f"{path}: the teacher must be a float .onnx gesture model with its .json beside it")
    t_info = GestureModelInfo.for_model(path)
    if list(t_info.classes) != list(info.classes) or t_info.input_shape[1:] != info.input_shape[1:] \
            or t_info.validity != info.validity:
        raise EdgesenseError(f"{path}: teacher classes or input {list(t_info.classes)} {list(t_info.input_shape)} "
                             f"differ from the student's {list(info.classes)} {list(info.input_shape)}")
    teacher = load_model(path, threads=1)
    c = info.rdi_shape[0]     # input channels: the RDI channels, then validity
    s_mean, s_std = np.asarray(info.mean, np.float32), np.asarray(info.std, np.float32)
    t_mean, t_std = np.asarray(t_info.mean, np.float32), np.asarray(t_info.std, np.float32)
    scale = (s_std / t_std).reshape(1, c, 1, 1)
    shift = ((s_mean - t_mean) / t_std).reshape(1, c, 1, 1)

    def run(x: np.ndarray) -> np.ndarray:
        y = np.array(x, dtype=np.float32)
        y[:, :c] = y[:, :c] * scale + shift
        return teacher.run(y)

    return run


def _split(ds: Dataset, name: str) -> list[DatasetEntry]:
    return [e for e in ds.entries if e.split == name]


def _rdi_shape(rec, c: int, f: int) -> tuple[int, int, int]:
    from edgesense.profiles import RDIProfile

    if isinstance(rec.profile, RDIProfile):
        return tuple(rec.profile.payload_shape)  # type: ignore[return-value]
    rdi = make_rdi_processor(rec.profile)(rec.payloads[0])
    return tuple(int(s) for s in rdi.shape)  # type: ignore[return-value]


class _WithSoftmax(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


def export_onnx(model: nn.Module, info: GestureModelInfo, path: str | Path, opset: int = 17) -> Path:
    """Float ONNX (input ``gesture_map`` (N, C, rows, T), output ``probs``) with the sidecar JSON beside it."""
    import json
    import warnings

    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapped = _WithSoftmax(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, (torch.zeros(info.input_shape),), str(path), input_names=["gesture_map"],
                          output_names=["probs"], opset_version=opset, dynamo=False,
                          dynamic_axes={"gesture_map": {0: "batch"}, "probs": {0: "batch"}})
    proto = onnx.load(str(path))
    _drop_identities(proto.graph)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "edgesense_gesture_model", json.dumps(info.to_dict())
    onnx.save(proto, str(path))
    info.save(path.with_suffix(".json"))
    return path


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{100 * v:.2f}%" if pct else (f"{v:.4g}" if isinstance(v, float) else str(v))


def write_model_card(path: str | Path, result: TrainResult, evals: dict[str, dict], command: str,
                     onnx_path: str | Path) -> Path:
    """``MODEL_CARD.md``: task, inputs/outputs, size, metrics (as measured) and the reproduction command."""
    info, cfg = result.info, result.config
    c, d, r = info.rdi_shape
    lines = [
        f"# {info.name}: radar gesture model",
        "",
        "**Task.** Spot hand gestures in a radar stream: for the last T frames, the probability that each",
        "gesture has *just ended* (or `noise`: nothing has). `edgesense.radar.spotting` turns these into one",
        f"event per gesture. Trained on `{(info.profile or {}).get('name', '?')}` data.",
        "",
        "| | |",
        "|---|---|",
        f"| classes | {', '.join(f'`{k}`' for k in info.classes)} (background: `{info.noise_label}`) |",
        f"| input `gesture_map` | float32 `(N, {info.in_channels}, {info.rows}, {info.frames})`: per frame the Doppler "
        f"profile ({d} rows) and range profile ({r} rows) of each of {c} RDI channel(s), normalised"
        + (", plus a validity channel (1 received, 0 restored/padded)" if info.validity else "")
        + f"; last column = newest frame; T = {info.frames} frames = {info.frames / info.frame_rate_hz:.2f} s |",
        "| output `probs` | float32 `(N, classes)`, softmax |",
        f"| parameters | {result.params:,} |",
        f"| MACs per inference | {result.macs:,} |",
        f"| files | `{Path(onnx_path).name}` (float ONNX, opset 17), `{Path(onnx_path).with_suffix('.json').name}` "
        f"(description read by `GesturePipeline`), `{Path(onnx_path).with_suffix('.pt').name}` (state_dict) |",
        f"| training | {cfg.epochs} epochs, batch {cfg.batch_size}, AdamW lr {cfg.lr:g} one-cycle, seed {cfg.seed}, "
        f"{cfg.drop_variants} dropped+restored variants per recording (drop rate {cfg.drop_rate_range[0]:g}-"
        f"{cfg.drop_rate_range[1]:g}, gaps over {cfg.max_restore} frames padded like the pipeline)"
        + (f", fine-tuned from `{cfg.init}`" if cfg.init else "")
        + f", {result.seconds / 60:.1f} min on {cfg.threads} CPU thread(s) |",
        f"| spotter | {info.spotter or 'defaults'} "
        + ("(tuned on the stream dataset's validation users)" if info.spotter else "") + " |",
        "",
        "## Measured (held-out users: the dataset's test split)",
        "",
        "| evaluation | clip accuracy | balanced accuracy | event F1 | false triggers / min | latency p50 / p95 (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for key, ev in evals.items():
        clips, streams = ev.get("clips"), ev.get("streams")
        lat = streams.latency_s if streams is not None else {}
        lines.append(
            f"| {key} | {_fmt(clips.accuracy, True) if clips else '-'} | "
            f"{_fmt(clips.balanced_accuracy, True) if clips else '-'} | {_fmt(streams.f1) if streams else '-'} | "
            f"{_fmt(streams.false_triggers_per_min) if streams else '-'} | "
            + (f"{1000 * lat['p50']:.0f} / {1000 * lat['p95']:.0f}" if lat else "-") + " |")
    for key, ev in evals.items():
        clips = ev.get("clips")
        if clips is not None and key == "clips":
            lines += ["", "Per-class recall (clean test clips): "
                      + ", ".join(f"`{k}` {100 * v:.1f}%" for k, v in clips.per_class_recall.items()), ""]
            lines += ["Confusion matrix (rows true, columns predicted; " + ", ".join(clips.classes) + "):", "", "```"]
            lines += [" ".join(f"{x:5d}" for x in row) for row in clip_rows(clips.confusion)]
            lines += ["```"]
    lines += ["", "Latency is from the labelled end of a gesture to the end of the frame at which its event",
              "is emitted (frame-quantised, 25 ms at 40 fps); per-frame compute is measured by",
              "`tools/bench_gesture_pipeline.py`.", "",
              "## Reproduce", "", "```", command, "```", ""]
    path = Path(path)
    path.write_text("\n".join(lines))
    return path


def clip_rows(confusion: list[list[int]]) -> list[list[int]]:
    return [list(map(int, row)) for row in confusion]


def _drop_identities(graph) -> None:
    """Remove Identity nodes (left by eval-mode Dropout) so int8 exporters see only real ops."""
    outputs = {o.name for o in graph.output}
    for node in [n for n in graph.node if n.op_type == "Identity"]:
        src, dst = node.input[0], node.output[0]
        if dst in outputs:
            continue
        for other in graph.node:
            for i, name in enumerate(other.input):
                if name == dst:
                    other.input[i] = src
        graph.node.remove(node)
