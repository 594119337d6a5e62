"""Sensor profiles: what a sensor delivers, as typed data.

A profile says what one frame's payload is (dtype and shape), how often frames come, and the
physical facts downstream processing needs (carrier, tap spacing, pulse interval, speaker
parameters). Profiles are plain data: they round-trip through JSON (:meth:`SensorProfile.to_dict`,
:func:`profile_from_dict`), every recording stores the profile it was made with, and the built-in
ones live as JSON files in ``edgesense/data/profiles``. A new radar geometry or RDI sensor is a new
JSON file, not new code.

Three kinds exist:

* :class:`RadarCIRProfile` -- raw complex radar frames, one row per pulse (or chirp). ``waveform``
  is ``"pulse_doppler"`` (each row is a channel impulse response: tap *n* is range bin *n*) or
  ``"fmcw"`` (each row is fast-time ADC samples of one chirp; a range FFT makes range bins).
* :class:`RDIProfile` -- sensors that deliver range-Doppler images themselves (C channels of
  D Doppler x R range bins, float32).
* :class:`SpeakerIVProfile` -- blocks of sensed voltage and current (and, in training data,
  laser-measured excursion) of a micro-speaker, with the speaker's datasheet parameters.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgesense.errors import ProfileError

SPEED_OF_LIGHT = 299_792_458.0  # m/s

__all__ = [
    "SensorProfile",
    "RadarCIRProfile",
    "RDIProfile",
    "SpeakerParams",
    "SpeakerIVProfile",
    "profile_from_dict",
    "load_profile",
    "builtin_profiles",
]


@dataclass(frozen=True)
class SensorProfile:
    """Common fields of every sensor profile."""

    name: str
    description: str = ""

    kind: ClassVar[str] = "abstract"

    @property
    def payload_dtype(self) -> np.dtype:
        raise NotImplementedError

    @property
    def payload_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def frame_rate_hz(self) -> float:
        raise NotImplementedError

    @property
    def frame_period_us(self) -> int:
        """Nominal spacing of device timestamps between consecutive frames (µs)."""
        return int(round(1e6 / self.frame_rate_hz))

    def check_payload(self, payload: np.ndarray) -> None:
        """Raise :class:`ProfileError` unless ``payload`` has this profile's dtype and shape."""
        if payload.dtype != self.payload_dtype or tuple(payload.shape) != self.payload_shape:
            raise ProfileError(
                f"profile {self.name!r} expects payload {self.payload_dtype}{list(self.payload_shape)}, "
                f"got {payload.dtype}{list(payload.shape)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with a ``kind`` discriminator; inverse of :func:`profile_from_dict`."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def _validate_positive(self, **values: float | int | None) -> None:
        for key, value in values.items():
            if value is None:
                continue
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ProfileError(f"profile {self.name!r}: {key} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class RadarCIRProfile(SensorProfile):
    """A coherent radar that delivers raw complex frames of ``pulses_per_frame`` x ``num_taps``.

    For ``waveform="pulse_doppler"`` tap *n* sits at range ``first_tap_range_m + n * tap_spacing_m``
    with ``tap_spacing_m = c / (2 * sample_rate_hz)``. For ``waveform="fmcw"`` the taps are fast-time
    ADC samples of one chirp and ``chirp_slope_hz_per_s`` is required; range bin *k* of the range FFT
    sits at ``k * c * sample_rate_hz / (2 * slope * num_taps)``.
    With ``num_rx > 1`` the payload gains a leading receive-channel axis.
    """

    carrier_hz: float = 60.48e9
    waveform: str = "pulse_doppler"
    sample_rate_hz: float = 2.64e9
    bandwidth_hz: float = 1.76e9
    num_taps: int = 32
    first_tap_range_m: float = 0.0
    pulses_per_frame: int = 32
    pulse_interval_s: float = 0.25e-3
    frame_period_s: float = 25e-3
    num_rx: int = 1
    chirp_slope_hz_per_s: float | None = None

    kind: ClassVar[str] = "radar_cir"
    WAVEFORMS: ClassVar[tuple[str, ...]] = ("pulse_doppler", "fmcw")

    def __post_init__(self) -> None:
        if self.waveform not in self.WAVEFORMS:
            raise ProfileError(f"profile {self.name!r}: waveform must be one of {self.WAVEFORMS}, got {self.waveform!r}")
        self._validate_positive(
            carrier_hz=self.carrier_hz, sample_rate_hz=self.sample_rate_hz, bandwidth_hz=self.bandwidth_hz,
            num_taps=self.num_taps, pulses_per_frame=self.pulses_per_frame,
            pulse_interval_s=self.pulse_interval_s, frame_period_s=self.frame_period_s, num_rx=self.num_rx,
            chirp_slope_hz_per_s=self.chirp_slope_hz_per_s,
        )
        if self.waveform == "fmcw" and self.chirp_slope_hz_per_s is None:
            raise ProfileError(f"profile {self.name!r}: an fmcw profile needs chirp_slope_hz_per_s")
        if self.pulses_per_frame * self.pulse_interval_s > self.frame_period_s * (1 + 1e-9):
            raise ProfileError(f"profile {self.name!r}: {self.pulses_per_frame} pulses at "
                               f"{self.pulse_interval_s} s do not fit in a {self.frame_period_s} s frame")

    @property
    def payload_dtype(self) -> np.dtype:
        return np.dtype(np.complex64)

    @property
    def payload_shape(self) -> tuple[int, ...]:
        core = (self.pulses_per_frame, self.num_taps)
        return core if self.num_rx == 1 else (self.num_rx, *core)

    @property
    def frame_rate_hz(self) -> float:
        return 1.0 / self.frame_period_s

    @property
    def wavelength_m(self) -> float:
        return SPEED_OF_LIGHT / self.carrier_hz

    @property
    def range_bin_m(self) -> float:
        """Spacing of range bins (taps for pulse-Doppler, FFT bins for FMCW)."""
        if self.waveform == "fmcw":
            assert self.chirp_slope_hz_per_s is not None
            return SPEED_OF_LIGHT * self.sample_rate_hz / (2 * self.chirp_slope_hz_per_s * self.num_taps)
        return SPEED_OF_LIGHT / (2 * self.sample_rate_hz)

    @property
    def range_bins_m(self) -> np.ndarray:
        return self.first_tap_range_m + self.range_bin_m * np.arange(self.num_taps)

    @property
    def max_velocity_mps(self) -> float:
        """Largest unambiguous radial speed, lambda / (4 * PRI)."""
        return self.wavelength_m / (4 * self.pulse_interval_s)

    @property
    def velocity_resolution_mps(self) -> float:
        """Doppler bin width in speed, lambda / (2 * N * PRI)."""
        return self.wavelength_m / (2 * self.pulses_per_frame * self.pulse_interval_s)


@dataclass(frozen=True)
class RDIProfile(SensorProfile):
    """A sensor that delivers range-Doppler images: float32 ``(channels, doppler_bins, range_bins)``."""

    range_bins: int = 32
    doppler_bins: int = 32
    channels: int = 1
    frame_rate: float = 40.0
    range_resolution_m: float | None = None
    velocity_resolution_mps: float | None = None

    kind: ClassVar[str] = "rdi"

    def __post_init__(self) -> None:
        self._validate_positive(range_bins=self.range_bins, doppler_bins=self.doppler_bins,
                                channels=self.channels, frame_rate=self.frame_rate,
                                range_resolution_m=self.range_resolution_m,
                                velocity_resolution_mps=self.velocity_resolution_mps)

    @property
    def payload_dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def payload_shape(self) -> tuple[int, ...]:
        return (self.channels, self.doppler_bins, self.range_bins)

    @property
    def frame_rate_hz(self) -> float:
        return float(self.frame_rate)


@dataclass(frozen=True)
class SpeakerParams:
    """Datasheet or calibration parameters of a micro-speaker, SI units. Only ``bl`` is required.

    ``bl`` force factor (N/A), ``re`` DC resistance (ohm), ``le`` voice-coil inductance (H),
    ``l2``/``r2`` eddy-current (LR-2) branch (H, ohm), ``mms`` moving mass (kg), ``kms`` stiffness
    (N/m), ``rms`` mechanical resistance (kg/s), ``xmax`` excursion limit (m).
    """

    bl: float
    re: float | None = None
    le: float | None = None
    l2: float | None = None
    r2: float | None = None
    mms: float | None = None
    kms: float | None = None
    rms: float | None = None
    xmax: float | None = None

    @property
    def resonance_hz(self) -> float | None:
        if self.kms is None or self.mms is None:
            return None
        return math.sqrt(self.kms / self.mms) / (2 * math.pi)


@dataclass(frozen=True)
class SpeakerIVProfile(SensorProfile):
    """Blocks of ``block_size`` samples of a speaker's sensed signals, float32 ``(block_size, channels)``.

    ``channels`` names the columns: ``v`` terminal voltage (V), ``i`` current (A), and in training
    data ``x`` cone excursion (mm, positive outward).
    """

    sample_rate_hz: float = 48_000.0
    block_size: int = 48
    channels: tuple[str, ...] = ("v", "i")
    speaker: SpeakerParams = field(default_factory=lambda: SpeakerParams(bl=1.0))

    kind: ClassVar[str] = "speaker_iv"
    KNOWN_CHANNELS: ClassVar[tuple[str, ...]] = ("v", "i", "x")

    def __post_init__(self) -> None:
        self._validate_positive(sample_rate_hz=self.sample_rate_hz, block_size=self.block_size,
                                bl=self.speaker.bl)
        object.__setattr__(self, "channels", tuple(self.channels))
        unknown = [c for c in self.channels if c not in self.KNOWN_CHANNELS]
        if unknown or len(set(self.channels)) != len(self.channels) or not self.channels:
            raise ProfileError(f"profile {self.name!r}: channels must be distinct names from "
                               f"{self.KNOWN_CHANNELS}, got {list(self.channels)}")

    @property
    def payload_dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def payload_shape(self) -> tuple[int, ...]:
        return (self.block_size, len(self.channels))

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate_hz / self.block_size

    def channel_index(self, name: str) -> int:
        try:
            return self.channels.index(name)
        except ValueError:
            raise ProfileError(f"profile {self.name!r} has no channel {name!r} (has {list(self.channels)})") from None


_KINDS: dict[str, type[SensorProfile]] = {
    cls.kind: cls for cls in (RadarCIRProfile, RDIProfile, SpeakerIVProfile)
}


def profile_from_dict(data: dict[str, Any]) -> SensorProfile:
    """Build a profile from its :meth:`SensorProfile.to_dict` form, validating every field."""
    if not isinstance(data, dict):
        raise ProfileError(f"a profile must be a JSON object, got {type(data).__name__}")
    data = dict(data)
    kind = data.pop("kind", None)
    cls = _KINDS.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise ProfileError(f"unknown profile kind {kind!r}; known kinds: {sorted(_KINDS)}")
    names = {f.name for f in dataclasses.fields(cls)}
    extra = sorted(set(data) - names)
    if extra:
        raise ProfileError(f"{kind} profile has unknown fields {extra}")
    if "name" not in data:
        raise ProfileError(f"{kind} profile needs a name")
    if cls is SpeakerIVProfile and "speaker" in data:
        speaker = data["speaker"]
        try:
            data["speaker"] = SpeakerParams(**speaker)
        except TypeError as exc:
            raise ProfileError(f"bad speaker parameters in profile {data['name']!r}: {exc}") from None
    if cls is SpeakerIVProfile and "channels" in data:
        data["channels"] = tuple(data["channels"])
    try:
        return cls(**data)
    except TypeError as exc:
        raise ProfileError(f"bad {kind} profile: {exc}") from None


def builtin_profiles() -> dict[str, SensorProfile]:
    """The profiles shipped in ``edgesense/data/profiles``, by name."""
    out: dict[str, SensorProfile] = {}
    folder = resources.files("edgesense") / "data" / "profiles"
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".json"):
            profile = profile_from_dict(json.loads(entry.read_text()))
            out[profile.name] = profile
    return out


def load_profile(name_or_path: str | Path) -> SensorProfile:
    """A built-in profile by name (``"ad60"``), or a profile JSON file by path."""
    text = str(name_or_path)
    builtins = builtin_profiles()
    if text in builtins:
        return builtins[text]
    path = Path(text)
    if path.suffix == ".json" or path.exists():
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ProfileError(f"profile file not found: {path}") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ProfileError(f"cannot read profile {path}: {exc}") from None
        return profile_from_dict(data)
    raise ProfileError(f"unknown profile {text!r}; built-in profiles: {', '.join(sorted(builtins))}")
