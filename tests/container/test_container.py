"""The container image, built and run here with podman (no Docker engine, no registry): `serve`
answers POST /generate and POST /jobs, it runs as a non-root user, and `submit` + `worker` work
in it on a mounted volume.

Slow (it compiles imagegen inside the build stage): not part of the default suite. Run with
    scripts/test.sh container
Needs podman, runc and debootstrap (scripts/setup.d/queue.sh installs them) and root or sudo
for debootstrap. Set IMAGEGEN_CONTAINER_BASE to use an existing base image instead.
"""
import os
import pathlib
import shutil
import subprocess
import time
import uuid

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
BASE = os.environ.get("IMAGEGEN_CONTAINER_BASE", "localhost/debian:bookworm")

pytestmark = pytest.mark.skipif(shutil.which("podman") is None,
                                reason="podman missing: run scripts/setup.sh test")


def podman(*args, timeout=600, check=True, **kw):
    # Podman's default ulimits are refused in this sandbox, and crun cannot run here: use runc
    # and a containers.conf without ulimits (see /work/shared/notes/containers.md).
    env = dict(os.environ, CONTAINERS_CONF=str(_conf()))
    proc = subprocess.run(["podman", "--runtime", "runc", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def _conf():
    path = pathlib.Path("/tmp/imagegen-containers.conf")
    if not path.exists():
        path.write_text("[containers]\ndefault_ulimits = []\n")
    return path


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def base_image():
    if podman("image", "exists", BASE, check=False).returncode == 0:
        return BASE
    # A Debian 12 root file system from the apt mirror this machine already uses.
    mirror = "http://deb.debian.org/debian"
    sources = pathlib.Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                mirror = line.split()[1]
                break
    rootfs = pathlib.Path(f"/tmp/imagegen-rootfs-{uuid.uuid4().hex[:8]}")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    try:
        subprocess.run([*sudo, "debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror],
                       check=True, capture_output=True, timeout=900)
        tar = subprocess.Popen([*sudo, "tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        podman("import", "-", BASE, stdin=tar.stdout, timeout=600)
        tar.wait()
    finally:
        subprocess.run([*sudo, "rm", "-rf", str(rootfs)], check=False)
    return BASE


@pytest.fixture(scope="session")
def image(base_image):
    tag = f"localhost/imagegen:test-{uuid.uuid4().hex[:8]}"
    # The bundled model makes `serve` work out of the box; without it (models/ not trained yet)
    # the test builds the deterministic test model in and serves that.
    local = ROOT / "models" / "local"
    has_model = (local / "config.json").exists() and any(local.glob("*.safetensors"))
    args = ["build", "--format", "docker", "--network=host", "--build-arg", f"BASE_IMAGE={base_image}",
            "--build-arg", f"JOBS={os.environ.get('IMAGEGEN_CONTAINER_JOBS', '2')}"]
    if not has_model:
        args += ["--build-arg", "IMAGEGEN_TEST_MODEL=ON"]
    podman(*args, "-t", tag, str(ROOT), timeout=5400)
    size = int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
    print(f"\nimage {tag}: {size / 1e6:.0f} MB")
    yield tag, ([] if has_model else ["--model", "test"])
    podman("rmi", "-f", tag, check=False)


@pytest.fixture
def container(image):
    names = []

    def run(*args, env=None, volumes=()):
        name = f"imagegen-test-{uuid.uuid4().hex[:8]}"
        names.append(name)
        opts = ["run", "-d", "--network=host", "--name", name]
        for k, v in (env or {}).items():
            opts += ["-e", f"{k}={v}"]
        for v in volumes:
            opts += ["-v", v]
        podman(*opts, image[0], *args)
        return name

    yield run
    for name in names:
        podman("rm", "-f", "-t", "5", name, check=False)


def wait_healthy(url, name, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.5)
    logs = podman("logs", name, check=False)
    raise AssertionError(f"container not healthy:\n{logs.stdout}\n{logs.stderr}")


def test_serve_in_the_container_answers_generate_and_jobs(image, container):
    tag, model_args = image
    port = free_port()
    name = container("serve", "--host", "127.0.0.1", "--port", str(port), *model_args,
                     env={"IMAGEGEN_SERVE_WORKERS": "1", "IMAGEGEN_HEALTH_PORT": str(port)})
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, name)
    r = requests.post(url + "/generate", json={"prompt": "a red circle", "seed": 3}, timeout=300)
    assert r.status_code == 200, r.text
    result = r.json()
    png = requests.get(result["url"], timeout=30)
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    # The asynchronous door, completed by the in-process worker.
    job = requests.post(url + "/jobs", json={"prompt": "a blue square", "seed": 4}).json()
    deadline = time.time() + 300
    while time.time() < deadline:
        status = requests.get(job["status_url"]).json()["status"]
        if status in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    assert status == "succeeded"
    # Non-root, and the image carries its HEALTHCHECK.
    uid = podman("exec", name, "id", "-u").stdout.strip()
    assert uid == "10001"
    health = podman("healthcheck", "run", name, check=False)
    assert health.returncode == 0, health.stdout + health.stderr


def test_submit_and_worker_in_the_container(image, tmp_path):
    tag, model_args = image
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)  # the image's user (uid 10001) writes here
    vol = f"{data}:/var/lib/imagegen/data"
    queue = "sqlite:///var/lib/imagegen/data/queue.db"
    out = podman("run", "--rm", "--network=host", "-v", vol, tag, "submit", "a plain prompt",
                 "--queue", queue)
    job_id = out.stdout.strip()
    assert job_id
    podman("run", "--rm", "--network=host", "-v", vol, tag, "worker", "--queue", queue, "--drain",
           "--wait", "0", *model_args, timeout=600)
    assert (data / "images" / f"{job_id}.png").exists()
    assert podman("run", "--rm", tag, "--help").returncode == 0


def test_queue_and_bucket_given_to_the_container_win_over_its_baked_defaults(image):
    """The image bakes its embedded store and queue as IMAGEGEN_DEFAULT_*, so SQS_QUEUE_URL (and
    BUCKET_NAME) given at run time are what `submit` uses: with an SQS endpoint that does not
    answer it must fail, never exit 0 with the job written to a local SQLite file."""
    tag, _ = image
    env = podman("image", "inspect", "--format", "{{json .Config.Env}}", tag).stdout
    assert "IMAGEGEN_QUEUE=" not in env and "IMAGEGEN_STORE=" not in env, env
    assert "IMAGEGEN_DEFAULT_QUEUE=" in env
    dead = f"http://127.0.0.1:{free_port()}/000000000000/imagegen-jobs"
    out = podman("run", "--rm", "--network=host", "-e", f"SQS_QUEUE_URL={dead}",
                 "-e", "AWS_REGION=us-east-1", "-e", "AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
                 "-e", "AWS_SECRET_ACCESS_KEY=secret", "-e", f"AWS_ENDPOINT_URL_SQS={dead.rsplit('/', 2)[0]}",
                 tag, "submit", "a lost job?", check=False, timeout=120)
    assert out.returncode != 0, out.stdout + out.stderr
    assert "SQS" in out.stderr or "sqs" in out.stderr, out.stderr
