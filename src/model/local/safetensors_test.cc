#include "model/local/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace imagegen {
namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("imagegen_st_" + name)).string();
}

std::string Floats(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.begin(), s.size());
  return s;
}

std::string ValidFile() {
  std::string path = TempPath("valid.safetensors");
  Status st = WriteSafetensors(
      path,
      {{"a.weight", "F32", {2, 2}, Floats({1, 2, 3, 4})}, {"b", "F32", {3}, Floats({5, 6, 7})}},
      {{"format", "imagegen-local"}});
  EXPECT_TRUE(st.ok());
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string WithHeader(const std::string& json, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i)
    out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + json + data;
}

TEST(SafetensorsTest, RoundTrip) {
  auto f = ParseSafetensors(ValidFile());
  ASSERT_TRUE(f.ok()) << f.error().message;
  ASSERT_EQ(f->tensors.size(), 2u);
  const SafeTensor& a = f->tensors.at("a.weight");
  EXPECT_EQ(a.dtype, "F32");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
  float v[4];
  std::memcpy(v, f->Bytes(a), 16);
  EXPECT_EQ(v[3], 4.0f);
  EXPECT_EQ(f->metadata.at("format"), "imagegen-local");
}

TEST(SafetensorsTest, RefusesEveryTruncation) {
  std::string file = ValidFile();
  for (size_t len = 0; len < file.size(); ++len) {
    auto f = ParseSafetensors(file.substr(0, len));
    EXPECT_FALSE(f.ok()) << "accepted a file truncated to " << len << " bytes";
  }
}

TEST(SafetensorsTest, RefusesMalformedHeaders) {
  const std::string d8 = Floats({1, 2});
  struct Case {
    std::string json, data, expect;
  } cases[] = {
      {"not json", d8, "not a JSON object"},
      {"[1,2]", d8, "not a JSON object"},
      {R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", d8, "need 8"},
      {R"({"x":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", d8, "unknown dtype"},
      {R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", d8, "bad dimension"},
      {R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", d8, "outside"},
      {R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", d8, "outside"},
      {R"({"x":{"dtype":"F32","shape":[2]}})", d8, "lacks"},
      {R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
       d8, "overlap"},
      {R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", d8, "trailing"},
      {R"({"__metadata__":{"k":1}})", "", "not a string"},
      {R"({"x":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})",
       d8, "overflows"},
  };
  for (const auto& c : cases) {
    auto f = ParseSafetensors(WithHeader(c.json, c.data));
    ASSERT_FALSE(f.ok()) << c.json;
    EXPECT_NE(f.error().message.find(c.expect), std::string::npos)
        << c.json << " -> " << f.error().message;
  }
  std::string huge(8, '\xff');
  EXPECT_FALSE(ParseSafetensors(huge + "{}").ok());
}

// A small in-test fuzzer: random byte flips, insertions and header-length edits must give an
// error or a consistent file, never a crash (run under the sanitizer build too).
TEST(SafetensorsTest, SurvivesRandomMutations) {
  std::string file = ValidFile();
  std::mt19937 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::string m = file;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t pos = rng() % m.size();
      switch (rng() % 3) {
        case 0:
          m[pos] = static_cast<char>(rng());
          break;
        case 1:
          m.insert(pos, 1, static_cast<char>(rng()));
          break;
        default:
          m.erase(pos, 1 + rng() % 4);
          break;
      }
      if (m.empty()) m.push_back('x');
    }
    auto f = ParseSafetensors(m);
    if (f.ok()) {
      for (const auto& [name, t] : f->tensors) {
        ASSERT_LE(t.end, f->data.size());
        ASSERT_EQ(t.end - t.begin, [&] {
          size_t n = DtypeSize(t.dtype);
          for (auto d : t.shape) n *= static_cast<size_t>(d);
          return n;
        }());
      }
    }
  }
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  auto f = ReadSafetensors(TempPath("does_not_exist.safetensors"));
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace imagegen
