// libFuzzer target for everything that parses untrusted request input: JSON bodies (native and
// OpenAI shapes), queue message bodies, validation, query strings and percent-decoding.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/request.h"
#include "core/request_json.h"
#include "http/http_types.h"
#include "http/openai.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace imagegen;
  std::string input(reinterpret_cast<const char*>(data), size);
  ModelLimits limits;
  limits.sizes = {{64, 64}, {512, 512}};
  if (auto body = ParseJsonObject(input); body.ok()) {
    if (auto request = ParseGenerateJson(body.value()); request.ok()) {
      (void)Validate(request.value(), limits);
    }
    if (auto openai = ParseOpenAiRequest(body.value(), "local"); openai.ok()) {
      (void)Validate(openai->request, limits);
    }
  }
  if (auto message = ParseJobMessage(input, "fuzz-job"); message.ok()) {
    (void)Validate(message.value(), limits);
  }
  (void)ParseQueryString(input);
  (void)UrlDecode(input, true);
  (void)ParseSize(input);
  return 0;
}
