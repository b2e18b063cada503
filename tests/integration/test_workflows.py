"""The GitHub Actions workflows pass actionlint (built from its Go module by
scripts/setup.d/lambda.sh), and the pipelines keep their promises: tests on every push and PR,
deploy only from main through OIDC role assumption, no long-lived keys anywhere, the Lambda
package built by deploy/sam/Makefile for the function's architecture (and the zip Terraform
reads), no `dnf -q` (microdnf rejects it), and deps-al2023.sh's cpp-httplib.pc."""
import os
import re
import shutil
import subprocess

import hcl2
import pytest
import yaml

from conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = ROOT / ".tools" / "bin" / "actionlint"


def load(name):
    # PyYAML reads the key `on` as True.
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


@pytest.mark.skipif(not ACTIONLINT.exists(), reason="actionlint missing: run scripts/setup.d/lambda.sh")
def test_actionlint_passes_on_every_workflow():
    files = sorted(str(p) for p in WORKFLOWS.glob("*.y*ml"))
    assert files
    r = subprocess.run([str(ACTIONLINT), "-no-color", *files], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ci_builds_and_tests_every_push_and_pull_request():
    ci = load("ci.yml")
    assert "push" in ci["on"] and "pull_request" in ci["on"]
    push = ci["on"]["push"] or {}
    assert "branches" not in push and "branches-ignore" not in push
    runs = [s.get("run", "") for job in ci["jobs"].values() for s in job["steps"]]
    assert any("scripts/test.sh" in r for r in runs)
    assert any("actionlint" in r for r in runs)
    assert any("cfn-lint deploy/sam/template.yaml" in r for r in runs)
    assert any("checkov" in r for r in runs)
    assert ci["permissions"] == {"contents": "read"}


def test_deploy_uses_oidc_and_only_deploys_main():
    deploy = load("deploy-sam.yml")
    run = deploy["on"]["workflow_run"]
    assert run["workflows"] == ["ci"] and run["branches"] == ["main"]
    job = deploy["jobs"]["deploy"]
    assert "conclusion == 'success'" in job["if"] and "event == 'push'" in job["if"]
    assert job["permissions"]["id-token"] == "write"
    steps = job["steps"]
    creds = [s for s in steps if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
    assert len(creds) == 1 and "role-to-assume" in creds[0]["with"]
    assert "aws-access-key-id" not in creds[0]["with"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "sam build" in runs and "sam deploy" in runs
    text = (WORKFLOWS / "deploy-sam.yml").read_text()
    assert "AWS_SECRET_ACCESS_KEY" not in text and "aws-secret-access-key" not in text
    for name in ("AWS_DEPLOY_ROLE_ARN", "IMAGEGEN_BUCKET", "IMAGEGEN_KEY_PREFIX"):
        assert f"vars.{name}" in text


def _run_text(job):
    return "\n".join(s.get("run", "") for s in job["steps"])


def test_no_workflow_or_build_script_passes_q_to_dnf():
    """AWS's AL2023 build images have microdnf as `dnf`, which rejects -q ("Unknown option -q")."""
    texts = {p.name: p.read_text() for p in WORKFLOWS.glob("*.y*ml")}
    texts["deps-al2023.sh"] = (ROOT / "deploy" / "sam" / "deps-al2023.sh").read_text()
    for name, text in texts.items():
        for line in text.splitlines():
            if re.search(r"\b(micro)?dnf\b.*\binstall\b", line) and not line.lstrip().startswith("#"):
                assert not re.search(r"\s-q\b|--quiet", line), (name, line)


def test_deploy_builds_with_the_makefile_for_the_function_architecture():
    deploy = load("deploy-sam.yml")
    job = deploy["jobs"]["deploy"]
    runs = _run_text(job)
    assert "make -C deploy/sam deps" in runs
    build = [s for s in job["steps"] if "sam build" in s.get("run", "")]
    assert len(build) == 1 and build[0]["working-directory"] == "deploy/sam"
    # The Makefile builds for $ARCH; the same value is the stack's Architecture.
    assert "vars.SAM_ARCHITECTURE" in job["env"]["ARCH"] and "'arm64'" in job["env"]["ARCH"]
    assert "Architecture=$ARCH" in runs
    # Credentials are assumed only after the build, for the deploy.
    names = [s.get("uses", "") or s.get("run", "") for s in job["steps"]]
    creds = next(i for i, n in enumerate(names) if n.startswith("aws-actions/configure-aws-credentials@"))
    assert creds > next(i for i, n in enumerate(names) if "sam build" in n)
    assert creds < next(i for i, n in enumerate(names) if "sam deploy" in n)


def test_deploy_passes_the_region_and_marketplace_parameters():
    from samtranslator.yaml_helper import yaml_parse
    params = yaml_parse((ROOT / "deploy" / "sam" / "template.yaml").read_text())["Parameters"]
    job = load("deploy-sam.yml")["jobs"]["deploy"]
    runs = _run_text(job)
    for name in ("BucketName", "KeyPrefix", "ModelId", "BedrockRegion", "BucketRegion",
                 "Architecture", "AllowMarketplaceSubscription"):
        assert f'"{name}=$' in runs, name
        assert name in params
    assert "'us-west-2'" in job["env"]["BEDROCK_REGION"]
    assert "'false'" in job["env"]["ALLOW_MARKETPLACE_SUBSCRIPTION"]
    # An empty BucketRegion (= the stack's region) is left out rather than passed empty.
    assert 'if [ -n "$BUCKET_REGION" ]' in runs


def _tf_variables():
    with open(ROOT / "deploy" / "terraform" / "variables.tf") as f:
        return {k for block in hcl2.load(f)["variable"] for k in block}


def test_terraform_packages_with_the_makefile_zip_and_plans_with_it():
    tf = load("terraform.yml")
    assert "'arm64'" in tf["env"]["ARCH"]
    package = tf["jobs"]["package"]
    runs = _run_text(package)
    assert "make -C deploy/sam deps" in runs
    assert 'make -C deploy/sam zip "ARCH=$ARCH"' in runs
    upload = [s for s in package["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload[0]["with"]["path"] == "build-sam-${{ env.ARCH }}/imagegen-lambda-${{ env.ARCH }}.zip"
    variables = _tf_variables()
    for name in ("plan", "apply"):
        job = tf["jobs"][name]
        download = [s for s in job["steps"] if s.get("uses", "").startswith("actions/download-artifact@")]
        assert download[0]["with"]["name"] == upload[0]["with"]["name"]
        assert download[0]["with"]["path"] == "build-sam-${{ env.ARCH }}"
        runs = _run_text(job)
        assert "lambda_zip_path=$GITHUB_WORKSPACE/build-sam-$ARCH/imagegen-lambda-$ARCH.zip" in runs
        assert "architecture=$ARCH" in runs
        # Every variable the workflow sets exists in deploy/terraform.
        passed = set(re.findall(r'-var "([a-z_]+)=', runs))
        assert passed and passed <= variables, passed - variables
        assert job["permissions"]["id-token"] == "write"
    text = (WORKFLOWS / "terraform.yml").read_text()
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text


def test_deps_script_writes_a_pkg_config_file_for_cpp_httplib(tmp_path):
    """cpp-httplib's CMake install writes no cpp-httplib.pc; CMakeLists.txt asks pkg-config first.
    Run on a prefix that already holds the fetched libraries, so nothing is downloaded."""
    if shutil.which("cmake") is None or shutil.which("pkg-config") is None:
        pytest.skip("cmake or pkg-config missing")
    prefix = tmp_path / "deps"
    (prefix / "include").mkdir(parents=True)
    (prefix / "include" / "httplib.h").write_text("// stand-in\n")
    for sub, name in (("nlohmann_json", "nlohmann_jsonConfig.cmake"), ("CLI11", "CLI11Config.cmake")):
        (prefix / "share" / "cmake" / sub).mkdir(parents=True)
        (prefix / "share" / "cmake" / sub / name).write_text("")
    r = subprocess.run(["bash", str(ROOT / "deploy" / "sam" / "deps-al2023.sh"), str(prefix)],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, IMAGEGEN_ENGINE="OFF"))
    if "installing CMake from PyPI" in r.stdout:
        pytest.skip("this host's CMake is older than CMakeLists.txt asks (the script would fetch one)")
    assert r.returncode == 0, r.stdout + r.stderr
    pc = prefix / "lib" / "pkgconfig" / "cpp-httplib.pc"
    assert pc.exists()
    env = dict(os.environ, PKG_CONFIG_PATH=str(pc.parent))
    cflags = subprocess.run(["pkg-config", "--cflags", "cpp-httplib"], capture_output=True,
                            text=True, env=env, check=True).stdout
    assert f"-I{prefix}/include" in cflags
    version = subprocess.run(["pkg-config", "--modversion", "cpp-httplib"], capture_output=True,
                             text=True, env=env, check=True).stdout.strip()
    assert version and version[0].isdigit()
