"""The baseline: a Python Lambda handler written the way the seed's application.py is described -
API Gateway event in, boto3 `bedrock-runtime.invoke_model`, `s3.put_object`, a presigned URL,
JSON out. Clients are created at module load (init), as AWS recommends and the seed does."""
import base64
import json
import os
import random
import uuid

import boto3

MODEL_ID = os.environ.get("MODEL_ID", "amazon.titan-image-generator-v1")
BUCKET = os.environ["BUCKET_NAME"]
PREFIX = os.environ.get("KEY_PREFIX", "")

bedrock = boto3.client("bedrock-runtime")
s3 = boto3.client("s3")


def handler(event, context):
    raw = event.get("body") or "{}"
    if event.get("isBase64Encoded"):
        raw = base64.b64decode(raw)
    body = json.loads(raw)
    prompt = body.get("prompt")
    if not prompt:
        return {"statusCode": 400, "body": json.dumps({"error": "prompt is required"})}
    seed = body.get("seed", random.randint(0, 2147483646))
    request = {
        "taskType": "TEXT_IMAGE",
        "textToImageParams": {"text": prompt},
        "imageGenerationConfig": {"numberOfImages": 1, "quality": "standard", "cfgScale": 8.0,
                                  "width": body.get("width", 512), "height": body.get("height", 512),
                                  "seed": seed},
    }
    response = bedrock.invoke_model(modelId=MODEL_ID, body=json.dumps(request),
                                    contentType="application/json", accept="application/json")
    payload = json.loads(response["body"].read())
    image = base64.b64decode(payload["images"][0])
    key = f"{PREFIX}/{uuid.uuid4()}.png" if PREFIX else f"{uuid.uuid4()}.png"
    s3.put_object(Bucket=BUCKET, Key=key, Body=image, ContentType="image/png")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=3600)
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"s3_uri": f"s3://{BUCKET}/{key}", "presigned_url": url, "seed": seed})}
