// Units of the checkpoint loader's torch-free parts: the in-place safetensors parser, the
// single-file planner's refusals, and the shape checks. The whole loader is tested against
// diffusers in tests/integration/test_sd_checkpoint.py.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "model/sd/checkpoint/ldm_layout.h"
#include "model/sd/checkpoint/safetensors_view.h"

namespace imagegen::sd {
namespace {

std::string File(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i)
    out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

TEST(SafetensorsView, ViewsPointIntoTheBuffer) {
  const std::string file =
      File(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
           R"("b":{"dtype":"F16","shape":[1,2],"data_offsets":[8,12]},"__metadata__":{"k":"v"}})",
           std::string(12, 'x'));
  auto view = ParseSafetensorsView(file);
  ASSERT_TRUE(view.ok()) << view.error().message;
  ASSERT_EQ(view->tensors.size(), 2u);
  EXPECT_EQ(view->tensors.at("b").shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(view->tensors.at("b").bytes.data(), file.data() + file.size() - 4);
  EXPECT_EQ(view->metadata.at("k"), "v");
}

TEST(SafetensorsView, RefusesTruncatedOverlappingAndGappedData) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  auto cut = ParseSafetensorsView(File(header, std::string(4, 'x')));
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.error().message.find("truncated"), std::string::npos);
  auto overlap =
      ParseSafetensorsView(File(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                std::string(8, 'x')));
  ASSERT_FALSE(overlap.ok());
  EXPECT_NE(overlap.error().message.find("overlap"), std::string::npos);
  auto trailing = ParseSafetensorsView(File(header, std::string(12, 'x')));
  ASSERT_FALSE(trailing.ok());
  EXPECT_NE(trailing.error().message.find("trailing"), std::string::npos);
  EXPECT_FALSE(ParseSafetensorsView(std::string("\x02\0\0\0\0\0\0\0[]", 10)).ok());
  EXPECT_FALSE(ParseSafetensorsView("1234").ok());
}

TEST(MappedFile, MissingFileIsNotFound) {
  auto file = MappedFile::Open("/nonexistent/model.safetensors");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().code, ErrorCode::kNotFound);
}

TEST(PlanSingleFile, RefusesSdxlRefinersAndFilesWithoutAUnet) {
  ShapeMap refiner = {{"conditioner.embedders.0.model.token_embedding.weight", {10, 64}},
                      {"model.diffusion_model.input_blocks.0.0.weight", {32, 4, 3, 3}},
                      {"first_stage_model.encoder.conv_in.weight", {32, 3, 3, 3}}};
  auto plan = PlanSingleFile(refiner, {});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.error().message.find("SDXL refiner"), std::string::npos);
  refiner.erase("first_stage_model.encoder.conv_in.weight");
  plan = PlanSingleFile(refiner, {});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.error().message.find("first_stage_model"), std::string::npos);
  ShapeMap text_only = {{"cond_stage_model.transformer.text_model.x", {1}}};
  plan = PlanSingleFile(text_only, {});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.error().message.find("model.diffusion_model"), std::string::npos);
}

TEST(PlanSingleFile, RefusesAnUnknownPredictionHint) {
  ShapeMap shapes = {{"model.diffusion_model.a", {1}},
                     {"first_stage_model.a", {1}},
                     {"cond_stage_model.model.a", {1}}};
  auto plan = PlanSingleFile(shapes, {"x", "sample"});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.error().message.find("prediction type"), std::string::npos);
}

TEST(CheckComponentShapes, NamesTheMismatchedTensor) {
  const nlohmann::json config = {{"vocab_size", 10},         {"hidden_size", 64},
                                 {"intermediate_size", 128}, {"num_attention_heads", 1},
                                 {"num_hidden_layers", 1},   {"max_position_embeddings", 77}};
  ShapeMap shapes = {{"text_model.embeddings.token_embedding.weight", {10, 64}},
                     {"text_model.embeddings.position_embedding.weight", {77, 64}},
                     {"text_model.final_layer_norm.weight", {64}},
                     {"text_model.final_layer_norm.bias", {64}},
                     {"text_model.encoder.layers.0.self_attn.q_proj.weight", {64, 64}},
                     {"text_model.encoder.layers.0.self_attn.out_proj.weight", {64, 64}},
                     {"text_model.encoder.layers.0.mlp.fc1.weight", {128, 64}},
                     {"text_model.encoder.layers.0.mlp.fc2.weight", {64, 128}}};
  EXPECT_TRUE(CheckComponentShapes(ComponentKind::kTextEncoder, config, shapes).ok());
  shapes["text_model.encoder.layers.0.mlp.fc1.weight"] = {96, 64};
  auto bad = CheckComponentShapes(ComponentKind::kTextEncoder, config, shapes);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("mlp.fc1.weight is [96, 64]"), std::string::npos);
  EXPECT_FALSE(CheckComponentShapes(ComponentKind::kUnet, nlohmann::json::array(), shapes).ok());
}

}  // namespace
}  // namespace imagegen::sd
