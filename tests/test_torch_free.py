"""`import edgesense` and every run-time path work with torch (and the rest of the extras) absent.

The run-time install is numpy, scipy, onnxruntime, ai-edge-litert and pyserial; the fast test
blocks every package of the `train`, `plot` and `dev` extras (torch, onnx, onnxscript, tflite,
matplotlib, hypothesis, pytest), the slow one builds a real virtual environment without them.
"""

import json
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAIN_ONLY = ("edgesense.nn", "edgesense.quant")  # the 'train' extra

# Makes the extras' packages unimportable, as on a machine where only the core was installed.
EXTRAS = ("torch", "torchvision", "torchaudio", "onnx", "onnxscript", "tflite", "matplotlib", "hypothesis", "pytest")
BLOCKER = textwrap.dedent(f"""
    import importlib.abc, sys
    for _name in list(sys.modules):  # nothing of an extra may be imported already (e.g. by site hooks)
        if _name.split(".")[0] in {EXTRAS!r}:
            del sys.modules[_name]
    class _CoreOnly(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {EXTRAS!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: core-only test)")
            return None
    sys.meta_path.insert(0, _CoreOnly())
""")

RUNTIME_PATHS = textwrap.dedent("""
    import json, pkgutil, importlib, sys, tempfile, pathlib
    import edgesense
    imported = []
    for info in pkgutil.walk_packages(edgesense.__path__, "edgesense."):
        if info.name.startswith(TRAIN_ONLY) or info.name == "edgesense.__main__":
            continue
        importlib.import_module(info.name)
        imported.append(info.name)
    from edgesense.cli.main import main
    tmp = pathlib.Path(tempfile.mkdtemp())
    codes = {}
    codes["stream"] = main(["stream", "--source", "sim://ad60?speed=0", "--seconds", "0.3", "--json"])
    codes["record"] = main(["record", "--source", "sim://rdi32?speed=0", "--seconds", "0.3",
                            "--out", str(tmp / "r.esr"), "--subject", "x", "--json"])
    codes["replay"] = main(["stream", "--source", str(tmp / "r.esr"), "--seconds", "5", "--json"])
    codes["demo"] = main(["demo", "--seconds", "3", "--speed", "4", "--json"])
    codes["help"] = None
    try:
        main(["--help"])
    except SystemExit as exc:
        codes["help"] = exc.code
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in EXTRAS)
    assert not leaked, f"extras imported: {leaked}"
    print("RESULT " + json.dumps({"imported": imported, "codes": codes}))
""")


def _run(python: str, code: str, env=None) -> dict:
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_runtime_paths_work_with_torch_blocked():
    code = BLOCKER + f"TRAIN_ONLY = {TRAIN_ONLY!r}\nEXTRAS = {EXTRAS!r}\n" + RUNTIME_PATHS
    result = _run(sys.executable, code)
    assert "edgesense.stream.source" in result["imported"] and "edgesense.recording.writer" in result["imported"]
    assert len(result["imported"]) >= 15
    assert result["codes"] == {"stream": 0, "record": 0, "replay": 0, "demo": 0, "help": 0}


@pytest.mark.slow
def test_runtime_paths_in_a_fresh_venv_without_torch(tmp_path):
    """The real thing: a new virtual environment with only the core dependencies installed."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", str(ROOT)], check=True, timeout=900,
                   env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    probe = subprocess.run([python, "-c", "import importlib.util as u; print(u.find_spec('torch') is None)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "True", "torch must not be installed by the core dependencies"
    result = _run(python, f"TRAIN_ONLY = {TRAIN_ONLY!r}\nEXTRAS = {EXTRAS!r}\n" + RUNTIME_PATHS,
                  env={**os.environ, "PYTHONPATH": ""})
    assert result["codes"] == {"stream": 0, "record": 0, "replay": 0, "demo": 0, "help": 0}
