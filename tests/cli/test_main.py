import re
import subprocess
import sys

import pytest

from edgesense.cli.main import _command_modules, build_parser, main


def test_help_lists_every_command_with_a_description(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    modules = _command_modules()
    assert modules, "no command modules found"
    for mod in modules:
        top = mod.COMMAND[0]
        assert re.search(rf"^\s+{top}\s+\S", out, re.M), f"{top} missing from --help"
        assert mod.HELP and "\n" not in mod.HELP
    for mod in [m for m in modules if len(m.COMMAND) == 2]:
        group, name = mod.COMMAND
        with pytest.raises(SystemExit):
            main([group, "--help"])
        sub = capsys.readouterr().out
        assert re.search(rf"^\s+{name}\s+\S", sub, re.M), f"{group} {name} missing from '{group} --help'"


@pytest.mark.parametrize("argv, message", [
    (["stream", "--source", "missing.esr"], "not found"),
    (["stream", "--source", "sim://no-such-profile"], "unknown profile"),
    (["profiles", "no-such-profile"], "unknown profile"),
    (["dataset", "info", "/nonexistent/dir"], "not found"),
    (["record", "--out", "/nonexistent/dir/x.esr", "--seconds", "1"], "directory does not exist"),
    (["stream", "--seconds", "-1"], "positive"),
    (["stream", "--seconds", "soon"], "number"),
    (["no-such-command"], "invalid choice"),
    (["stream", "--source", "sim://ad60", "--excursion", "models/hybrid/hybrid_int8.onnx"], "speaker_iv profile"),
    (["stream", "--source", "sim://speaker-ref", "--excursion", "missing.onnx"], "not found"),
])
def test_user_mistakes_give_one_line_and_nonzero_exit(capsys, argv, message):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code != 0
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_wrong_file_format_is_one_line(tmp_path, capsys):
    bogus = tmp_path / "bogus.esr"
    bogus.write_bytes(b"hello")
    assert main(["stream", "--source", str(bogus)]) == 2
    err = capsys.readouterr().err
    assert "bad magic" in err and len(err.strip().splitlines()) == 1


def test_record_then_dataset_info_as_json(tmp_path, capsys):
    import json

    from edgesense.recording import Recording

    folder = tmp_path / "ds"
    folder.mkdir()
    for subject in ("a", "b", "c"):
        assert main(["record", "--source", "sim://rdi32?speed=0", "--seconds", "0.5", "--out",
                     str(folder / f"{subject}.esr"), "--subject", subject, "--json"]) == 0
        rec = json.loads(capsys.readouterr().out)
        assert rec["frames"] >= 10 and rec["gaps"] == 0      # --seconds counts from the first frame, not from start-up
        # every frame the reader took in is accounted for: on disk, dropped for overflow, or still buffered
        assert rec["frames"] + rec["overflow_drops"] + rec["not_recorded_at_stop"] == rec["frames_received"]
        assert len(Recording.open(folder / f"{subject}.esr").seq) == rec["frames"]
    assert main(["dataset", "index", str(folder), "--json"]) == 0
    capsys.readouterr()
    assert main(["dataset", "info", str(folder), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["valid"] is True and info["subjects"] == 3 and info["recordings"] == 3


def test_console_entry_point_runs_in_a_subprocess():
    out = subprocess.run([sys.executable, "-m", "edgesense", "profiles", "ad60", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and '"carrier_hz": 60480000000.0' in out.stdout
    assert build_parser().prog == "edgesense"
