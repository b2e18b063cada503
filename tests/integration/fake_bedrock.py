"""A local Amazon Bedrock Runtime endpoint for tests: InvokeModel for the image models.

It checks every request's SigV4 signature with botocore (an implementation independent of
imagegen's signer): signing name "bedrock", the expected region and keys, and the canonical URI
that encodes the model id twice. It answers with the documented response shapes of Titan Image
Generator v1/v2, Nova Canvas and the Stability models, and with Bedrock's error shapes
(x-amzn-ErrorType header + {"message"} body) when the prompt asks for one:

  [throttle-once]    429 ThrottlingException on the first call with this prompt, then success
  [throttle-always]  429 ThrottlingException every time
  [content-filter]   400 ValidationException "...blocked by our content filters..."
  [output-blocked]   200 with "error" (Titan/Nova) or finish_reasons "Filter reason: output image"
  [access-denied]    403 AccessDeniedException
  [model-timeout]    408 ModelTimeoutException
  [slow:MS]          sleeps MS milliseconds before answering
Titan and Nova also take the edit tasks imagegen sends, checked as the service documents them:
INPAINTING (inPaintingParams: a base64 PNG/JPEG image, exactly one of maskImage / maskPrompt, the
mask the image's size; the answer has the image's size) and IMAGE_VARIATION
(imageVariationParams: 1-5 images, similarityStrength 0.2-1.0). Anything else is the
ValidationException Bedrock answers.
Stability bodies are checked per model as Bedrock documents them (STABILITY_FIELDS): unknown
fields are refused, prompt is required, seed 0..4294967294, output_format png/jpeg/webp,
aspect_ratio one of the nine. Image-to-image (SD3.5 Large: "mode":"image-to-image"; Ultra: an
"image") needs a base64 PNG/JPEG/WebP "image" (each side >= 64 px) and a "strength" 0..1, and
refuses aspect_ratio; the answer then has the input image's size. Core takes text only.
Stability requests with seed 0 get a random seed, reported (as a string) in "seeds", as Stability
does. Models listed in `legacy` answer 404 ResourceNotFoundException as Bedrock does for Legacy models.

Use in-process (FakeBedrock(...).start() / .stop()) or as a script for benchmarks:
  python fake_bedrock.py --port 0 --access-key AK --secret-key SK   (prints the URL, serves)
"""
import argparse
import base64
import io
import json
import random
import re
import struct
import sys
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from PIL import Image

STABILITY_SIZES = {"1:1": (1024, 1024), "16:9": (1344, 768), "21:9": (1536, 640),
                   "2:3": (832, 1216), "3:2": (1216, 832), "4:5": (896, 1088),
                   "5:4": (1088, 896), "9:16": (768, 1344), "9:21": (640, 1536)}
# The body fields each Stability model on Bedrock takes, by id prefix; Bedrock refuses others.
# Ultra's image-to-image fields (and that it has no "mode") are from Stability's own API, not
# confirmed on AWS's page (see /work/shared/facts/bedrock-image-models.md).
_STABILITY_TEXT = {"prompt", "negative_prompt", "aspect_ratio", "seed", "output_format"}
STABILITY_FIELDS = {
    "stability.sd3-5-large": _STABILITY_TEXT | {"mode", "image", "strength"},
    "stability.stable-image-ultra": _STABILITY_TEXT | {"image", "strength"},
    "stability.stable-image-core": _STABILITY_TEXT | {"mode"},
}
STABILITY_MODES = {"stability.sd3-5-large": ("text-to-image", "image-to-image"),
                   "stability.stable-image-core": ("text-to-image",)}
STABILITY_MIN_SIDE = 64
MAX_BODY_BYTES = 25_000_000  # InvokeModel's documented body limit
LEGACY_MESSAGE = ("Access denied. This Model is marked by provider as Legacy and you have not been "
                  "actively using the model in the last 30 days. Please upgrade to an active model "
                  "on Amazon Bedrock")
_AUTH_RE = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                      r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})")


def png(width, height, seed=0):
    """A valid RGB PNG (a flat colour from the seed), small because it compresses well."""
    colour = bytes([(seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256])
    raw = b"".join(b"\x00" + colour * width for _ in range(height))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


class FakeBedrock:
    def __init__(self, access_key, secret_key, region="us-east-1", legacy=(), host="127.0.0.1",
                 port=0, max_skew_s=300):
        self.access_key, self.secret_key = access_key, secret_key
        # One region or several (a test may call Bedrock in more than one region).
        self.regions = {region} if isinstance(region, str) else set(region)
        self.region = region if isinstance(region, str) else sorted(self.regions)[0]
        self.legacy = set(legacy)
        self.max_skew_s = max_skew_s
        self.calls = []  # dicts: model, path, body, verified, status
        self._seen = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, headers, payload = fake.handle(self.command, self.path, self.headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", "fake-%d" % len(fake.calls))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.url = "http://%s:%d" % (host, self.server.server_address[1])
        self._thread = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self):
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    # -- SigV4 -----------------------------------------------------------------------------------
    def verify(self, method, raw_path, headers, body):
        """None when the signature is valid, else why not."""
        auth = headers.get("Authorization", "")
        m = _AUTH_RE.fullmatch(auth.strip())
        if not m:
            return "missing or malformed Authorization header"
        key, date, region, service, signed, signature = m.groups()
        if key != self.access_key:
            return "unknown access key " + key
        if service != "bedrock":
            return "signing name must be 'bedrock', got '%s'" % service
        if region not in self.regions:
            return "credential scope region %s, expected %s" % (region, " or ".join(sorted(self.regions)))
        amz_date = headers.get("X-Amz-Date", "")
        if not amz_date.startswith(date):
            return "X-Amz-Date does not match the credential scope"
        t = time.mktime(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")) - time.timezone
        if abs(t - time.time()) > self.max_skew_s:
            return "request time too skewed"
        names = signed.split(";")
        if "host" not in names:
            return "host is not signed"
        request_headers = {}
        for name in names:
            value = headers.get(name)
            if value is None:
                return "signed header %s is missing" % name
            request_headers[name] = value
        req = AWSRequest(method=method, url="http://%s%s" % (headers["Host"], raw_path),
                         data=body, headers=request_headers)
        req.context["timestamp"] = amz_date
        token = headers.get("X-Amz-Security-Token")
        signer = SigV4Auth(Credentials(self.access_key, self.secret_key, token), "bedrock", region)
        canonical = signer.canonical_request(req)
        expected = signer.signature(signer.string_to_sign(req, canonical), req)
        if expected != signature:
            return "signature mismatch; botocore's canonical request:\n" + canonical
        return None

    # -- InvokeModel -----------------------------------------------------------------------------
    def handle(self, method, raw_path, headers, body):
        m = re.fullmatch(r"/model/([^/]+)/invoke", raw_path)
        call = {"path": raw_path, "model": None, "body": None, "verified": False, "status": 0}
        with self._lock:
            self.calls.append(call)

        def error(status, code, message):
            call["status"] = status
            return status, {"x-amzn-ErrorType": code + ":http://internal.amazon.com/coral/com.amazon.bedrock/"}, {"message": message}

        why = self.verify(method, raw_path, headers, body)
        if why:
            return error(403, "InvalidSignatureException", why)
        call["verified"] = True
        if not m:
            return error(404, "UnknownOperationException", "unknown operation " + raw_path)
        model = urllib.parse.unquote(m.group(1))
        call["model"] = model
        if len(body) > MAX_BODY_BYTES:
            return error(400, "ValidationException", "Input is too long for requested model.")
        try:
            req = json.loads(body)
        except ValueError:
            return error(400, "ValidationException", "Malformed input request: not JSON")
        call["body"] = req
        # A foundation-model ARN names the model by its id after the '/'.
        base = model.rsplit("/", 1)[1] if model.startswith("arn:") and "/" in model else model
        if base in self.legacy:
            return error(404, "ResourceNotFoundException", LEGACY_MESSAGE)
        if base.startswith("stability."):
            prompt = req.get("prompt", "")
        elif base.startswith(("amazon.titan-image-generator", "amazon.nova-canvas")):
            params = (req.get("textToImageParams") or req.get("inPaintingParams")
                      or req.get("imageVariationParams") or {})
            prompt = params.get("text", "")
        else:
            return error(404, "ResourceNotFoundException", "The requested model %s was not found" % model)
        slow = re.search(r"\[slow:(\d+)\]", prompt)
        if slow:
            time.sleep(int(slow.group(1)) / 1000)
        with self._lock:
            seen = self._seen.get(prompt, 0)
            self._seen[prompt] = seen + 1
        if "[throttle-always]" in prompt or ("[throttle-once]" in prompt and seen == 0):
            return error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
        if "[content-filter]" in prompt:
            return error(400, "ValidationException",
                         "This request has been blocked by our content filters. Please adjust your "
                         "text prompt to submit a new request.")
        if "[access-denied]" in prompt:
            return error(403, "AccessDeniedException",
                         "You don't have access to the model with the specified model ID.")
        if "[model-timeout]" in prompt:
            return error(408, "ModelTimeoutException", "Model has timed out in processing the request.")
        if base.startswith("stability."):
            status, headers, payload = self._stability(base, req, prompt)
        else:
            status, headers, payload = self._titan_nova(base, req, prompt)
        call["status"] = status
        return status, headers, payload

    def _titan_nova(self, model, req, prompt):
        task = req.get("taskType")
        cfg = req.get("imageGenerationConfig", {})
        width, height = int(cfg.get("width", 1024)), int(cfg.get("height", 1024))
        if task == "INPAINTING":
            problem, size = self._check_inpainting(req.get("inPaintingParams"))
            width, height = size if size else (width, height)
        elif task == "IMAGE_VARIATION":
            problem = self._check_variation(req.get("imageVariationParams"))
        elif task == "TEXT_IMAGE":
            problem = None
        else:
            problem = "taskType must be one of TEXT_IMAGE, INPAINTING, IMAGE_VARIATION"
        if problem:
            return 400, {"x-amzn-ErrorType": "ValidationException"}, {"message": problem}
        count = int(cfg.get("numberOfImages", 1))
        if model.startswith("amazon.nova-canvas") and (width % 16 or height % 16):
            return 400, {"x-amzn-ErrorType": "ValidationException"}, {"message": "width and height must be divisible by 16"}
        if "[output-blocked]" in prompt:
            return 200, {}, {"images": [], "error": "The generated image has been blocked by our content filters."}
        seed = int(cfg.get("seed", 42))
        images = [base64.b64encode(png(width, height, seed + i)).decode() for i in range(count)]
        return 200, {}, {"images": images, "error": None}

    @staticmethod
    def _image_size(b64, webp=False):
        """(width, height) of a base64 PNG or JPEG (or WebP when `webp`), or None when it is
        none of them."""
        try:
            data = base64.b64decode(b64, validate=True)
        except (ValueError, TypeError):
            return None
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if webp and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return FakeBedrock._webp_size(data)
        if data[:3] == b"\xff\xd8\xff":
            i = 2
            while i + 9 < len(data):
                marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
                if marker in (0xC0, 0xC1, 0xC2):
                    h, w = struct.unpack(">HH", data[i + 5:i + 9])
                    return w, h
                i += 2 + length
        return None

    @staticmethod
    def _webp_size(data):
        kind = data[12:16]
        if kind == b"VP8X" and len(data) >= 30:
            return (1 + int.from_bytes(data[24:27], "little"),
                    1 + int.from_bytes(data[27:30], "little"))
        if kind == b"VP8L" and len(data) >= 25:
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if kind == b"VP8 " and len(data) >= 30:
            return (int.from_bytes(data[26:28], "little") & 0x3FFF,
                    int.from_bytes(data[28:30], "little") & 0x3FFF)
        return None

    def _check_inpainting(self, params):
        """(problem or None, the image's size)."""
        if not isinstance(params, dict):
            return "inPaintingParams is required for INPAINTING", None
        size = self._image_size(params.get("image", ""))
        if not size:
            return "inPaintingParams.image must be a base64 PNG or JPEG image", None
        if ("maskImage" in params) == ("maskPrompt" in params):
            return "exactly one of maskImage and maskPrompt is required", None
        if "maskImage" in params and self._image_size(params["maskImage"]) != size:
            return "maskImage must be a base64 image the size of the image", None
        return None, size

    def _check_variation(self, params):
        if not isinstance(params, dict):
            return "imageVariationParams is required for IMAGE_VARIATION"
        images = params.get("images")
        if not isinstance(images, list) or not 1 <= len(images) <= 5:
            return "imageVariationParams.images must hold 1 to 5 images"
        if any(not self._image_size(image) for image in images):
            return "imageVariationParams.images must be base64 PNG or JPEG images"
        strength = params.get("similarityStrength", 0.7)
        if not isinstance(strength, (int, float)) or not 0.2 <= strength <= 1.0:
            return "similarityStrength must be between 0.2 and 1.0"
        return None

    @staticmethod
    def _stability_schema(model):
        for prefix, fields in STABILITY_FIELDS.items():
            if model.startswith(prefix):
                return prefix, fields
        return "stability.stable-image-core", STABILITY_FIELDS["stability.stable-image-core"]

    @staticmethod
    def _is_number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def _check_stability(self, model, req):
        """(problem or None, the input image's size in image-to-image or None)."""
        prefix, fields = self._stability_schema(model)
        for key in req:
            if key not in fields:
                return ("Malformed input request: #: extraneous key [%s] is not permitted, please "
                        "reformat your input and try again." % key), None
        if not isinstance(req.get("prompt"), str):
            return "Malformed input request: #: required key [prompt] not found", None
        for key in ("prompt", "negative_prompt"):
            if len(req.get(key) or "") > 10000:
                return "%s must be at most 10000 characters" % key, None
        seed = req.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 4294967294:
            return "seed must be an integer from 0 to 4294967294", None
        if req.get("output_format", "png") not in ("png", "jpeg", "webp"):
            return "output_format must be one of png, jpeg, webp", None
        if "aspect_ratio" in req and req["aspect_ratio"] not in STABILITY_SIZES:
            return "aspect_ratio must be one of " + ", ".join(STABILITY_SIZES), None
        modes = STABILITY_MODES.get(prefix, ())
        if "mode" in req and req["mode"] not in modes:
            return "mode must be one of " + ", ".join(modes), None
        if prefix in STABILITY_MODES:
            image_to_image = req.get("mode") == "image-to-image"
        else:
            image_to_image = "image" in req
        if not image_to_image:
            extra = [k for k in ("image", "strength") if k in req]
            if extra:
                return "%s is only valid for image-to-image requests" % extra[0], None
            return None, None
        return self._check_image_to_image(req)

    def _check_image_to_image(self, req):
        if "image" not in req or "strength" not in req:
            return "image-to-image requires the prompt, image and strength parameters", None
        if "aspect_ratio" in req:
            return "aspect_ratio is only valid for text-to-image requests", None
        if not self._is_number(req["strength"]) or not 0 <= req["strength"] <= 1:
            return "strength must be a number from 0 to 1", None
        size = self._image_size(req["image"], webp=True) if isinstance(req["image"], str) else None
        if not size:
            return "image must be a base64 PNG, JPEG or WebP image", None
        if min(size) < STABILITY_MIN_SIDE:
            return "image: every side must be at least %d pixels" % STABILITY_MIN_SIDE, None
        try:  # the whole image, not only its header: a truncated one is refused too
            Image.open(io.BytesIO(base64.b64decode(req["image"]))).load()
        except (OSError, ValueError, SyntaxError):
            return "image could not be decoded", None
        return None, size

    def _stability(self, model, req, prompt):
        problem, input_size = self._check_stability(model, req)
        if problem:
            return 400, {"x-amzn-ErrorType": "ValidationException"}, {"message": problem}
        width, height = input_size or STABILITY_SIZES.get(req.get("aspect_ratio", "1:1"))
        seed = int(req.get("seed", 0))
        if seed == 0:
            # Stability reads seed 0 as "random" and reports the seed it chose, as a string.
            seed = str(random.randint(1, 4294967294))
        if "[output-blocked]" in prompt:
            return 200, {}, {"seeds": [seed], "finish_reasons": ["Filter reason: output image"], "images": []}
        return 200, {}, {"seeds": [seed], "finish_reasons": [None],
                         "images": [base64.b64encode(png(width, height, int(seed))).decode()]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args()
    fake = FakeBedrock(args.access_key, args.secret_key, args.region, port=args.port)
    print(fake.url, flush=True)
    try:
        fake.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
