"""COBS encoding: published vectors, round trips, and the vectorised decoder path."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgesense.bridge.cobs import CobsError, _chain_numpy, cobs_decode, cobs_encode

VECTORS = [  # Cheshire and Baker's scheme; the canonical form used by the C core
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(1, 255)) + b"\x00", b"\xff" + bytes(range(1, 255)) + b"\x01\x01"),
]


@pytest.mark.parametrize("data,encoded", VECTORS)
def test_vectors(data, encoded):
    assert cobs_encode(data) == encoded
    assert cobs_decode(encoded) == data


@given(st.binary(max_size=3000))
@settings(max_examples=200, deadline=None)
def test_round_trip_and_no_zero(data):
    encoded = cobs_encode(data)
    assert b"\x00" not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(encoded) == data


@pytest.mark.parametrize("seed", range(20))
def test_zero_dense_data_takes_the_numpy_path_correctly(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(500, 5000))
    data = rng.choice(np.array([0, 0, 0, 1, 255, 7], dtype=np.uint8), size=n).tobytes()
    encoded = cobs_encode(data)
    assert cobs_decode(encoded) == data
    chain = [0]
    while chain[-1] + encoded[chain[-1]] < len(encoded):
        chain.append(chain[-1] + encoded[chain[-1]])
    assert _chain_numpy(encoded).tolist() == chain


@pytest.mark.parametrize("bad", [b"\x05\x11\x22", b"\x02\x11\x00", b"", b"\x00"])
def test_invalid_frames_raise_cobs_error(bad):
    with pytest.raises(CobsError):
        cobs_decode(bad)


@pytest.mark.parametrize("seed", range(30))
def test_long_chains_with_full_blocks_cross_the_walk_limit(seed):
    """Zero runs long enough to leave the Python walk, mixed with 254-byte (code 0xFF) blocks."""
    rng = np.random.default_rng(100 + seed)
    segments = []
    for _ in range(int(rng.integers(2, 8))):
        if rng.random() < 0.5:
            segments.append(bytes(int(rng.integers(0, 900))))
        else:
            length = int(rng.choice([254, 508, 253, 255, int(rng.integers(1, 700))]))
            segments.append(rng.integers(1, 256, length, dtype=np.uint8).tobytes())
    data = b"".join(segments)
    assert cobs_decode(cobs_encode(data)) == data
