// libFuzzer target for everything in the AWS layer that reads bytes from outside: service
// answers (XML, JSON error bodies), shared config files and dates. Any input must give a value
// or an error, never a crash. Build with clang -fsanitize=fuzzer,address,undefined against
// imagegen_lib (see src/aws/README.md).
#include <cstddef>
#include <cstdint>
#include <string>

#include "aws/config.h"
#include "aws/encoding.h"
#include "aws/errors.h"
#include "aws/xml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  auto doc = imagegen::aws::ParseXml(input);
  if (doc.ok()) (void)doc->Find("Key");
  imagegen::aws::HttpResponse response;
  response.status = 400;
  response.body = input;
  response.headers = {{"x-amzn-query-error", input.substr(0, 64)}};
  (void)imagegen::aws::MapAwsError(imagegen::aws::ParseFailure(response));
  (void)imagegen::aws::ParseIni(input);
  (void)imagegen::aws::ParseIso8601Ms(input);
  (void)imagegen::aws::ParseHttpDateMs(input);
  if (imagegen::aws::UriDecode(imagegen::aws::UriEncode(input, false)) != input) __builtin_trap();
  auto b64 = imagegen::aws::Base64Decode(imagegen::aws::Base64Encode(input));
  if (!b64 || *b64 != input) __builtin_trap();
  (void)imagegen::aws::Base64Decode(input);
  (void)imagegen::aws::HostHeaderForUrl(input);
  (void)imagegen::aws::SplitUrl(input);
  return 0;
}
