"""``edgesense stream``: open any source and show live statistics (optionally the live excursion)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from edgesense.cli.common import add_json_flag, positive_float, print_json
from edgesense.sources import open_source

COMMAND = ("stream",)
HELP = "open a source (simulator, recording, serial device) and show live frame statistics"
EPILOG = """\
examples:
  edgesense stream --source sim://ad60                       radar frames, gaps, rate
  edgesense stream --source sim://speaker-ref --excursion models/hybrid/hybrid_int8.tflite
                                                             live cone excursion of the simulated speaker
  edgesense stream --source sim://speaker-ref --excursion models/speaker_calibration/ref.json
                                                             the same with its calibrated large-signal model
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--source", default="sim://ad60",
                        help="source URL: sim://PROFILE[?drop=0.05], replay://FILE.esr[?speed=2], FILE.esr, "
                             "or a serial port / loop:// / socket://HOST:PORT (default: %(default)s)")
    parser.add_argument("--profile", help="sensor profile for serial devices that do not announce one")
    parser.add_argument("--seconds", type=positive_float, default=5.0, help="stop after this long (default: %(default)s)")
    parser.add_argument("--excursion", metavar="MODEL",
                        help="speaker I/V sources: run the excursion pipeline live with this model (.onnx / "
                             ".tflite network, or a large-signal calibration .json) and show the peak "
                             "excursion against the datasheet Xmax, INT8 output clipping and the CPU per block")
    add_json_flag(parser)


class _ExcursionMonitor:
    """The live excursion of a speaker stream: peak |x| per report and overall, clipped samples, CPU per block."""

    def __init__(self, profile, model: str) -> None:
        from edgesense.errors import EdgesenseError
        from edgesense.speaker.pipeline import ExcursionPipeline

        if not Path(model).is_file():
            raise EdgesenseError(f"--excursion: {model} not found")
        self.pipe = ExcursionPipeline(profile, model)
        xmax = profile.speaker.xmax
        self.xmax_mm = None if xmax is None else xmax * 1e3
        streamer = self.pipe.streamer
        self._saturated = None if streamer is None or streamer.rail_mm is None else streamer.saturated
        self.cpu_us: list[float] = []
        self.samples = self.clipped = 0
        self.peak = self.window_peak = 0.0

    def process(self, frame) -> None:
        t0 = time.thread_time()
        x = self.pipe.process(frame).x
        self.cpu_us.append((time.thread_time() - t0) * 1e6)
        peak = float(abs(x).max()) if len(x) else 0.0
        self.window_peak = max(self.window_peak, peak)
        self.peak = max(self.peak, peak)
        self.samples += len(x)
        if self._saturated is not None:
            self.clipped += int(self._saturated(x).sum())

    def line(self) -> str:
        """One report line (the peak since the last one)."""
        peak, self.window_peak = self.window_peak, 0.0
        share = f" ({100 * peak / self.xmax_mm:.0f} % of Xmax)" if self.xmax_mm else ""
        return f"excursion peak {peak:.3f} mm{share}" + (f", clipped {self.clipped}" if self._saturated else "")

    def summary(self, frame_period_s: float) -> dict:
        import numpy as np

        cpu = np.asarray(self.cpu_us) if self.cpu_us else np.zeros(1)
        out = {"excursion_peak_mm": round(self.peak, 4), "xmax_mm": self.xmax_mm,
               "peak_share_of_xmax": None if not self.xmax_mm else round(self.peak / self.xmax_mm, 4),
               "samples": self.samples, "resets": self.pipe.resets,
               "cpu_us_p50": round(float(np.percentile(cpu, 50)), 1),
               "cpu_us_p99": round(float(np.percentile(cpu, 99)), 1),
               "real_time_factor": round(float(cpu.mean()) * 1e-6 / frame_period_s, 4)}
        if self._saturated is not None:
            out["clipped_share"] = round(self.clipped / max(self.samples, 1), 6)
        return out


def run(args: argparse.Namespace) -> int:
    start = time.monotonic()
    last_print = start
    with open_source(args.source, profile=args.profile) as source:
        monitor = None if not args.excursion else _ExcursionMonitor(source.profile, args.excursion)
        for frame in source:
            if monitor is not None:
                monitor.process(frame)
            now = time.monotonic()
            if not args.json and now - last_print >= 1.0:
                last_print = now
                rate = source.stats.frames_received / (now - start)
                extra = "" if monitor is None else ", " + monitor.line()
                print(f"[{now - start:5.1f}s] {source.stats.summary()}, {rate:.1f} frames/s{extra}", flush=True)
            if now - start >= args.seconds:
                break
        elapsed = time.monotonic() - start
        stats = source.stats.to_dict()
        profile = source.profile
    result = {"source": args.source, "profile": profile.name, "seconds": round(elapsed, 3), **stats}
    if monitor is not None:
        result["excursion"] = monitor.summary(1.0 / profile.frame_rate_hz)
    if args.json:
        print_json(result)
    else:
        print(f"{profile.name}: {source.stats.summary()} in {elapsed:.1f} s", file=sys.stdout)
        if monitor is not None:
            e = result["excursion"]
            share = f" = {100 * e['peak_share_of_xmax']:.0f} % of Xmax {e['xmax_mm']:.2f} mm" if e["xmax_mm"] else ""
            clip = (f"; INT8 output clipped on {100 * e['clipped_share']:.2f} % of samples"
                    if "clipped_share" in e else "")
            print(f"excursion: peak {e['excursion_peak_mm']:.3f} mm{share}{clip}; CPU per block p50 "
                  f"{e['cpu_us_p50']:.0f} us, p99 {e['cpu_us_p99']:.0f} us, real-time factor "
                  f"{e['real_time_factor']:.3f}; {e['resets']} resets after gaps")
    return 0
