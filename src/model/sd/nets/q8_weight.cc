#include "model/sd/nets/q8_weight.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstring>

namespace imagegen::sd {
namespace {

// Expands `rows` rows of blocks into `out` (row-major, cols values a row): scale * q in float32,
// then converted to T (round to nearest even for bfloat16, as Tensor::to does).
template <typename T>
void ExpandRows(const uint8_t* blocks, int64_t blocks_per_row, int64_t begin, int64_t end, T* out) {
  for (int64_t r = begin; r < end; ++r) {
    const uint8_t* block = blocks + r * blocks_per_row * kQ8BlockBytes;
    T* row = out + r * blocks_per_row * kQ8BlockValues;
    for (int64_t b = 0; b < blocks_per_row; ++b, block += kQ8BlockBytes) {
      c10::Half half;
      std::memcpy(&half.x, block, 2);
      const float scale = static_cast<float>(half);
      const auto* q = reinterpret_cast<const int8_t*>(block + 2);
      for (int64_t i = 0; i < kQ8BlockValues; ++i) {
        *row++ = static_cast<T>(scale * static_cast<float>(q[i]));
      }
    }
  }
}

}  // namespace

bool IsQ8Matrix(const torch::Tensor& t) {
  return t.defined() && t.scalar_type() == torch::kByte && t.dim() == 3 &&
         t.size(2) == kQ8BlockBytes && t.is_contiguous();
}

std::vector<int64_t> Q8MatrixShape(const torch::Tensor& blocks) {
  return {blocks.size(0), blocks.size(1) * kQ8BlockValues};
}

torch::Tensor DequantizeQ8(const torch::Tensor& blocks, torch::ScalarType type) {
  const int64_t rows = blocks.size(0), per_row = blocks.size(1);
  const bool bf16 = type == torch::kBFloat16;
  auto out = torch::empty({rows, per_row * kQ8BlockValues},
                          torch::TensorOptions().dtype(bf16 ? torch::kBFloat16 : torch::kFloat));
  const auto* data = blocks.data_ptr<uint8_t>();
  // Rows are independent; a grain of 16 rows keeps each task over ~10 K values.
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    if (bf16) {
      ExpandRows(data, per_row, begin, end, out.data_ptr<c10::BFloat16>());
    } else {
      ExpandRows(data, per_row, begin, end, out.data_ptr<float>());
    }
  });
  return out.scalar_type() == type ? out : out.to(type);
}

std::shared_ptr<Q8Weight> Q8WeightOf(const torch::Tensor& t, const std::vector<int64_t>& shape,
                                     torch::ScalarType type) {
  if (!IsQ8Matrix(t) || Q8MatrixShape(t) != shape) return nullptr;
  auto weight = std::make_shared<Q8Weight>();
  weight->blocks = t;
  weight->type = type;
  return weight;
}

torch::Tensor Q8Weight::Weight() const { return dense.defined() ? dense : Expand(); }

torch::Tensor Q8Weight::Expand() const {
  auto w = DequantizeQ8(blocks, type);
  if (scaled_rows > 0) w.narrow(0, 0, scaled_rows).mul_(factor);
  return w;
}

std::shared_ptr<Q8Weight> JoinQ8(const std::vector<std::shared_ptr<Q8Weight>>& parts) {
  std::vector<torch::Tensor> blocks;
  for (const auto& p : parts) blocks.push_back(p->blocks);
  auto joined = std::make_shared<Q8Weight>();
  joined->blocks = torch::cat(blocks);
  joined->type = parts.front()->type;
  // Only the first part may carry a folded factor (the query map of q/k/v).
  joined->scaled_rows = parts.front()->scaled_rows;
  joined->factor = parts.front()->factor;
  return joined;
}

}  // namespace imagegen::sd
