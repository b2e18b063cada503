// SigV4 cross-check against botocore: tests/integration/test_aws_sigv4.py writes randomised
// requests with botocore's signatures (SigV4Auth, S3SigV4Auth, S3SigV4QueryAuth) to a JSON
// file named by IMAGEGEN_SIGV4_CASES; every case is re-signed here and compared byte for byte.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "aws/encoding.h"
#include "aws/http.h"
#include "aws/sigv4.h"

namespace imagegen::aws {
namespace {

using nlohmann::json;

json LoadCases() {
  const char* path = std::getenv("IMAGEGEN_SIGV4_CASES");
  if (!path || !*path) {
    ADD_FAILURE() << "IMAGEGEN_SIGV4_CASES is not set; run tests/integration/test_aws_sigv4.py";
    return json::array();
  }
  std::ifstream f(path);
  if (!f) {
    ADD_FAILURE() << "cannot read " << path;
    return json::array();
  }
  return json::parse(f);
}

std::vector<std::pair<std::string, std::string>> Pairs(const json& list) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& p : list) out.emplace_back(p[0].get<std::string>(), p[1].get<std::string>());
  return out;
}

TEST(SigV4Crosscheck, MatchesBotocoreOnRandomisedRequests) {
  json cases = LoadCases();
  ASSERT_GE(cases.size(), 100u) << "too few cases";
  int header_cases = 0, presign_cases = 0, encoded_path_cases = 0, failures = 0;
  for (const json& c : cases) {
    const std::string name = c["name"];
    SignableRequest req;
    req.method = c["method"];
    req.host = HostHeaderForUrl(c["url"].get<std::string>());
    req.path = c["raw_path"];
    req.path_encoded = c.value("path_encoded", false);
    encoded_path_cases += req.path_encoded;
    req.query = Pairs(c["query"]);
    req.headers = Pairs(c["headers"]);
    req.body = Base64Decode(c["body_b64"].get<std::string>()).value_or("<bad base64>");
    SigningKeys keys{c["access_key"], c["secret_key"], c["session_token"]};
    SigningParams params;
    params.service = c["service"];
    params.region = c["region"];
    params.time_s = c["time_s"];
    params.s3 = c["s3"];
    params.unsigned_payload = c["unsigned_payload"];

    if (!req.path_encoded) {
      EXPECT_EQ(WirePath(req.path), c["wire_path"].get<std::string>()) << name;
    }
    if (c["kind"] == "presign") {
      ++presign_cases;
      SignatureParts parts;
      std::string query = PresignQuery(req, keys, params, c["expires_s"], &parts);
      std::vector<std::vector<std::string>> ours;
      std::istringstream in(query);
      std::string pair;
      while (std::getline(in, pair, '&')) {
        size_t eq = pair.find('=');
        ours.push_back({UriDecode(pair.substr(0, eq)), UriDecode(pair.substr(eq + 1))});
      }
      std::sort(ours.begin(), ours.end());
      std::vector<std::vector<std::string>> theirs = c["expected_query"];
      bool ok = parts.signature == c["expected_signature"].get<std::string>() && ours == theirs;
      EXPECT_TRUE(ok) << name << "\nours:   " << parts.signature
                      << "\ntheirs: " << c["expected_signature"].get<std::string>()
                      << "\nquery: " << query << "\ncanonical request:\n"
                      << parts.canonical_request;
      failures += !ok;
    } else {
      ++header_cases;
      SignatureParts parts = SignHeaders(&req, keys, params);
      std::map<std::string, std::string> added;
      for (const auto& [n, v] : req.headers) {
        std::string l = Lower(n);
        if (l == "authorization" || l == "x-amz-date" || l == "x-amz-security-token" ||
            l == "x-amz-content-sha256") {
          added[l] = v;
        }
      }
      std::map<std::string, std::string> expected = c["expected_headers"];
      bool ok = added == expected;
      EXPECT_TRUE(ok) << name << "\nours:   " << added["authorization"]
                      << "\ntheirs: " << expected["authorization"] << "\ncanonical request:\n"
                      << parts.canonical_request;
      failures += !ok;
    }
    if (failures > 5) break;  // enough to debug; keep the log readable
  }
  std::cout << "sigv4 cross-check: " << header_cases << " header-signed (" << encoded_path_cases
            << " with caller-encoded paths) and " << presign_cases << " presigned cases, "
            << failures << " mismatches\n";
}

}  // namespace
}  // namespace imagegen::aws
