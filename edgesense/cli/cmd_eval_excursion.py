"""``edgesense eval excursion``: excursion networks and conventional baselines side by side.

Every INT8 model row also reports the share of its scored samples at the model's int8 rails
(:meth:`edgesense.speaker.streaming.ExcursionStreamer.saturated` / ``track_saturated``): there the
model clipped and the true excursion may be larger. Above :data:`RAIL_WARN_SHARE` a one-line warning
names the cause (in the text output, and on stderr with ``--json``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgesense.cli.common import add_json_flag, print_json

COMMAND = ("eval", "excursion")
HELP = "evaluate excursion models and baselines (zero, linear, impedance tracking) on a speaker dataset"

_DEFAULT_MODELS = ("models/fftnet/fftnet.onnx", "models/convnet/convnet.onnx", "models/hybrid/hybrid.onnx")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset directory or .esr recording with v, i, x")
    parser.add_argument("--split", default="test", help="dataset split (default test; 'all' for every recording)")
    parser.add_argument("--model", action="append", default=None,
                        help="excursion model .onnx/.tflite (repeatable; default: the shipped models)")
    parser.add_argument("--adapt", action="store_true",
                        help="also evaluate each network after BN re-estimation per speaker (needs torch and the .pt)")
    parser.add_argument("--adapt-mode", choices=["means", "all", "input"], default="means",
                        help="BN statistics re-estimated: means of every layer (default), all (the paper), input layer")
    parser.add_argument("--adapt-batches", type=int, default=16, help="re-estimation batches per speaker (default 16)")
    parser.add_argument("--bl-error", type=float, default=0.0,
                        help="relative error of the datasheet Bl given to networks and trackers (e.g. 0.1)")
    parser.add_argument("--skip-ms", type=float, default=500.0,
                        help="warm-up excluded from the figures at the start of every recording, for every method "
                             "(clips start mid-stream: filters, trackers and networks start from rest; default 500 ms)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate at most this many streams")
    parser.add_argument("--clips", action="store_true",
                        help="evaluate every recording on its own from rest (default: join clips of one simulated "
                             "stream and run every method over the whole stream, scoring the split's clips)")
    parser.add_argument("--no-baselines", action="store_true", help="skip the linear and tracking baselines")
    parser.add_argument("--calibration", action="append", default=None,
                        help="large-signal calibration .json (or a directory of them) of known speakers: adds the "
                             "calibrated large-signal estimator row (edgesense.speaker.largesignal); every evaluated "
                             "speaker needs one (repeatable)")
    parser.add_argument("--datasheet-prior", action="store_true",
                        help="add the large-signal estimator built from each speaker's datasheet and the family prior "
                             "of the nonlinearity shapes (edgesense.speaker.adapt.datasheet_large_signal): the model for "
                             "an unseen speaker (no calibration)")
    parser.add_argument("--plot", default=None, help="write trace plots and error histograms to this image file")
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    from edgesense.errors import EdgesenseError
    from edgesense.speaker.pipeline import load_signals

    models = args.model or [m for m in _DEFAULT_MODELS if Path(m).is_file()]
    for m in models:
        if not Path(m).is_file():
            raise EdgesenseError(f"model file not found: {m}")
    if not -0.5 < args.bl_error < 0.5:
        raise EdgesenseError(f"--bl-error must be within (-0.5, 0.5), got {args.bl_error}")
    split = None if args.split == "all" else args.split
    if args.clips:
        signals = [s for s in load_signals(args.data, split, args.limit) if s.x is not None]
        segments = None
    else:
        signals, segments = load_streams(args.data, split, args.limit)
    if not signals:
        raise EdgesenseError(f"{args.data}: no labelled (v, i, x) recordings in split {args.split!r}")
    calibrations = None
    if args.calibration:
        from edgesense.speaker.largesignal import load_calibrations

        calibrations = load_calibrations(args.calibration)
    report = evaluate_excursion(signals, models, segments=segments, bl_error=args.bl_error, baselines=not args.no_baselines,
                                adapt=args.adapt, adapt_mode=args.adapt_mode,
                                adapt_batches=args.adapt_batches, skip_ms=args.skip_ms, plot=args.plot,
                                calibrations=calibrations, datasheet_prior=args.datasheet_prior)
    if args.json:
        print_json(report)
        for w in report["warnings"]:
            print(f"warning: {w}", file=sys.stderr)
    else:
        print(format_table(report))
    return 0


#: share of scored samples at an INT8 model's rail above which eval warns
RAIL_WARN_SHARE = 0.001


def rail_warning(model: str, output_share: float | None, track_share: float | None) -> str | None:
    """One line naming the cause when a model's output or track input sits at its int8 rail too often."""
    parts = []
    if output_share is not None and output_share > RAIL_WARN_SHARE:
        parts.append(f"output at its int8 rail on {output_share:.2%}")
    if track_share is not None and track_share > RAIL_WARN_SHARE:
        parts.append(f"tracked-prediction input at its int8 rail on {track_share:.2%}")
    if not parts:
        return None
    return (f"{model}: {' and '.join(parts)} of scored samples (> {RAIL_WARN_SHARE:.1%}): its int8 ranges were "
            f"calibrated on the training speakers, so it clips (under-reports) the excursion there; recalibrate the "
            f"INT8 model on this speaker's range or use the large-signal estimator")


LARGE_SIGNAL = "large-signal (calibrated)"
DATASHEET_PRIOR = "large-signal (datasheet prior)"


def _large_signal(sig, bl: float, cal):
    """The calibrated large-signal estimator's prediction (mm); its tracker gets datasheet Bl ``bl``."""
    import dataclasses

    from edgesense.speaker.largesignal import predict_large_signal

    return predict_large_signal(sig.v, sig.i, cal, dataclasses.replace(sig.speaker, bl=bl), sig.fs)


def _datasheet_prior(sig, bl: float):
    """The large-signal estimator from the datasheet (datasheet Bl ``bl``) and the family prior shapes (mm)."""
    import dataclasses

    from edgesense.speaker.adapt import datasheet_large_signal
    from edgesense.speaker.largesignal import predict_large_signal

    speaker = dataclasses.replace(sig.speaker, bl=bl)
    return predict_large_signal(sig.v, sig.i, datasheet_large_signal(speaker, name=sig.profile.name), speaker, sig.fs)


def _baselines(sig, bl: float) -> dict:
    """Conventional predictions (mm) of one signal with datasheet Bl ``bl``: linear X/I and impedance tracking."""
    import dataclasses

    import numpy as np

    profile = dataclasses.replace(sig.profile, speaker=dataclasses.replace(sig.speaker, bl=bl))
    out = {}
    try:
        from edgesense.speaker.linear import predict_linear

        out["linear X/I (datasheet)"] = np.asarray(predict_linear(sig.i, profile.speaker, sig.fs), np.float32)
    except (ImportError, ValueError):
        pass
    out["impedance tracking"] = _track(sig, bl)
    return out


def _track(sig, bl: float):
    """The impedance tracker's prediction (mm) of ``sig`` given datasheet Bl ``bl`` (cached like training's)."""
    import dataclasses

    from edgesense.speaker.pipeline import tracked_prediction

    profile = sig.profile
    if bl != sig.speaker.bl:
        profile = dataclasses.replace(profile, speaker=dataclasses.replace(sig.speaker, bl=bl))
    return tracked_prediction(sig.v, sig.i, profile)


def load_streams(path, split: str | None, limit: int | None = None):
    """Recordings joined into their continuous streams, with the sample ranges of ``split`` to score.

    Clips that name a ``stream`` and ``clip_index`` in their metadata (``edgesense simulate speaker``)
    are consecutive pieces of one simulation: every method then runs causally over the whole stream,
    as on a device, and only the requested split's clips are scored. Other recordings are streams of
    their own. Returns (signals, segments) with ``segments[k]`` a list of (start, end) samples.
    """
    import numpy as np

    from edgesense.speaker.pipeline import SpeakerSignal, load_signals

    every = [s for s in load_signals(path) if s.x is not None]
    groups: dict[str, list] = {}
    for s in every:
        key = s.metadata.get("stream") if "clip_index" in s.metadata else None
        groups.setdefault(str(key) if key is not None else f"rec:{s.name}", []).append(s)
    signals, segments = [], []
    for key, clips in groups.items():
        clips.sort(key=lambda c: c.metadata.get("clip_index", 0))
        spans, pos = [], 0
        for c in clips:
            if split is None or (_entry_split(path, c) or c.metadata.get("split")) == split:
                spans.append((pos, pos + len(c.x)))
            pos += len(c.x)
        if not spans:
            continue
        first = clips[0]
        meta = dict(first.metadata)
        meta.pop("clip_index", None)
        joined = SpeakerSignal(key, np.concatenate([c.v for c in clips]), np.concatenate([c.i for c in clips]),
                               np.concatenate([c.x for c in clips]), first.profile, meta)
        signals.append(joined)
        segments.append(spans)
        if limit is not None and len(signals) >= limit:
            break
    return signals, segments


_SPLITS: dict = {}


def _entry_split(path, sig) -> str | None:
    """The dataset index's split of a recording (clips of random speakers carry no split in metadata)."""
    from edgesense.recording import Dataset

    key = str(path)
    if key not in _SPLITS:
        try:
            _SPLITS[key] = {e.path: e.split for e in Dataset.open(path).entries}
        except Exception:  # a single recording file: no index
            _SPLITS[key] = {}
    return _SPLITS[key].get(sig.name)


def _row_names(models) -> list[str]:
    """One table row name per model file: its stem, or its file name where two stems clash (``hybrid_int8.onnx``
    beside ``hybrid_int8.tflite``), or its path where those clash too."""
    paths = [Path(m) for m in models]
    stems = [p.stem for p in paths]
    names = [p.stem if stems.count(p.stem) == 1 else p.name for p in paths]
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, paths)]


def evaluate_excursion(signals, models, bl_error: float = 0.0, baselines: bool = True, adapt: bool = False,
                       adapt_mode: str = "means", adapt_batches: int = 16, skip_ms: float = 0.0,
                       plot: str | None = None, segments=None, calibrations: dict | None = None,
                       datasheet_prior: bool = False) -> dict:
    """Predict every signal with every method; figures per scenario and overall, plus the guard log.

    ``calibrations`` (speaker profile name -> LargeSignalParams) adds the calibrated large-signal row;
    ``datasheet_prior`` the large-signal row from the datasheet and the family prior shapes.

    ``segments[k]``: the (start, end) sample ranges of signal k to score (default: all of it). The
    first ``skip_ms`` of every signal are never scored (every method starts from rest there).
    """
    import numpy as np

    from edgesense.progress import progress
    from edgesense.runtime import load_model
    from edgesense.speaker.metrics import combined_metrics
    from edgesense.speaker.streaming import ExcursionStreamer, predict_signal

    if calibrations is not None:
        from edgesense.errors import EdgesenseError

        missing = sorted({s.profile.name for s in signals} - set(calibrations))
        if missing:
            raise EdgesenseError(f"no large-signal calibration for speaker(s) {', '.join(missing)}")
    loaded = {name: load_model(m, threads=1) for name, m in zip(_row_names(models), models)}
    preds: dict[str, list] = {"zero": []}
    # INT8 models: per signal, masks of output samples at the rail and track-input samples at the rail
    rails: dict[str, list] = {}
    rail_values: dict[str, tuple[float, float]] = {}
    adapt_log = []
    scen = []
    for sig in progress(signals, desc="eval excursion", unit="rec"):
        bl = sig.speaker.bl * (1 + bl_error)
        scen.append(str(sig.metadata.get("scenario", "all")))
        preds["zero"].append(np.zeros_like(sig.x))
        track = None
        if baselines:
            for name, p in _baselines(sig, bl).items():
                preds.setdefault(name, []).append(p)
                if name == "impedance tracking":
                    track = p
        if calibrations is not None:
            preds.setdefault(LARGE_SIGNAL, []).append(
                np.asarray(_large_signal(sig, bl, calibrations[sig.profile.name]), np.float32))
        if datasheet_prior:
            preds.setdefault(DATASHEET_PRIOR, []).append(np.asarray(_datasheet_prior(sig, bl), np.float32))
        for name, model in loaded.items():
            streamer = ExcursionStreamer(model, bl)
            if streamer.spec.needs_tracker and track is None:
                track = _track(sig, bl)
            pred = predict_signal(streamer, sig.v, sig.i, bl, track)
            preds.setdefault(name, []).append(pred)
            if streamer.rail_mm is not None:
                lo, hi = streamer.rail_mm
                rail_values[name] = (lo * bl, hi * bl)        # x·Bl (mm·N/A): the same for every speaker
                omask = streamer.saturated(pred)
                tmask = streamer.track_saturated(track) if streamer.spec.needs_tracker else None
                rails.setdefault(name, []).append((omask, tmask, _near(omask, tmask, sig.fs)))
    if adapt:
        from edgesense.nn.train_excursion import adapt_model, load_trained, predict, prepare_inputs

        by_speaker: dict[str, list[int]] = {}
        for k, sig in enumerate(signals):
            by_speaker.setdefault(sig.profile.name, []).append(k)
        from edgesense.speaker.adapt import consistency_error

        for name, model in loaded.items():
            raw_key = f"{name} + BN re-est ({adapt_mode}), unguarded"
            key = f"{name} + BN re-est ({adapt_mode}) + guard"
            preds[raw_key] = [None] * len(signals)
            preds[key] = [None] * len(signals)
            for spk, idx in by_speaker.items():
                net, spec = load_trained(Path(model.path).with_suffix(".pt"))
                group = [signals[k] for k in idx]
                bl = group[0].speaker.bl * (1 + bl_error)
                res = adapt_model(net, spec, group, mode=adapt_mode, bl=bl, num_batches=adapt_batches, guard=False)
                tracks = [_track(s, bl) for s in group]
                for k in idx:
                    s = signals[k]
                    preds[raw_key][k] = predict(net, spec, prepare_inputs(spec, s, bl), bl)[:len(s.x)]
                # the label-free guard (as in `edgesense adapt`): keep the adaptation only if the network
                # moved closer to the impedance-tracked physics model on the same unlabeled data
                before = float(np.mean([consistency_error(_fit(preds[name][k], len(signals[k].x)), t)
                                        for k, t in zip(idx, tracks)]))
                after = float(np.mean([consistency_error(preds[raw_key][k], t) for k, t in zip(idx, tracks)]))
                accepted = after <= before
                for k in idx:
                    preds[key][k] = preds[raw_key][k] if accepted else preds[name][k]
                adapt_log.append({"model": name, "speaker": spk, "mode": adapt_mode, "layers": res.layers,
                                  "batches": res.batches, "guard_before": before, "guard_after": after,
                                  "accepted": accepted})
    fs = signals[0].fs
    skip = int(round(skip_ms * fs / 1000))
    if segments is None:
        segments = [[(0, len(s.x))] for s in signals]
    if skip and any(len(s.x) <= skip for s in signals):
        from edgesense.errors import EdgesenseError

        raise EdgesenseError(f"a recording is shorter than the {skip_ms:g} ms warm-up; lower --skip-ms")
    groups = sorted(set(scen))
    rows = []
    for method, plist in preds.items():
        for g in groups + (["all"] if len(groups) > 1 else []):
            pairs = []
            # scored samples, output at rail, track input at rail, samples beyond 0.1 mm, those near a rail
            at_rail = [0, 0, 0, 0, 0]
            for k, sc in enumerate(scen):
                if g != "all" and sc != g:
                    continue
                p = _fit(plist[k], len(signals[k].x))
                masks = rails[method][k] if method in rails else None
                for a, b in segments[k]:
                    a = max(a, skip)
                    if b > a:
                        pairs.append((signals[k].x[a:b], p[a:b]))
                        if masks is not None:
                            at_rail[0] += b - a
                            at_rail[1] += int(np.count_nonzero(masks[0][a:b]))
                            if masks[1] is not None:
                                at_rail[2] += int(np.count_nonzero(masks[1][a:b]))
                            bad = np.abs(p[a:b] - signals[k].x[a:b]) >= 0.1
                            at_rail[3] += int(np.count_nonzero(bad))
                            at_rail[4] += int(np.count_nonzero(bad & masks[2][a:b]))
            row = {"method": method, "scenario": g} | combined_metrics(pairs, fs).to_dict()
            if method in rails:
                n_scored = max(at_rail[0], 1)
                row["output_rail_share"] = at_rail[1] / n_scored
                row["track_rail_share"] = at_rail[2] / n_scored if rails[method][0][1] is not None else None
                row["beyond_0_1_near_rail_share"] = at_rail[4] / at_rail[3] if at_rail[3] else None
            rows.append(row)
    saturation, warnings = [], []
    for method in rails:
        top = [r for r in rows if r["method"] == method][-1]      # the "all" row (or the only scenario)
        w = rail_warning(method, top["output_rail_share"], top["track_rail_share"])
        saturation.append({"model": method, "output_rail_share": top["output_rail_share"],
                           "track_rail_share": top["track_rail_share"],
                           "beyond_0_1_near_rail_share": top["beyond_0_1_near_rail_share"],
                           "output_rail_x_bl": list(rail_values[method]), "warning": w})
        if w:
            warnings.append(w)
    report = {"streams": len(signals), "scored_segments": sum(len(g) for g in segments),
              "scored_seconds": sum(b - max(a, skip) for g in segments for a, b in g) / fs, "speakers": sorted({s.profile.name for s in signals}),
              "bl_error": bl_error, "skip_ms": skip_ms, "rows": rows, "adaptation": adapt_log,
              "saturation": saturation, "warnings": warnings}
    if plot:
        _plot(plot, signals, preds)
        report["plot"] = plot
    return report


def _near(out_mask, track_mask, fs: float, ms: float = 1.0):
    """Samples within ``ms`` of an output sample or track-input sample at the int8 rail."""
    import numpy as np
    from scipy.ndimage import maximum_filter1d

    m = out_mask if track_mask is None else out_mask | track_mask[:len(out_mask)]
    w = int(round(ms * fs / 1000))
    return maximum_filter1d(m.view(np.uint8), size=2 * w + 1, mode="constant").view(bool)


def _fit(p, n: int):
    import numpy as np

    p = np.asarray(p, np.float32)[:n]
    return np.concatenate([p, np.zeros(n - len(p), np.float32)]) if len(p) < n else p


def format_table(report: dict) -> str:
    head = (f"{'method':<34} {'scenario':<9} {'NRMSE%':>7} {'RMSE um':>8} {'peak err mm':>11} "
            f"{'loud<0.02':>9} {'<0.1mm':>8} {'offset<0.01':>11}")
    lines = [f"{report['streams']} streams ({report['scored_segments']} scored clips, {report['scored_seconds']:.0f} s), "
             f"{len(report['speakers'])} speakers, Bl error {report['bl_error']:+.0%}, "
             f"first {report['skip_ms']:g} ms of each recording skipped",
             head, "-" * len(head)]
    for r in report["rows"]:
        lines.append(f"{r['method']:<34} {r['scenario']:<9} {r['nrmse'] * 100:7.2f} {r['rmse_mm'] * 1000:8.1f} "
                     f"{r['peak_error_mm']:11.4f} {r['loud_within_0_02'] * 100:8.2f}% {r['within_0_1'] * 100:7.3f}% "
                     f"{r['offset_within_0_01'] * 100:10.2f}%")
    for s in report.get("saturation", []):
        track = "" if s["track_rail_share"] is None else f", track input at rail {s['track_rail_share']:.3%}"
        lo, hi = s["output_rail_x_bl"]
        near = s.get("beyond_0_1_near_rail_share")
        near = "" if near is None else f"; {near:.1%} of its samples beyond 0.1 mm lie within 1 ms of a rail"
        lines.append(f"int8 rails {s['model']}: output at rail {s['output_rail_share']:.3%} of scored samples "
                     f"(rail x*Bl {lo:+.3f}/{hi:+.3f} mm*N/A){track}{near}")
    for w in report.get("warnings", []):
        lines.append(f"WARNING: {w}")
    for a in report["adaptation"]:
        lines.append(f"adapt {a['model']} on {a['speaker']}: {'accepted' if a['accepted'] else 'refused'} "
                     f"(guard {a['guard_before']:.4f} -> {a['guard_after']:.4f})")
    return "\n".join(lines)


def _plot(path: str, signals, preds: dict) -> None:
    """Trace of the loudest 20 ms of the first recording per method, and error histograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sig = signals[0]
    fs = sig.fs
    c = int(np.argmax(np.abs(sig.x)))
    a, b = max(0, c - int(0.01 * fs)), min(len(sig.x), c + int(0.01 * fs))
    t = np.arange(a, b) / fs * 1e3
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 8))
    ax1.plot(t, sig.x[a:b], "k", lw=2, label="true x")
    for name, plist in preds.items():
        if name != "zero":
            ax1.plot(t, _fit(plist[0], len(sig.x))[a:b], lw=1, label=name)
    ax1.set_xlabel("time (ms)")
    ax1.set_ylabel("excursion (mm)")
    ax1.set_title(sig.name)
    ax1.legend(fontsize=7)
    for name, plist in preds.items():
        if name == "zero":
            continue
        err = np.concatenate([_fit(p, len(s.x)) - s.x for p, s in zip(plist, signals)])
        ax2.hist(err * 1000, bins=200, range=(-60, 60), histtype="step", log=True, label=name)
    ax2.set_xlabel("error (um)")
    ax2.set_ylabel("samples")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
