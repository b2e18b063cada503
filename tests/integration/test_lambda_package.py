"""The Lambda package as a user deploys it, run where it will run.

For each architecture: `sam build` (SAM CLI, the template's makefile build, build in source)
produces the function's artifacts; they are zipped as `sam deploy` would upload them, and the
zip is unpacked into a Debian 11 root made by debootstrap (glibc 2.31, older than
provided.al2023's 2.34, with no file of the build host in it). AWS's Runtime Interface Emulator
runs the bootstrap *inside that root* (chroot); arm64 runs there under qemu-user-static through
binfmt_misc. An API Gateway REST event `POST /generate` then goes to a real S3-compatible server
(moto) and the SigV4-checking fake Bedrock, and must answer 200 with the object stored.

Slow (a sysroot, a cross build and a debootstrap per architecture the first time), so outside the
default suite: `scripts/test.sh package` runs it (marker `package`).
"""
import base64
import json
import os
import pathlib
import shutil
import subprocess
import zipfile

import pytest

from conftest import ROOT
from fake_bedrock import FakeBedrock
from test_lambda_runtime import BUCKET, PREFIX, STABILITY, Rie, apigw_v1, s3  # noqa: F401 (fixture)

pytestmark = pytest.mark.package

SAM = ROOT / ".venv" / "bin" / "sam"
SAM_DIR = ROOT / "deploy" / "sam"
ROOTS = ROOT / ".tools" / "roots"
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
DEBIAN_ARCH = {"x86_64": "amd64", "arm64": "arm64"}


def run(argv, **kwargs):
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{argv[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def sam_build(arch, build_dir):
    """`sam build` exactly as the README says, for one architecture; returns the artifacts dir."""
    env = dict(os.environ, SAM_CLI_TELEMETRY="0", ARCH=arch)
    run([SAM, "build", "--template-file", SAM_DIR / "template.yaml", "--build-dir", build_dir,
         "--parameter-overrides", f"Architecture={arch}"], cwd=SAM_DIR, env=env, timeout=3600)
    return pathlib.Path(build_dir) / "ImagegenFunction"


def rie_for(arch):
    """The official RIE built for `arch` (Go cross-compiles it)."""
    if arch == "x86_64":
        return ROOT / ".tools" / "bin" / "aws-lambda-rie"
    path = ROOT / ".tools" / "bin" / "linux_arm64" / "aws-lambda-rie"
    if not path.exists():
        run(["bash", ROOT / "scripts" / "setup.d" / "lambda.sh", "arm64"], timeout=900)
    return path


def old_root(arch):
    root = ROOTS / f"bullseye-{DEBIAN_ARCH[arch]}"
    run(["bash", ROOT / "tests" / "package" / "old_root.sh", DEBIAN_ARCH[arch], root], timeout=3600)
    if arch == "arm64":
        run(["bash", ROOT / "tests" / "package" / "binfmt.sh"], timeout=300)
    return root


@pytest.fixture
def bedrock():
    # The default Stability model is served in us-west-2; the bucket is in us-east-1.
    fake = FakeBedrock("AKIDEXAMPLE", "secret-example", "us-west-2").start()
    yield fake
    fake.stop()


def elf_machine(path):
    return int.from_bytes(pathlib.Path(path).read_bytes()[18:20], "little")


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_sam_built_zip_answers_generate_inside_debian11(arch, tmp_path, s3, bedrock, moto_server):
    artifacts = sam_build(arch, tmp_path / "sam-build")
    assert sorted(p.name for p in artifacts.iterdir()) == ["bootstrap"]  # nothing but the binary
    assert elf_machine(artifacts / "bootstrap") == {"x86_64": 62, "arm64": 183}[arch]

    # What `sam deploy` uploads: the artifacts directory, zipped.
    zip_path = tmp_path / "function.zip"
    run(["python3", SAM_DIR / "make_zip.py", artifacts, zip_path])
    assert zip_path.stat().st_size < 5 * 2**20, "the package should stay under 5 MB"

    root = old_root(arch)
    task = root / "var" / "task"
    shutil.rmtree(task, ignore_errors=True)
    task.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(task)
    (task / "bootstrap").chmod(0o755)  # zipfile drops modes; Lambda keeps them (checked below)
    with zipfile.ZipFile(zip_path) as archive:
        assert (archive.getinfo("bootstrap").external_attr >> 16) & 0o777 == 0o755
    (root / "usr" / "local" / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(rie_for(arch), root / "usr" / "local" / "bin" / "aws-lambda-rie")
    # The root's glibc is older than AL2023's: what the bootstrap needs, it has.
    glibc = run([CHROOT, root, "/usr/bin/ldd", "--version"] if arch == "x86_64"
                else [CHROOT, root, "/bin/sh", "-c", "ls /lib/aarch64-linux-gnu/libc-*.so"])
    assert "2.31" in glibc.stdout

    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret-example",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_LAMBDA_FUNCTION_NAME": "imagegen-package",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": "60",
        "LAMBDA_TASK_ROOT": "/var/task",
        "BUCKET_NAME": BUCKET,
        "KEY_PREFIX": PREFIX,
        "MODEL_ID": STABILITY,
        "IMAGEGEN_BEDROCK_REGION": "us-west-2",
        "AWS_ENDPOINT_URL_S3": moto_server,
        "IMAGEGEN_S3_PATH_STYLE": "1",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock.url,
    }
    # The emulator and the bootstrap run inside the old root: its libraries, not the host's.
    rie = Rie("/var/task/bootstrap", env, tmp_path, rie="/usr/local/bin/aws-lambda-rie",
              prefix=(CHROOT, root))
    try:
        out = rie.invoke(apigw_v1("POST", "/generate", {"prompt": "A croissant"}))
        assert out["statusCode"] == 200, out
        image = json.loads(out["body"])["images"][0]
        assert image["key"].startswith(PREFIX + "/") and image["uri"] == f"s3://{BUCKET}/{image['key']}"
        stored = s3.get_object(Bucket=BUCKET, Key=image["key"])["Body"].read()
        assert stored.startswith(b"\x89PNG") and b"A croissant" in stored
        assert [c for c in bedrock.calls if c["verified"]], "no correctly signed Bedrock request"

        got = rie.invoke(apigw_v1("GET", "/images/" + image["key"]))
        assert got["statusCode"] == 200 and base64.b64decode(got["body"]) == stored
    finally:
        rie.stop()
