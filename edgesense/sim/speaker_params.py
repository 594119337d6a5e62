"""Large-signal micro-speaker parameter sets: named speakers, random families, scenarios.

All values are SI (ohm, H, N/A, kg, N/m, kg/s, m, K, W). Nonlinear shapes are polynomials in the
normalised excursion xi = x / Xmax (Klippel-style, see ``docs/speaker-simulator.md``):

* ``Bl(x) = Bl0 * (1 + b1*xi + b2*xi^2 + b3*xi^3 + b4*xi^4)`` (xi clipped to +-XI_CLIP),
* ``Kms(x) = K0 * (1 + k1*xi + k2*xi^2)`` (restoring force ``Kms(x) * x``),
* ``Le(x) = Le0 * (1 + l1*xi + l2*xi^2)`` (xi clipped to +-XI_CLIP).

Parameter sources (see /work/shared/reference/speaker.md):

* reference speaker: public smart-amp defaults decoded from Qualcomm ``sp_vi.h`` (Re 8 ohm, Le 40 uH,
  L2 2 uH, R2 1 ohm, Bl 1 N/A, Mms 0.162 g, Rms 0.30 kg/s, Kms 4.06 N/mm), matching the built-in
  profile ``speaker-ref``;
* random family ranges: reference notes section 1.6B (Re 4-8 ohm, Le 20-100 uH, Bl 0.5-1.5 N/A,
  Mms 0.05-0.2 g, fres 600-1000 Hz, Qms 1-5, Xmax 0.3-0.6 mm);
* nonlinear shapes: section 1.6C (b2 -0.2..-0.4, |b1| <= 0.1, k2 +0.3..+1.0, |k1| <= 0.2,
  |l1| 0.1..0.3) -- an assumption, no public micro-speaker coefficient table exists;
* thermal network: AsahiLinux/speakersafetyd ``conf/apple/j313.conf`` (coil 29 K/W, 2.4 s;
  magnet 36 K/W, 80 s) -- laptop micro-speakers, used as the order of magnitude;
* copper temperature coefficient 0.00393 /K; NdFeB reversible remanence coefficient about
  -0.12 %/K (magnet heating lowers Bl).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from edgesense.errors import ProfileError
from edgesense.profiles import SpeakerParams

__all__ = [
    "XI_CLIP", "ALPHA_CU", "ALPHA_BL_MAGNET", "T_REF_C",
    "Nonlinearity", "Thermal", "SpeakerModel", "Scenario", "SCENARIOS",
    "named_speaker", "NAMED_SPEAKERS", "random_speaker", "parse_speaker_spec", "max_drive_volts",
]

XI_CLIP = 1.6            # Bl(x) and Le(x) are held flat beyond 1.6 * Xmax
ALPHA_CU = 0.00393       # copper resistance temperature coefficient (1/K)
ALPHA_BL_MAGNET = -0.0012  # NdFeB reversible remanence coefficient (1/K): Bl(Tm) = Bl0 * (1 + a * dTm)
T_REF_C = 25.0           # temperature at which the datasheet parameters hold (deg C)


@dataclass(frozen=True)
class Nonlinearity:
    """Normalised polynomial coefficients of Bl(xi), Kms(xi), Le(xi); zeros give a linear speaker."""

    b1: float = 0.0
    b2: float = 0.0
    b3: float = 0.0
    b4: float = 0.0
    k1: float = 0.0
    k2: float = 0.0
    l1: float = 0.0
    l2: float = 0.0

    def bl_shape(self, xi: np.ndarray) -> np.ndarray:
        xi = np.clip(xi, -XI_CLIP, XI_CLIP)
        return 1.0 + xi * (self.b1 + xi * (self.b2 + xi * (self.b3 + xi * self.b4)))

    def le_shape(self, xi: np.ndarray) -> np.ndarray:
        xi = np.clip(xi, -XI_CLIP, XI_CLIP)
        return 1.0 + xi * (self.l1 + xi * self.l2)

    def k_shape(self, xi: np.ndarray) -> np.ndarray:
        return 1.0 + xi * (self.k1 + xi * self.k2)


@dataclass(frozen=True)
class Thermal:
    """Two-node (voice coil, magnet) thermal network: R in K/W, C in J/K."""

    r_coil: float = 29.0
    c_coil: float = 2.4 / 29.0
    r_magnet: float = 36.0
    c_magnet: float = 80.0 / 36.0


@dataclass(frozen=True)
class SpeakerModel:
    """True large-signal parameters of one simulated speaker (small-signal values at 25 deg C).

    ``datasheet`` is what the speaker's profile publishes: equal to the true values for calibrated
    (named) speakers, within tolerance of them for randomised ones.
    """

    name: str
    re: float
    le: float
    l2: float
    r2: float
    bl: float
    mms: float
    kms: float
    rms: float
    xmax: float
    nonlinearity: Nonlinearity = field(default_factory=Nonlinearity)
    thermal: Thermal = field(default_factory=Thermal)
    datasheet: SpeakerParams | None = None

    def __post_init__(self) -> None:
        for key in ("re", "le", "r2", "bl", "mms", "kms", "rms", "xmax"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise ProfileError(f"speaker {self.name!r}: {key} must be positive, got {value!r}")
        if not (math.isfinite(self.l2) and self.l2 >= 0):
            raise ProfileError(f"speaker {self.name!r}: l2 must be >= 0, got {self.l2!r}")

    @property
    def resonance_hz(self) -> float:
        return math.sqrt(self.kms / self.mms) / (2 * math.pi)

    @property
    def qms(self) -> float:
        return math.sqrt(self.kms * self.mms) / self.rms

    def true_params(self) -> SpeakerParams:
        """The true small-signal parameters as :class:`SpeakerParams`."""
        return SpeakerParams(bl=self.bl, re=self.re, le=self.le, l2=self.l2, r2=self.r2, mms=self.mms,
                             kms=self.kms, rms=self.rms, xmax=self.xmax)

    def published(self) -> SpeakerParams:
        """The datasheet parameters a profile carries (the true ones when no datasheet is set)."""
        return self.datasheet if self.datasheet is not None else self.true_params()

    def replace(self, **changes) -> "SpeakerModel":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["resonance_hz"] = self.resonance_hz
        out["qms"] = self.qms
        return out


@dataclass(frozen=True)
class Scenario:
    """A deployment condition: ambient temperature, mechanical changes, program loudness."""

    name: str
    ambient_c: float = 25.0
    kms_factor: float = 1.0
    rms_factor: float = 1.0
    loud: bool = False           # sustained loud, compressed program material without silence
    description: str = ""

    def apply(self, speaker: SpeakerModel) -> SpeakerModel:
        """The speaker as it behaves in this scenario (the datasheet is left unchanged)."""
        if self.kms_factor == 1.0 and self.rms_factor == 1.0:
            return speaker
        return speaker.replace(kms=speaker.kms * self.kms_factor, rms=speaker.rms * self.rms_factor,
                               datasheet=speaker.published())


SCENARIOS: dict[str, Scenario] = {
    "nominal": Scenario("nominal", description="25 C ambient, mixed program material with pauses"),
    "hot": Scenario("hot", ambient_c=45.0, loud=True,
                    description="45 C ambient, sustained loud compressed material: the coil heats"),
    # A back-volume leak removes part of the enclosed-air spring (which dominates a micro-speaker's
    # Kms in a small box) and adds flow losses through the leak. Factors are an assumption.
    "leak": Scenario("leak", kms_factor=0.7, rms_factor=1.6,
                     description="back-volume leak: Kms x0.7 (less air spring), Rms x1.6 (leak losses)"),
}


def _ref() -> SpeakerModel:
    return SpeakerModel(name="ref", re=8.0, le=40e-6, l2=2e-6, r2=1.0, bl=1.0, mms=0.162e-3, kms=4060.0,
                        rms=0.30, xmax=0.4e-3,
                        nonlinearity=Nonlinearity(b1=-0.05, b2=-0.25, b4=0.02, k1=0.10, k2=0.5, l1=-0.15,
                                                  l2=-0.05))


def _lite4() -> SpeakerModel:
    # A second, distinct design (assumption): 4-ohm coil, lighter cone, higher resonance, stronger
    # and oppositely signed asymmetry, larger Xmax.
    mms = 0.09e-3
    f0 = 900.0
    kms = mms * (2 * math.pi * f0) ** 2
    rms = math.sqrt(kms * mms) / 2.0
    return SpeakerModel(name="lite4", re=4.2, le=70e-6, l2=6e-6, r2=2.0, bl=0.8, mms=mms, kms=kms, rms=rms,
                        xmax=0.5e-3,
                        nonlinearity=Nonlinearity(b1=0.08, b2=-0.32, b3=-0.02, b4=0.03, k1=-0.15, k2=0.8,
                                                  l1=0.22, l2=-0.06),
                        thermal=Thermal(r_coil=35.0, c_coil=1.8 / 35.0, r_magnet=40.0, c_magnet=60.0 / 40.0))


NAMED_SPEAKERS = {"ref": _ref, "lite4": _lite4}


def named_speaker(name: str) -> SpeakerModel:
    """A calibrated named speaker (``ref`` or ``lite4``)."""
    try:
        return NAMED_SPEAKERS[name]()
    except KeyError:
        raise ProfileError(f"unknown speaker {name!r}; named speakers: {', '.join(NAMED_SPEAKERS)}, "
                           f"or random:N") from None


def max_drive_volts(re_ohm: float, i_range: float = 1.5) -> float:
    """Peak drive for a coil of ``re_ohm``: 8 V, or less so V/Re stays under 90 % of the current range."""
    return float(min(8.0, 0.9 * i_range * re_ohm))


def _max_x_per_volt(sp: SpeakerModel) -> float:
    """Peak of |X/U| (m/V) of the linear LR-2 model between 20 Hz and 5 kHz."""
    w = 2 * np.pi * np.geomspace(20.0, 5000.0, 400)
    s = 1j * w
    ze = sp.re + s * sp.le + (s * sp.l2 * sp.r2 / (sp.r2 + s * sp.l2) if sp.l2 > 0 else 0.0)
    zm = sp.mms * s * s + sp.rms * s + sp.kms
    return float(np.max(np.abs(sp.bl / (ze * zm + sp.bl ** 2 * s))))


def random_speaker(rng: np.random.Generator, name: str, datasheet_tolerance: float = 0.1) -> SpeakerModel:
    """Draw one speaker from the randomised family (ranges in the module docstring).

    Designs are redrawn until the maximum drive (:func:`max_drive_volts`) at the worst frequency
    gives 0.9-1.8 x Xmax, as a
    smart-amp tuning would arrange (a speaker that never nears Xmax, or is driven far past it, is
    not a plausible phone design). Nonlinear shapes get random asymmetry signs. The datasheet the
    profile publishes differs from the truth by up to ``datasheet_tolerance`` (Bl, Kms, Rms) and half
    of it (Re, Le, Mms).
    """
    for _ in range(10_000):
        re = rng.uniform(4.0, 8.0)
        le = rng.uniform(20e-6, 100e-6)
        l2 = le * rng.uniform(0.03, 0.12)
        r2 = rng.uniform(0.5, 3.0)
        bl = rng.uniform(0.5, 1.5)
        mms = rng.uniform(0.05e-3, 0.2e-3)
        f0 = rng.uniform(600.0, 1000.0)
        qms = rng.uniform(1.0, 5.0)
        xmax = rng.uniform(0.3e-3, 0.6e-3)
        kms = mms * (2 * math.pi * f0) ** 2
        rms = math.sqrt(kms * mms) / qms
        trial = SpeakerModel(name=name, re=re, le=le, l2=l2, r2=r2, bl=bl, mms=mms, kms=kms, rms=rms, xmax=xmax)
        ratio = max_drive_volts(re) * _max_x_per_volt(trial) / xmax
        if 0.9 <= ratio <= 1.8:
            break
    else:  # pragma: no cover - the acceptance region is wide
        raise RuntimeError("could not draw a plausible speaker")
    sign = lambda: rng.choice((-1.0, 1.0))  # noqa: E731
    while True:
        nl = Nonlinearity(b1=sign() * rng.uniform(0.0, 0.1), b2=-rng.uniform(0.2, 0.4),
                          b3=sign() * rng.uniform(0.0, 0.03), b4=rng.uniform(0.0, 0.05),
                          k1=sign() * rng.uniform(0.05, 0.2), k2=rng.uniform(0.3, 1.0),
                          l1=sign() * rng.uniform(0.1, 0.3), l2=-rng.uniform(0.0, 0.1))
        grid = np.linspace(-XI_CLIP, XI_CLIP, 65)
        if nl.bl_shape(grid).min() >= 0.3 and nl.le_shape(grid).min() >= 0.3:
            break
    r_coil = rng.uniform(25.0, 45.0)
    r_magnet = rng.uniform(30.0, 50.0)
    thermal = Thermal(r_coil=r_coil, c_coil=rng.uniform(1.0, 4.0) / r_coil,
                      r_magnet=r_magnet, c_magnet=rng.uniform(50.0, 120.0) / r_magnet)
    tol = datasheet_tolerance
    jitter = lambda t: 1.0 + rng.uniform(-t, t)  # noqa: E731
    datasheet = SpeakerParams(bl=bl * jitter(tol), re=re * jitter(tol / 2), le=le * jitter(tol / 2), l2=l2, r2=r2,
                              mms=mms * jitter(tol / 2), kms=kms * jitter(tol), rms=rms * jitter(tol), xmax=xmax)
    return trial.replace(nonlinearity=nl, thermal=thermal, datasheet=datasheet)


def parse_speaker_spec(spec: str, seed: int) -> list[SpeakerModel]:
    """``"ref,lite4,random:N"`` -> speakers. Random speakers are named ``rand-<seed>-<k>``."""
    out: list[SpeakerModel] = []
    rng = np.random.default_rng([seed, 5150])
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part.startswith("random:"):
            try:
                count = int(part.split(":", 1)[1])
            except ValueError:
                raise ProfileError(f"bad speaker spec {part!r}: expected random:N") from None
            if count < 1:
                raise ProfileError(f"bad speaker spec {part!r}: N must be >= 1")
            out.extend(random_speaker(rng, f"rand-{seed}-{k:03d}") for k in range(count))
        else:
            out.append(named_speaker(part))
    if not out:
        raise ProfileError("no speakers given")
    return out
