import time

import numpy as np
import pytest

from edgesense.profiles import load_profile
from edgesense.recording import RecordingWriter
from edgesense.sources import open_source
from edgesense.stream.replay import ReplaySource


@pytest.fixture
def recording_with_gaps(tmp_path):
    p = load_profile("rdi32")
    seq = np.array([100, 101, 102, 105, 106, 110], dtype=np.uint32)
    payloads = np.random.default_rng(0).standard_normal((6, *p.payload_shape)).astype(np.float32)
    path = tmp_path / "gaps.esr"
    with RecordingWriter(path, p, {"subject": "s"}) as w:
        w.write_batch(seq, seq.astype(np.int64) * 25_000, payloads)
    return path, seq, payloads


def test_replay_keeps_sequence_numbers_so_gaps_replay_as_gaps(recording_with_gaps):
    path, seq, payloads = recording_with_gaps
    with ReplaySource(path, speed=None) as src:
        frames = list(src)
    assert [f.seq for f in frames] == seq.tolist()
    assert np.array_equal(np.stack([f.payload for f in frames]), payloads)
    assert src.stats.gaps == 2 and src.stats.frames_missing == 5


def test_replay_paces_by_device_time(recording_with_gaps):
    path, seq, _ = recording_with_gaps
    span_s = (int(seq[-1]) - int(seq[0])) * 0.025
    t0 = time.monotonic()
    with open_source(f"replay://{path}?speed=2") as src:
        assert sum(1 for _ in src) == 6
    assert time.monotonic() - t0 == pytest.approx(span_s / 2, abs=0.1)


def test_plain_path_opens_a_replay(recording_with_gaps):
    path, _, _ = recording_with_gaps
    with open_source(str(path)) as src:
        assert isinstance(src, ReplaySource)
        assert src.profile.name == "rdi32"


def test_sim_url_options_are_checked():
    from edgesense.errors import EdgesenseError

    with pytest.raises(EdgesenseError, match="drop"):
        open_source("sim://ad60?drop=1.5")
    with pytest.raises(EdgesenseError, match="number"):
        open_source("sim://ad60?seconds=abc")
