"""imagegen's SigV4 signer against botocore's, on a few hundred randomised requests: methods, paths
with unicode/space/+/~/% (and dot segments for services that normalise), query parameters, headers
with whitespace runs, bodies, services s3/sqs/bedrock, with and without a session token, signed and
unsigned payloads, header signing and presigned URLs. The C++ side is src/aws/sigv4_crosscheck_itest.cc."""
import json
import subprocess

from aws_peers import assert_itest_passed, itest_binary, run_itest
from sigv4_cases import generate

N_CASES = 600


def _write(tmp_path, cases):
    path = tmp_path / "sigv4_cases.json"
    path.write_text(json.dumps(cases, ensure_ascii=False))
    return path


def test_signatures_match_botocore(tmp_path, aws_env):
    cases = generate(N_CASES, seed=20261125)
    kinds = {c["kind"] for c in cases}
    services = {c["service"] for c in cases}
    assert kinds == {"header", "presign"} and services == {"s3", "sqs", "bedrock"}
    assert any(c["session_token"] for c in cases) and any(not c["session_token"] for c in cases)
    assert any(c["unsigned_payload"] for c in cases)
    env = dict(aws_env, IMAGEGEN_SIGV4_CASES=str(_write(tmp_path, cases)))
    output = assert_itest_passed(run_itest("aws_itest", env, "SigV4Crosscheck.*"))
    assert " 0 mismatches" in output


def test_a_second_seed_also_matches(tmp_path, aws_env):
    env = dict(aws_env, IMAGEGEN_SIGV4_CASES=str(_write(tmp_path, generate(200, seed=7))))
    assert_itest_passed(run_itest("aws_itest", env, "SigV4Crosscheck.*"))


def test_crosscheck_detects_a_wrong_signature(tmp_path, aws_env):
    # The comparison must bite: one flipped hex digit in botocore's answer fails the run.
    cases = generate(150, seed=11)
    victim = next(c for c in cases if c["kind"] == "header")
    auth = victim["expected_headers"]["authorization"]
    victim["expected_headers"]["authorization"] = auth[:-1] + ("0" if auth[-1] != "0" else "1")
    env = dict(aws_env, IMAGEGEN_SIGV4_CASES=str(_write(tmp_path, cases)))
    proc = run_itest("aws_itest", env, "SigV4Crosscheck.*")
    assert proc.returncode != 0
    assert " 1 mismatches" in proc.stdout


def test_itests_fail_without_their_environment(aws_env):
    for name in ("aws_itest", "store_itest", "queue_itest"):
        proc = subprocess.run([itest_binary(name)], capture_output=True, text=True, env=aws_env,
                              timeout=120)
        assert proc.returncode != 0, f"{name} passed without its endpoint variables"
        assert "is not set" in proc.stdout + proc.stderr
