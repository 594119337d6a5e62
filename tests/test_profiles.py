import json

import numpy as np
import pytest

from edgesense.errors import ProfileError
from edgesense.profiles import (RadarCIRProfile, RDIProfile, SpeakerIVProfile, builtin_profiles, load_profile,
                                profile_from_dict)


def test_ad60_matches_the_specified_geometry():
    p = load_profile("ad60")
    assert isinstance(p, RadarCIRProfile)
    assert p.carrier_hz == 60.48e9 and p.sample_rate_hz == 2.64e9 and p.bandwidth_hz == 1.76e9
    assert p.payload_shape == (32, 32) and p.payload_dtype == np.complex64
    assert p.range_bin_m == pytest.approx(0.0568, abs=1e-4)
    assert p.frame_rate_hz == pytest.approx(40.0)
    assert p.pulses_per_frame * p.pulse_interval_s <= p.frame_period_s
    # unambiguous speed lambda/(4 PRI) must cover a fast swipe (~2 m/s)
    assert p.max_velocity_mps > 4.0


@pytest.mark.parametrize("name", sorted(builtin_profiles()))
def test_every_builtin_profile_round_trips_through_json(name):
    p = load_profile(name)
    again = profile_from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p


def test_profiles_are_data_fmcw_and_multichannel_need_no_code(tmp_path):
    fmcw = {"kind": "radar_cir", "name": "bgt60-like", "waveform": "fmcw", "carrier_hz": 60.5e9,
            "sample_rate_hz": 2e6, "bandwidth_hz": 4e9, "num_taps": 64, "pulses_per_frame": 32,
            "pulse_interval_s": 300e-6, "frame_period_s": 0.03, "num_rx": 3, "chirp_slope_hz_per_s": 4e9 / 32e-6}  # 64 samples at 2 MHz span the 4 GHz ramp
    path = tmp_path / "bgt.json"
    path.write_text(json.dumps(fmcw))
    p = load_profile(path)
    assert p.payload_shape == (3, 32, 64)
    assert p.range_bin_m == pytest.approx(0.0375, rel=1e-3)  # c / (2 B)
    rdi = profile_from_dict({"kind": "rdi", "name": "soli", "range_bins": 32, "doppler_bins": 32, "channels": 4,
                             "frame_rate": 40})
    assert isinstance(rdi, RDIProfile) and rdi.payload_shape == (4, 32, 32)


@pytest.mark.parametrize("bad, match", [
    ({"kind": "radar_cir", "name": "x", "waveform": "cw"}, "waveform"),
    ({"kind": "radar_cir", "name": "x", "waveform": "fmcw"}, "chirp_slope"),
    ({"kind": "radar_cir", "name": "x", "num_taps": 0}, "num_taps"),
    ({"kind": "radar_cir", "name": "x", "pulses_per_frame": 200}, "do not fit"),
    ({"kind": "lidar", "name": "x"}, "unknown profile kind"),
    ({"kind": "rdi", "name": "x", "colour": 3}, "unknown fields"),
    ({"kind": "speaker_iv", "name": "x", "channels": ["v", "q"]}, "channels"),
    ({"kind": "speaker_iv", "name": "x", "speaker": {"bl": -1}}, "bl"),
])
def test_bad_profiles_are_refused_with_a_reason(bad, match):
    with pytest.raises(ProfileError, match=match):
        profile_from_dict(bad)


def test_unknown_profile_name_lists_the_builtins():
    with pytest.raises(ProfileError, match="ad60"):
        load_profile("no-such-profile")


def test_speaker_profile_carries_datasheet_parameters():
    p = load_profile("speaker-ref")
    assert isinstance(p, SpeakerIVProfile)
    assert p.speaker.bl == 1.0
    assert p.speaker.resonance_hz == pytest.approx(800, rel=0.02)
    assert p.payload_shape == (48, 2) and p.frame_rate_hz == 1000


def test_check_payload_rejects_wrong_shape_and_dtype():
    p = load_profile("ad60")
    p.check_payload(np.zeros((32, 32), np.complex64))
    with pytest.raises(ProfileError):
        p.check_payload(np.zeros((32, 31), np.complex64))
    with pytest.raises(ProfileError):
        p.check_payload(np.zeros((32, 32), np.complex128))
