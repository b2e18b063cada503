"""The C++ sources are clang-formatted (.clang-format at the root): CI fails on a file that is
not, so formatting never becomes a review comment."""
import shutil
import subprocess

import pytest

from conftest import ROOT


def test_cpp_sources_are_clang_formatted():
    if not shutil.which("clang-format"):
        pytest.fail("clang-format missing: scripts/setup.sh installs it")
    files = subprocess.run(["git", "ls-files", "*.cc", "*.h"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    assert len(files) > 50
    out = subprocess.run(["clang-format", "--dry-run", "-Werror", *files], cwd=ROOT,
                         capture_output=True, text=True)
    unformatted = sorted({line.split(":")[0] for line in out.stderr.splitlines()
                          if ": error:" in line})
    assert out.returncode == 0, f"not clang-formatted (run clang-format -i): {unformatted}"
