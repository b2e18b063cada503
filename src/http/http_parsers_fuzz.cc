// libFuzzer target for the HTTP server's parsers of untrusted bytes: the request head checks,
// body decoding, Range and multipart/form-data (tests/fuzz/run.sh). Invariants checked beyond "no
// crash".
#include <cstdint>
#include <cstdlib>
#include <string>

#include "http/body_coding.h"
#include "http/multipart.h"
#include "http/range.h"
#include "http/request_head.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  auto end = imagegen::FindHeadEnd(input);
  if (end && *end > input.size()) std::abort();
  auto head = imagegen::ParseRequestHead(input.substr(0, end.value_or(input.size())), {});
  if (head.ok() && head->framing == imagegen::BodyFraming::kLength &&
      head->Field("transfer-encoding").size() > 0) {
    std::abort();  // both framings must never pass
  }
  auto decoded = imagegen::DecodeBody("gzip", input, 1 << 16);
  if (decoded.ok() && decoded->size() > (1 << 16)) std::abort();
  imagegen::HttpResponse response;
  response.body = std::string(100, 'x');
  response.SetHeader("Accept-Ranges", "bytes");
  imagegen::ApplyRange(input.substr(0, 200), "", &response);
  if (response.body.size() > 100) std::abort();
  imagegen::MultipartLimits limits;
  limits.max_parts = 8;
  auto parts = imagegen::ParseMultipart(input, "b", limits);
  if (parts.ok()) {
    size_t bytes = 0;
    for (const auto& part : *parts) bytes += part.data.size();
    if (parts->size() > limits.max_parts || bytes > input.size()) std::abort();
  }
  (void)imagegen::MultipartBoundary(input.substr(0, 120));
  return 0;
}
