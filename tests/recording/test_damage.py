"""Truncation and corruption: damage costs only the damaged chunk, never a wrong answer."""

import numpy as np
import pytest

from edgesense.profiles import load_profile
from edgesense.recording import Recording, RecordingWriter
from edgesense.recording.chunks import SYNC


def _write(path, n_chunks=6, per_chunk=5):
    p = load_profile("rdi32")
    rng = np.random.default_rng(0)
    payloads = rng.standard_normal((n_chunks * per_chunk, *p.payload_shape)).astype(np.float32)
    with RecordingWriter(path, p, {"subject": "s"}) as w:
        for c in range(n_chunks):
            sl = slice(c * per_chunk, (c + 1) * per_chunk)
            w.write_batch(np.arange(sl.start, sl.stop, dtype=np.uint32), np.arange(sl.start, sl.stop) * 25_000,
                          payloads[sl])
    return payloads


def test_truncation_anywhere_keeps_every_complete_chunk(tmp_path):
    path = tmp_path / "full.esr"
    payloads = _write(path)
    data = path.read_bytes()
    chunk_starts = [i for i in range(len(data)) if data.startswith(SYNC, i)]
    frame_chunk_ends = chunk_starts[2:]  # HEAD, then FRMS chunks; each FRMS ends where the next chunk starts
    rng = np.random.default_rng(1)
    for cut in sorted(set(rng.integers(chunk_starts[1], len(data), 40).tolist()) | set(frame_chunk_ends)):
        (tmp_path / "cut.esr").write_bytes(data[:cut])
        rec = Recording.open(tmp_path / "cut.esr")
        complete = sum(1 for end in frame_chunk_ends if end <= cut)
        assert rec.n_frames == 5 * complete, cut
        assert np.array_equal(rec.payloads, payloads[: rec.n_frames])
        assert not rec.integrity.clean_close
        assert rec.integrity.corrupt_chunks == 0


def test_a_flipped_bit_costs_one_chunk_and_shows_as_a_gap(tmp_path):
    path = tmp_path / "r.esr"
    payloads = _write(path)
    data = bytearray(path.read_bytes())
    chunk_starts = [i for i in range(len(data)) if data.startswith(SYNC, i)]
    data[chunk_starts[3] + 200] ^= 0x10  # inside the third FRMS chunk's data
    path.write_bytes(bytes(data))
    rec = Recording.open(path)
    assert rec.integrity.corrupt_chunks == 1 and "CRC" in rec.integrity.problems[0]
    assert rec.n_frames == 25
    assert rec.seq.tolist() == [*range(10), *range(15, 30)]
    assert np.array_equal(rec.payloads[10:], payloads[15:])
    assert rec.integrity.clean_close  # the ENDS chunk after the damage was found again


def test_garbage_between_chunks_is_skipped(tmp_path):
    path = tmp_path / "r.esr"
    payloads = _write(path)
    data = path.read_bytes()
    chunk_starts = [i for i in range(len(data)) if data.startswith(SYNC, i)]
    garbage = b"\x00garbage\xff" * 7
    damaged = data[: chunk_starts[2]] + garbage + data[chunk_starts[2]:]
    path.write_bytes(damaged)
    rec = Recording.open(path)
    assert rec.n_frames == 30 and np.array_equal(rec.payloads, payloads)
    assert rec.integrity.corrupt_chunks == 1 and rec.integrity.skipped_bytes == len(garbage)


@pytest.mark.parametrize("version", [2, "1"])
def test_newer_or_malformed_versions_are_refused(tmp_path, version):


    from edgesense.errors import FormatError
    from edgesense.recording.chunks import MAGIC, encode_chunk

    head = {"format": "edgesense-recording", "version": version, "profile": load_profile("rdi32").to_dict()}
    (tmp_path / "v.esr").write_bytes(MAGIC + encode_chunk(b"HEAD", head))
    with pytest.raises(FormatError, match="version"):
        Recording.open(tmp_path / "v.esr")
