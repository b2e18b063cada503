// The official `openai` Node SDK against imagegen's OpenAI door (driven by
// tests/integration/test_openai_full.py): images.generate as b64_json and as url, a stream with
// a partial image, models.list, and a 400 the SDK must surface as an APIError with its param.
// Usage: node openai_node.mjs BASE_URL (e.g. http://127.0.0.1:8080/v1); prints one JSON report.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "unused", maxRetries: 0 });
// imagegen's own fields (seed) pass through the SDK in the body, as its docs allow.
const common = { prompt: "a red circle", size: "64x64", seed: 9 };

const b64 = await client.images.generate({ ...common, response_format: "b64_json" });
const url = await client.images.generate({ ...common, response_format: "url" });
const stream = await client.images.generate({ ...common, stream: true, partial_images: 1 });
const types = [];
for await (const event of stream) types.push(event.type);
const models = [];
for await (const model of client.models.list()) models.push(model.id);
let badRequest = null;
try {
  await client.images.generate({ prompt: "x", size: "3x3" });
} catch (error) {
  if (!(error instanceof OpenAI.APIError)) throw error;
  badRequest = { status: error.status, param: error.param };
}
process.stdout.write(
  JSON.stringify({
    b64: { b64_json: b64.data[0].b64_json, output_format: b64.output_format, usage: b64.usage },
    url: { url: url.data[0].url },
    stream: types,
    models,
    bad_request: badRequest,
  }),
);
