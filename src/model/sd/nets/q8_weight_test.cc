#include "model/sd/nets/q8_weight.h"

#include <gtest/gtest.h>

#include <cstring>

#include "model/sd/nets/blocks.h"
#include "model/sd/nets/weight_targets.h"

namespace imagegen::sd {
namespace {

// GGUF's Q8_0 of a float32 [rows, cols] matrix: per 32 values a float16 scale max|x| / 127 and
// the values rounded to int8 in units of it.
torch::Tensor Quantize(const torch::Tensor& matrix) {
  const int64_t rows = matrix.size(0), blocks = matrix.size(1) / kQ8BlockValues;
  auto grouped = matrix.contiguous().view({rows, blocks, kQ8BlockValues});
  auto scale = (grouped.abs().amax(-1, true) / 127.0).to(torch::kHalf);
  auto safe = torch::where(scale.to(torch::kFloat) == 0, torch::ones_like(scale, torch::kFloat),
                           scale.to(torch::kFloat));
  auto q = (grouped / safe).round().clamp(-127, 127).to(torch::kChar);
  auto out = torch::empty({rows, blocks, kQ8BlockBytes}, torch::kByte);
  out.narrow(-1, 0, 2).copy_(scale.view(torch::kByte).view({rows, blocks, 2}));
  out.narrow(-1, 2, kQ8BlockValues).copy_(q.view(torch::kByte));
  return out;
}

// The reference expansion: float32 scale times float32 value.
torch::Tensor Reference(const torch::Tensor& blocks) {
  auto scale = blocks.narrow(-1, 0, 2).contiguous().view(torch::kHalf).to(torch::kFloat);
  auto q = blocks.narrow(-1, 2, kQ8BlockValues).contiguous().view(torch::kChar).to(torch::kFloat);
  return (q * scale).view({blocks.size(0), -1});
}

TEST(Q8Weight, ExpandsEachValueAsScaleTimesQuantOnceRounded) {
  torch::manual_seed(1);
  auto blocks = Quantize(torch::randn({48, 96}));
  ASSERT_TRUE(IsQ8Matrix(blocks));
  EXPECT_EQ(Q8MatrixShape(blocks), (std::vector<int64_t>{48, 96}));
  auto want = Reference(blocks);
  EXPECT_TRUE(torch::equal(DequantizeQ8(blocks, torch::kFloat), want));
  EXPECT_TRUE(torch::equal(DequantizeQ8(blocks, torch::kBFloat16), want.to(torch::kBFloat16)));
  EXPECT_FALSE(IsQ8Matrix(torch::zeros({48, 3, 34})));  // float: not blocks
  EXPECT_FALSE(IsQ8Matrix(torch::zeros({48, 34}, torch::kByte)));
}

// The same attention built from 8-bit blocks and from their dense expansion.
struct Pair {
  TensorMap packed, dense;
};

Pair AttentionWeights(int64_t dim, int64_t context) {
  Pair p;
  const int64_t kv = context > 0 ? context : dim;
  const std::pair<const char*, int64_t> mats[] = {{"a.to_q.weight", dim},
                                                  {"a.to_k.weight", kv},
                                                  {"a.to_v.weight", kv},
                                                  {"a.to_out.0.weight", dim}};
  for (const auto& [name, in] : mats) {
    auto blocks = Quantize(torch::randn({dim, in}) * 0.2);
    p.packed[name] = blocks;
    p.dense[name] = Reference(blocks);
  }
  p.packed["a.to_out.0.bias"] = p.dense["a.to_out.0.bias"] = torch::randn({dim});
  return p;
}

torch::Tensor RunAttention(const TensorMap& weights, int64_t dim, int64_t context,
                           torch::ScalarType type, const torch::Tensor& x, const torch::Tensor& ctx,
                           WeightTargets* targets = nullptr, bool* packed = nullptr) {
  WeightSource w(weights, type, targets);
  auto a = Attention::Load(w, "a", dim, context, 2, dim / 2, false);
  EXPECT_TRUE(w.Finish().ok()) << w.Finish().error().message;
  if (packed != nullptr) *packed = (a.qkv && a.qkv->q8) || (a.kv && a.kv->q8);
  torch::InferenceMode guard;
  return a.Forward(x.to(type), ctx.defined() ? ctx.to(type) : ctx);
}

TEST(Q8Weight, AttentionKeptEightBitComputesWhatTheExpandedWeightsDo) {
  torch::manual_seed(2);
  for (const int64_t context : {int64_t{0}, int64_t{96}}) {
    for (const auto type : {torch::kFloat, torch::kBFloat16}) {
      auto p = AttentionWeights(64, context);
      auto x = torch::randn({2, 10, 64});
      auto ctx = context > 0 ? torch::randn({2, 7, context}) : torch::Tensor();
      bool packed = false;
      auto got = RunAttention(p.packed, 64, context, type, x, ctx, nullptr, &packed);
      EXPECT_TRUE(packed);
      EXPECT_TRUE(torch::equal(got, RunAttention(p.dense, 64, context, type, x, ctx)))
          << "context " << context << " type " << type;
    }
  }
}

TEST(Q8Weight, APartlyEightBitAttentionIsComputedDense) {
  torch::manual_seed(3);
  auto p = AttentionWeights(64, 0);
  p.packed["a.to_k.weight"] = p.dense["a.to_k.weight"];  // the file kept this one float
  auto x = torch::randn({1, 5, 64});
  bool packed = true;
  auto got = RunAttention(p.packed, 64, 0, torch::kFloat, x, {}, nullptr, &packed);
  EXPECT_FALSE(packed);
  EXPECT_TRUE(torch::equal(got, RunAttention(p.dense, 64, 0, torch::kFloat, x, {})));
}

TEST(Q8Weight, LowRankUpdatesExpandTheMatrixAndRestoreTakesItBack) {
  torch::manual_seed(4);
  for (const int64_t context : {int64_t{0}, int64_t{96}}) {
    auto p = AttentionWeights(64, context);
    auto x = torch::randn({2, 6, 64});
    auto ctx = context > 0 ? torch::randn({2, 4, context}) : torch::Tensor();
    WeightTargets packed_targets, dense_targets;
    WeightSource pw(p.packed, torch::kFloat, &packed_targets);
    WeightSource dw(p.dense, torch::kFloat, &dense_targets);
    auto packed = Attention::Load(pw, "a", 64, context, 2, 32, false);
    auto dense = Attention::Load(dw, "a", 64, context, 2, 32, false);
    EXPECT_EQ(packed_targets.Keys(), dense_targets.Keys());
    torch::InferenceMode guard;
    auto before = packed.Forward(x, ctx);
    for (const char* key : {"a.to_q.weight", "a.to_v.weight", "a.to_out.0.weight"}) {
      EXPECT_EQ(packed_targets.ShapeOf(key), dense_targets.ShapeOf(key)) << key;
      auto delta = torch::randn(packed_targets.ShapeOf(key)) * 0.05;
      ASSERT_TRUE(packed_targets.Add(key, delta).ok());
      ASSERT_TRUE(dense_targets.Add(key, delta).ok());
    }
    EXPECT_EQ(packed_targets.Changed(), 3u);
    auto updated = packed.Forward(x, ctx);
    EXPECT_TRUE(torch::equal(updated, dense.Forward(x, ctx)));
    EXPECT_FALSE(torch::equal(updated, before));
    packed_targets.RestoreAll();
    EXPECT_TRUE(torch::equal(packed.Forward(x, ctx), before));
    EXPECT_FALSE(packed.out.q8->dense.defined());  // 8-bit again
    EXPECT_FALSE(packed_targets.Add("a.to_k.weight", torch::zeros({3})).ok());
  }
}

}  // namespace
}  // namespace imagegen::sd
