"""deploy/sam: the template passes cfn-lint and checkov (remaining findings waived in the template
with reasons), transforms with aws-sam-translator into the least-privilege stack the issue asks
for, and the SAM makefile build produces a zip with the bootstrap.

The build test calls the Makefile target the way `sam build` does (make -f deploy/sam/Makefile
build-ImagegenFunction with ARTIFACTS_DIR set, from another directory) without Docker, and
packages the already-built binary (IMAGEGEN_PREBUILT) instead of compiling again, so it checks
the packaging, not the release compile.
"""
import json
import os
import pathlib
import platform
import re
import shutil
import stat
import subprocess
import tomllib
import zipfile

import pytest


from conftest import ROOT

SAM_DIR = ROOT / "deploy" / "sam"
TEMPLATE = SAM_DIR / "template.yaml"
VENV = ROOT / ".venv" / "bin"
HOST_ARCH = {"x86_64": "x86_64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def translate(params=None, region="us-west-2"):
    """The CloudFormation that SAM would deploy (CodeUri packaged as `sam package` does). The
    translator needs a region for its pseudo-parameters."""
    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region
    try:
        return _translate(params)
    finally:
        if saved is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved


def _translate(params):
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    class NoManagedPolicies:
        def load(self):
            return {}

    template = yaml_parse(TEMPLATE.read_text())
    template["Resources"]["ImagegenFunction"]["Properties"]["CodeUri"] = "s3://artifacts/imagegen.zip"
    return transform(template, dict({"BucketName": "my-bucket", "KeyPrefix": "candidate-42"}, **(params or {})),
                     NoManagedPolicies())


def test_cfn_lint_passes():
    r = subprocess.run([str(VENV / "cfn-lint"), str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_checkov_passes_with_reasoned_waivers():
    r = subprocess.run([str(VENV / "checkov"), "-f", str(TEMPLATE), "--framework", "cloudformation",
                        "--skip-download", "-o", "json"],
                       capture_output=True, text=True, timeout=600)
    report = json.loads(r.stdout)
    summary = report["summary"]
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0, r.stdout[:4000]
    skipped = report["results"]["skipped_checks"]
    assert skipped, "expected the documented waivers"
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) > 20, check["check_id"]


def test_sam_translator_transforms_to_least_privilege_stack():
    out = translate()
    resources = out["Resources"]
    fn = resources["ImagegenFunction"]["Properties"]
    assert fn["Runtime"] == "provided.al2023" and fn["Handler"] == "bootstrap"
    assert fn["Architectures"] == [{"Ref": "Architecture"}]
    assert fn["LoggingConfig"]["LogFormat"] == "JSON"
    assert fn["TracingConfig"]["Mode"] == {"Ref": "Tracing"}
    assert set(fn["Environment"]["Variables"]) >= {"BUCKET_NAME", "KEY_PREFIX", "MODEL_ID"}
    role = resources["ImagegenFunctionRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    invoke = [s for s in statements if isinstance(s, dict) and s.get("Action") == "bedrock:InvokeModel"]
    assert len(invoke) == 1
    # The model's ARN names the Bedrock region, not the stack's.
    assert invoke[0]["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:bedrock:${BedrockRegion}::foundation-model/${ModelId}"}
    s3 = [s for s in statements if isinstance(s, dict) and "s3:PutObject" in s.get("Action", [])]
    assert s3[0]["Action"] == ["s3:PutObject", "s3:GetObject"]
    assert s3[0]["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}/${KeyPrefix}/*"}
    # No wildcard actions anywhere, and no wildcard resource in what is granted by default (the
    # opt-in Marketplace statement is checked in its own test).
    text = json.dumps(role["Policies"])
    assert '"Action": "*"' not in text
    assert '"s3:*"' not in text and '"bedrock:*"' not in text
    default_statements = [s for s in statements if "Fn::If" not in s]
    assert '"Resource": "*"' not in json.dumps(default_statements)
    # Managed policies: logs, and X-Ray write (added by SAM because Tracing is a parameter).
    assert set(role["ManagedPolicyArns"]) <= {
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"}
    api = resources["ImagegenApi"]["Properties"]
    assert api["BinaryMediaTypes"] == ["*~1*"]
    paths = api["Body"]["paths"]
    assert "post" in paths["/generate"] and "post" in paths["/v1/images/generations"]
    assert "get" in paths["/images/{key+}"] and "get" in paths["/healthz"]
    assert "delete" in paths["/images/{key+}"]  # wherever GET /images/{key} is
    deletes = [s for s in statements if isinstance(s, dict) and s.get("Action") == "s3:DeleteObject"]
    assert [d["Resource"] for d in deletes] == [s3[0]["Resource"]]  # the owner prefix only
    assert "ApiUrl" in out["Outputs"]
    params = out["Parameters"]
    assert params["Architecture"]["Default"] == "arm64"
    assert set(params["Architecture"]["AllowedValues"]) == {"arm64", "x86_64"}
    assert {"BucketName", "KeyPrefix", "ModelId", "Tracing", "BedrockRegion", "BucketRegion",
            "AllowMarketplaceSubscription"} <= set(params)


def _conditional_statements(out):
    role = out["Resources"]["ImagegenFunctionRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    return {s["Fn::If"][0]: s["Fn::If"] for s in statements if "Fn::If" in s}


def test_regions_bedrock_in_us_west_2_bucket_in_the_stack_region_by_default():
    out = translate()
    params = out["Parameters"]
    assert params["ModelId"]["Default"] == "stability.stable-image-core-v1:1"
    # Stability's models are served in us-west-2 only: the default pairing must work together.
    assert params["BedrockRegion"]["Default"] == "us-west-2"
    assert params["BucketRegion"]["Default"] == ""
    env = out["Resources"]["ImagegenFunction"]["Properties"]["Environment"]["Variables"]
    assert env["IMAGEGEN_BEDROCK_REGION"] == {"Ref": "BedrockRegion"}
    assert env["IMAGEGEN_S3_REGION"] == {"Fn::If": ["BucketInStackRegion", {"Ref": "AWS::Region"},
                                                    {"Ref": "BucketRegion"}]}
    assert out["Conditions"]["BucketInStackRegion"] == {"Fn::Equals": [{"Ref": "BucketRegion"}, ""]}
    for name in ("BedrockRegion", "BucketRegion"):
        pattern = params[name]["AllowedPattern"]
        assert re.fullmatch(pattern, "us-west-2") and re.fullmatch(pattern, "eu-central-1")
        assert not re.fullmatch(pattern, "us-west-2a") and not re.fullmatch(pattern, "US-WEST-2")
    assert re.fullmatch(params["BucketRegion"]["AllowedPattern"], "")
    assert not re.fullmatch(params["BedrockRegion"]["AllowedPattern"], "")


def test_rule_refuses_a_stability_model_outside_us_west_2():
    """CloudFormation evaluates Rules before it creates anything; evaluate this one here for the
    defaults and for a wrong region."""
    out = translate()
    rule = out["Rules"]["StabilityModelsInUsWest2"]
    models, ref = rule["RuleCondition"]["Fn::Contains"]
    assert ref == {"Ref": "ModelId"}
    assert set(models) == {"stability.stable-image-core-v1:1", "stability.stable-image-ultra-v1:1",
                           "stability.sd3-5-large-v1:0"}
    (assertion,) = rule["Assertions"]
    regions, ref = assertion["Assert"]["Fn::Contains"]
    assert ref == {"Ref": "BedrockRegion"} and regions == ["us-west-2"]
    assert "BedrockRegion" in assertion["AssertDescription"]

    def allowed(model, region):
        return model not in models or region in regions
    params = out["Parameters"]
    assert allowed(params["ModelId"]["Default"], params["BedrockRegion"]["Default"])
    assert not allowed("stability.stable-image-core-v1:1", "us-east-1")
    assert allowed("amazon.titan-image-generator-v2:0", "us-east-1")


def test_marketplace_subscription_is_opt_in_and_only_through_bedrock():
    out = translate()
    params = out["Parameters"]
    assert params["AllowMarketplaceSubscription"]["Default"] == "false"
    assert set(params["AllowMarketplaceSubscription"]["AllowedValues"]) == {"true", "false"}
    assert out["Conditions"]["MarketplaceSubscriptionAllowed"] == {
        "Fn::Equals": [{"Ref": "AllowMarketplaceSubscription"}, "true"]}
    name, granted, otherwise = _conditional_statements(out)["MarketplaceSubscriptionAllowed"]
    assert otherwise == {"Ref": "AWS::NoValue"}  # "false" (the default): no Marketplace rights
    assert sorted(granted["Action"]) == ["aws-marketplace:Subscribe", "aws-marketplace:Unsubscribe",
                                         "aws-marketplace:ViewSubscriptions"]
    # Marketplace has no resource-level permissions; the condition narrows the grant to calls
    # Bedrock makes on the function's behalf (the subscription on a model's first invocation).
    assert granted["Resource"] == "*"
    assert granted["Condition"] == {"StringEquals": {"aws:CalledViaLast": "bedrock.amazonaws.com"}}
    # Nothing else in the policy is conditional on it.
    role = out["Resources"]["ImagegenFunctionRole"]["Properties"]
    assert json.dumps(role).count("aws-marketplace:") == 3


def test_guided_deploy_asks_for_the_owner_prefix():
    """KeyPrefix (the candidate number) has no default, and samconfig.toml does not fill it in, so
    `sam deploy --guided` asks for it instead of deploying under someone else's prefix."""
    from samtranslator.yaml_helper import yaml_parse
    template = yaml_parse(TEMPLATE.read_text())
    key_prefix = template["Parameters"]["KeyPrefix"]
    assert "Default" not in key_prefix
    assert "candidate" in key_prefix["Description"].lower()
    assert "Default" not in template["Parameters"]["BucketName"]
    config = tomllib.loads((SAM_DIR / "samconfig.toml").read_text())
    deploy = config["default"]["deploy"]["parameters"]
    overrides = deploy.get("parameter_overrides", "")
    assert "KeyPrefix" not in overrides and "BucketName" not in overrides
    # The stack's region and the Bedrock region agree with the default model.
    assert deploy["region"] == "us-west-2"
    assert 'BedrockRegion="us-west-2"' in overrides
    assert 'AllowMarketplaceSubscription="false"' in overrides
    # Every override names a real parameter.
    for item in overrides.split():
        assert item.split("=", 1)[0] in template["Parameters"], item


def test_sam_validate_lint_passes():
    sam = VENV / "sam"
    if not sam.exists():
        pytest.skip("sam CLI not installed in the venv")
    r = subprocess.run([str(sam), "validate", "--lint", "-t", str(TEMPLATE), "--region", "us-west-2"],
                       capture_output=True, text=True, timeout=300, cwd=SAM_DIR,
                       env=dict(os.environ, SAM_CLI_TELEMETRY="0"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "valid SAM Template" in r.stdout + r.stderr


def test_sam_metadata_selects_the_makefile_build():
    from samtranslator.yaml_helper import yaml_parse
    template = yaml_parse(TEMPLATE.read_text())
    fn = template["Resources"]["ImagegenFunction"]
    assert fn["Metadata"]["BuildMethod"] == "makefile"
    makefile = (SAM_DIR / pathlib.Path(fn["Properties"]["CodeUri"]) / "Makefile").read_text()
    assert "build-ImagegenFunction:" in makefile


def test_makefile_build_produces_a_zip_with_the_bootstrap(tmp_path):
    """As `sam build` calls the makefile build (from a scratch directory, with the original
    Makefile's path and ARTIFACTS_DIR), packaging a prebuilt binary. A static executable stands in
    for the release build (which tests/integration/test_lambda_package.py makes and runs), so the
    package checks pass on any build host and this test needs no compile."""
    stand_in = ROOT / ".tools" / "bin" / "aws-lambda-rie"  # static Go binary (scripts/setup.d/lambda.sh)
    if not stand_in.exists():
        pytest.skip("no static stand-in binary: run scripts/setup.d/lambda.sh")
    artifacts = tmp_path / "artifacts"
    r = subprocess.run(["make", "-f", str(SAM_DIR / "Makefile"), "build-ImagegenFunction",
                        f"ARTIFACTS_DIR={artifacts}", f"IMAGEGEN_PREBUILT={stand_in}", f"ARCH={HOST_ARCH}",
                        "BUNDLE_LIBS=0"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    bootstrap = artifacts / "bootstrap"
    assert bootstrap.stat().st_mode & stat.S_IXUSR
    # SAM zips the artifacts directory; do the same and check what Lambda would unpack.
    zip_path = shutil.make_archive(str(tmp_path / "function"), "zip", artifacts)
    with zipfile.ZipFile(zip_path) as z:
        names = z.namelist()
        assert "bootstrap" in names
        info = z.getinfo("bootstrap")
        assert (info.external_attr >> 16) & stat.S_IXUSR, "bootstrap must stay executable"
    print(f"zip {os.path.getsize(zip_path)} bytes; bootstrap {bootstrap.stat().st_size} bytes")


def test_makefile_refuses_a_package_that_cannot_start_on_al2023(imagegen_bin, tmp_path):
    """bundle-libs.sh guards the two ways a zip fails on provided.al2023: a glibc newer than
    AL2023's, and more than 250 MB unzipped."""
    r = subprocess.run(["make", "-f", str(SAM_DIR / "Makefile"), "build-ImagegenFunction",
                        f"ARTIFACTS_DIR={tmp_path / 'a'}", f"IMAGEGEN_PREBUILT={imagegen_bin}",
                        f"ARCH={HOST_ARCH}", "MAX_GLIBC=2.0"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    # The development build links Debian's shared libraries (and glibc 2.36 symbols): refused.
    assert r.returncode != 0 and "glibc" in r.stdout + r.stderr
