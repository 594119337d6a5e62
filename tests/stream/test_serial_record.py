"""``edgesense record --port`` with the emulator as the device: the recording holds the exact frames."""

import json
import shutil

import pytest

from edgesense.bridge.emulator import Emulator, emulator_payload
from edgesense.cli.main import main
from edgesense.recording import Recording

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None,
                                reason="the device emulator needs make and a C compiler (cc)")


def test_record_from_an_emulated_device(tmp_path, capsys):
    out = tmp_path / "dev.esr"
    with Emulator(["--pty", "--profile", "speaker-ref", "--seed", "9", "--drop-rate", "0.05"]) as emu:
        code = main(["record", "--port", emu.url, "--out", str(out), "--seconds", "1", "--subject", "u1", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    rec = Recording.open(out)
    assert rec.profile.name == "speaker-ref"
    assert len(rec.seq) > 500
    for k in range(0, len(rec.seq), 50):
        assert rec.payloads[k].tobytes() == emulator_payload(rec.profile, int(rec.seq[k]), 9).tobytes()
    missing = int(rec.seq[-1]) - int(rec.seq[0]) + 1 - len(rec.seq)
    # the source counts gaps as frames arrive, which can be a few frames past the last one recorded
    assert missing > 0 and summary["frames_missing"] >= missing
