"""``GesturePipeline``: radar frames in, gesture events out -- one code path for live streams and batch evaluation.

::

    Source frames -> RDI (RDIProcessor, or the payload itself for RDI-only sensors)
                  -> frame-drop restoration (gaps found from sequence numbers)
                  -> gesture map of the last T frames -> model (edgesense.runtime) -> spotting -> events

**Gesture map.** The models do not see raw RDI stacks: each RDI ``(C, D, R)`` is reduced to its
Doppler profile (max over range, D values) and range profile (max over Doppler, R values), so a
frame is a ``(C, D+R)`` column and the last T frames make a ``(C, D+R, T)`` image -- the classic
micro-Doppler/range-time pair, ~16x smaller than the RDI stack, which is what keeps the 2.3K-parameter
CNN and a per-frame cost well under a millisecond possible. Each RDI channel is normalised with the
training-set mean and standard deviation, and an optional validity channel marks received frames
(1) versus restored or padded ones (0). Any RDI size and channel count works; the model's sidecar
(:class:`GestureModelInfo`) says which the model was trained for.

**Per-frame cost.** The steady state (no gap) does only what the newest frame needs: the RDI of one
frame in buffers kept between calls (:meth:`RDIProcessor.process`), its profile column normalised
(and, for an integer-input model, quantized) alone, the window shifted by one column *in the model's
input type* (an INT8 model's window is kept as int8, so nothing is re-quantized), and the model run
through :meth:`edgesense.runtime.Model.invoker` (no per-call checks or conversions). For a CIR radar
and an 8-bit model a steady frame goes further: only the magnitudes ``|Y|`` of its RDI are computed and
the model's integers of their profiles are looked up in a table of level thresholds (the log,
normalisation and quantization chain is monotone, so the maximum commutes with it), and the outputs
are dequantized into Python floats for the spotter -- a live frame pays for every distinct numpy call
(docs/radar-pipeline.md §2). Every step is identical to quantizing the whole float window and calling
``model.run`` -- same probabilities, same events (``tests/radar/test_pipeline.py`` checks it against a
straightforward reference on a simulated stream with drops). Costs per stage: docs/radar-pipeline.md.

**Streaming split.** An INT8 ``.tflite`` model whose first convolution reads the window's columns
(gesture_cnn, plain or row-pair export; gesture_crnn) is run as
:class:`edgesense.quant.tflite.split.SplitModel`: the int8 output of that convolution (and of the
column-local operators after it) is kept between frames and only the columns the new frame(s) change
are computed, then the rest of the graph; outputs are bit-identical to the whole graph's (tested on
streams with drops). Any other model (ONNX, float, a graph that does not fit, or no
``flatbuffers``/``tflite`` installed) runs whole; ``split_reason`` says why.

**Restoration** happens as soon as the frame after a gap arrives (zero added latency): missing RDIs
are filled from :mod:`edgesense.radar.restore`; gaps longer than ``max_restore`` frames are not
invented but padded as invalid frames, and the spotter is reset.

Never imports torch: models run through :func:`edgesense.runtime.load_model`.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgesense.errors import ModelError, ProfileError
from edgesense.profiles import RadarCIRProfile, RDIProfile, SensorProfile, profile_from_dict
from edgesense.radar.restore import DEFAULT_LOOKAHEAD, fill_gap
from edgesense.radar.spotting import GestureEvent, GestureSpotter, SpotterConfig
from edgesense.runtime.model import Model, dequantize, quantize
from edgesense.stream.frame import SEQ_MODULUS, Frame, seq_distance

__all__ = ["GestureModelInfo", "GesturePipeline", "PipelineStats", "rdi_profiles", "gesture_map",
           "make_rdi_processor", "restore_sequence", "INFO_SUFFIX"]

INFO_SUFFIX = ".json"  #: the sidecar next to a model file: ``model.onnx`` -> ``model.json``


def rdi_profiles(rdis: np.ndarray) -> np.ndarray:
    """``(..., C, D, R)`` RDIs -> ``(..., C, D+R)``: Doppler profile (max over range) then range profile (max over Doppler).

    The maximum, not the mean: a finger occupies one range bin of 32, and averaging would bury its
    micro-Doppler in the noise of the empty bins (measured: the mean version confused
    ``finger_slide`` with ``palm_hold`` on half the held-out clips).
    """
    rdis = np.asarray(rdis, dtype=np.float32)
    return np.concatenate([rdis.max(axis=-1), rdis.max(axis=-2)], axis=-1)


@dataclass(frozen=True)
class GestureModelInfo:
    """What a gesture model expects and says; stored as a JSON sidecar next to every model file."""

    name: str
    classes: tuple[str, ...]
    frames: int                       # T, window length in frames
    rdi_shape: tuple[int, int, int]   # (C, D, R)
    validity: bool = True
    mean: tuple[float, ...] = ()      # per RDI channel, of the profile values
    std: tuple[float, ...] = ()
    noise_label: str = "noise"
    frame_rate_hz: float = 40.0
    profile: dict[str, Any] | None = None      # the sensor profile of the training data
    spotter: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def in_channels(self) -> int:
        return self.rdi_shape[0] + int(self.validity)

    @property
    def rows(self) -> int:
        return self.rdi_shape[1] + self.rdi_shape[2]

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, self.in_channels, self.rows, self.frames)

    def spotter_config(self) -> SpotterConfig:
        cfg = dict(self.spotter)
        cfg.setdefault("noise_label", self.noise_label)
        if "ignore" in cfg:
            cfg["ignore"] = tuple(cfg["ignore"])
        return SpotterConfig(**cfg)

    def sensor_profile(self) -> SensorProfile | None:
        return None if self.profile is None else profile_from_dict(self.profile)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["classes"] = list(self.classes)
        out["rdi_shape"] = list(self.rdi_shape)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return {"edgesense_gesture_model": 1, **out}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GestureModelInfo":
        data = {k: v for k, v in data.items() if k != "edgesense_gesture_model"}
        try:
            return cls(**{**data, "classes": tuple(data["classes"]), "rdi_shape": tuple(data["rdi_shape"]),
                          "mean": tuple(data.get("mean", ())), "std": tuple(data.get("std", ()))})
        except (KeyError, TypeError) as exc:
            raise ModelError(f"bad gesture model description: {exc}") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def for_model(cls, model_path: str | Path) -> "GestureModelInfo":
        """The sidecar of ``model_path``: ``<stem>.json`` beside it, else ``model.json`` or ``<folder>.json`` in its folder."""
        model_path = Path(model_path)
        if not model_path.is_file():
            raise ModelError(f"{model_path}: no such model file")
        for cand in (model_path.with_suffix(INFO_SUFFIX), model_path.parent / "model.json",
                     model_path.parent / f"{model_path.parent.name}{INFO_SUFFIX}"):
            if cand.is_file() and cand != model_path:
                try:
                    data = json.loads(cand.read_text())
                except (OSError, json.JSONDecodeError) as exc:
                    raise ModelError(f"{cand}: unreadable model description ({exc})") from None
                if isinstance(data, dict) and data.get("edgesense_gesture_model"):
                    return cls.from_dict(data)
        raise ModelError(f"{model_path}: no gesture model description found "
                         f"(expected {model_path.with_suffix(INFO_SUFFIX).name} or model.json beside it)")


def gesture_map(profiles: np.ndarray, valid: np.ndarray, info: GestureModelInfo) -> np.ndarray:
    """Model input ``(N, C[+1], D+R, T)`` from profiles ``(N, T, C, D+R)`` and validity ``(N, T)``.

    Invalid (padded / not restored) frames are zero after normalisation.
    """
    prof = np.asarray(profiles, dtype=np.float32)
    valid = np.asarray(valid, dtype=np.float32)
    mean = np.asarray(info.mean or [0.0] * info.rdi_shape[0], dtype=np.float32)[:, None]
    std = np.asarray(info.std or [1.0] * info.rdi_shape[0], dtype=np.float32)[:, None]
    x = (prof - mean) / std                                 # (N, T, C, F)
    x = np.transpose(x, (0, 2, 3, 1))                       # (N, C, F, T)
    if info.validity:
        v = np.broadcast_to(valid[:, None, None, :], (x.shape[0], 1, x.shape[2], x.shape[3]))
        x = np.concatenate([x, v], axis=1)
    return np.ascontiguousarray(x, dtype=np.float32)


def make_rdi_processor(profile: SensorProfile, rdi_shape: tuple[int, int, int] | None = None):
    """A per-frame payload -> RDI ``(C, D, R)`` callable for ``profile`` (with a ``batch`` method).

    RDI-only sensors pass their payload through; radar CIR / FMCW frames go through
    :class:`edgesense.radar.rdi.RDIProcessor`.
    """
    if isinstance(profile, RDIProfile):
        if rdi_shape is not None and tuple(profile.payload_shape) != tuple(rdi_shape):
            raise ProfileError(f"profile {profile.name!r} delivers RDIs of {list(profile.payload_shape)}, "
                               f"the model expects {list(rdi_shape)}")
        return _PassThrough()
    if isinstance(profile, RadarCIRProfile):
        from edgesense.radar.rdi import RDIProcessor

        return _CIRProcessor(RDIProcessor(profile))
    raise ProfileError(f"profile {profile.name!r} ({profile.kind}) is not a radar profile")


class _PassThrough:
    def reset(self) -> None:
        pass

    def __call__(self, payload: np.ndarray) -> np.ndarray:
        return np.asarray(payload, dtype=np.float32)

    def batch(self, payloads: np.ndarray) -> np.ndarray:
        return np.asarray(payloads, dtype=np.float32)


class _CIRProcessor:
    """Adapter over part A's RDIProcessor: one frame or a batch of frames -> RDIs."""

    def __init__(self, proc: Any) -> None:
        self.proc = proc

    def reset(self) -> None:
        self.proc.reset()

    def __call__(self, payload: np.ndarray) -> np.ndarray:
        return self.proc.process(payload)

    def batch(self, payloads: np.ndarray) -> np.ndarray:
        return self.proc.process_batch(payloads)


def restore_sequence(rdis: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill the frames where ``valid`` is False in an RDI sequence ``(N, C, D, R)`` (batch form).

    The rule of :mod:`edgesense.radar.restore` (interpolation in time with a bounded look-ahead).
    """
    from edgesense.radar.restore import restore_sequence as _restore

    return _restore(rdis, valid)


@dataclass
class PipelineStats:
    """Live counters of a :class:`GesturePipeline`.

    ``cpu_us`` keeps the CPU time (this thread's, so preemption by other processes is not counted)
    and ``wall_us`` the wall time of the last 4096 frames, from payload in to events out.
    """

    frames: int = 0               # frames received
    frames_restored: int = 0      # missing frames filled by restoration
    frames_padded: int = 0        # missing frames too long a gap to restore (marked invalid)
    gaps: int = 0
    inferences: int = 0
    events: int = 0
    cpu_us: deque = field(default_factory=lambda: deque(maxlen=4096))
    wall_us: deque = field(default_factory=lambda: deque(maxlen=4096))

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("cpu_us", "wall_us")}
        for key, values in (("cpu_us_per_frame", self.cpu_us), ("wall_us_per_frame", self.wall_us)):
            arr = np.asarray(values, dtype=float)
            if arr.size:
                p50, p95, p99 = np.percentile(arr, (50, 95, 99))
                out[key] = {"mean": float(arr.mean()), "p50": float(p50), "p95": float(p95), "p99": float(p99),
                            "max": float(arr.max())}
        return out


def _split_model(model: Any, info: GestureModelInfo, threads: int, max_new: int,
                 whole: Any) -> tuple[Any, str | None]:
    """``(SplitModel, None)`` for an INT8 LiteRT window model that splits (see
    :func:`edgesense.quant.tflite.split.plan_split`), else ``(None, why not)``.

    The split is cut from the model's file, so it is checked against the loaded model (``whole``, its
    call on the int8 window) on a few random windows moved on by 1, 2 and ``max_new`` columns first: any
    difference (e.g. the file was replaced since the model was loaded) keeps the whole graph.
    """
    if not isinstance(model, Model) or getattr(model, "backend", None) != "litert":
        return None, f"not a LiteRT .tflite model ({getattr(model, 'backend', type(model).__name__)})"
    spec = model.input_specs[0]
    if len(model.input_specs) != 1 or spec.dtype != np.int8 or not _fits(spec.shape, info.input_shape):
        return None, "not a one-input int8 window model"
    try:
        from edgesense.quant.tflite.split import SplitModel
    except ImportError as exc:
        return None, f"cutting the graph needs the flatbuffers and tflite packages ({exc.name} is missing)"
    try:
        split = SplitModel(Path(model.path).read_bytes(), threads=threads, max_new=max_new)
    except (ModelError, OSError) as exc:
        return None, str(exc)
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, info.input_shape, dtype=np.int8)
    for new in (info.frames, 1, 2, max_new, 1):
        if new < info.frames:
            x = np.concatenate([x[..., new:], rng.integers(-128, 128, (*x.shape[:3], new), dtype=np.int8)], axis=3)
        if not np.array_equal(split(x, new), whole(x)):
            return None, "the split's outputs differ from the loaded model's on a probe window"
    return split, None


_INF_BITS = 0x7F800000     # the bit pattern of float32 +inf (non-negative floats order like their bit patterns)


def _first_reaching(level: Any, rows: int, lowest: int, start: int, stop: int) -> np.ndarray:
    """Per row ``c < rows`` and level ``lowest + 1 + j`` (``j < 255``): the smallest integer key in ``start ..
    stop`` at which ``level`` (keys ``(rows, 255)`` int64 -> integer-valued values, non-decreasing in the key)
    reaches it, by bisection; ``stop + 1`` where it never does. Returns ``(rows, 255)`` int64."""
    want = np.arange(lowest + 1, lowest + 256, dtype=np.float32)
    lo = np.full((rows, 255), start, np.int64)
    hi = np.full_like(lo, stop + 1)
    while (lo < hi).any():
        mid = (lo + hi) // 2
        reached = level(np.minimum(mid, stop)) >= want
        open_ = lo < hi
        hi = np.where(reached & open_, mid, hi)
        lo = np.where(~reached & open_, mid + 1, lo)
    return lo


def _ordered_to_float(keys: np.ndarray) -> np.ndarray:
    """Integer keys that order like float32 values (``k >= 0``: the bits of ``+x``; ``k < 0``: of ``-x`` with
    bits ``-k``) -> those float32 values."""
    bits = np.where(keys >= 0, keys, np.int64(0x80000000) | -keys)
    return bits.astype(np.uint32).view(np.float32)


def _fits(shape: tuple[int | None, ...], want: tuple[int, ...]) -> bool:
    return len(shape) == len(want) and all(d is None or d == w for d, w in zip(shape, want))


def _model_call(model: Any, info: GestureModelInfo):
    """How the pipeline calls ``model``: ``(call(x) -> output, input spec to quantize for, output spec to dequantize)``.

    A runtime :class:`Model` with one input of the window's shape (float32, or integer with a scale)
    gets the lean :meth:`Model.invoker` on the window in its input type; anything else (another
    shape, dtype or object) is called through ``run`` on the float window, as always.
    """
    if isinstance(model, Model) and len(model.input_specs) == 1:
        spec, out = model.input_specs[0], model.output_specs[0]
        if _fits(spec.shape, info.input_shape) and (spec.quantized or spec.dtype == np.float32):
            model.run(np.zeros(info.input_shape, np.float32))   # (re)sizes a resizable runtime to the window
            return model.invoker(), (spec if spec.quantized else None), (out if out.quantized else None)
    return model.run, None, None


class GesturePipeline:
    """Frames -> RDI -> restoration -> model -> spotting, one frame at a time.

    ``model`` is a model file (run by :func:`edgesense.runtime.load_model`) or an object with
    ``.run(ndarray) -> ndarray`` (then pass ``info``). ``restore=False`` makes a naive pipeline that
    ignores gaps (the window is simply the last T frames received), for comparison.
    ``profile`` defaults to the model's training profile. ``split=False`` runs an INT8 ``.tflite`` model
    as one graph instead of the streaming split (same outputs; for comparison).
    """

    def __init__(self, model: Any, *, info: GestureModelInfo | None = None, profile: SensorProfile | None = None,
                 restore: bool = True, max_restore: int = 8, spotter: SpotterConfig | None = None,
                 threads: int = 1, split: bool = True) -> None:
        if isinstance(model, (str, Path)):
            from edgesense.runtime import load_model

            info = info or GestureModelInfo.for_model(model)
            model = load_model(model, threads=threads)
        if info is None:
            raise ModelError("GesturePipeline needs the model's GestureModelInfo")
        self.model = model
        self.info = info
        self.profile = profile or info.sensor_profile() or RDIProfile(
            name="rdi", channels=info.rdi_shape[0], doppler_bins=info.rdi_shape[1],
            range_bins=info.rdi_shape[2], frame_rate=info.frame_rate_hz)
        self.processor = make_rdi_processor(self.profile, info.rdi_shape)
        self.restore = restore
        self.max_restore = max_restore
        self.spotter = GestureSpotter(info.classes, spotter or info.spotter_config())
        self._call, self._qin, self._qout = _model_call(model, info)
        #: the streaming split the model runs as (None: the whole graph, for the reason in ``split_reason``)
        self.split, self.split_reason = (_split_model(model, info, threads, max_restore + 1, self._call) if split
                                         else (None, "split=False"))
        if self.split is not None:
            self._call = self.split     # called with the window and the columns new since the last call
        self._lut = None
        if self._qout is not None and np.dtype(self._qout.dtype).itemsize == 1:
            # indexed by the output's bytes read as uint8
            values = np.arange(256, dtype=np.uint8).view(self._qout.dtype)
            self._lut = dequantize(values, self._qout.scale, self._qout.zero_point)
        c = info.rdi_shape[0]
        self._mean = np.asarray(info.mean or [0.0] * c, np.float32)[:, None, None]
        self._std = np.asarray(info.std or [1.0] * c, np.float32)[:, None, None]
        self._mean2, self._std2 = self._mean[:, :, 0], self._std[:, :, 0]
        self._col = np.empty((1, c, info.rows), np.float32)      # the newest frame's profile column
        self._col_doppler, self._col_range = self._col[0, :, :info.rdi_shape[1]], self._col[0, :, info.rdi_shape[1]:]
        q = self._qin
        if q is not None:   # quantize()'s constants, for the in-place quantization of new columns
            lim = np.iinfo(q.dtype)
            self._q = (np.float32(q.scale), q.zero_point, np.float32(lim.min), np.float32(lim.max))
        # values as the model sees them: normalised 0 (padding) and the validity flags, quantized if it wants integers
        self._zero = self._encode(np.float32(0.0))
        self._valid_value = {v: self._encode(np.float32(v)) for v in (0.0, 1.0)}
        self._valid1 = self._valid_value[1.0]
        # an integer-input model's newest column, validity row included (always "received" here):
        # the quantization's last step writes into it, and one copy puts it into the window
        self._new_col = None
        if q is not None:
            self._new_col = np.empty(info.input_shape[1:3], self._valid1.dtype)
            self._new_col_values = self._new_col[:c]
            if info.validity:
                self._new_col[c] = self._valid1
        self._gap_valids: dict[int, np.ndarray] = {}
        self._levels = self._rdi_levels = None
        if self._new_col is not None and self._new_col.dtype.itemsize == 1:
            self._setup_rdi_levels()
        proc = getattr(self.processor, "proc", None)
        if (proc is not None and self._new_col is not None and self._new_col.dtype.itemsize == 1
                and self._lut is not None):
            self._setup_levels(proc)
        self.reset()

    def _setup_levels(self, proc: Any) -> None:
        """The steady state of a CIR radar and an 8-bit-input model from linear magnitudes (see :meth:`process`).

        Per RDI channel, the model's input integer of a profile value is a non-decreasing function of
        its magnitude ``|Y|`` (log, scale, offset, normalisation, division by the scale, rint, + zero
        point, clamp: each step is non-decreasing), so the maximum commutes with it and the whole chain
        is a table of the smallest magnitude reaching each integer level. The table is found by bisection
        over the float32 bit patterns, evaluating the chain with the very operations of the general path
        (:meth:`RDIProcessor.log_rdi`, :meth:`_normalise`), so a looked-up integer is the computed one.
        Non-negative float32 values order like their bit patterns as unsigned integers; channel ``c``'s
        keys get ``c << 32`` added, so one sorted table serves all channels: entry ``256 c + j`` is
        ``c << 32`` + the threshold of level ``lowest + 1 + j`` (``j < 255``), then a sentinel above every
        key of the channel; ``searchsorted(..., "right")`` counts the levels reached, ``256 c + count``,
        and the integer is ``lowest + count``, taken from a 256-entry table at the index modulo 256.
        """
        out = proc.output_profile
        if (out.channels, out.doppler_bins, out.range_bins) != tuple(self.info.rdi_shape):
            return      # the general path says what does not fit
        c = self.info.rdi_shape[0]
        dtype = self._new_col.dtype
        lowest = int(np.iinfo(dtype).min)

        def from_magnitudes(bits: np.ndarray) -> np.ndarray:    # (C, 255) bit patterns -> integer-valued float32
            return self._normalise(proc.log_rdi(bits.astype(np.uint32).view(np.float32))[None])[0]

        lo = _first_reaching(from_magnitudes, c, lowest, 0, _INF_BITS)
        table = np.where(lo > _INF_BITS, 0xFFFFFFFF, lo).astype(np.uint64)
        table = np.concatenate([table, np.full((c, 1), 0xFFFFFFFF, np.uint64)], axis=1)
        table += (np.arange(c, dtype=np.uint64) << np.uint64(32))[:, None]
        self._levels = table.reshape(-1)
        self._lut_values = self._lut.tolist()     # the output's dequantized values, indexed by its bytes
        self._chan = (np.arange(c, dtype=np.uint64) << np.uint64(32))[:, None]
        self._keys = np.empty((c, self.info.rows), np.uint64)
        self._col_bits = self._col[0].view(np.uint32)
        self._mags = np.ones((2, *self.info.rdi_shape), np.float32)   # this frame's and the previous one's |Y|
        self._mag_slots = (self._mags[0], self._mags[1])
        self._rdis = np.empty_like(self._mags)      # their RDIs, made on the frames that take the general path
        self._slot = 0
        self._magnitude = proc.process_magnitude
        self._log_rdi = proc.log_rdi

    def _setup_rdi_levels(self) -> None:
        """An 8-bit-input model's integers of RDI profile values (normalisation, division by the scale, rint,
        + zero point, clamp: correctly rounded float32 steps, each non-decreasing) as one table per channel:
        the smallest float32 value reaching each of the 255 levels above the lowest (NaN: never reached),
        found by bisection over keys that order like the floats, evaluating :meth:`_normalise` itself.
        ``searchsorted(..., "right")`` counts the levels a value reaches; used for the columns of restored
        frames and of RDI-sensor frames (4 numpy calls for 2 channels instead of 7)."""
        c = self.info.rdi_shape[0]
        dtype = self._new_col.dtype
        lowest = int(np.iinfo(dtype).min)

        def from_rdis(keys: np.ndarray) -> np.ndarray:
            return self._normalise(_ordered_to_float(keys)[None])[0]

        keys = _first_reaching(from_rdis, c, lowest, -_INF_BITS, _INF_BITS)
        tables = np.where(keys > _INF_BITS, np.float32(np.nan), _ordered_to_float(np.minimum(keys, _INF_BITS)))
        self._rdi_levels = [np.ascontiguousarray(t, np.float32) for t in tables]
        self._level_values = np.arange(lowest, lowest + 256).astype(dtype)   # taken at the index (mod 256)

    def reset(self) -> None:
        """Start a new stream: clear the window, background, spotter, events and statistics."""
        info = self.info
        self.processor.reset()
        self.spotter.reset()
        self.stats = PipelineStats()
        self.events: list[GestureEvent] = []
        self._last_probs: np.ndarray | None = None
        self._last_values: list[float] | None = None
        self._first_seq: int | None = None
        self._last_seq: int | None = None
        self._last_rdi: np.ndarray | None = None
        self._rdi_pushed = False     # the newest frame came through push_rdi (its |Y| is not kept)
        # the model input, kept up to date in place in the model's input type: normalised profiles
        # (+ validity), newest frame last; all zero (in model units) at the start
        self._x = np.full(info.input_shape, self._zero, dtype=self._zero.dtype)
        self._flat = self._x.reshape(-1)       # the same memory, for the one-memmove shift
        self._flat_to, self._flat_from = self._flat[:-1], self._flat[1:]
        self._x_newest = self._x[0, :, :, -1]
        self._index = -1   # stream frame index (counts missing frames too) of the newest frame
        self._fresh = info.frames   # columns shifted in since the last inference (the split recomputes those)

    # -- the one code path -------------------------------------------------------------------

    def process(self, frame: Frame) -> list[GestureEvent]:
        """Feed one received frame; returns the events confirmed at this frame.

        A CIR radar with an 8-bit-input model takes a short path for a frame that follows the previous
        one: its magnitudes ``|Y|`` only, their profiles looked up as the model's integers
        (:meth:`_setup_levels`), no log of the whole image; any other frame (the first, one after a gap,
        a repeat) takes the general path with the RDIs of it and of the previous frame made from their
        kept magnitudes. Identical model inputs either way (tested). Both end alike: the model's 8-bit output
        dequantized by a table into Python floats, the spotter on those.
        """
        t0 = (time.perf_counter(), time.thread_time())
        if self._levels is None:
            return self._push(frame.seq, self.processor(frame.payload), True, t0)   # the processors give float32 arrays
        seq, last, slot = frame.seq, self._last_seq, self._slot
        self._slot = 1 - slot
        mag = self._magnitude(frame.payload, self._mag_slots[slot])
        stats = self.stats
        if last is not None and (seq - last) % SEQ_MODULUS == 1:
            stats.frames += 1
            self._last_seq = seq
            self._window(mag)
        else:
            rdis = self._log_rdi(self._mags, self._rdis)   # this frame's RDI and the previous one's (restoration)
            if last is not None and not self._rdi_pushed:  # (push_rdi keeps the RDI it was given)
                self._last_rdi = rdis[1 - slot]
            self._advance(seq, rdis[slot])
        self._rdi_pushed = False
        if self.split is not None:
            out = self._call(self._x, self._fresh)
            self._fresh = 0
        else:
            out = self._call(self._x)
        stats.inferences += 1
        values = self._last_values = [self._lut_values[b] for b in out.tobytes()]    # dequantized, as floats
        self._last_probs = None
        events = self.spotter.update_values(self._index, values)
        if events:
            stats.events += len(events)
            self.events.extend(events)
        stats.wall_us.append((time.perf_counter() - t0[0]) * 1e6)
        stats.cpu_us.append((time.thread_time() - t0[1]) * 1e6)
        return events

    def _window(self, mag: np.ndarray) -> None:
        """Shift the column of one frame's magnitudes ``|Y|`` ``(C, D, R)`` into the window, as "received"."""
        np.maximum.reduce(mag, -1, None, self._col_doppler)
        np.maximum.reduce(mag, -2, None, self._col_range)
        np.add(self._col_bits, self._chan, self._keys)
        self._level_values.take(self._levels.searchsorted(self._keys, "right"), None, self._new_col_values, "wrap")
        np.copyto(self._flat_to, self._flat_from)      # see _shift_in
        np.copyto(self._x_newest, self._new_col)
        self._index += 1
        self._fresh += 1

    def push_rdi(self, seq: int, rdi: np.ndarray, infer: bool = True) -> list[GestureEvent]:
        """Feed the RDI of frame ``seq`` (already computed); the batch path calls this directly."""
        t0 = (time.perf_counter(), time.thread_time())
        self._rdi_pushed = True
        return self._push(seq, np.asarray(rdi, dtype=np.float32), infer, t0)

    def _push(self, seq: int, rdi: np.ndarray, infer: bool, t0: tuple[float, float]) -> list[GestureEvent]:
        """:meth:`push_rdi` of a float32 RDI ``(C, D, R)``, timed from ``t0`` (perf_counter, thread_time)."""
        self._advance(seq, rdi)
        events: list[GestureEvent] = []
        if infer:
            probs = self._last_probs = self._infer()
            events = self.spotter.update(self._index, probs)
            self.stats.events += len(events)
            self.events.extend(events)
        self.stats.wall_us.append((time.perf_counter() - t0[0]) * 1e6)
        self.stats.cpu_us.append((time.thread_time() - t0[1]) * 1e6)
        return events

    def _advance(self, seq: int, rdi: np.ndarray) -> None:
        """Frame ``seq`` with RDI ``rdi`` into the window: gap check, restoration or padding, the new column(s)."""
        self.stats.frames += 1
        missing = 0
        if self._last_seq is None:
            self._first_seq = seq
        else:
            step = seq_distance(self._last_seq, seq)
            missing = step - 1 if 0 < step < (1 << 31) else 0
        self._last_seq = seq
        new, valid = rdi, self._valid1     # the RDI(s) to shift in ((C, D, R) or (n, C, D, R)), their validity
        if missing:
            self.stats.gaps += 1
            if not self.restore:
                self._index += missing  # naive: the window skips them, but stream time goes on
            elif missing <= self.max_restore and self._last_rdi is not None:
                new, valid = self._fill_gap(self._last_rdi, rdi, missing), self._gap_valid(missing)
                self.stats.frames_restored += missing
            else:
                pad = min(missing, self.info.frames)
                self._pad(pad)
                self._index += missing - pad
                self.stats.frames_padded += missing
                self.spotter.reset()
        self._last_rdi = rdi
        self._push_rdis(new, valid)

    def _encode(self, values: np.ndarray) -> np.ndarray:
        """Normalised float32 values -> the model's input units (quantized for an integer-input model)."""
        q = self._qin
        return np.asarray(values, np.float32) if q is None else quantize(values, q.scale, q.zero_point, q.dtype)

    def _fill_gap(self, prev: np.ndarray, cur: np.ndarray, missing: int) -> np.ndarray:
        """The ``missing`` restored RDIs between ``prev`` and ``cur``, then ``cur``: ``(missing + 1, C, D, R)``.

        By the restoration module's streaming rule (:func:`~edgesense.radar.restore.fill_gap`, what
        :class:`~edgesense.radar.restore.FrameRestorer` emits, identical to the batch form).
        """
        return fill_gap(prev, cur, missing, DEFAULT_LOOKAHEAD)

    def _gap_valid(self, missing: int) -> np.ndarray:
        """Validity (model units) of ``missing`` restored columns then a received one."""
        v = self._gap_valids.get(missing)
        if v is None:
            v = self._gap_valids[missing] = np.append(np.full(missing, self._valid_value[0.0]), self._valid_value[1.0])
        return v

    def _push_rdis(self, rdis: np.ndarray, valid: np.ndarray) -> None:
        """Shift the columns of RDIs ``(n, C, D, R)`` (or of one RDI ``(C, D, R)``) into the model input,
        with validity ``valid`` (model units, one value or one per column).

        The numbers of :func:`gesture_map` on the window (then ``quantize`` for an integer-input
        model), computed for the new columns only, in place: profiles (max is exact), normalisation,
        ``clamp(rint(v / scale) + zero_point)`` in float32, the cast of those integers to int8.
        """
        one = rdis.ndim == 3
        n = 1 if one else rdis.shape[0]
        c, d, r = self.info.rdi_shape
        if rdis.shape[-3:] != (c, d, r) or not 3 <= rdis.ndim <= 4:
            raise ProfileError(f"RDIs of shape {list(rdis.shape[-3:])} reach a model built for {list(self.info.rdi_shape)}")
        if one:
            cols = self._col
            np.maximum.reduce(rdis, axis=-1, out=self._col_doppler)
            np.maximum.reduce(rdis, axis=-2, out=self._col_range)
            if valid is self._valid1 and self._new_col is not None:
                # the steady state of an integer-input model: the integers go into the kept column, whose
                # validity row already says "received", and the window takes the whole column in one copy
                if self._rdi_levels is not None:
                    take, out = self._level_values.take, self._new_col_values
                    for ch, table in enumerate(self._rdi_levels):
                        take(table.searchsorted(cols[0, ch], "right"), None, out[ch], "wrap")
                else:       # the quantization's last step writes the integers (exact casts)
                    self._normalise(cols, self._new_col_values)
                self._shift_in_one(self._new_col)
                return
        else:
            cols = np.empty((n, c, d + r), np.float32)
            np.maximum.reduce(rdis, axis=-1, out=cols[..., :d])
            np.maximum.reduce(rdis, axis=-2, out=cols[..., d:])
            if self._rdi_levels is not None and n < self.info.frames:
                x, flat = self._x[0], self._flat
                flat[:-n] = flat[n:]                         # see _shift_in
                take = self._level_values.take
                for ch, table in enumerate(self._rdi_levels):
                    take(table.searchsorted(cols[:, ch], "right").T, None, x[ch, :, -n:], "wrap")
                if self.info.validity:
                    x[c, :, -n:] = valid
                self._index += n
                self._fresh += n
                return
        self._shift_in(self._normalise(cols).transpose(1, 2, 0), valid)

    def _normalise(self, cols: np.ndarray, int_out: np.ndarray | None = None) -> np.ndarray:
        """Profile values ``(..., C, D+R)`` -> model units, in place: normalisation, then for an
        integer-input model ``clamp(rint(v / scale) + zero_point)`` in float32 (integer values).

        ``int_out`` (an integer-input model's kept newest column, validity row already "received"):
        the clamp's last step writes the integers there instead (exact casts) and the column goes
        into the window in one copy; returns None then.
        """
        np.subtract(cols, self._mean2, out=cols)
        np.divide(cols, self._std2, out=cols)
        if self._qin is not None:
            scale, zp, lo, hi = self._q
            np.divide(cols, scale, out=cols)
            np.rint(cols, out=cols)
            np.add(cols, zp, out=cols)
            np.maximum(cols, lo, out=cols)
            if int_out is not None:
                np.minimum(cols[0], hi, out=int_out, casting="unsafe")
                return None
            np.minimum(cols, hi, out=cols)
        return cols

    def _shift_in_one(self, col: np.ndarray) -> None:
        """:meth:`_shift_in` of one whole column ``(C[+1], D+R)`` in model units, validity included."""
        np.copyto(self._flat_to, self._flat_from)      # see _shift_in
        np.copyto(self._x_newest, col)
        self._index += 1
        self._fresh += 1

    def _pad(self, n: int) -> None:
        """Shift ``n`` invalid all-zero frames into the model input."""
        x = self._x[0]
        self._shift_in(np.full((self.info.rdi_shape[0], x.shape[1], n), self._zero, x.dtype), self._valid_value[0.0])

    def _shift_in(self, cols: np.ndarray, valid: np.ndarray) -> None:
        """Move the window ``n`` frames on and write ``cols`` ``(C, D+R, n)`` (model units) as the newest."""
        x = self._x[0]
        c, t = self.info.rdi_shape[0], self.info.frames
        n = cols.shape[-1]
        if n >= t:
            x[:c] = cols[..., -t:]      # integer-valued floats in range: the cast to int8 is exact
            if self.info.validity:
                x[c] = np.broadcast_to(valid, (n,))[-t:]
        else:
            # The window as one flat array moved n elements on (one contiguous memmove; a strided
            # x[..., :-n] = x[..., n:] costs ~5x more): every element lands n frames earlier in its row,
            # and only the last n columns receive wrong values (from the next row) -- overwritten here.
            flat = self._flat
            flat[:-n] = flat[n:]
            x[:c, :, -n:] = cols
            if self.info.validity:
                x[c, :, -n:] = valid
        self._index += n
        self._fresh += n

    def _infer(self) -> np.ndarray:
        if self.split is not None:
            out = self._call(self._x, self._fresh)
            self._fresh = 0
        else:
            out = self._call(self._x)
        self.stats.inferences += 1
        if self._lut is not None:     # 8-bit output: dequantize() of every possible value, looked up
            return self._lut.take(out.view(np.uint8)).reshape(-1)
        if isinstance(out, dict):
            out = next(iter(out.values()))
        if self._qout is not None:
            out = dequantize(out, self._qout.scale, self._qout.zero_point)
        return np.asarray(out, dtype=np.float32).reshape(-1)

    @property
    def last_probs(self) -> np.ndarray | None:
        """The class probabilities of the newest inference (float32 ``(classes,)``), None before the first."""
        if self._last_probs is None and self._last_values is not None:
            self._last_probs = np.array(self._last_values, np.float32)     # exact: the values are float32 ones
        return self._last_probs

    @property
    def model_input(self) -> np.ndarray:
        """The current model input ``(1, C[+1], D+R, T)`` as the model receives it (int8 for an INT8 model)."""
        return self._x

    # -- conveniences --------------------------------------------------------------------------

    @property
    def frame_index(self) -> int:
        """Stream index of the newest frame (missing frames counted), as used in event frames."""
        return self._index

    def run(self, frames: Iterable[Frame]) -> Iterator[GestureEvent]:
        """Process ``frames`` (e.g. a :class:`~edgesense.stream.Source`), yielding events as they happen."""
        for frame in frames:
            yield from self.process(frame)

    def finish(self) -> list[GestureEvent]:
        """Close the active event at the end of a stream; returns every event of the run."""
        self.spotter.finish(self._index + 1)
        return self.events

    def run_batch(self, payloads: np.ndarray, seq: np.ndarray, infer_at: Iterable[int] | None = None
                  ) -> tuple[list[GestureEvent], np.ndarray]:
        """A whole recording: RDIs in one vectorised call, then the same per-frame path as streaming.

        ``infer_at`` limits inference to those frame rows (clip evaluation); returns the events and the
        ``(rows, classes)`` probabilities (NaN where no inference ran).
        """
        self.reset()
        rdis = self.processor.batch(payloads)
        wanted = None if infer_at is None else set(int(i) for i in infer_at)
        probs = np.full((len(seq), len(self.info.classes)), np.nan, dtype=np.float32)
        for row, (s, rdi) in enumerate(zip(seq, rdis)):
            infer = wanted is None or row in wanted
            self.push_rdi(int(s), rdi, infer=infer)
            if infer:
                probs[row] = self.last_probs
        return self.finish(), probs
