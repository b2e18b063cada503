"""The GitHub Actions workflows pass actionlint (built from its Go module by
scripts/setup.d/lambda.sh), and the SAM pipeline keeps its promises: tests on every push and PR,
deploy only from main through OIDC role assumption, no long-lived keys anywhere."""
import subprocess

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
