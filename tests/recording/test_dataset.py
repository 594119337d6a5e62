import json

import numpy as np
import pytest

from edgesense.errors import EdgesenseError, FormatError
from edgesense.profiles import load_profile
from edgesense.recording import Dataset, Labels, RecordingWriter, write_dataset_index
from edgesense.recording.dataset import assign_splits


def make_dataset(root, subjects=10, classes=("swipe", "noise")):
    p = load_profile("rdi32")
    for s in range(subjects):
        (root / f"u{s:02d}").mkdir(parents=True)
        for c in classes:
            with RecordingWriter(root / f"u{s:02d}" / f"{c}.esr", p, {"subject": f"u{s:02d}", "session": "a"}) as w:
                w.write_batch(np.arange(8, dtype=np.uint32), np.arange(8) * 25_000,
                              np.zeros((8, *p.payload_shape), np.float32))
                w.set_labels(Labels(c))
    return write_dataset_index(root, seed=1, progress_desc=None)


def test_splits_are_by_subject_and_seeded(tmp_path):
    ds = make_dataset(tmp_path / "d")
    by_split = {name: {e.subject for e in ds.split(name)} for name in ("train", "val", "test")}
    assert by_split["train"].isdisjoint(by_split["val"]) and by_split["train"].isdisjoint(by_split["test"])
    assert by_split["val"].isdisjoint(by_split["test"])
    assert sum(len(v) for v in by_split.values()) == 10 and len(by_split["train"]) == 7
    again = write_dataset_index(tmp_path / "d", seed=1, progress_desc=None)
    assert [e.split for e in again.entries] == [e.split for e in ds.entries]
    assert ds.classes == ["noise", "swipe"]
    summary = ds.summary()
    assert summary["clips_per_class"] == {"noise": 10, "swipe": 10} and summary["subjects"] == 10
    assert summary["duration_s"] == pytest.approx(20 * 8 / 40)
    assert ds.validate() == []


def test_validate_names_each_bad_file_and_why(tmp_path):
    ds = make_dataset(tmp_path / "d", subjects=3)
    (tmp_path / "d" / "u00" / "swipe.esr").unlink()
    bad = tmp_path / "d" / "u01" / "noise.esr"
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    (tmp_path / "d" / "stray.esr").write_bytes(b"not a recording")
    problems = {(p.path, p.reason.split(" (")[0]) for p in ds.validate()}
    paths = {p for p, _ in problems}
    assert "u00/swipe.esr" in paths and "u01/noise.esr" in paths and "stray.esr" in paths
    assert any("missing" in r for p, r in problems if p == "u00/swipe.esr")
    assert any("CRC" in r for p, r in problems if p == "u01/noise.esr")


def test_pinned_split_metadata_is_kept(tmp_path):
    p = load_profile("rdi32")
    root = tmp_path / "d"
    root.mkdir()
    for s, split in [("a", None), ("b", "test"), ("c", None)]:
        meta = {"subject": s, **({"split": split} if split else {})}
        with RecordingWriter(root / f"{s}.esr", p, meta) as w:
            w.write_batch(np.zeros(1, np.uint32), np.zeros(1), np.zeros((1, *p.payload_shape), np.float32))
    ds = write_dataset_index(root, {"train": 1.0}, progress_desc=None)
    assert {e.subject: e.split for e in ds.entries} == {"a": "train", "b": "test", "c": "train"}


def test_errors_are_clear(tmp_path):
    with pytest.raises(FormatError, match="not found"):
        Dataset.open(tmp_path / "missing")
    with pytest.raises(FormatError, match="index"):
        Dataset.open(tmp_path)
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(FormatError, match="JSON"):
        Dataset.open(tmp_path)
    (tmp_path / "index.json").write_text(json.dumps({"format": "edgesense-dataset", "recordings": []}))
    with pytest.raises(EdgesenseError, match="no split"):
        Dataset.open(tmp_path).split("train")


def test_assign_splits_gives_every_split_a_subject():
    out = assign_splits([f"s{k}" for k in range(5)], {"train": 0.7, "val": 0.15, "test": 0.15}, seed=0)
    assert set(out.values()) == {"train", "val", "test"}
