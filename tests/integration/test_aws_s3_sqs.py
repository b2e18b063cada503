"""The S3 ObjectStore and the SQS JobQueue against moto: the C++ itests (src/store/s3_store_itest.cc,
src/queue/sqs_queue_itest.cc) run against a plain moto and against a moto that verifies every SigV4
signature; boto3 is the independent client that checks what imagegen wrote and writes what it reads."""
import email.header
import json
import uuid

from aws_peers import AwsPeer, DUMMY_KEYS, assert_itest_passed, run_itest

FOREIGN = {  # written by boto3, read by imagegen
    "plain.txt": "hello",
    "with space/and+plus~tilde%percent.txt": "odd key",
    "ünïcödé/中文/😀.txt": "unicode key ✓",
    "a=b&c@d.txt": "",
}
ODD_KEYS = ["plain.png", "with space.png", "plus+sign.png", "tilde~.png", "percent%20literal.png",
            "ünïcödé/中文/😀.png", "eq=amp&at@.png", "deep/er/path/x.png", "quote'paren().png"]


def _bucket(peer):
    s3 = peer.boto3("s3")
    name = "imagegen-itest-" + uuid.uuid4().hex[:10]
    s3.create_bucket(Bucket=name)
    for key, body in FOREIGN.items():
        s3.put_object(Bucket=name, Key="foreign/" + key, Body=body.encode(),
                      Metadata={"origin": "boto3"})
    return s3, name


def _s3_env(peer, aws_env, bucket):
    return dict(peer.env(aws_env), IMAGEGEN_ITEST_S3_ENDPOINT=peer.endpoint,
                IMAGEGEN_ITEST_S3_BUCKET=bucket,
                IMAGEGEN_ITEST_S3_FOREIGN=json.dumps(FOREIGN, ensure_ascii=False))


def test_s3_store_against_moto(moto_server, aws_env):
    peer = AwsPeer(moto_server, DUMMY_KEYS["AWS_ACCESS_KEY_ID"], DUMMY_KEYS["AWS_SECRET_ACCESS_KEY"])
    s3, bucket = _bucket(peer)
    assert_itest_passed(run_itest("store_itest", _s3_env(peer, aws_env, bucket),
                                  "S3ITest.*"))
    # boto3 sees the odd keys exactly as imagegen named them ...
    prefix = "itest/PutGetHeadRoundTripOddKeys/"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
    assert sorted(o["Key"][len(prefix):] for o in listed) == sorted(ODD_KEYS)
    # ... with the metadata imagegen wrote: ASCII as is, the rest as RFC 2047 encoded words that a
    # standard decoder turns back into the original text.
    head = s3.head_object(Bucket=bucket, Key=prefix + "ünïcödé/中文/😀.png")
    assert head["ContentType"] == "image/png"
    assert head["Metadata"]["seed"] == "42"
    decoded = email.header.decode_header(head["Metadata"]["prompt"])
    assert decoded[0][0].decode(decoded[0][1]) == "a red circle, ünïcode  and  spaces"
    assert email.header.decode_header(head["Metadata"]["key"])[0][0].decode("utf-8") == "ünïcödé/中文/😀.png"
    obj = s3.get_object(Bucket=bucket, Key=prefix + "plus+sign.png")
    assert obj["Body"].read().startswith(b"bytes of plus+sign.png")


def test_s3_store_signatures_verified_by_server(moto_server_iam, aws_env):
    s3, bucket = _bucket(moto_server_iam)
    env = dict(_s3_env(moto_server_iam, aws_env, bucket), IMAGEGEN_ITEST_VERIFYING_SERVER="1")
    # moto's IAM mode does not accept query-string (presigned) authentication, so that one test
    # runs only against the plain server; presigned signatures are cross-checked with botocore.
    output = assert_itest_passed(run_itest(
        "store_itest", env, "S3ITest.*:S3VerifyingServerITest.*-S3ITest.PresignedAndPlainUrlsFetchTheObject"))
    assert "S3VerifyingServerITest.SignedCallsPassAndWrongSecretIsForbidden" in output


def _queue(peer):
    sqs = peer.boto3("sqs")
    name = "imagegen-itest-" + uuid.uuid4().hex[:10]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return sqs, name, url


def _sqs_env(peer, aws_env, name, url):
    return dict(peer.env(aws_env), IMAGEGEN_ITEST_SQS_ENDPOINT=peer.endpoint,
                IMAGEGEN_ITEST_SQS_QUEUE_URL=url, IMAGEGEN_ITEST_SQS_QUEUE_NAME=name)


def test_sqs_queue_against_moto(moto_server, aws_env):
    peer = AwsPeer(moto_server, DUMMY_KEYS["AWS_ACCESS_KEY_ID"], DUMMY_KEYS["AWS_SECRET_ACCESS_KEY"])
    sqs, name, url = _queue(peer)
    assert_itest_passed(run_itest("queue_itest", _sqs_env(peer, aws_env, name, url), "SqsITest.*"))
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"


def test_sqs_queue_signatures_verified_by_server(moto_server_iam, aws_env):
    sqs, name, url = _queue(moto_server_iam)
    env = dict(_sqs_env(moto_server_iam, aws_env, name, url), IMAGEGEN_ITEST_VERIFYING_SERVER="1")
    output = assert_itest_passed(run_itest("queue_itest", env))
    assert "SqsVerifyingServerITest.WrongSecretIsForbidden" in output
