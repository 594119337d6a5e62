"""Train, export and adapt the excursion networks (FFTNet, ConvNet, physics-informed hybrid).

Training data: speaker recordings with ``v``, ``i``, ``x`` (the randomised speaker family of
``edgesense simulate speaker``). Inputs and target follow :mod:`edgesense.speaker.streaming`: the
network predicts ``x·Bl / x_scale`` from full-scale-normalised v, i (and, for the hybrid, the tracked
linear prediction), so one network serves speakers of any Bl and an unseen speaker needs only its
datasheet Bl. Random crops of ``warmup + crop`` frames; the loss skips the first ``warmup`` frames
(the receptive field), so training sees the same full history streaming does.

Exports: ``<out>/<name>.onnx`` is the streaming model (inputs ``x``, ``state0..``; outputs ``y``,
``state0_out..``; a whole signal is one block with zero state), ``<out>/<name>.pt`` the state_dict
(``torch.save``; load with ``weights_only=True``), ``<out>/<name>.json`` the model description.

BN re-estimation for online adaptation (:func:`adapt_model`) uses
:func:`edgesense.nn.bn_reestimation.reestimate_bn_stats` over long unlabeled windows of the target
speaker and keeps the result only when a label-free guard agrees (:mod:`edgesense.speaker.adapt`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from edgesense.errors import EdgesenseError, ModelError
from edgesense.nn.bn_reestimation import batchnorm_layers, reestimate_bn_stats
from edgesense.nn.fftnet import ExcursionNet
from edgesense.nn.registry import create_model
from edgesense.progress import progress
from edgesense.speaker.pipeline import SpeakerSignal, load_signals, tracked_prediction
from edgesense.speaker.streaming import SPEC_METADATA_KEY, ExcursionModelSpec, frame_inputs

__all__ = ["ARCHS", "TrainConfig", "TrainResult", "train_excursion", "build_model", "export_model", "excursion_loss",
           "stream_tracks", "target_bl", "training_bl", "crop_weights",
           "load_trained", "prepare_inputs", "predict", "adapt_model", "AdaptResult", "write_model_card"]

#: CLI model names -> registry names.
ARCHS = {"fftnet": "excursion_fftnet", "convnet": "excursion_convnet", "hybrid": "excursion_hybrid"}


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run."""

    arch: str = "fftnet"
    seed: int = 0
    epochs: int = 30
    steps_per_epoch: int = 50
    batch: int = 8
    crop: int = 768          # frames scored per crop
    lr: float = 3e-3
    threads: int = 2
    frame: int = 4
    v_scale: float = 10.0
    i_scale: float = 1.5
    x_scale: float = 0.5
    init: str | None = None  # checkpoint fine-tuned from (recorded in the model card)
    loud_weight: float = 0.0  # extra loss weight on loud samples (|x| >= loud_mm): w = 1 + loud_weight
    loud_mm: float = 0.1
    stream_context: bool = True  # hybrid inputs: tracker run over each clip's whole stream (as deployed)
    target_bl: str = "true"  # Bl of the training targets: "true" (calibrated, training_bl) or "datasheet"
    scenario_weight: dict[str, float] = field(default_factory=dict)  # crop sampling weight per scenario (default 1)


@dataclass
class TrainResult:
    """What a training run produced and measured."""

    arch: str
    onnx: str
    state_dict: str
    spec: dict
    parameters: int
    macs_per_sample: float
    receptive_field_ms: float
    train_recordings: int
    val_recordings: int
    val_nrmse: float
    val_rmse_mm: float
    seconds: float
    history: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def build_model(arch: str, frame: int = 4) -> ExcursionNet:
    if arch not in ARCHS:
        raise EdgesenseError(f"unknown excursion model {arch!r}; choose from {sorted(ARCHS)}")
    return create_model(ARCHS[arch], frame=frame)


def spec_for(model: ExcursionNet, arch: str, cfg: TrainConfig) -> ExcursionModelSpec:
    inputs = ("v", "i", "track") if model.in_signals == 3 else ("v", "i")
    return ExcursionModelSpec(arch=arch, inputs=inputs, frame=cfg.frame, v_scale=cfg.v_scale, i_scale=cfg.i_scale,
                              x_scale=cfg.x_scale, receptive_field=model.receptive_field,
                              state_shapes=tuple(model.state_shapes()))


def cached_track(sig: SpeakerSignal, bl: float | None = None) -> np.ndarray:
    """The tracker's prediction of ``sig`` given Bl ``bl`` (default: the datasheet's; cached when
    EDGESENSE_TRACK_CACHE is set)."""
    profile = sig.profile
    if bl is not None and bl != sig.speaker.bl:
        import dataclasses

        profile = dataclasses.replace(profile, speaker=dataclasses.replace(sig.speaker, bl=bl))
    return tracked_prediction(sig.v, sig.i, profile)


def stream_tracks(signals: list[SpeakerSignal], context: list[SpeakerSignal] | None = None) -> list[np.ndarray]:
    """Tracked predictions of ``signals`` as a device would see them: run over each clip's whole stream.

    Clips naming a ``stream`` and ``clip_index`` (``edgesense simulate speaker``) are consecutive
    pieces of one simulation; the tracker (label-free, causal) runs over the stream joined from the
    clips in ``context`` (default: ``signals``) and each clip gets its slice, so training inputs
    carry the same warm tracker state as evaluation and deployment (a clip missing from ``context``,
    e.g. a held-out test clip, is left out of the join). Other recordings run on their own.
    """
    context = signals if context is None else context

    def key_of(s: SpeakerSignal) -> str | None:   # stream name and simulation seed (datasets reuse names)
        m = s.metadata
        return f"{m['stream']}|{m.get('seed')}" if "clip_index" in m and "stream" in m else None

    groups: dict[str, dict[int, SpeakerSignal]] = {}
    for s in context:
        if key_of(s) is not None:
            groups.setdefault(key_of(s), {})[int(s.metadata["clip_index"])] = s
    done: dict[str, dict[int, np.ndarray]] = {}
    out = []
    for s in signals:
        key = key_of(s)
        if key is None or key not in groups:
            out.append(cached_track(s))
            continue
        if key not in done:
            idx = sorted(groups[key])
            run = [groups[key][k] for k in idx]
            joined = tracked_prediction(np.concatenate([c.v for c in run]), np.concatenate([c.i for c in run]),
                                        run[0].profile)
            done[key], pos = {}, 0
            for k, c in zip(idx, run):
                done[key][k] = joined[pos:pos + len(c.v)]
                pos += len(c.v)
        k = int(s.metadata["clip_index"])
        out.append(done[key][k] if k in done[key] else cached_track(s))
    return out


def prepare_inputs(spec: ExcursionModelSpec, sig: SpeakerSignal, bl: float | None = None,
                   track: np.ndarray | None = None) -> np.ndarray:
    """Framed network input of a whole signal, given Bl ``bl`` (default: the datasheet's).

    For a hybrid, ``track`` is the tracked prediction made with that Bl (run here when None).
    """
    bl = sig.speaker.bl if bl is None else bl
    if spec.needs_tracker:
        track = cached_track(sig, bl) if track is None else track
    else:
        track = None
    return frame_inputs(spec, sig.v, sig.i, bl, track)


def training_bl(sig: SpeakerSignal) -> float:
    """The Bl that makes the training target: the true (calibrated) Bl when the recording states it
    (simulated data: metadata ``speaker_true``), else the profile's. Datasheet tolerance would
    otherwise put up to ±10 % label noise on speakers whose datasheet is off."""
    true = sig.metadata.get("speaker_true")
    if isinstance(true, dict) and isinstance(true.get("bl"), (int, float)) and true["bl"] > 0:
        return float(true["bl"])
    return sig.speaker.bl


def target_bl(sig: SpeakerSignal, which: str = "true") -> float:
    """The Bl that scales ``sig``'s training target: ``"true"`` (:func:`training_bl`) or ``"datasheet"``.

    Datasheet targets suit the hybrid since its tracker anchors Bl on the datasheet moving mass: its
    tracked input is then ``x·Bl_datasheet`` up to the tracker's error, and deployment divides by the
    datasheet Bl, so true-Bl targets would ask the network for the unknowable ratio Bl_true/Bl_datasheet.
    """
    if which == "true":
        return training_bl(sig)
    if which == "datasheet":
        return sig.speaker.bl
    raise EdgesenseError(f"unknown target Bl {which!r}; choose 'true' or 'datasheet'")


def _target(spec: ExcursionModelSpec, sig: SpeakerSignal, which: str = "true") -> np.ndarray:
    n = (len(sig.v) // spec.frame) * spec.frame
    y = sig.x[:n] * (target_bl(sig, which) / spec.x_scale)
    return np.ascontiguousarray(y.reshape(-1, spec.frame).T[None], dtype=np.float32)  # (1, frame, steps)


def predict(model: ExcursionNet, spec: ExcursionModelSpec, inputs: np.ndarray, bl: float) -> np.ndarray:
    """Whole-signal excursion (mm) from framed inputs with a torch model (eval mode)."""
    model.eval()
    with torch.no_grad():
        y = model(torch.from_numpy(inputs)).numpy()
    return (y[0].T.reshape(-1) * (spec.x_scale / bl)).astype(np.float32)


def excursion_loss(out: torch.Tensor, target: torch.Tensor, bls: list[float], x_scale: float,
                   loud_weight: float = 0.0, loud_mm: float = 0.1) -> torch.Tensor:
    """Training loss on network units (y = x·Bl / x_scale), batch rows with Bl ``bls``: MSE, with samples
    whose true excursion is loud (|x| >= ``loud_mm``) weighted ``1 + loud_weight`` (normalised weighted mean)."""
    sq = (out - target) ** 2
    if loud_weight <= 0:
        return torch.mean(sq)
    bl = torch.tensor(bls, dtype=target.dtype).reshape(-1, *([1] * (target.dim() - 1)))
    w = 1.0 + loud_weight * (target.abs() * (x_scale / bl) >= loud_mm).to(target.dtype)
    return torch.sum(w * sq) / torch.sum(w)


def crop_weights(signals: list[SpeakerSignal], lengths: list[int],
                 scenario_weight: dict[str, float] | None = None) -> np.ndarray:
    """Probability of drawing a training crop from each signal: its length times its scenario's weight
    (metadata ``scenario``; scenarios not named weigh 1)."""
    scenario_weight = scenario_weight or {}
    w = np.array([n * scenario_weight.get(str(s.metadata.get("scenario")), 1.0) for s, n in zip(signals, lengths)],
                 float)
    return w / w.sum()


def _nrmse(pred: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    n = min(len(pred), len(x))
    rmse = float(np.sqrt(np.mean((pred[:n] - x[:n]) ** 2)))
    return rmse / max(float(np.max(np.abs(x[:n]))), 1e-12), rmse


def _load_split(data_dirs, split: str) -> list[SpeakerSignal]:
    dirs = [data_dirs] if isinstance(data_dirs, (str, Path)) else list(data_dirs)
    return [s for d in dirs for s in load_signals(d, split) if s.x is not None]


def train_excursion(data_dir: str | Path | list, arch: str, out_dir: str | Path, cfg: TrainConfig | None = None,
                    name: str | None = None, init: str | Path | None = None) -> TrainResult:
    """Train ``arch`` on the ``train`` split of ``data_dir`` (one directory or a list), validate on ``val``,
    export to ``out_dir``. ``init``: a trained ``.pt`` of the same architecture to fine-tune from."""
    cfg = cfg or TrainConfig(arch=arch)
    cfg.arch = arch
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    t0 = time.monotonic()
    model = build_model(arch, cfg.frame)
    init = init if init is not None else cfg.init
    if init is not None:
        cfg.init = str(init)
        start, _ = load_trained(init)
        if type(start) is not type(model) or start.in_signals != model.in_signals:
            raise EdgesenseError(f"{init}: not a {arch} model; cannot fine-tune from it")
        model.load_state_dict(start.state_dict())
    spec = spec_for(model, arch, cfg)
    train = _load_split(data_dir, "train")
    val = _load_split(data_dir, "val")
    if not train:
        raise EdgesenseError(f"{data_dir}: no labelled (v, i, x) recordings in the train split")
    warm = model.receptive_field - 1
    if spec.needs_tracker and cfg.stream_context:
        train_tracks, val_tracks = stream_tracks(train, train + val), stream_tracks(val, train + val)
    else:
        train_tracks, val_tracks = [None] * len(train), [None] * len(val)
    xs = [prepare_inputs(spec, s, track=t) for s, t in progress(list(zip(train, train_tracks)), desc="features",
                                                                   unit="rec")]
    ys = [_target(spec, s, cfg.target_bl) for s in train]
    val_in = [(prepare_inputs(spec, s, track=t), s) for s, t in zip(val, val_tracks)]
    usable = [k for k, x in enumerate(xs) if x.shape[2] > warm + cfg.crop]
    if not usable:
        raise EdgesenseError(f"{data_dir}: recordings shorter than {(warm + cfg.crop) * cfg.frame} samples")
    weights = crop_weights([train[k] for k in usable], [xs[k].shape[2] for k in usable], cfg.scenario_weight)
    total = cfg.epochs * cfg.steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.15)
    history: list[float] = []
    length = warm + cfg.crop
    for epoch in progress(range(cfg.epochs), desc=f"train {arch}", unit="epoch"):
        model.train()
        run = 0.0
        for _ in range(cfg.steps_per_epoch):
            picks = rng.choice(usable, size=cfg.batch, p=weights)
            xb, yb = [], []
            for k in picks:
                start = int(rng.integers(0, xs[k].shape[2] - length + 1))
                xb.append(xs[k][0, :, start:start + length])
                yb.append(ys[k][0, :, start + warm:start + length])
            xb_t = torch.from_numpy(np.stack(xb))
            yb_t = torch.from_numpy(np.stack(yb))
            out = model(xb_t)[..., warm:]
            loss = excursion_loss(out, yb_t, [target_bl(train[k], cfg.target_bl) for k in picks], spec.x_scale,
                                  cfg.loud_weight, cfg.loud_mm)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            run += float(loss.detach())
        history.append(run / cfg.steps_per_epoch)
    nrmses, rmses = [], []
    for inputs, sig in val_in:
        nr, r = _nrmse(predict(model, spec, inputs, sig.speaker.bl), sig.x)  # datasheet Bl, as deployed
        nrmses.append(nr)
        rmses.append(r)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = name or arch
    onnx_path, pt_path = export_model(model, spec, out_dir / f"{name}.onnx")
    return TrainResult(
        arch=arch, onnx=str(onnx_path), state_dict=str(pt_path), spec=json.loads(spec.to_json()),
        parameters=model.num_parameters(), macs_per_sample=model.macs_per_step() / cfg.frame,
        receptive_field_ms=model.receptive_field * cfg.frame / 48.0, train_recordings=len(train),
        val_recordings=len(val), val_nrmse=float(np.mean(nrmses)) if nrmses else math.nan,
        val_rmse_mm=float(np.mean(rmses)) if rmses else math.nan, seconds=time.monotonic() - t0, history=history)


class _Streaming(torch.nn.Module):
    def __init__(self, model: ExcursionNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, *states: torch.Tensor):
        return self.model.stream(x, *states)


def export_model(model: ExcursionNet, spec: ExcursionModelSpec, onnx_path: str | Path) -> tuple[Path, Path]:
    """Write the streaming ONNX model (with spec metadata), its state_dict (.pt) and sidecar (.json)."""
    import warnings

    import onnx

    onnx_path = Path(onnx_path)
    model.eval()
    states = model.initial_state(1)
    n_states = len(states)
    x = torch.zeros(1, model.in_signals * spec.frame, 12)
    in_names = ["x"] + [f"state{k}" for k in range(n_states)]
    out_names = ["y"] + [f"state{k}_out" for k in range(n_states)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Streaming(model), (x, *states), str(onnx_path), input_names=in_names,
                          output_names=out_names, dynamic_axes={"x": {2: "steps"}, "y": {2: "steps"}},
                          opset_version=17, dynamo=False)
    proto = onnx.load(str(onnx_path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = SPEC_METADATA_KEY, spec.to_json()
    onnx.save(proto, str(onnx_path))
    onnx_path.with_suffix(".json").write_text(spec.to_json() + "\n")
    pt_path = onnx_path.with_suffix(".pt")
    torch.save(model.state_dict(), pt_path)
    return onnx_path, pt_path


def load_trained(pt_path: str | Path) -> tuple[ExcursionNet, ExcursionModelSpec]:
    """A trained model from its ``.pt`` state_dict and sidecar ``.json`` (weights_only load)."""
    pt_path = Path(pt_path)
    side = pt_path.with_suffix(".json")
    if not pt_path.is_file() or not side.is_file():
        raise ModelError(f"{pt_path}: need the .pt state_dict and its .json description next to it")
    spec = ExcursionModelSpec.from_json(side.read_text())
    model = build_model(spec.arch, spec.frame)
    try:
        model.load_state_dict(torch.load(pt_path, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, ValueError) as exc:
        raise ModelError(f"{pt_path}: not a state_dict of a {spec.arch} model ({str(exc).splitlines()[0][:160]})") from None
    model.eval()
    return model, spec


@dataclass
class AdaptResult:
    """Outcome of one BN re-estimation: the guard's label-free scores and whether it was kept."""

    mode: str
    layers: list[str]
    batches: int
    guard_before: float
    guard_after: float
    accepted: bool
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


#: Adaptation modes: which BN statistics are re-estimated.
ADAPT_MODES = ("all", "means", "input")


def adapt_model(model: ExcursionNet, spec: ExcursionModelSpec, signals: list[SpeakerSignal], mode: str = "means",
                window: int = 4096, num_batches: int = 64, bl: float | None = None, seed: int = 0,
                guard: bool = True, tolerance: float = 0.0) -> AdaptResult:
    """BN re-estimation on unlabeled ``signals`` of one target speaker, kept only if the guard agrees.

    ``mode``: ``all`` (the paper / AIMET: every BN layer, mean and variance), ``means`` (every BN
    layer, means only) or ``input`` (the input layer's BN only, mean and variance). Batches are
    ``window``-frame windows (long: ~0.3 s at the default) of the signals, one signal per batch row.
    The guard (:func:`edgesense.speaker.adapt.consistency_error`) compares the network's prediction
    with the impedance-tracked physics model on the same unlabeled data before and after; an
    adaptation that moves the network further from it (by more than ``tolerance``, relative) is undone.
    """
    from edgesense.speaker.adapt import consistency_error

    if mode not in ADAPT_MODES:
        raise EdgesenseError(f"unknown adaptation mode {mode!r}; choose from {list(ADAPT_MODES)}")
    if not signals:
        raise EdgesenseError("adaptation needs at least one unlabeled recording")
    rng = np.random.default_rng(seed)
    inputs = []
    for s in signals:
        b = s.speaker.bl if bl is None else bl
        track = cached_track(s) if b == s.speaker.bl else cached_track(s, b)  # the tracker run with Bl b
        inputs.append((frame_inputs(spec, s.v, s.i, b, track if spec.needs_tracker else None), track, b))
    warm = model.receptive_field - 1
    length = min(window + warm, min(x.shape[2] for x, _, _ in inputs))

    def batches():
        while True:
            rows = []
            for x, _, _ in inputs:
                start = int(rng.integers(0, x.shape[2] - length + 1))
                rows.append(x[0, :, start:start + length])
            yield torch.from_numpy(np.stack(rows))

    def score() -> float:
        errs = [consistency_error(predict(model, spec, x, b), track) for x, track, b in inputs]
        return float(np.mean(errs))

    before = score() if guard else math.nan
    names = list(batchnorm_layers(model))
    layers = names[:1] if mode == "input" else names
    handle = reestimate_bn_stats(model, batches(), num_batches=num_batches, layers=layers,
                                 means_only=(mode == "means"))
    after = score() if guard else math.nan
    accepted = (not guard) or after <= before * (1 + tolerance)
    if accepted:
        reason = "guard off" if not guard else "closer to the tracked physics model"
    else:
        handle.remove()
        reason = f"refused: tracked-model disagreement rose from {before:.4f} to {after:.4f}"
    model.eval()
    return AdaptResult(mode, layers, handle.batches, before, after, accepted, reason)


def write_model_card(result: TrainResult, cfg: TrainConfig, data_dir: str | Path, path: str | Path) -> Path:
    """Write ``MODEL_CARD.md`` for a training run (evaluation figures are added by ``eval excursion``)."""
    path = Path(path)
    spec = result.spec
    hybrid = "track" in spec["inputs"]
    lines = [
        f"# Excursion model: {result.arch}",
        "",
        "Predicts micro-speaker cone excursion x (mm) from sensed voltage and current at 48 kHz"
        + (", refining the online impedance-tracked linear model's prediction (physics-informed hybrid)." if hybrid
           else "."),
        "",
        "## Interface",
        f"- Inputs: {', '.join(spec['inputs'])}; v / {spec['v_scale']} V, i / {spec['i_scale']} A"
        + (", track·Bl / x_scale" if hybrid else "") + f"; frames of {spec['frame']} samples (12 kHz internal rate).",
        f"- Output: y = x·Bl / {spec['x_scale']} mm·N/A; x = y·{spec['x_scale']} / Bl with the speaker's datasheet Bl"
        " (V/I fix x only up to 1/Bl).",
        f"- Streaming ONNX `{Path(result.onnx).name}`: inputs `x`, `state0..{len(spec['state_shapes']) - 1}`, outputs"
        " `y`, `state*_out`; run with `edgesense.speaker.streaming.ExcursionStreamer`. State: "
        f"{sum(c * n for c, n in spec['state_shapes'])} floats. Latency: one 4-sample frame (83 µs).",
        f"- Size: {result.parameters} parameters, {result.macs_per_sample:.0f} MACs per sample, receptive field "
        f"{result.receptive_field_ms:.1f} ms.",
        "",
        "## Training",
        f"- Data: `{' '.join(map(str, data_dir)) if isinstance(data_dir, list) else data_dir}` ({result.train_recordings} train / {result.val_recordings} val recordings).",
        f"- Seed {cfg.seed}; {cfg.epochs} epochs × {cfg.steps_per_epoch} steps, batch {cfg.batch}, crops of "
        f"{cfg.crop} scored frames after a receptive-field warm-up, AdamW one-cycle lr {cfg.lr}, MSE"
        + (f" with loud samples (|x| >= {cfg.loud_mm} mm) weighted {1 + cfg.loud_weight:g}x" if cfg.loud_weight else "")
        + ("; hybrid inputs tracked over whole streams" if hybrid and cfg.stream_context else "")
        + (f"; targets scaled by the {cfg.target_bl} Bl" if cfg.target_bl != "true" else "")
        + "".join(f"; {k} crops sampled {w:g}x" for k, w in cfg.scenario_weight.items()) + "; "
        f"{result.seconds:.0f} s on {cfg.threads} CPU threads.",
        f"- Reproduce: `edgesense train excursion {' '.join('--data ' + str(d) for d in (data_dir if isinstance(data_dir, list) else [data_dir]))} --model {result.arch} --out {path.parent} "
        f"--seed {cfg.seed} --epochs {cfg.epochs} --steps {cfg.steps_per_epoch} --lr {cfg.lr:g} --threads {cfg.threads}"
        + (f" --init {cfg.init}" if cfg.init else "") + (f" --loud-weight {cfg.loud_weight:g}" if cfg.loud_weight else "")
        + ("" if cfg.stream_context or not hybrid else " --clip-tracks")
        + ("" if cfg.target_bl == "true" else f" --target-bl {cfg.target_bl}")
        + "".join(f" --scenario-weight {k}={w:g}" for k, w in cfg.scenario_weight.items()) + "`",
        f"- Validation NRMSE {result.val_nrmse * 100:.2f} %, RMSE {result.val_rmse_mm * 1000:.1f} µm.",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
