"""The on-disk format for recordings and datasets (see ``datasets/FORMAT.md``)."""

from edgesense.recording.dataset import Dataset, DatasetEntry, write_dataset_index
from edgesense.recording.labels import Event, Labels
from edgesense.recording.reader import Integrity, Recording, RecordingInfo
from edgesense.recording.writer import RecordingWriter

__all__ = ["Dataset", "DatasetEntry", "Event", "Integrity", "Labels", "Recording", "RecordingInfo",
           "RecordingWriter", "write_dataset_index"]
