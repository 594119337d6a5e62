"""tools/bench_excursion.py: the split of the pipeline's cost by what the tracker did in each block, and the
A/B of code against another tree."""

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
                        "--repeat", "1", "--baseline-tree", str(ROOT), "--json"], capture_output=True, text=True,
                       timeout=240, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout)
    kinds = d["everything_by_block_kind"]
    assert set(kinds) == {"plain", "refit"}
    assert sum(k["blocks"] for k in kinds.values()) == blocks
    # the parts add up to the mean cost per block of the whole pass
    assert sum(k["us_per_block"] for k in kinds.values()) == pytest.approx(d["stages"]["everything"]["cpu_mean_us"],
                                                                          rel=1e-9)
    # the replay saw every update boundary of the timed blocks (they follow 100 warm-up blocks of 48
    # samples): the interval's Welch spectra and the refit run there, every other block is plain
    every, first = 12288, 48 * 100
    boundaries = sum(1 for c in range(first + 1, first + 48 * blocks + 1) if c % every == 0)
    assert kinds["refit"]["blocks"] == boundaries >= 1
    assert d["stages"]["tracker"]["segments_us_per_block"] > 0
    # --baseline-tree (here the same code): its stages timed alongside, every block's output compared
    assert {"everything@base", "tracker@base"} <= set(d["stages"])
    assert d["baseline"]["mismatched_blocks"] == 0
    assert d["baseline"]["real_time_factor_cpu"] == pytest.approx(d["stages"]["everything@base"]["cpu_rtf"])
