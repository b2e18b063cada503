"""deploy/terraform: parsed HCL asserts the properties the stack exists for (alarm metric and
variables, redrive policy, partial batch responses, visibility >= 6x timeout, IAM scope, S3
backend) and the defaults a new account needs (model/region pairing, no reserved concurrency, an
alarm topic key CloudWatch may use, Marketplace rights off, required_version), the README documents every input and output, `terraform fmt -check` (or `tofu fmt`)
and checkov pass, and the workflows pass actionlint."""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import hcl2
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TF = ROOT / "deploy" / "terraform"


def one(value):
    """python-hcl2 wraps attribute values and blocks in lists in some versions."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def load(name):
    with open(TF / name) as f:
        return hcl2.load(f)


@pytest.fixture(scope="module")
def main():
    return load("main.tf")


def resources(main, kind):
    out = {}
    for block in main.get("resource", []):
        for k, named in block.items():
            if k == kind:
                for name, body in named.items():
                    out[name] = body
    return out


def data_sources(main, kind):
    out = {}
    for block in main.get("data", []):
        for k, named in block.items():
            if k == kind:
                out.update(named)
    return out


def test_alarm_on_age_of_oldest_message_notifies_sns_email(main):
    alarm = resources(main, "aws_cloudwatch_metric_alarm")["oldest_job_age"]
    assert one(alarm["namespace"]) == "AWS/SQS"
    assert one(alarm["metric_name"]) == "ApproximateAgeOfOldestMessage"
    assert "aws_sqs_queue.jobs.name" in str(one(alarm["dimensions"]))
    assert one(alarm["threshold"]) == "${var.alarm_age_threshold_s}"
    assert one(alarm["period"]) == "${var.alarm_period_s}"
    assert "aws_sns_topic.alarms.arn" in str(alarm["alarm_actions"])
    sub = resources(main, "aws_sns_topic_subscription")["email"]
    assert one(sub["protocol"]) == "email"
    assert one(sub["endpoint"]) == "${var.alarm_email}"
    variables = {k for block in load("variables.tf")["variable"] for k in block}
    assert {"alarm_age_threshold_s", "alarm_period_s", "alarm_email"} <= variables


def test_queue_has_redrive_policy_to_dlq_and_visibility_six_times_timeout(main):
    queues = resources(main, "aws_sqs_queue")
    jobs, dlq = queues["jobs"], queues["dlq"]
    redrive = one(jobs["redrive_policy"])
    assert "deadLetterTargetArn" in redrive and "${aws_sqs_queue.dlq.arn}" in redrive
    assert "maxReceiveCount" in redrive and "${var.max_receive_count}" in redrive
    # The DLQ keeps messages longer than the source queue can (14 days).
    assert one(dlq["message_retention_seconds"]) == 1209600
    assert one(jobs["visibility_timeout_seconds"]) == "${local.visibility_timeout_s}"
    local = one(one(main["locals"])["visibility_timeout_s"])
    assert re.fullmatch(r"\$\{max\(var\.visibility_timeout_s,\s*6 \* var\.lambda_timeout_s\)\}",
                        local), local
    allow = resources(main, "aws_sqs_queue_redrive_allow_policy")["dlq"]
    assert "byQueue" in str(allow["redrive_allow_policy"])


def test_event_source_mapping_reports_partial_batch_failures(main):
    esm = resources(main, "aws_lambda_event_source_mapping")["jobs"]
    assert one(esm["event_source_arn"]) == "${aws_sqs_queue.jobs.arn}"
    assert "ReportBatchItemFailures" in str(esm["function_response_types"])
    assert one(esm["batch_size"]) == "${var.batch_size}"
    fn = resources(main, "aws_lambda_function")["worker"]
    assert one(fn["runtime"]) == "provided.al2023"
    assert one(fn["handler"]) == "bootstrap"
    assert one(fn["filename"]) == "${local.lambda_zip_path}"
    assert one(fn["architectures"]) == "${var.architecture}"
    env = one(one(fn["environment"])["variables"])
    assert {"BUCKET_NAME", "KEY_PREFIX", "SQS_QUEUE_URL"} <= set(env)


def variables():
    return {k: v for block in load("variables.tf")["variable"] for k, v in block.items()}


def validations(variable):
    found = variable.get("validation", [])
    return [one(v["condition"]) for v in (found if isinstance(found, list) else [found])]


def test_package_path_is_the_zip_the_makefile_writes_for_the_architecture(main):
    v = variables()
    assert one(v["architecture"]["default"]) == "arm64"
    assert "contains(['arm64', 'x86_64'],var.architecture)" in validations(v["architecture"])[0]
    assert one(v["lambda_zip_path"]["default"]) == ""
    assert any("endswith(var.lambda_zip_path" in c for c in validations(v["lambda_zip_path"]))
    path = one(one(main["locals"])["lambda_zip_path"])
    # `make -C deploy/sam zip ARCH=<architecture>` writes build-sam-<arch>/imagegen-lambda-<arch>.zip
    # at the repository root, two levels above this module.
    assert "${path.module}/../../build-sam-${var.architecture}/imagegen-lambda-${var.architecture}.zip" in path
    assert "lambda_architecture" not in v


def test_regions_and_model_defaults_work_together(main):
    v = variables()
    model = one(v["model_id"]["default"])
    bedrock_region = one(v["bedrock_region"]["default"])
    assert model == "stability.stable-image-core-v1:1" and bedrock_region == "us-west-2"
    # The pairing is validated: a Stability model outside us-west-2 is refused at plan time.
    pairing = [c for c in validations(v["bedrock_region"]) if "var.model_id" in c]
    assert pairing == ['${!startswith(var.model_id,"stability.") || var.bedrock_region == "us-west-2"}']

    def allowed(model_id, region):  # the condition above, evaluated here
        return not model_id.startswith("stability.") or region == "us-west-2"
    assert allowed(model, bedrock_region)
    assert not allowed("stability.sd3-5-large-v1:0", "us-east-1")
    assert allowed("amazon.titan-image-generator-v2:0", "eu-west-1")
    # The bucket's region: empty = the stack's; only meaningful for an existing bucket.
    assert one(v["bucket_region"]["default"]) == ""
    assert any('var.bucket_name != ""' in c for c in validations(v["bucket_region"]))
    locals_ = one(main["locals"])
    assert one(locals_["bucket_region"]) == '${var.bucket_region == "" ? var.region : var.bucket_region}'
    assert "bedrock:${var.bedrock_region}::foundation-model/${var.model_id}" in one(locals_["model_arn"])
    assert "${var.region}" not in one(locals_["model_arn"])
    env = one(one(resources(main, "aws_lambda_function")["worker"]["environment"])["variables"])
    assert env["IMAGEGEN_BEDROCK_REGION"] == "${var.bedrock_region}"
    assert env["IMAGEGEN_S3_REGION"] == "${local.bucket_region}"
    assert env["MODEL_ID"] == "${var.model_id}"


def test_no_reserved_concurrency_by_default_the_mapping_bounds_it(main):
    v = variables()
    # New accounts often have 10 concurrent executions in all and AWS keeps 10 unreserved: any
    # reserved value fails there. -1 is the provider's "unreserved".
    assert one(v["lambda_reserved_concurrency"]["default"]) in (-1, "${-1}", None)
    fn = resources(main, "aws_lambda_function")["worker"]
    assert one(fn["reserved_concurrent_executions"]) == "${var.lambda_reserved_concurrency}"
    esm = resources(main, "aws_lambda_event_source_mapping")["jobs"]
    assert one(one(esm["scaling_config"])["maximum_concurrency"]) == "${var.max_concurrency}"
    assert 2 <= one(v["max_concurrency"]["default"]) < 10


def test_alarm_topic_uses_a_key_cloudwatch_may_use(main):
    topic = resources(main, "aws_sns_topic")["alarms"]
    assert one(topic["kms_master_key_id"]) == "${aws_kms_key.alarms.arn}"
    # Not the AWS managed alias/aws/sns: alarms cannot publish to a topic encrypted with it.
    assert "alias/aws/sns" not in str(topic)
    key = resources(main, "aws_kms_key")["alarms"]
    assert one(key["enable_key_rotation"]) is True
    assert one(key["policy"]) == "${data.aws_iam_policy_document.alarms_key.json}"
    policy = data_sources(main, "aws_iam_policy_document")["alarms_key"]
    statements = {one(s["sid"]): s for s in policy["statement"]}
    cw = statements["CloudWatchAlarmsPublishToTheTopic"]
    principals = one(cw["principals"])
    assert one(principals["type"]) == "Service"
    assert one(principals["identifiers"]) == "cloudwatch.amazonaws.com"
    assert set(one(cw["actions"])) == {"kms:GenerateDataKey*", "kms:Decrypt"}
    # The account keeps control of its key (a key policy without it cannot be managed at all).
    admin = statements["AccountAdministersTheKey"]
    assert ":root" in str(admin["principals"])


def test_marketplace_subscription_is_opt_in_and_only_through_bedrock(main):
    v = variables()
    assert one(v["allow_marketplace_subscription"]["default"]) is False
    assert one(v["allow_marketplace_subscription"]["type"]) == "${bool}"
    policy = data_sources(main, "aws_iam_policy_document")["function"]
    dynamic = [one(d["statement"]) for d in policy["dynamic"]]
    (market,) = [d for d in dynamic if "marketplace" in str(d["for_each"])]
    assert one(market["for_each"]) == "${var.allow_marketplace_subscription ? [True] : []}" or \
        one(market["for_each"]) == "${var.allow_marketplace_subscription ? [true] : []}"
    content = one(market["content"])
    assert set(one(content["actions"])) == {"aws-marketplace:Subscribe", "aws-marketplace:Unsubscribe",
                                            "aws-marketplace:ViewSubscriptions"}
    assert one(content["resources"]) == "*"  # Marketplace has no resource-level permissions
    condition = one(content["condition"])
    assert one(condition["test"]) == "StringEquals"
    assert one(condition["variable"]) == "aws:CalledViaLast"
    assert one(condition["values"]) == "bedrock.amazonaws.com"
    # The static statements never mention Marketplace.
    assert "aws-marketplace" not in str(policy["statement"])


def test_required_version_matches_the_features_used():
    versions = load("versions.tf")
    required = one(one(versions["terraform"])["required_version"])
    m = re.fullmatch(r">=\s*(\d+)\.(\d+)(?:\.\d+)?", required)
    assert m, required
    # use_lockfile in the S3 backend (backend.hcl.example, the workflow) needs 1.10.
    assert (int(m.group(1)), int(m.group(2))) >= (1, 10)
    assert "use_lockfile" in (TF / "backend.hcl.example").read_text()
    workflow = (ROOT / ".github" / "workflows" / "terraform.yml").read_text()
    pinned = re.search(r'TERRAFORM_VERSION: "(\d+)\.(\d+)\.\d+"', workflow)
    assert pinned and (int(pinned.group(1)), int(pinned.group(2))) >= (1, 10)


def test_iam_is_least_privilege(main):
    policy = data_sources(main, "aws_iam_policy_document")["function"]
    statements = policy["statement"] if isinstance(policy["statement"], list) else [policy["statement"]]
    by_sid = {one(s["sid"]): s for s in statements}
    for sid, s in by_sid.items():
        actions = [a for a in one(s["actions"])] if isinstance(one(s["actions"]), list) \
            else [one(s["actions"])]
        for action in actions:
            assert "*" not in action, (sid, action)  # no wildcard actions
        resources_ = one(s["resources"])
        resources_ = resources_ if isinstance(resources_, list) else [resources_]
        if sid != "XRayTraces":  # X-Ray has no resource-level permissions
            assert "*" not in resources_, sid
    consume = by_sid["ConsumeJobQueue"]
    assert set(one(consume["actions"])) == {"sqs:ReceiveMessage", "sqs:DeleteMessage",
                                            "sqs:ChangeMessageVisibility",
                                            "sqs:GetQueueAttributes"}
    assert one(consume["resources"]) == "${aws_sqs_queue.jobs.arn}"
    objects = by_sid["ImagesAndJobRecords"]
    assert set(one(objects["actions"])) == {"s3:GetObject", "s3:PutObject"}
    assert one(objects["resources"]) == "${local.bucket_arn}/${var.key_prefix}*"
    expire = by_sid["ExpireJobRecords"]  # deletes job records only, never images
    assert one(expire["actions"]) == "s3:DeleteObject"
    assert one(expire["resources"]) == "${local.bucket_arn}/${var.key_prefix}jobs/*"
    listing = by_sid["ListOwnPrefix"]
    assert "s3:prefix" in str(listing["condition"])
    logs = by_sid["WriteLogs"]
    assert "aws_cloudwatch_log_group.function.arn" in str(logs["resources"])
    # No managed policies with broad rights are attached.
    assert "aws_iam_role_policy_attachment" not in str(main.get("resource"))
    assert "sts:AssumeRole" in str(data_sources(main, "aws_iam_policy_document")["assume"])


def test_dashboard_and_s3_backend():
    main = load("main.tf")
    assert "aws_cloudwatch_dashboard" in str(main["resource"])
    versions = load("versions.tf")
    backend = one(one(versions["terraform"])["backend"])
    assert "s3" in backend


def test_readme_documents_every_input_and_output():
    readme = (TF / "README.md").read_text()
    variables = [k for block in load("variables.tf")["variable"] for k in block]
    outputs = [k for block in load("outputs.tf")["output"] for k in block]
    for name in variables + outputs:
        assert f"`{name}`" in readme, f"README.md does not document {name}"
    for block in load("variables.tf")["variable"]:
        for name, body in block.items():
            assert one(body.get("description")), f"variable {name} has no description"


def _fmt_binary():
    for candidate in (shutil.which("tofu"), str(ROOT / ".tools" / "bin" / "tofu"),
                      shutil.which("terraform")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def test_fmt_check():
    binary = _fmt_binary()
    if binary is None:
        pytest.skip("no terraform or tofu binary (scripts/setup.d/queue.sh builds tofu)")
    proc = subprocess.run([binary, "fmt", "-check", "-recursive", "-diff", str(TF)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_checkov_passes():
    checkov = pathlib.Path(sys.executable).parent / "checkov"
    if not checkov.exists():
        pytest.skip("checkov not installed in the venv")
    proc = subprocess.run([str(checkov), "-d", str(TF), "--framework", "terraform", "--quiet",
                           "--compact", "--skip-download", "-o", "json"],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false"))
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    assert not failed, [(c["check_id"], c["resource"]) for c in failed]
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    assert passed > 30


def test_workflows_pass_actionlint():
    actionlint = shutil.which("actionlint") or str(ROOT / ".tools" / "bin" / "actionlint")
    if not os.access(actionlint, os.X_OK):
        pytest.skip("actionlint not built (scripts/setup.d/lambda.sh builds it)")
    workflows = [ROOT / ".github" / "workflows" / n for n in ("terraform.yml", "container.yml")]
    proc = subprocess.run([actionlint, *map(str, workflows)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = workflows[0].read_text()
    assert "id-token: write" in text and "configure-aws-credentials" in text
    assert "aws-access-key-id" not in text  # OIDC only, no stored keys
    assert "terraform fmt -check" in text and "terraform validate" in text
    assert "terraform apply" in text and "refs/heads/main" in text
    container = workflows[1].read_text()
    assert ":latest" in container and "github.sha" in container
