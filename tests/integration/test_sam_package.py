"""deploy/sam's packaging refuses what provided.al2023 could not start: the Makefile's `package`
target (what `sam build` runs) with binaries of the wrong machine type, needing a glibc newer than
2.34, or needing a shared library the runtime lacks. The positive case, the real package run in
an older root, is test_lambda_package.py (`scripts/test.sh package`)."""
import pathlib
import shutil
import subprocess

import pytest

from conftest import ROOT

SAM_DIR = ROOT / "deploy" / "sam"
EM_AARCH64 = 183


def build_c(tmp_path, name, source, *flags):
    if not shutil.which("cc"):
        pytest.skip("no C compiler")
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    out = tmp_path / name
    subprocess.run(["cc", "-O1", "-o", out, src, *flags], check=True)
    return out


def package(prebuilt, arch, tmp_path):
    """`make package` as sam build runs it, with a prebuilt binary."""
    artifacts = tmp_path / f"artifacts-{arch}"
    return subprocess.run(["make", "-s", "-f", SAM_DIR / "Makefile", "package", f"ARCH={arch}",
                           f"ARTIFACTS_DIR={artifacts}", f"IMAGEGEN_PREBUILT={prebuilt}"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)


def test_a_binary_of_the_other_architecture_is_refused(tmp_path):
    host_binary = build_c(tmp_path, "hello", "int main(void) { return 0; }\n")
    out = package(host_binary, "arm64", tmp_path)
    assert out.returncode != 0
    assert "built for x86_64, but the function's architecture is arm64" in out.stderr

    # And an aarch64 ELF (the same file with its machine field changed) for an x86_64 function.
    data = bytearray(host_binary.read_bytes())
    data[18:20] = EM_AARCH64.to_bytes(2, "little")
    arm = tmp_path / "arm-hello"
    arm.write_bytes(bytes(data))
    arm.chmod(0o755)
    out = package(arm, "x86_64", tmp_path)
    assert out.returncode != 0
    assert "built for arm64, but the function's architecture is x86_64" in out.stderr


def test_a_binary_needing_a_newer_glibc_is_refused(tmp_path):
    # arc4random appeared in glibc 2.36 (Debian 12); provided.al2023 has 2.34.
    newer = build_c(tmp_path, "random", "#include <stdlib.h>\n"
                    "int main(void) { return (int)(arc4random() & 1); }\n")
    out = package(newer, "x86_64", tmp_path)
    assert out.returncode != 0
    assert "needs GLIBC_2.36, but provided.al2023 has glibc 2.34" in out.stderr


def test_a_binary_needing_a_library_the_runtime_lacks_is_refused(tmp_path):
    needs_z = build_c(tmp_path, "zlib", "#include <zlib.h>\n"
                      "int main(void) { return zlibVersion()[0] == 0; }\n", "-lz")
    out = package(needs_z, "x86_64", tmp_path)
    assert out.returncode != 0
    assert "needs libz.so.1, which neither provided.al2023" in out.stderr


def test_a_binary_that_fits_is_packaged(tmp_path):
    fits = build_c(tmp_path, "plain", "#include <stdio.h>\nint main(void) { puts(\"ok\"); }\n")
    out = package(fits, "x86_64", tmp_path)
    assert out.returncode == 0, out.stderr
    assert "check_package: ok: x86_64" in out.stdout
    assert (tmp_path / "artifacts-x86_64" / "bootstrap").stat().st_mode & 0o777 == 0o755


def test_the_architecture_follows_samconfig_then_the_template(tmp_path):
    sam = tmp_path / "sam"
    sam.mkdir()
    shutil.copy(SAM_DIR / "template.yaml", sam)
    arch = lambda: subprocess.run(["python3", SAM_DIR / "sam_arch.py", sam], capture_output=True,
                                  text=True, check=True).stdout.strip()
    assert arch() == "arm64"  # the template's default
    (sam / "samconfig.toml").write_text(
        '[default.deploy.parameters]\nparameter_overrides = "KeyPrefix=\\"x\\" Architecture=\\"x86_64\\""\n')
    assert arch() == "x86_64"
