import numpy as np
import pytest

from edgesense.errors import FormatError, ProfileError
from edgesense.profiles import load_profile
from edgesense.recording import Event, Labels, Recording, RecordingWriter
from edgesense.stream import Frame


@pytest.mark.parametrize("name", ["ad60", "rdi32", "speaker-ref"])
def test_frames_labels_and_metadata_round_trip(tmp_path, name):
    p = load_profile(name)
    rng = np.random.default_rng(1)
    n = 37
    raw = rng.standard_normal((n, *p.payload_shape, 2)).astype(np.float32)
    payloads = (raw[..., 0] + 1j * raw[..., 1]).astype(p.payload_dtype) if p.payload_dtype.kind == "c" \
        else raw[..., 0].astype(p.payload_dtype)
    path = tmp_path / "r.esr"
    events = [Event("swipe", 3, 10), Event("palm_hold", 20, 30)]
    with RecordingWriter(path, p, {"subject": "u1", "session": "s2", "device": "sim", "environment": "lab"},
                         max_chunk_frames=8) as w:
        for k in range(20):
            w.write(Frame(p.kind, k, k * 25_000, 0.5 * k, payloads[k]))
        w.write_batch(np.arange(20, n, dtype=np.uint32), np.arange(20, n) * 25_000, payloads[20:])
        w.update_metadata({"environment": "office"})
        w.set_labels(Labels("swipe", events, Labels.activity_from_events(events, n)))
    rec = Recording.open(path)
    assert rec.profile == p
    assert rec.integrity.ok and rec.integrity.clean_close
    assert rec.n_frames == n
    assert np.array_equal(rec.payloads, payloads)
    assert rec.seq.tolist() == list(range(n))
    assert rec.device_time_us[5] == 125_000
    assert rec.metadata == {"subject": "u1", "session": "s2", "device": "sim", "environment": "office"}
    assert rec.labels.clip_label == "swipe" and rec.labels.events == events
    assert rec.labels.activity.sum() == 17
    assert [f.seq for f in rec.frames()] == list(range(n))


def test_last_label_chunk_wins(tmp_path):
    p = load_profile("rdi32")
    with RecordingWriter(tmp_path / "a.esr", p) as w:
        w.set_labels(Labels("swipe"))
        w.set_labels(Labels("noise"))
    assert Recording.open(tmp_path / "a.esr").labels.clip_label == "noise"


def test_writer_refuses_wrong_payloads_and_overwrites(tmp_path):
    p = load_profile("ad60")
    path = tmp_path / "x.esr"
    with RecordingWriter(path, p) as w:
        with pytest.raises(ProfileError):
            w.write(Frame(p.kind, 0, 0, 0.0, np.zeros((3, 3), np.complex64)))
        with pytest.raises(FormatError):
            w.write_batch(np.zeros(2, np.uint32), np.zeros(2), np.zeros((2, 32, 32), np.float32))
    with pytest.raises(FormatError, match="already exists"):
        RecordingWriter(path, p)
    with pytest.raises(FormatError, match="directory does not exist"):
        RecordingWriter(tmp_path / "nope" / "x.esr", p)


@pytest.mark.parametrize("content, match", [
    (None, "not found"),
    (b"", "bad magic"),
    (b"PK\x03\x04 this is a zip", "bad magic"),
])
def test_non_recordings_give_clear_errors(tmp_path, content, match):
    path = tmp_path / "f.esr"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(FormatError, match=match):
        Recording.open(path)


def test_event_bounds_are_checked():
    with pytest.raises(FormatError):
        Event("swipe", 5, 5)


def test_non_durable_writer_skips_fsync_but_writes_the_same_bytes(tmp_path, monkeypatch):
    import os

    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd)))
    p = load_profile("rdi32")
    payloads = np.ones((4, *p.payload_shape), np.float32)
    for name, durable in (("d.esr", True), ("n.esr", False)):
        with RecordingWriter(tmp_path / name, p, {"subject": "s"}, durable=durable, background_flush=False) as w:
            w.write_batch(np.arange(4, dtype=np.uint32), np.zeros(4), payloads)
        if durable:
            assert calls, "a durable writer must fsync"
            calls.clear()
    assert calls == []
    a, b = Recording.open(tmp_path / "d.esr"), Recording.open(tmp_path / "n.esr")
    assert b.integrity.ok and np.array_equal(a.payloads, b.payloads)
