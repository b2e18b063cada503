#include "model/sd/checkpoint/gguf_view.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace imagegen::sd {
namespace {

template <typename T>
void Put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

void PutString(std::string& out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  out += s;
}

struct TensorSpec {
  std::string name;
  std::vector<uint64_t> dims;  // innermost first, as GGUF stores them
  uint32_t type;
  std::string bytes;
};

void Align32(std::string& s) { s.resize((s.size() + 31) / 32 * 32, '\0'); }

// A GGUF v3 file: one string and one u32 metadata pair, then the tensors, 32-byte aligned.
std::string GgufFile(const std::vector<TensorSpec>& tensors) {
  std::string file = "GGUF";
  Put<uint32_t>(file, 3);
  Put<uint64_t>(file, tensors.size());
  Put<uint64_t>(file, 2);
  PutString(file, "general.architecture");
  Put<uint32_t>(file, 8);  // string
  PutString(file, "test");
  PutString(file, "general.quantization_version");
  Put<uint32_t>(file, 4);  // u32
  Put<uint32_t>(file, 2);
  std::string data;
  for (const auto& t : tensors) {
    PutString(file, t.name);
    Put<uint32_t>(file, static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) Put<uint64_t>(file, d);
    Put<uint32_t>(file, t.type);
    Put<uint64_t>(file, data.size());
    data += t.bytes;
    Align32(data);
  }
  Align32(file);
  return file + data;
}

std::string Floats(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4);
}

// One Q8_0 block: scale 0.5 (float16 0x3800), then q = -16..15.
std::string Q8Block() {
  std::string block = {'\x00', '\x38'};
  for (int i = 0; i < 32; ++i) block.push_back(static_cast<char>(i - 16));
  return block;
}

TEST(GgufView, ReadsShapesOutermostFirstTypesAndStringMetadata) {
  const std::string file = GgufFile(
      {{"w", {2, 3}, 0, Floats({1, 2, 3, 4, 5, 6})}, {"q", {32, 2}, 8, Q8Block() + Q8Block()}});
  auto view = ParseGgufView(file);
  ASSERT_TRUE(view.ok()) << view.error().message;
  EXPECT_EQ(view->metadata.at("general.architecture"), "test");
  const TensorEntry& w = view->tensors.at("w");
  EXPECT_EQ(w.dtype, "F32");
  EXPECT_EQ(w.shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(w.bytes, Floats({1, 2, 3, 4, 5, 6}));
  const TensorEntry& q = view->tensors.at("q");
  EXPECT_EQ(q.dtype, "Q8_0");
  EXPECT_EQ(q.shape, (std::vector<int64_t>{2, 32}));
  EXPECT_EQ(q.bytes.size(), 68u);
}

TEST(GgufView, DequantisesQ8_0AsScaleTimesValue) {
  const std::string block = Q8Block();
  std::vector<float> out(32);
  DequantizeQ8_0(block, out.data());
  for (int i = 0; i < 32; ++i) EXPECT_EQ(out[static_cast<size_t>(i)], 0.5f * (i - 16));
  EXPECT_EQ(StoredByteSize("Q8_0", 64), 68u);
  EXPECT_EQ(StoredByteSize("Q8_0", 33), 0u);
  EXPECT_EQ(StoredByteSize("F16", 3), 6u);
}

std::string ErrorOf(const std::string& file) {
  auto view = ParseGgufView(file);
  return view.ok() ? "(parsed)" : view.error().message;
}

TEST(GgufView, RefusesBrokenFilesNamingWhatIsWrong) {
  const std::string good = GgufFile({{"w", {2, 3}, 0, Floats({1, 2, 3, 4, 5, 6})}});
  EXPECT_NE(ErrorOf(good.substr(0, good.size() - 16)).find("past the end"), std::string::npos);
  EXPECT_NE(ErrorOf(good.substr(0, 30)).find("truncated"), std::string::npos);
  EXPECT_NE(ErrorOf("GGML" + good.substr(4)).find("magic"), std::string::npos);
  std::string v9 = good;
  v9[4] = 9;
  EXPECT_NE(ErrorOf(v9).find("version 9"), std::string::npos);
  EXPECT_NE(ErrorOf(GgufFile({{"w", {1, 1, 1, 1, 1}, 0, Floats({1})}})).find("5 dimensions"),
            std::string::npos);
  EXPECT_NE(ErrorOf(GgufFile({{"q", {16}, 8, Q8Block()}})).find("blocks of 32"), std::string::npos);
  EXPECT_NE(ErrorOf(GgufFile({{"k", {256}, 12, std::string(144, '\0')}})).find("Q4_K"),
            std::string::npos);
  EXPECT_NE(ErrorOf(GgufFile({{"w", {1ull << 62, 1ull << 62}, 0, ""}})).find("overflows"),
            std::string::npos);
  EXPECT_NE(
      ErrorOf(GgufFile({{"w", {1}, 0, Floats({1})}, {"w", {1}, 0, Floats({2})}})).find("twice"),
      std::string::npos);
}

}  // namespace
}  // namespace imagegen::sd
