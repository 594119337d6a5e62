"""A real `edgesense record` process killed with SIGKILL loses at most the last second."""

import os
import signal
import subprocess
import sys
import time

import numpy as np

from edgesense.profiles import load_profile
from edgesense.recording import Recording
from edgesense.stream import noise_payloads


def test_sigkill_mid_recording_keeps_everything_older_than_one_second(tmp_path):
    out = tmp_path / "killed.esr"
    proc = subprocess.Popen([sys.executable, "-m", "edgesense", "record", "--source", "sim://rdi32?seed=7",
                             "--out", str(out), "--seconds", "60", "--subject", "k"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (out.exists() and out.stat().st_size > 200_000):  # > ~1.5 s of frames
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "recording never started"
            time.sleep(0.05)
        time.sleep(1.3)
        t_kill = time.monotonic()  # CLOCK_MONOTONIC is shared by all processes on the machine
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    rec = Recording.open(out)
    assert not rec.integrity.clean_close
    assert rec.integrity.corrupt_chunks == 0
    assert rec.n_frames > 40
    # contiguous from the first frame: nothing earlier lost or damaged
    assert rec.seq.tolist() == list(range(rec.n_frames))
    # the newest frame on disk is less than one second older than the kill
    assert rec.host_time[-1] >= t_kill - 1.0, (t_kill - rec.host_time[-1])
    # and every payload is bit-exact what the simulator produced
    p = load_profile("rdi32")
    gen = noise_payloads(p, seed=7)
    expected = np.stack([gen(k) for k in range(rec.n_frames)])
    assert np.array_equal(rec.payloads, expected)
