"""The portable C core: strict C99 build and its unit tests, run through make."""

import shutil
import subprocess

import pytest

from edgesense.bridge.emulator import firmware_bridge_dir

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None,
                                reason="building the firmware bridge needs make and a C compiler (cc)")


def test_c_unit_tests_pass():
    result = subprocess.run(["make", "-s", "-C", str(firmware_bridge_dir()), "test"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ", 0 failures" in result.stdout


def test_core_is_freestanding_c99():
    """The core builds with -ffreestanding (no hosted libc needed) and uses no float, malloc or OS calls."""
    root = firmware_bridge_dir()
    for source in sorted((root / "src").glob("*.c")):
        result = subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffreestanding",
                                 "-fsyntax-only", f"-I{root / 'include'}", str(source)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        text = source.read_text()
        for word in ("malloc", "free(", "float", "double", "printf", "#include <stdio.h>", "#include <stdlib.h>"):
            assert word not in text, f"{source.name} uses {word}"
