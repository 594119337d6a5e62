"""tools/bench_excursion.py: the split of the pipeline's cost by what the tracker did in each block."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_everything_by_block_kind_partitions_the_blocks_and_the_mean():
    model = ROOT / "models" / "hybrid" / "hybrid_int8.tflite"
    if not model.is_file():
        pytest.skip("hybrid INT8 model not shipped")
    blocks = 600
    r = subprocess.run([sys.executable, "tools/bench_excursion.py", "--model", str(model), "--blocks", str(blocks),
                        "--repeat", "1", "--json"], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout)
    kinds = d["everything_by_block_kind"]
    assert set(kinds) == {"plain", "window", "fft", "spectra", "refit"}
    assert sum(k["blocks"] for k in kinds.values()) == blocks
    # the parts add up to the mean cost per block of the whole pass
    assert sum(k["us_per_block"] for k in kinds.values()) == pytest.approx(d["stages"]["everything"]["cpu_mean_us"],
                                                                          rel=1e-9)
    # the replay saw every hop boundary of the timed blocks (they follow 100 warm-up blocks of 48 samples):
    # a segment is windowed at each (an update boundary is also a hop boundary: counted as refit there)
    hop, first = 512, 48 * 100
    boundaries = sum(1 for c in range(first + 1, first + 48 * blocks + 1) if c % hop == 0 and c >= 1024)
    assert kinds["window"]["blocks"] + kinds["refit"]["blocks"] == boundaries
    # each windowed segment has its FFT and its spectra in the next two blocks
    assert abs(kinds["fft"]["blocks"] - boundaries) <= 1 and abs(kinds["spectra"]["blocks"] - boundaries) <= 1
    assert kinds["refit"]["blocks"] >= 1
