"""Gesture evaluation metrics: clip classification and event spotting.

Clip metrics: accuracy, balanced accuracy (mean per-class recall, robust to a dominant ``noise``
class), per-class recall and the confusion matrix (rows = true class, columns = predicted).

Event metrics compare spotted events with labelled ones. A detection *matches* a labelled event
of the same class when its onset frame (the frame at which it was emitted) lies within
``[start - tol, end + tol]`` of the labelled event, with ``tol = tolerance_s * frame_rate``;
matching is one-to-one, earliest first. Unmatched detections are false triggers (counted per
minute of stream); unmatched labelled events are misses. Latency is measured from the end of the
labelled gesture to the end of the frame at which the event was emitted:
``(onset + 1 - end) / frame_rate`` seconds (plus processing time when a live pipeline measures it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ClipMetrics", "EventMetrics", "clip_metrics", "event_metrics", "plot_confusion"]

# a clip whose decision frame was lost is decided at the next received frame within this many seconds
# of the gesture's end, as the live pipeline would (`edgesense eval gesture` and training's dropped validation)
CLIP_LATENCY_S = 0.1


@dataclass
class ClipMetrics:
    """Clip classification results; ``confusion[i][j]`` counts true class i predicted as j."""

    classes: list[str]
    n: int
    accuracy: float
    balanced_accuracy: float
    per_class_recall: dict[str, float]
    confusion: list[list[int]]

    def to_dict(self) -> dict:
        return asdict(self)


def clip_metrics(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> ClipMetrics:
    """Accuracy, balanced accuracy, per-class recall and confusion matrix of integer labels."""
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    k = len(classes)
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (y_true, y_pred), 1)
    support = cm.sum(axis=1)
    recall = {c: float(cm[i, i] / support[i]) for i, c in enumerate(classes) if support[i] > 0}
    n = int(len(y_true))
    return ClipMetrics(
        classes=list(classes), n=n,
        accuracy=float(np.trace(cm) / n) if n else float("nan"),
        balanced_accuracy=float(np.mean(list(recall.values()))) if recall else float("nan"),
        per_class_recall=recall, confusion=cm.tolist(),
    )


@dataclass
class EventMetrics:
    """Event spotting results over one or more streams."""

    true_events: int
    detections: int
    true_positives: int
    precision: float
    recall: float
    f1: float
    false_triggers: int
    false_triggers_per_min: float
    duration_min: float
    latency_s: dict[str, float] = field(default_factory=dict)  # p50, p95, max over matched events
    latencies: list[float] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("latencies")
        return out


def _match(truth: list[tuple[str, int, int]], det: list[tuple[str, int]], tol: float):
    used = [False] * len(det)
    pairs = []
    for t_label, t_start, t_end in sorted(truth, key=lambda e: e[1]):
        for j, (d_label, onset) in enumerate(det):
            if not used[j] and d_label == t_label and t_start - tol <= onset <= t_end + tol:
                used[j] = True
                pairs.append(((t_label, t_start, t_end), det[j]))
                break
    return pairs


def event_metrics(streams: Sequence[tuple[Sequence, Sequence, int]], frame_rate: float, tolerance_s: float = 0.5,
                  noise_label: str = "noise") -> EventMetrics:
    """Score spotted events. ``streams`` holds ``(true_events, detected_events, n_frames)`` per stream.

    True events need ``.label .start .end``; detections ``.label .onset`` (``GestureEvent``).
    Labelled ``noise_label`` events are not gestures and are never expected.
    """
    tol = tolerance_s * frame_rate
    n_true = n_det = n_tp = 0
    latencies: list[float] = []
    frames = 0
    for truth, det, n_frames in streams:
        t = [(e.label, int(e.start), int(e.end)) for e in truth if e.label != noise_label]
        d = [(e.label, int(e.onset)) for e in det]
        pairs = _match(t, d, tol)
        n_true += len(t)
        n_det += len(d)
        n_tp += len(pairs)
        latencies.extend((onset + 1 - end) / frame_rate for (_, _, end), (_, onset) in pairs)
        frames += n_frames
    precision = n_tp / n_det if n_det else (1.0 if n_true == 0 else 0.0)
    recall = n_tp / n_true if n_true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    minutes = frames / frame_rate / 60.0
    fp = n_det - n_tp
    lat = np.asarray(latencies)
    return EventMetrics(
        true_events=n_true, detections=n_det, true_positives=n_tp, precision=precision, recall=recall, f1=f1,
        false_triggers=fp, false_triggers_per_min=fp / minutes if minutes else float("nan"), duration_min=minutes,
        latency_s={"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
                   "max": float(lat.max())} if lat.size else {},
        latencies=latencies,
    )


def plot_confusion(metrics: ClipMetrics, path: str | Path, title: str = "") -> Path:
    """Save the confusion matrix as a PNG (matplotlib is imported here, only when asked for)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(metrics.confusion, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = len(metrics.classes)
    fig, ax = plt.subplots(figsize=(1.2 * k + 2, 1.1 * k + 1.5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), metrics.classes, rotation=45, ha="right")
    ax.set_yticks(range(k), metrics.classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title(title or f"accuracy {metrics.accuracy:.3f}, balanced {metrics.balanced_accuracy:.3f}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# -- evaluation drivers: a model file + a dataset -> the metrics above ------------------------------

def gesture_extents(labels, n_frames: int, noise_label: str = "noise") -> list[tuple[str, int, int]]:
    """Gestures ``(label, start, end)`` of a recording's labels.

    Its event list if it has one (noise events dropped); else the clip label over the activity
    mask's span; else the clip label over the whole clip. A noise clip has none.
    """
    if labels.events:
        return [(e.label, int(e.start), int(min(e.end, n_frames))) for e in labels.events
                if e.label != noise_label and e.start < n_frames]
    if labels.clip_label is None or labels.clip_label == noise_label:
        return []
    act = None if labels.activity is None else np.flatnonzero(np.asarray(labels.activity[:n_frames]))
    if act is not None and act.size:
        return [(labels.clip_label, int(act[0]), int(act[-1]) + 1)]
    return [(labels.clip_label, 0, n_frames)]


def clip_window_end(n_frames: int, gestures: list[tuple]) -> int:
    """The frame whose window classifies a clip: one frame after its first gesture's last frame."""
    return min(int(gestures[0][2]), n_frames - 1) if gestures else n_frames - 1


def clip_wait_frames(latency_s: float, frame_rate: float) -> int:
    """Frames a clip decision may wait past :func:`clip_window_end` and stay within ``latency_s`` of the gesture's end."""
    return max(0, int(np.floor(latency_s * frame_rate + 1e-9)) - 1)


def clip_decision_row(rows: np.ndarray, t: int, wait: int = 0) -> int:
    """Index into the received frame numbers ``rows`` of the frame whose window classifies a clip.

    The first frame received in ``[t, t + wait]`` (a live pipeline decides when a frame arrives: if ``t``
    itself was lost, the next received frame closes the gap, restores it and is classified, at most
    ``wait`` frames late), else the last received frame before ``t``. Without drops this is ``t``.
    """
    after = int(np.searchsorted(rows, t, side="left"))
    if after < len(rows) and rows[after] <= t + wait:
        return after
    return after - 1


def evaluate_gesture_dataset(model: str | Path, data: str | Path, split: str | None = "test", drop_rate: float = 0.0,
                             restore: bool = True, seed: int = 0, tolerance_s: float = 0.5, threads: int = 1,
                             pipeline=None, progress_desc: str = "evaluate", clip_latency_s: float = CLIP_LATENCY_S) -> dict:
    """Run the :class:`~edgesense.radar.pipeline.GesturePipeline` over a dataset split.

    Clip recordings (with a clip label; their event, if any, marks the gesture) give clip metrics, each
    clip classified by the window ending one frame after its gesture; recordings with events and no
    clip label (streams) give event metrics. A clip whose decision frame was lost is decided at the next
    received frame if that comes within ``clip_latency_s`` of the gesture's end (as the live pipeline
    would, see :func:`clip_decision_row`; 0.025 s at 40 frames/s = the last received frame at or before
    it, the rule before session 4). With
    ``drop_rate`` > 0, frames are lost by a random-plus-bursty model (half in bursts, mean 4) before
    they reach the pipeline, exactly as a lossy link would lose them.
    """
    from edgesense.progress import progress
    from edgesense.radar.pipeline import GesturePipeline
    from edgesense.recording import Dataset
    from edgesense.stream.faults import random_plus_bursty
    from edgesense.stream.frame import seq_distance

    ds = Dataset.open(data)
    entries = ds.entries if split in (None, "all") else [e for e in ds.entries if e.split == split]
    if not entries:
        from edgesense.errors import EdgesenseError

        raise EdgesenseError(f"dataset {data} has no recordings in split {split!r}")
    pipe = pipeline or GesturePipeline(model, restore=restore, threads=threads)
    info = pipe.info
    classes = list(info.classes)
    rng = np.random.default_rng(seed)
    drops = random_plus_bursty(drop_rate) if drop_rate > 0 else None
    wait = clip_wait_frames(clip_latency_s, info.frame_rate_hz)
    y_true, y_pred, streams, skipped = [], [], [], []
    cpu = []
    for entry in progress(entries, desc=progress_desc):
        rec = ds.load(entry)
        n = rec.n_frames
        keep = np.ones(n, dtype=bool)
        if drops is not None:
            keep = ~drops.mask(n, rng)
            keep[0] = True
        rows = np.flatnonzero(keep)
        gestures = gesture_extents(rec.labels, n, info.noise_label)
        unknown = {g[0] for g in gestures} - set(classes)
        if rec.labels.clip_label is not None and rec.labels.clip_label not in classes:
            unknown.add(rec.labels.clip_label)
        if unknown:
            skipped.append(f"{entry.path}: classes {sorted(unknown)} unknown to the model")
            continue
        if rec.labels.clip_label is None and rec.labels.events:   # a stream (clips may carry an event too)
            events, _ = pipe.run_batch(rec.payloads[rows], rec.seq[rows])
            index = np.array([seq_distance(int(rec.seq[0]), int(s)) for s in rec.seq])
            from types import SimpleNamespace

            truth = [SimpleNamespace(label=lab, start=int(index[s]), end=int(index[e - 1]) + 1)
                     for lab, s, e in gestures]
            streams.append((truth, events, int(index[-1]) + 1))
            cpu.extend(pipe.stats.cpu_us)
        elif rec.labels.clip_label is not None:
            row = clip_decision_row(rows, clip_window_end(n, gestures), wait)
            _, probs = pipe.run_batch(rec.payloads[rows[:row + 1]], rec.seq[rows[:row + 1]], infer_at=[row])
            y_true.append(classes.index(rec.labels.clip_label))
            y_pred.append(int(np.argmax(probs[row])))
    out: dict = {"model": str(model), "data": str(data), "split": split, "drop_rate": drop_rate,
                 "restore": restore, "seed": seed, "clip_latency_s": clip_latency_s, "classes": classes}
    if y_true:
        out["clips"] = clip_metrics(y_true, y_pred, classes)
    if streams:
        out["streams"] = event_metrics(streams, info.frame_rate_hz, tolerance_s, info.noise_label)
    if cpu:
        c = np.asarray(cpu)
        out["cpu_us_per_frame"] = {"mean": float(c.mean()), "p50": float(np.percentile(c, 50)),
                                   "p99": float(np.percentile(c, 99))}
    if skipped:
        out["skipped"] = skipped
    return out


def tune_spotter(model: str | Path, data: str | Path, split: str | None = "val", tolerance_s: float = 0.5,
                 max_false_triggers_per_min: float = 0.8, max_latency_p95_s: float = 0.075,
                 threads: int = 1, refractory_s: Sequence[float] = (0.0, 0.6, 0.8, 1.0, 1.2, 1.4)
                 ) -> tuple[dict, dict]:
    """Pick spotter thresholds on a stream dataset split (``None``/``"all"``: every stream; never the test split).

    Runs the model once over every stream, then scores a grid of
    :class:`~edgesense.radar.spotting.SpotterConfig` values offline (k-of-n with k >= 2, so one confident
    frame never triggers): the highest event F1 among the
    settings with at most ``max_false_triggers_per_min`` and a p95 latency of at most
    ``max_latency_p95_s`` (margins under the issue's 1/min and 100 ms), fewer false triggers on ties,
    then the shortest refractory period (``refractory_s``, seconds, rounded to frames);
    if none meets both, the highest ``F1 - 0.02 * false triggers/min``. Returns (best config as a dict, its scores).
    """
    import itertools
    from types import SimpleNamespace

    from edgesense.radar.pipeline import GesturePipeline
    from edgesense.radar.spotting import SpotterConfig, spot
    from edgesense.recording import Dataset

    ds = Dataset.open(data)
    pipe = GesturePipeline(model, threads=threads)
    info = pipe.info
    runs = []
    for entry in ds.entries:
        if (split not in (None, "all") and entry.split != split) or not entry.events or entry.clip_label is not None:
            continue
        rec = ds.load(entry)
        _, probs = pipe.run_batch(rec.payloads, rec.seq)
        truth = [SimpleNamespace(label=lab, start=s, end=e)
                 for lab, s, e in gesture_extents(rec.labels, rec.n_frames, info.noise_label)]
        runs.append((probs, truth))
    if not runs:
        return {}, {}
    refractory_grid = sorted({int(round(r * info.frame_rate_hz)) for r in refractory_s})
    scored = []
    for on, (k, n), release, refractory in itertools.product((0.5, 0.6, 0.7, 0.8, 0.9), ((2, 2), (2, 3), (3, 4)),
                                                              (2, 3), refractory_grid):
        cfg = {"on_threshold": on, "off_threshold": min(0.4, on), "k": k, "n": n, "release_frames": release,
               "refractory_frames": refractory}
        streams = [(truth, spot(probs, info.classes, SpotterConfig(**cfg, noise_label=info.noise_label)), len(probs))
                   for probs, truth in runs]
        m = event_metrics(streams, info.frame_rate_hz, tolerance_s, info.noise_label)
        p95 = m.latency_s.get("p95", float("inf"))
        ok = m.false_triggers_per_min <= max_false_triggers_per_min and p95 <= max_latency_p95_s
        scores = {"f1": m.f1, "false_triggers_per_min": m.false_triggers_per_min, "latency_p95_s": p95,
                  "split": split or "all", "streams": len(runs), "events": m.true_events}
        key = (ok, m.f1 if ok else m.f1 - 0.02 * m.false_triggers_per_min, -m.false_triggers_per_min, -refractory)
        scored.append((key, cfg, scores))
    best = max(scored, key=lambda item: item[0])
    return best[1], best[2]
