"""Streaming excursion prediction with bounded state (run-time core: numpy + edgesense.runtime, no torch).

Input features and output scaling shared by training and run time (:class:`ExcursionModelSpec`):

* ``v / v_scale`` and ``i / i_scale`` (the sense front end's full scale, ±10 V and ±1.5 A by
  default), and for the physics-informed hybrid the impedance-tracked linear model's prediction;
* the network predicts ``y = x_mm * Bl / x_scale``. V and I fix the excursion only up to 1/Bl
  (scaling Bl -> c·Bl and Mms, Rms, Kms -> c²·(...) leaves v and i unchanged and scales x by 1/c;
  speaker-findings.md), so ``x·Bl`` is what V/I determine, and the datasheet Bl of the profile turns
  it into millimetres: ``x_mm = y * x_scale / Bl``. The hybrid's tracked prediction enters the same way
  (``x_track·Bl / x_scale``), which is independent of the Bl the tracker was given.
* samples are grouped in frames of ``frame`` (4) samples: the network runs at 12 kHz with
  ``inputs*frame`` channels and emits ``frame`` samples per step (speaker-findings.md). Within a frame
  the output may use the frame's later samples, so the algorithmic latency is one frame (83 µs);
  1 ms blocks (48 samples) are whole frames and add no latency beyond the block.

:class:`ExcursionStreamer` runs a model block by block. A *streaming* ONNX model (inputs ``x`` and
``state0..``, outputs ``y`` and ``state0_out..``, exported by :mod:`edgesense.nn.train_excursion`)
carries per-layer ring buffers of its causal convolutions; any other model (for example an INT8
export without state I/O) is run on a fixed receptive-field window per block. Either way the
concatenated output over arbitrary block sizes equals whole-signal prediction and the state is a
fixed number of floats.

INT8 streaming LiteRT models (``.tflite`` with int8 state I/O on one grid) take a *direct* path: the
streamer opens its own interpreter (one thread) and works on views of the interpreter's tensors --
quantized input written in place, the int8 state copied from the state outputs to the state inputs
after each invoke, the output mapped to millimetres through a 256-entry table. Such models have a
fixed number of steps per call (12 for 1 ms blocks); any other number of whole frames runs as full
calls plus, for the rest, one call whose missing future frames are padding and whose state is not
kept (the model is causal, so those outputs do not depend on the padding). The numbers equal the
generic path exactly (tests/speaker/test_streaming.py).

Both paths accept the channel-last layout of :mod:`edgesense.quant.tflite.state_layout` (4-D ``x``
``(1, 1, steps, c*frame)``, ``y`` ``(1, 1, steps, frame)`` and states ``(1, 1, L, C)``, no layout operators
in the graph): the states are opaque here, and ``x``/``y`` are written and read through views in
either layout.

INT8 models have rails: the output cannot go past the excursion of its int8 codes -128/127
(``x_scale / Bl`` times the dequantized codes), and a hybrid's tracked-prediction input is clipped
at the codes -128/127 of the input grid. Both grids were calibrated on the training speakers, so a
speaker driven harder than those saturates them and the model under-reports the excursion.
:attr:`ExcursionStreamer.rail_mm`, :meth:`ExcursionStreamer.saturated` and
:meth:`ExcursionStreamer.track_saturated` tell which samples were at a rail. They are computed on
demand from the quantization parameters (once) and the returned excursion (per call, by the
caller): nothing is added to the per-block path.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgesense.errors import ModelError
from edgesense.runtime.model import dequantize, quantize

__all__ = ["SPEC_METADATA_KEY", "ExcursionModelSpec", "ExcursionStreamer", "frame_inputs", "unframe",
           "load_spec", "predict_signal"]

_F32 = np.dtype(np.float32)
# numpy's clip ufunc (one call; ``np.clip`` wraps it with argument checks costing more than the clip)
try:
    from numpy._core.umath import clip as _clip
except ImportError:  # pragma: no cover - numpy < 2
    from numpy.core.umath import clip as _clip

#: ONNX metadata key (and sidecar ``<model>.json`` content) describing an excursion model.
SPEC_METADATA_KEY = "edgesense.excursion"


@dataclass(frozen=True)
class ExcursionModelSpec:
    """How to feed an excursion model and read its output (stored with every exported model)."""

    arch: str = "fftnet"
    inputs: tuple[str, ...] = ("v", "i")
    frame: int = 4
    v_scale: float = 10.0
    i_scale: float = 1.5
    x_scale: float = 0.5
    receptive_field: int = 256
    state_shapes: tuple[tuple[int, int], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "state_shapes", tuple(tuple(int(v) for v in s) for s in self.state_shapes))
        bad = [n for n in self.inputs if n not in ("v", "i", "track")]
        if bad or self.inputs[:2] != ("v", "i"):
            raise ModelError(f"excursion model inputs must start with v, i (optionally track), got {list(self.inputs)}")

    @property
    def needs_tracker(self) -> bool:
        return "track" in self.inputs

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ExcursionModelSpec:
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError) as exc:
            raise ModelError(f"malformed excursion model description: {exc}") from None


def load_spec(model_path: str | Path, onnx_metadata: dict[str, str] | None = None) -> ExcursionModelSpec:
    """The spec of a model: from ONNX metadata when given, else the sidecar ``<model>.json``."""
    if onnx_metadata and SPEC_METADATA_KEY in onnx_metadata:
        return ExcursionModelSpec.from_json(onnx_metadata[SPEC_METADATA_KEY])
    side = Path(model_path).with_suffix(".json")
    if not side.is_file():
        raise ModelError(f"{model_path}: no excursion model description (metadata {SPEC_METADATA_KEY!r} or {side.name})")
    return ExcursionModelSpec.from_json(side.read_text())


def frame_inputs(spec: ExcursionModelSpec, v: np.ndarray, i: np.ndarray, bl: float,
                 track: np.ndarray | None = None) -> np.ndarray:
    """Normalised, framed network input (1, len(inputs)*frame, n // frame) for whole frames of v, i (, track)."""
    n = (len(v) // spec.frame) * spec.frame
    rows = [np.asarray(v[:n], np.float32) / spec.v_scale, np.asarray(i[:n], np.float32) / spec.i_scale]
    if spec.needs_tracker:
        if track is None:
            raise ModelError("this excursion model is a hybrid: it needs the tracked linear prediction")
        rows.append(np.asarray(track[:n], np.float32) * (bl / spec.x_scale))
    sig = np.stack(rows)  # (C, n)
    c = sig.shape[0]
    return np.ascontiguousarray(sig.reshape(c, -1, spec.frame).transpose(0, 2, 1).reshape(1, c * spec.frame, -1),
                                dtype=np.float32)


def unframe(spec: ExcursionModelSpec, y: np.ndarray, bl: float) -> np.ndarray:
    """Network output (1, frame, steps) -> excursion in mm (steps*frame,), using the datasheet ``bl``."""
    return (np.asarray(y[0]).T.reshape(-1) * (spec.x_scale / bl)).astype(np.float32)


class ExcursionStreamer:
    """Block-by-block excursion prediction with bounded state.

    ``process(v, i, track=None)`` takes any number of new samples and returns the excursion (mm) of
    every sample that completes a frame (with 1 ms blocks: exactly the block). ``bl`` is the
    speaker's datasheet (or calibrated) force factor. ``direct=False`` keeps INT8 LiteRT models on
    the generic :meth:`Model.run` path instead of the direct interpreter path (same numbers).
    """

    def __init__(self, model, bl: float, spec: ExcursionModelSpec | None = None, direct: bool = True) -> None:
        from edgesense.runtime import load_model

        self.model = load_model(model) if isinstance(model, (str, Path)) else model
        meta = None
        session = getattr(self.model, "session", None)
        if session is not None:
            meta = session.get_modelmeta().custom_metadata_map
        self.spec = spec or load_spec(self.model.path, meta)
        self._needs_tracker = self.spec.needs_tracker
        if not (bl > 0):
            raise ModelError(f"Bl must be positive, got {bl}")
        self.bl = float(bl)
        names = [s.name for s in self.model.input_specs]
        self.state_names = [n for n in names if n.startswith("state")]
        self.x_name = names[0] if not self.state_names else "x"
        self.streaming = bool(self.state_names)
        # float ONNX models skip the generic Model.run checks on the per-block hot path
        float_io = all(not np.issubdtype(t.dtype, np.integer) for t in self.model.input_specs + self.model.output_specs)
        self._session = session if float_io else None
        self._out_names = [t.name for t in self.model.output_specs]
        # INT8 streaming models whose state outputs share their inputs' grid keep the state as raw
        # integers between blocks: the same numbers as dequantize + quantize, without the per-block cost.
        ins = {t.name: t for t in self.model.input_specs}
        outs = {t.name: t for t in self.model.output_specs}
        self._raw_state = bool(self.state_names) and ins[self.x_name].quantized and outs["y"].quantized and all(
            ins[n].quantized and (n + "_out") in outs and (outs[n + "_out"].scale, outs[n + "_out"].zero_point)
            == (ins[n].scale, ins[n].zero_point) for n in self.state_names)
        self._x_spec, self._y_spec = ins[self.x_name], outs.get("y")
        # channel-last I/O (edgesense.quant.tflite.state_layout): x (1, 1, steps, c*frame), y (1, 1, steps, frame)
        self._x_last = self.streaming and len(self._x_spec.shape) == 4
        self._y_last = self.streaming and self._y_spec is not None and len(self._y_spec.shape) == 4
        # a streaming .tflite slices its new state at fixed offsets: Model.run must get exactly its built steps
        self._fixed_steps = (int(self._x_spec.shape[2]) if self.streaming and getattr(self.model, "backend", None)
                             == "litert" and isinstance(self._x_spec.shape[2], int) else None)
        self._direct: _DirectLiteRT | None = None
        if direct and _direct_capable(self.model, self._raw_state, self.state_names):
            try:
                self._direct = _DirectLiteRT(self.model, self.spec, self.bl, self.state_names)
            except AttributeError:   # an interpreter wrapper without the raw invoke: generic path
                self._direct = None
        self._block = None if self._direct is None else self._direct.steps * self.spec.frame
        self.reset()

    @property
    def rail_mm(self) -> tuple[float, float] | None:
        """(low, high) excursion (mm) of the INT8 output's codes -128/127 with this streamer's Bl,
        or None when the output grid is unknown (float model, or a QDQ ONNX model without ``onnx``).

        Exactly the values :meth:`process` returns for a saturated output (same float32 arithmetic).
        """
        return self._rail_info()[0]

    def _rail_info(self):
        """(output rail in mm or None, input grid or None), computed on first use."""
        if not hasattr(self, "_rails"):
            outs = self.model.output_specs
            ys = self._y_spec if self._y_spec is not None else (outs[0] if len(outs) == 1 else None)
            self._rails = _rails(self.model, self._x_spec, ys, self.spec, self.bl)
        return self._rails

    def saturated(self, x_mm: np.ndarray) -> np.ndarray:
        """Boolean mask of the excursion samples ``x_mm`` (as returned by :meth:`process`) at the
        INT8 output rail: the true excursion may be larger there (the model clipped). All False
        when the model has no known rail. Vectorised; call it on a block or a whole signal."""
        x = np.asarray(x_mm)
        rail = self.rail_mm
        if rail is None:
            return np.zeros(x.shape, bool)
        return (x <= rail[0]) | (x >= rail[1])

    def track_saturated(self, track_mm: np.ndarray) -> np.ndarray:
        """Boolean mask of the tracked-prediction samples ``track_mm`` (mm, as passed to
        :meth:`process`) that quantize to the rail codes of the INT8 input grid (the model sees a
        clipped track there). All False for models without a track input or a known input grid."""
        t = np.asarray(track_mm)
        grid = self._rail_info()[1]
        if grid is None or not self._needs_tracker:
            return np.zeros(t.shape, bool)
        scale, zp, dtype = grid
        info = np.iinfo(dtype)
        # the scaling of frame_inputs() and the direct path, then quantize(): the model's exact codes
        q = quantize(np.asarray(t, np.float32) * np.float32(self.bl / self.spec.x_scale), scale, zp, dtype)
        return (q == info.min) | (q == info.max)

    def reset(self) -> None:
        """Forget all history (zero state), as at the start of a signal."""
        f = self.spec.frame
        c = len(self.spec.inputs)
        self._pending = np.zeros((c, 0), np.float32)
        self._f = f
        # True while a call of exactly one direct-path block can skip the general path
        self._clean = self._direct is not None
        if self._direct is not None:
            self._direct.reset()
        elif self.streaming:
            shapes = {s.name: s.shape for s in self.model.input_specs}
            if self._raw_state:
                specs = {s.name: s for s in self.model.input_specs}
                self._states = {n: np.full((1, *[int(d) for d in shapes[n][1:]]), specs[n].zero_point, specs[n].dtype)
                                for n in self.state_names}
            else:
                self._states = {n: np.zeros((1, *[int(d) for d in shapes[n][1:]]), np.float32)
                                for n in self.state_names}
        else:
            # history grows from empty to receptive_field - 1 steps: the model's own zero padding then
            # matches whole-signal prediction exactly, also for the first blocks
            self._history = np.zeros((1, c * f, 0), np.float32)

    @property
    def state_floats(self) -> int:
        """Number of floats of state kept between blocks (bounded, independent of signal length)."""
        if self._direct is not None:
            return self._direct.state_size + self._pending.size
        if self.streaming:
            return int(sum(s.size for s in self._states.values())) + self._pending.size
        return len(self.spec.inputs) * self.spec.frame * (self.spec.receptive_field - 1) + self._pending.size

    def process(self, v: np.ndarray, i: np.ndarray, track: np.ndarray | None = None) -> np.ndarray:
        """Excursion (mm) for the samples completed by this block."""
        if self._clean:
            # hot path (direct INT8 LiteRT, nothing pending): a whole call's samples go straight in
            blk = self._block
            if len(v) == blk and len(i) == blk:
                if not self._needs_tracker:
                    return self._direct.block(v, i, None)
                if track is not None and len(track) == blk:
                    return self._direct.block(v, i, track)
        out = self._process_any(v, i, track)
        direct = self._direct
        self._clean = direct is not None and not self._pending.shape[1] and not direct._partial.shape[1]
        return out

    def _process_any(self, v: np.ndarray, i: np.ndarray, track: np.ndarray | None) -> np.ndarray:
        """Any number of samples on any path (pending partial frames and calls kept for the next block)."""
        if self._needs_tracker:
            if track is None:
                raise ModelError("this excursion model is a hybrid: pass track= (the tracked linear prediction)")
        else:
            track = None
        direct = self._direct
        rows = [np.asarray(v, np.float32), np.asarray(i, np.float32)]
        if track is not None:
            rows.append(np.asarray(track, np.float32))
        sig = np.concatenate([self._pending, np.stack(rows)], axis=1)
        n = (sig.shape[1] // self._f) * self._f
        self._pending = sig[:, n:]
        if n == 0:
            return np.zeros(0, np.float32)
        x = frame_inputs(self.spec, sig[0, :n], sig[1, :n], self.bl, sig[2, :n] if self.spec.needs_tracker else None)
        if direct is not None:
            xs = self._x_spec
            return direct.frames(quantize(x, xs.scale, xs.zero_point, xs.dtype)[0])
        if self.streaming:
            if self._fixed_steps is not None and x.shape[2] != self._fixed_steps:
                raise ModelError(f"{Path(self.model.path).name} runs {self._fixed_steps} frames per call on this path "
                                 f"(got {x.shape[2]}): use direct=True for other block sizes")
            if self._x_last:
                x = np.ascontiguousarray(x.transpose(0, 2, 1)[:, None])
            if self._raw_state:
                xs, ys = self._x_spec, self._y_spec
                out = self.model.run({"x": quantize(x, xs.scale, xs.zero_point, xs.dtype), **self._states}, raw=True)
                y = dequantize(out["y"], ys.scale, ys.zero_point)
            else:
                feeds = {"x": x, **self._states}
                if self._session is not None:
                    out = dict(zip(self._out_names, self._session.run(self._out_names, feeds)))
                else:
                    out = self.model.run(feeds)
                y = out["y"]
            if self._y_last:
                y = y[:, 0].transpose(0, 2, 1)
            self._states = {n_: out[n_ + "_out"] for n_ in self.state_names}
        else:
            full = np.concatenate([self._history, x], axis=2)
            y = self.model.run(full)[..., -x.shape[2]:]
            keep = min(full.shape[2], self.spec.receptive_field - 1)
            self._history = full[..., full.shape[2] - keep:]
        return unframe(self.spec, y, self.bl)


def predict_signal(model, v: np.ndarray, i: np.ndarray, bl: float, track: np.ndarray | None = None,
                   chunk: int = 48_000) -> np.ndarray:
    """Whole-signal excursion (mm) of ``v``, ``i`` (, ``track``), streamed in ``chunk``-sample blocks.

    Samples past the last whole frame get the previous prediction held (at most ``frame - 1`` samples).
    """
    streamer = model if isinstance(model, ExcursionStreamer) else ExcursionStreamer(model, bl)
    streamer.reset()
    out = []
    for s in range(0, len(v), chunk):
        out.append(streamer.process(v[s:s + chunk], i[s:s + chunk], None if track is None else track[s:s + chunk]))
    x = np.concatenate(out) if out else np.zeros(0, np.float32)
    if len(x) < len(v):
        x = np.concatenate([x, np.full(len(v) - len(x), x[-1] if len(x) else 0.0, np.float32)])
    return x


class _DirectLiteRT:
    """An INT8 streaming ``.tflite`` run on views of its own interpreter's tensors (see the module doc).

    Holds the committed int8 state in the interpreter's state inputs and up to ``steps - 1`` quantized
    frames not yet committed (their outputs were already returned). Only built by
    :meth:`ExcursionStreamer.__init__` when :func:`_direct_capable` holds.
    """

    def __init__(self, model, spec: ExcursionModelSpec, bl: float, state_names: list[str]) -> None:
        from edgesense.runtime.litert_backend import interpreter_class

        ins = {t.name: t for t in model.input_specs}
        outs = {t.name: t for t in model.output_specs}
        interp = interpreter_class()(model_path=str(model.path), num_threads=1)
        interp.allocate_tensors()
        idx_in = {d["name"]: d["index"] for d in interp.get_input_details()}
        idx_out = {d["name"]: d["index"] for d in interp.get_output_details()}
        # The views below stay alive, so the wrapper's public invoke() (which refuses to run while
        # views exist, because resizing could move the buffers) is bypassed: this interpreter is
        # private to the streamer and never resized, so its buffers never move.
        self._invoke = interp._interpreter.Invoke
        self.interpreter = interp
        xs, ys = ins["x"], outs["y"]
        c, f = len(spec.inputs), spec.frame
        self.steps = int(xs.shape[2])                               # (1, c*f, steps) or (1, 1, steps, c*f)
        self.channels, self.frame = c, f
        self._x = interp.tensor(idx_in["x"])()
        self._y = interp.tensor(idx_out["y"])()
        if self._x.ndim == 4:     # channel last (edgesense.quant.tflite.state_layout)
            self._x_ncl = self._x[0, 0].T                           # (c*f, steps) view
            self._x_framed = self._x[0, 0].reshape(self.steps, c, f).transpose(1, 0, 2)
        else:
            self._x_ncl = self._x[0]
            self._x_framed = self._x[0].reshape(c, f, self.steps).transpose(0, 2, 1)
        # _x_framed: channel, step, sample in frame; _y_ncl: (frame, steps); _y_index: (steps, frame), time order
        self._y_ncl = self._y[0, 0].T if self._y.ndim == 4 else self._y[0]
        self._y_index = self._y_ncl.view(np.uint8).T
        # channel-last y is already in time order: a flat contiguous index (a cheaper take, no reshape)
        self._y_flat = self._y.view(np.uint8).reshape(-1) if self._y.ndim == 4 else None
        self._state_in = [interp.tensor(idx_in[n])() for n in state_names]
        self._pairs = [(a, interp.tensor(idx_out[n + "_out"])()) for a, n in zip(self._state_in, state_names)]
        self._state_zp = [ins[n].zero_point for n in state_names]
        self._span = _state_span(self._pairs)
        # input scaling: exactly frame_inputs() followed by quantize(), in float32, into one buffer
        # (0-d float32 arrays: the cheapest operands for numpy's ufunc dispatch, same float32 arithmetic)
        self._w = np.empty((c, self.steps * f), np.float32)
        self._rows = (self._w[0], self._w[1], self._w[2] if c > 2 else None)
        self._v_div = np.array(spec.v_scale, np.float32)
        self._i_div = np.array(spec.i_scale, np.float32)
        self._track_mul = np.array(bl / spec.x_scale, np.float32)
        low = 0 if sys.byteorder == "little" else 3      # the byte of a float32 holding its low 8 bits
        self._w_codes = self._w.view(np.int8).reshape(c, self.steps, f, 4)[..., low]   # (c, steps, f) view
        self.set_input_grid(xs.scale, xs.zero_point)
        # output: every int8 value -> mm exactly as dequantize() + unframe() compute it
        q = np.arange(-128, 128).astype(np.int8)
        lut = (dequantize(q, ys.scale, ys.zero_point) * (spec.x_scale / bl)).astype(np.float32)
        self._lut = np.ascontiguousarray(np.roll(lut, -128))        # indexed by the uint8 view of q
        self.reset()

    def set_input_grid(self, scale: float, zero_point: int) -> None:
        """The int8 grid of x that :meth:`block` quantizes to (the model's; tests try others).

        Rounding and the int8 cast are done without numpy's float -> int8 cast loop (see
        :meth:`_quantize_into_x`): adding 1.5 * 2**23 rounds to an integer half to even (as np.rint)
        and leaves that integer in the low bits of the float32.
        """
        magic = 1.5 * 2 ** 23
        self._xscale = np.array(scale, np.float32)
        self._xzp = int(zero_point)
        self._xzp_f = np.array(zero_point, np.float32)
        self._magic = np.array(magic, np.float32)
        self._magic_lo = np.array(magic - 128 - zero_point, np.float32)
        self._magic_hi = np.array(magic + 127 - zero_point, np.float32)

    def reset(self) -> None:
        for a, zp in zip(self._state_in, self._state_zp):
            a.fill(zp)
        self._partial = np.zeros((self.channels * self.frame, 0), np.int8)

    @property
    def state_size(self) -> int:
        return int(sum(a.size for a in self._state_in)) + self._partial.size

    def block(self, v: np.ndarray, i: np.ndarray, track: np.ndarray | None) -> np.ndarray:
        """Hot path: exactly ``steps`` frames of samples, nothing pending (1 ms blocks)."""
        w0, w1, w2 = self._rows
        # float32(v) / v_scale etc. in float32: float32 arrays go straight in (positional out: no
        # keyword parsing), anything else is cast to float32 by the assignment first
        if type(v) is np.ndarray and v.dtype is _F32:
            np.divide(v, self._v_div, w0)
        else:
            w0[...] = v
            np.divide(w0, self._v_div, w0)
        if type(i) is np.ndarray and i.dtype is _F32:
            np.divide(i, self._i_div, w1)
        else:
            w1[...] = i
            np.divide(w1, self._i_div, w1)
        if track is not None:
            w2[...] = track
            np.multiply(w2, self._track_mul, w2)
        self._quantize_into_x(self._w)
        self._invoke()
        span = self._span
        if span is not None:
            span[0][...] = span[1]       # _commit_state(), inline
        else:
            self._commit_state()
        if self._y_flat is not None:
            return self._lut.take(self._y_flat)
        return self._lut.take(self._y_index).reshape(-1)

    def _commit_state(self) -> None:
        """State outputs -> state inputs (one copy when both sets share one layout in the arena)."""
        if self._span is not None:
            self._span[0][...] = self._span[1]
        else:
            for a, b in self._pairs:
                a[...] = b

    def _quantize_into_x(self, w: np.ndarray) -> None:
        """``quantize(w, scale, zero_point, int8)`` written framed into x: the same codes, four cheap
        float32 ufunc calls and one int8 copy.

        ``w / scale + 1.5 * 2**23`` is rounded once, to the nearest integer R, ties to even (the
        float32 spacing there is 1 and 1.5 * 2**23 is even), so R = 1.5 * 2**23 + rint(w / scale) for
        |w / scale| < 2**22; outside that, rounding is still monotonic and the clamp below takes such
        values to its bounds, as ``quantize`` does. Clamping R to the int8 range shifted by the zero
        point and adding the zero point (exact: small integers) leaves the int8 code in R's low byte
        (the float32's low mantissa bits; the bits above are the same for every value in range),
        which is copied into x. NaN inputs (no defined code either way) give some code.
        """
        np.divide(w, self._xscale, w)
        np.add(w, self._magic, w)
        _clip(w, self._magic_lo, self._magic_hi, w)
        if self._xzp:
            np.add(w, self._xzp_f, w)
        self._x_framed[...] = self._w_codes

    def frames(self, xq: np.ndarray) -> np.ndarray:
        """Any number of quantized frames ``(c*frame, n)`` -> outputs (mm) of those n frames."""
        k = self.steps
        todo = np.concatenate([self._partial, xq], axis=1) if self._partial.shape[1] else xq
        skip = self._partial.shape[1]              # outputs of these frames were returned already
        outs = []
        full = (todo.shape[1] // k) * k
        for s in range(0, full, k):
            self._x_ncl[...] = todo[:, s:s + k]
            self._invoke()
            self._commit_state()
            outs.append(self._y_ncl.copy())
        rest = todo.shape[1] - full
        if rest:
            # causal model: outputs of the first `rest` steps ignore the padding after them;
            # the state after this call is not kept, the frames are run again once complete
            self._x_ncl[:, :rest] = todo[:, full:]
            self._x_ncl[:, rest:] = self._xzp
            self._invoke()
            outs.append(self._y_ncl[:, :rest].copy())
        self._partial = np.ascontiguousarray(todo[:, full:])
        if not outs:
            return np.zeros(0, np.float32)
        y = np.concatenate(outs, axis=1)[:, skip:]   # (frame, n)
        return self._lut.take(y.view(np.uint8).T).reshape(-1)


def _state_span(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray] | None:
    """One (input, output) byte view pair over all state tensors when the interpreter's arena lays
    the state inputs out exactly like the state outputs (same order, sizes and gaps), else None.

    Copying the whole span also copies the alignment gaps between tensors: nothing lives there but
    (possibly) intermediates, which every invoke writes before it reads them.
    """
    if len(pairs) < 2 or any(a.dtype.itemsize != 1 or not a.flags.c_contiguous or not b.flags.c_contiguous
                             or a.nbytes != b.nbytes for a, b in pairs):
        return None
    addr = lambda arr: arr.__array_interface__["data"][0]  # noqa: E731
    in0, out0 = addr(pairs[0][0]), addr(pairs[0][1])
    offsets = [(addr(a) - in0, addr(b) - out0) for a, b in pairs]
    if any(oi != oo or oi < 0 for oi, oo in offsets) or any(
            offsets[k + 1][0] < offsets[k][0] + pairs[k][0].nbytes for k in range(len(pairs) - 1)):
        return None
    span = offsets[-1][0] + pairs[-1][0].nbytes
    if in0 < out0 + span and out0 < in0 + span:       # the two regions must not overlap
        return None
    view = lambda arr: np.lib.stride_tricks.as_strided(arr.reshape(-1).view(np.uint8), (span,), (1,))  # noqa: E731
    return view(pairs[0][0]), view(pairs[0][1])


def _rails(model, x_spec, y_spec, spec: ExcursionModelSpec, bl: float):
    """((low_mm, high_mm) or None, (x scale, zero point, dtype) or None) of an INT8 model.

    Quantized I/O: the tensors' own grids. A QDQ ONNX model with float I/O: the DequantizeLinear
    feeding output ``y`` and the QuantizeLinear reading input ``x`` (needs the optional ``onnx``).
    """
    y_grid = (y_spec.scale, y_spec.zero_point, y_spec.dtype) if y_spec is not None and y_spec.quantized else None
    x_grid = (x_spec.scale, x_spec.zero_point, x_spec.dtype) if x_spec is not None and x_spec.quantized else None
    if (y_grid is None or x_grid is None) and getattr(model, "backend", None) == "onnxruntime":
        qdq = _qdq_grids(model.path, x_spec.name if x_spec is not None else "x",
                         y_spec.name if y_spec is not None else "y")
        y_grid, x_grid = y_grid or qdq[1], x_grid or qdq[0]
    rail = None
    if y_grid is not None:
        scale, zp, dtype = y_grid
        info = np.iinfo(dtype)
        # dequantize() then unframe(): the same float32 operations as every path of process()
        mm = dequantize(np.array([info.min, info.max], dtype), scale, zp) * (spec.x_scale / bl)
        rail = (float(mm.min()), float(mm.max()))
    return rail, x_grid


def _qdq_grids(path, x_name: str, y_name: str):
    """(x grid, y grid) of a QDQ ONNX model's input quantizer and output dequantizer (None if absent)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return None, None
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # noqa: BLE001 - not a readable ONNX file: grid unknown
        return None, None
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}

    def grid(node):
        if len(node.input) < 3 or node.input[1] not in init or node.input[2] not in init:
            return None
        scale, zp = init[node.input[1]], init[node.input[2]]
        if scale.size != 1 or zp.size != 1:
            return None
        return float(scale.reshape(())), int(zp.reshape(())), zp.dtype

    y_grid = None
    node, hops = producer.get(y_name), 0
    while node is not None and node.op_type in ("Identity", "Transpose", "Reshape", "Squeeze", "Unsqueeze") \
            and hops < 8:
        node, hops = producer.get(node.input[0]), hops + 1
    if node is not None and node.op_type == "DequantizeLinear":
        y_grid = grid(node)
    quants = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input and n.input[0] == x_name]
    x_grid = grid(quants[0]) if len(quants) == 1 else None
    return x_grid, y_grid


def _direct_capable(model, raw_state: bool, state_names: list[str]) -> bool:
    """An INT8 streaming LiteRT model from a file, all shapes fixed, int8 x and y."""
    if getattr(model, "backend", None) != "litert" or not raw_state or not state_names:
        return False
    ins = {t.name: t for t in model.input_specs}
    outs = {t.name: t for t in model.output_specs}
    if any(d is None for t in [*ins.values(), *outs.values()] for d in t.shape):
        return False
    return ins["x"].dtype == np.int8 and outs["y"].dtype == np.int8 and Path(model.path).is_file()
