"""Property-based fuzzing of the host stream decoder.

Properties (issue 3): on any input the decoder never raises; it never yields a message that was not
sent (every yielded message passed its CRC and equals a sent one bit for bit); and it is back in
step right after damage: every frame whose own bytes and preceding delimiter are untouched arrives.
"""

from dataclasses import dataclass

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgesense.bridge import MsgType, StreamDecoder, encode_data, encode_message
from edgesense.bridge.decoder import DecoderStats

DTYPES = ["complex64", "float32", "int16", "uint8"]


@st.composite
def frames(draw):
    """A list of (seq, wire bytes, (dtype, shape, payload bytes)) with unique sequence numbers."""
    count = draw(st.integers(1, 12))
    start = draw(st.integers(0, 2**32 - 1))
    out = []
    for k in range(count):
        dtype = draw(st.sampled_from(DTYPES))
        shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=3)))
        raw = draw(st.binary(min_size=int(np.prod(shape)) * np.dtype(dtype).itemsize,
                             max_size=int(np.prod(shape)) * np.dtype(dtype).itemsize))
        arr = np.frombuffer(raw, dtype=dtype).reshape(shape)
        seq = (start + k) % 2**32
        out.append((seq, encode_data(seq, k * 25000, arr, sensor_kind=1), (np.dtype(dtype), shape, raw)))
    return out


@dataclass
class Damage:
    kind: str   # "flip", "insert", "delete"
    pos: int
    size: int
    data: bytes


@st.composite
def damaged_streams(draw):
    sent = draw(frames())
    stream = b"".join(w for _, w, _ in sent)
    spans = []
    pos = 0
    for _, wire, _ in sent:
        spans.append((pos, pos + len(wire) - 1))  # [start, delimiter]
        pos += len(wire)
    ops = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete"]))
        p = draw(st.integers(0, len(stream) - 1))
        if kind == "flip":
            ops.append(Damage(kind, p, 1, bytes([draw(st.integers(1, 255))])))
        elif kind == "insert":
            ops.append(Damage(kind, p, 0, draw(st.binary(min_size=1, max_size=40))))
        else:
            ops.append(Damage(kind, p, draw(st.integers(1, 60)), b""))
    # Keep damage regions disjoint: overlapping deletions would remove more than their nominal
    # ranges (in original coordinates), and the intact-frame bookkeeping below would be wrong.
    disjoint, last_end = [], -1
    for op in sorted(ops, key=lambda o: o.pos):
        if op.pos > last_end:
            disjoint.append(op)
            last_end = op.pos + max(op.size, 1) - 1
    ops = disjoint
    # apply from the end so positions stay valid in original coordinates
    data = bytearray(stream)
    for op in sorted(ops, key=lambda o: o.pos, reverse=True):
        if op.kind == "flip":
            data[op.pos] ^= op.data[0]
        elif op.kind == "insert":
            data[op.pos:op.pos] = op.data
        else:
            del data[op.pos:op.pos + op.size]
    intact = set()
    for (seq, _, _), (start, end) in zip(sent, spans):
        lo = start - 1  # the delimiter before the frame belongs to its synchronisation
        touched = False
        for op in ops:
            if op.kind == "flip":
                touched |= lo <= op.pos <= end
            elif op.kind == "insert":
                touched |= start <= op.pos <= end
            else:
                touched |= op.pos <= end and op.pos + op.size - 1 >= lo
        if not touched:
            intact.add(seq)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    return sent, bytes(data), intact, cuts


def feed_in_pieces(decoder, data, cuts):
    out = []
    prev = 0
    for cut in [*cuts, len(data)]:
        out += decoder.feed(data[prev:cut])
        prev = cut
    return out


@given(st.binary(max_size=4000), st.lists(st.integers(0, 4000), max_size=8))
@settings(max_examples=200, deadline=None)
def test_random_bytes_never_raise_and_yield_nothing(data, cuts):
    decoder = StreamDecoder()
    out = feed_in_pieces(decoder, data, sorted(c for c in cuts if c <= len(data)))
    assert out == []
    assert decoder.stats.bytes_received == len(data)
    assert decoder.stats.messages == 0


@given(damaged_streams())
@settings(max_examples=200, deadline=None)
def test_damaged_streams_yield_only_sent_frames_and_every_intact_one(case):
    sent, data, intact, cuts = case
    by_seq = {seq: meta for seq, _, meta in sent}
    decoder = StreamDecoder()
    received = feed_in_pieces(decoder, data, cuts)
    got = set()
    for msg in received:
        assert msg.msg_type == MsgType.DATA
        dtype, shape, raw = by_seq[msg.seq]  # KeyError = a message that was never sent
        arr = msg.array()
        assert arr.dtype == dtype and arr.shape == shape and arr.tobytes() == raw
        got.add(msg.seq)
    assert intact <= got
    if data == b"".join(w for _, w, _ in sent):  # no damage: everything, in order, nothing counted
        assert [m.seq for m in received] == [seq for seq, _, _ in sent]
        assert decoder.stats.corrupt == 0


@given(frames(), st.binary(min_size=1, max_size=300))
@settings(max_examples=100, deadline=None)
def test_garbage_before_a_stream_costs_at_most_one_candidate(sent, garbage):
    decoder = StreamDecoder()
    received = decoder.feed(garbage + b"\x00" + b"".join(w for _, w, _ in sent))
    assert [m.seq for m in received] == [seq for seq, _, _ in sent]
    assert decoder.stats.corrupt <= garbage.count(b"\x00") + 1


def test_oversized_candidate_is_counted_and_not_buffered():
    decoder = StreamDecoder(max_frame=100)
    good = encode_message(MsgType.PING, 1, 0, b"hi")
    assert decoder.feed(b"\x55" * 80) == []
    assert decoder.feed(b"\x55" * 80) == []
    assert decoder.pending_bytes == 0
    out = decoder.feed(b"\x55" * 10 + b"\x00" + good)
    assert [m.seq for m in out] == [1]
    assert decoder.stats.reasons == {"oversize": 1}


def test_unknown_message_types_are_skipped_and_counted():
    decoder = StreamDecoder()
    wire = encode_message(0x9F, 1, 0, b"new") + encode_message(MsgType.PING, 2)
    out = decoder.feed(wire)
    assert [m.seq for m in out] == [2]
    assert decoder.stats.unknown_messages == 1 and decoder.stats.corrupt == 0


def test_foreign_major_is_counted_as_incompatible():
    decoder = StreamDecoder()
    out = decoder.feed(encode_message(MsgType.ACK, 1, 0, b"\x01\x00\x00\x00", major=3, minor=1))
    assert out == [] and decoder.stats.incompatible == 1 and decoder.stats.incompatible_version == (3, 1)


def test_reset_counts_a_partial_candidate():
    decoder = StreamDecoder()
    wire = encode_message(MsgType.PING, 1)
    decoder.feed(wire[:10])
    decoder.reset()
    assert decoder.stats.reasons == {"truncated": 1}
    assert [m.seq for m in decoder.feed(wire)] == [1]
    assert isinstance(decoder.stats, DecoderStats)
