// Matrices kept in GGUF's 8-bit Q8_0 blocks while the networks compute, so that a q8_0 file
// costs about 8.5 bits per linear weight in memory instead of the 16 or 32 of the compute type.
//
// The checkpoint loader hands such a matrix to the networks as a TensorMap entry of dtype
// uint8 and shape [rows, cols / 32, 34]: each row's blocks as stored (a float16 scale, then 32
// int8 values). A layer that multiplies by the matrix (Linear) keeps the blocks and expands
// them into the compute type for each forward; anything else takes it dense once, at load.
// Either way each value is scale * q in float32, rounded once to the compute type: the numbers
// of dequantising the whole file at load.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace imagegen::sd {

constexpr int64_t kQ8BlockValues = 32;
constexpr int64_t kQ8BlockBytes = 34;

// Whether `t` is a Q8_0 matrix in the layout above.
bool IsQ8Matrix(const torch::Tensor& t);
// Its logical shape, [rows, cols].
std::vector<int64_t> Q8MatrixShape(const torch::Tensor& blocks);
// The whole matrix in `type` (kFloat or kBFloat16), contiguous.
torch::Tensor DequantizeQ8(const torch::Tensor& blocks, torch::ScalarType type);

// One layer's 8-bit matrix (possibly several joined by rows, as q/k/v are) and what the layer
// folded into it: rows [0, scaled_rows) are `factor` times the stored values (the attention's
// query scale). While a low-rank update (LoRA) is applied the layer computes with `dense`
// instead, the expanded matrix plus the update (weight_targets.h sets and drops it under its
// lock, with no forward pass running).
struct Q8Weight {
  torch::Tensor blocks;  // uint8 [rows, cols / 32, 34]
  torch::ScalarType type = torch::kFloat;
  int64_t scaled_rows = 0;
  double factor = 1.0;
  torch::Tensor dense;  // defined only while updated

  int64_t rows() const { return blocks.size(0); }
  int64_t cols() const { return blocks.size(1) * kQ8BlockValues; }
  // The matrix the layer computes with now: `dense` when defined, else the expansion.
  torch::Tensor Weight() const;
  // The expansion of the stored blocks with the folded factor.
  torch::Tensor Expand() const;
};

// `t` as one layer's 8-bit matrix computing in `type`, when it is a Q8_0 matrix of `shape`; null
// otherwise (the caller then takes it dense).
std::shared_ptr<Q8Weight> Q8WeightOf(const torch::Tensor& t, const std::vector<int64_t>& shape,
                                     torch::ScalarType type);

// Joins 8-bit matrices of one width by rows (q, k, v into one projection).
std::shared_ptr<Q8Weight> JoinQ8(const std::vector<std::shared_ptr<Q8Weight>>& parts);

}  // namespace imagegen::sd
