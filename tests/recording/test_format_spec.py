"""A third party following datasets/FORMAT.md with struct, zlib, json and numpy writes a valid file."""

import json
import struct
import zlib

import numpy as np

from edgesense.recording import Recording


def third_party_chunk(kind: bytes, meta: dict, arrays: list[tuple[str, np.ndarray]] = ()) -> bytes:
    # Written from the spec alone: no edgesense code is used to build the bytes.
    data = b""
    if arrays:
        meta = dict(meta, arrays=[{"name": n, "dtype": a.dtype.str, "shape": list(a.shape)} for n, a in arrays])
        data = b"".join(np.ascontiguousarray(a).tobytes() for _, a in arrays)
    meta_bytes = json.dumps(meta).encode("utf-8")
    body = kind + struct.pack("<IQ", len(meta_bytes), len(data)) + meta_bytes + data
    return b"ESRC" + body + struct.pack("<I", zlib.crc32(body))


def test_third_party_rdi_recording_is_read_back_exactly(tmp_path):
    n, c, d, r = 12, 2, 16, 24  # an RDI-only sensor of any size and channel count
    profile = {"kind": "rdi", "name": "vendor-x", "description": "", "range_bins": r, "doppler_bins": d,
               "channels": c, "frame_rate": 20.0, "range_resolution_m": 0.04, "velocity_resolution_mps": None}
    rdi = np.random.default_rng(0).random((n, c, d, r), dtype=np.float32)
    seq = (np.arange(n, dtype=np.uint32) + np.uint32(2**32 - 4))  # wraps mid-recording
    blob = b"\x89ESR\r\n\x1a\n"
    blob += third_party_chunk(b"HEAD", {"format": "edgesense-recording", "version": 1, "profile": profile,
                                        "metadata": {"subject": "p1", "device": "vendor-x"}})
    blob += third_party_chunk(b"FRMS", {"first_frame": 0}, [
        ("seq", seq), ("device_time_us", np.arange(n, dtype="<i8") * 50_000),
        ("host_time", np.full(n, np.nan)), ("payload", rdi)])
    blob += third_party_chunk(b"XTRA", {"note": "unknown chunk types are skipped"})
    blob += third_party_chunk(b"LABL", {"clip_label": None, "events": [{"label": "wave", "start": 2, "end": 9}]},
                              [("activity", np.array([0, 0] + [1] * 7 + [0] * 3, dtype="|u1"))])
    blob += third_party_chunk(b"ENDS", {"frames": n})
    path = tmp_path / "vendor.esr"
    path.write_bytes(blob)

    rec = Recording.open(path)
    assert rec.integrity.ok and rec.integrity.unknown_chunks == 1
    assert rec.profile.payload_shape == (c, d, r)
    assert np.array_equal(rec.payloads, rdi)
    assert rec.seq.tolist() == seq.tolist()
    assert rec.labels.events[0].label == "wave" and rec.labels.activity.sum() == 7


def test_third_party_speaker_and_complex_radar_payloads(tmp_path):
    radar = {"kind": "radar_cir", "name": "ad60", "description": "", "carrier_hz": 60.48e9,
             "waveform": "pulse_doppler", "sample_rate_hz": 2.64e9, "bandwidth_hz": 1.76e9, "num_taps": 32,
             "first_tap_range_m": 0.0, "pulses_per_frame": 32, "pulse_interval_s": 0.00025,
             "frame_period_s": 0.025, "num_rx": 1, "chirp_slope_hz_per_s": None}
    cir = (np.random.default_rng(1).standard_normal((3, 32, 32, 2)).astype("<f4")).view("<c8")[..., 0]
    blob = b"\x89ESR\r\n\x1a\n" + third_party_chunk(b"HEAD", {"format": "edgesense-recording", "version": 1,
                                                              "profile": radar, "metadata": {}})
    blob += third_party_chunk(b"FRMS", {}, [("seq", np.arange(3, dtype="<u4")),
                                            ("device_time_us", np.zeros(3, "<i8")),
                                            ("host_time", np.zeros(3, "<f8")), ("payload", cir)])
    path = tmp_path / "cir.esr"
    path.write_bytes(blob)
    rec = Recording.open(path)
    assert rec.payloads.dtype == np.complex64 and np.array_equal(rec.payloads, cir)
    assert not rec.integrity.clean_close  # no ENDS chunk: reported as interrupted, data still there
