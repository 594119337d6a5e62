"""The wheel carries every package, the built-in profiles and the shipped model zoo."""

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {p.parent.relative_to(ROOT).as_posix().replace("/", ".") for p in (ROOT / "edgesense").rglob("__init__.py")}
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"


@pytest.mark.slow
def test_wheel_contains_profiles_and_models(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, timeout=600)
    names = zipfile.ZipFile(next(tmp_path.glob("edgesense-*.whl"))).namelist()
    assert "edgesense/data/profiles/ad60.json" in names
    shipped = [p.relative_to(ROOT / "models").as_posix() for p in (ROOT / "models").glob("*/*.onnx")]
    assert shipped and all(f"edgesense/data/models/{s}" in names for s in shipped)
    calibrations = [p.relative_to(ROOT / "models").as_posix() for p in (ROOT / "models").glob("speaker_calibration/*.json")]
    assert calibrations and all(f"edgesense/data/models/{c}" in names for c in calibrations)
    assert not any(n.endswith(".pt") for n in names), "training checkpoints stay out of the wheel"
    if any(shutil.which(c) for c in ("cc", "gcc", "clang")):   # the optional large-signal kernel is built and shipped
        assert any(n.startswith("edgesense/speaker/_lsloop.") and n.endswith((".so", ".pyd")) for n in names)
