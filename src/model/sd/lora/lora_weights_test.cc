// LoRA files read in their layouts and merged into weights in place, then taken back
// (lora_file.h, lora_weights.h). Against diffusers' own LoRA loading on a whole pipeline:
// tests/integration/test_sd_lora.py.
#include "model/sd/lora/lora_weights.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

namespace imagegen::sd {
namespace {

namespace fs = std::filesystem;

// A safetensors file of float32 tensors.
void WriteSafetensors(const fs::path& path, const std::map<std::string, torch::Tensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, t] : tensors) {
    auto c = t.to(torch::kFloat).contiguous();
    const size_t begin = data.size();
    data.append(static_cast<const char*>(c.data_ptr()), c.numel() * sizeof(float));
    header[name] = {
        {"dtype", "F32"}, {"shape", c.sizes().vec()}, {"data_offsets", {begin, data.size()}}};
  }
  const std::string text = header.dump();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[static_cast<size_t>(i)] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  std::ofstream(path, std::ios::binary) << out << text << data;
}

std::string Underscored(std::string s) {
  std::replace(s.begin(), s.end(), '.', '_');
  return s;
}

class LoraWeightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("lora_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    torch::manual_seed(7);
    // A UNet projection stored 3x scaled (as a query map with the attention scale folded in)
    // and a text encoder matrix, both inside bigger tensors (as q/k/v are joined).
    unet_storage_ = torch::randn({12, 6});
    text_storage_ = torch::randn({4, 5});
    unet_.Set("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
              unet_storage_.narrow(0, 4, 4), 3.0);
    unet_.Set("down_blocks.0.attentions.0.proj_in.weight", torch::randn({4, 6, 1, 1}));
    text_.Set("text_model.encoder.layers.0.self_attn.q_proj.weight", text_storage_);
    down_ = torch::randn({2, 6});
    up_ = torch::randn({4, 2});
    tdown_ = torch::randn({2, 5});
    tup_ = torch::randn({4, 2});
  }
  void TearDown() override { fs::remove_all(dir_); }

  void WriteKohya(const std::string& name) {
    WriteSafetensors(
        dir_ / (name + ".safetensors"),
        {{"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight",
          down_},
         {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight",
          up_},
         {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.alpha",
          torch::tensor(1.0)},
         {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", tdown_},
         {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", tup_}});
  }

  fs::path dir_;
  torch::Tensor unet_storage_, text_storage_, down_, up_, tdown_, tup_;
  WeightTargets unet_, text_;
};

TEST_F(LoraWeightsTest, KohyaAndDiffusersLayoutsMergeAndComeBackExactly) {
  WriteKohya("k");
  // The same update in diffusers' PEFT names, alpha 1 of rank 2 as well.
  WriteSafetensors(
      dir_ / "d.safetensors",
      {{"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight", down_},
       {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight", up_},
       {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.alpha",
        torch::tensor(1.0)},
       {"text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight", tdown_},
       {"text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight", tup_}});
  const auto unet_before = unet_storage_.clone();
  const auto text_before = text_storage_.clone();
  LoraWeights loras(dir_, &text_, &unet_);
  auto want_unet = unet_before.clone();
  want_unet.narrow(0, 4, 4).add_(3.0 * 0.7 * 0.5 * torch::mm(up_, down_));  // alpha / rank = 0.5
  const auto want_text = text_before + 0.7 * torch::mm(tup_, tdown_);       // no alpha: 1
  for (const char* name : {"k", "d"}) {
    auto lease = loras.Use({{name, 0.7}});
    ASSERT_TRUE(lease.ok()) << lease.error().message;
    EXPECT_TRUE(torch::allclose(unet_storage_, want_unet, 1e-5, 1e-5)) << name;
    EXPECT_TRUE(torch::allclose(text_storage_, want_text, 1e-5, 1e-5)) << name;
    EXPECT_TRUE(torch::equal(unet_storage_.narrow(0, 0, 4), unet_before.narrow(0, 0, 4)));
  }
  {
    auto both = loras.Use({{"k", 0.7}, {"d", -0.7}});  // cancel out
    ASSERT_TRUE(both.ok());
    EXPECT_TRUE(torch::allclose(unet_storage_, unet_before, 1e-5, 1e-5));
  }
  auto none = loras.Use({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(torch::equal(unet_storage_, unet_before));
  EXPECT_TRUE(torch::equal(text_storage_, text_before));
  EXPECT_EQ(unet_.Changed(), 0u);
}

TEST_F(LoraWeightsTest, ConvKernelsAndProcessorNames) {
  WriteSafetensors(
      dir_ / "c.safetensors",
      {{"down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight",
        down_},
       {"down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.up.weight", up_},
       {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", down_.view({2, 6, 1, 1})},
       {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight", up_.view({4, 2, 1, 1})}});
  LoraWeights loras(dir_, &text_, &unet_);
  auto lease = loras.Use({{"c", 1.0}});
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  EXPECT_EQ(unet_.Changed(), 2u);
}

TEST_F(LoraWeightsTest, RefusesWhatItCannotUseAndLeavesTheWeights) {
  const auto before = unet_storage_.clone();
  WriteSafetensors(dir_ / "other.safetensors",
                   {{"lora_unet_input_blocks_1_1_proj_in.lora_down.weight", down_},
                    {"lora_unet_input_blocks_1_1_proj_in.lora_up.weight", up_}});
  // SDXL LoRAs for a model with one text encoder, each with a layer for the second.
  WriteSafetensors(
      dir_ / "xl.safetensors",
      {{"lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", tdown_},
       {"lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", tup_},
       {"lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", tdown_},
       {"lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", tup_}});
  WriteSafetensors(
      dir_ / "xl_peft.safetensors",
      {{"text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight", tdown_},
       {"text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight", tup_}});
  WriteSafetensors(dir_ / "loha.safetensors", {{"lora_unet_x.hada_w1_a", down_}});
  WriteSafetensors(dir_ / "half.safetensors",
                   {{"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight", down_}});
  WriteSafetensors(
      dir_ / "wide.safetensors",
      {{"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight", torch::randn({2, 7, 1, 1})},
       {"unet.down_blocks.0.attentions.0.proj_in.lora_B.weight", torch::randn({4, 2, 1, 1})}});
  std::ofstream(dir_ / "bad.safetensors") << "not a safetensors file";
  std::ofstream(dir_ / "pickled.pt") << "x";
  LoraWeights loras(dir_, &text_, &unet_);
  const std::map<std::string, std::string> cases = {{"other", "matches no weight"},
                                                    {"xl", "is an SDXL LoRA"},
                                                    {"xl_peft", "is an SDXL LoRA"},
                                                    {"loha", "LoHa"},
                                                    {"half", "without its up"},
                                                    {"wide", "does not fit"},
                                                    {"bad", "LoRA"},
                                                    {"missing", "is not in"},
                                                    {"../k", "not a file name"},
                                                    {"pickled.pt", "is not in"}};
  for (const auto& [name, says] : cases) {
    auto lease = loras.Use({{name, 1.0}});
    ASSERT_FALSE(lease.ok()) << name;
    EXPECT_EQ(lease.error().code, ErrorCode::kInvalidRequest) << name;
    EXPECT_EQ(lease.error().field, "prompt") << name;
    EXPECT_NE(lease.error().message.find(says), std::string::npos) << lease.error().message;
  }
  EXPECT_TRUE(torch::equal(unet_storage_, before));
  auto unconfigured = LoraWeights("", &text_, &unet_).Use({{"k", 1.0}});
  ASSERT_FALSE(unconfigured.ok());
  EXPECT_NE(unconfigured.error().message.find("--lora-dir"), std::string::npos);
  EXPECT_TRUE(LoraWeights("", &text_, &unet_).Use({}).ok());
  EXPECT_NE(ReadLoraFile(dir_ / "pickled.pt").error().message.find("unpickling"),
            std::string::npos);
}

TEST_F(LoraWeightsTest, SdxlLayoutsReachBothTextEncodersAndTheUnet) {
  // SDXL's second encoder (here 3 wide) beside the first and the UNet.
  auto text_2_storage = torch::randn({3, 5});
  WeightTargets text_2;
  text_2.Set("text_model.encoder.layers.0.self_attn.q_proj.weight", text_2_storage);
  const auto down_2 = torch::randn({2, 5});
  const auto up_2 = torch::randn({3, 2});
  const std::string q = "text_model.encoder.layers.0.self_attn.q_proj";
  const std::string uq = "text_model_encoder_layers_0_self_attn_q_proj";
  const std::string to_q = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q";
  WriteSafetensors(dir_ / "k.safetensors",
                   {{"lora_unet_" + Underscored(to_q) + ".lora_down.weight", down_},
                    {"lora_unet_" + Underscored(to_q) + ".lora_up.weight", up_},
                    {"lora_te1_" + uq + ".lora_down.weight", tdown_},
                    {"lora_te1_" + uq + ".lora_up.weight", tup_},
                    {"lora_te2_" + uq + ".lora_down.weight", down_2},
                    {"lora_te2_" + uq + ".lora_up.weight", up_2},
                    {"lora_te2_" + uq + ".alpha", torch::tensor(1.0)}});
  WriteSafetensors(dir_ / "d.safetensors",
                   {{"unet." + to_q + ".lora_A.weight", down_},
                    {"unet." + to_q + ".lora_B.weight", up_},
                    {"text_encoder." + q + ".lora_A.weight", tdown_},
                    {"text_encoder." + q + ".lora_B.weight", tup_},
                    {"text_encoder_2." + q + ".lora_A.weight", down_2},
                    {"text_encoder_2." + q + ".lora_B.weight", up_2},
                    {"text_encoder_2." + q + ".alpha", torch::tensor(1.0)}});
  // A layer the second encoder does not have.
  WriteSafetensors(
      dir_ / "deep.safetensors",
      {{"lora_te2_text_model_encoder_layers_5_self_attn_q_proj.lora_down.weight", down_2},
       {"lora_te2_text_model_encoder_layers_5_self_attn_q_proj.lora_up.weight", up_2}});
  const auto unet_before = unet_storage_.clone();
  const auto text_before = text_storage_.clone();
  const auto text_2_before = text_2_storage.clone();
  LoraWeights loras(dir_, &text_, &unet_, &text_2);
  auto want_unet = unet_before.clone();
  want_unet.narrow(0, 4, 4).add_(3.0 * 0.7 * torch::mm(up_, down_));
  const auto want_text = text_before + 0.7 * torch::mm(tup_, tdown_);
  const auto want_text_2 = text_2_before + 0.7 * 0.5 * torch::mm(up_2, down_2);  // alpha 1, rank 2
  for (const char* name : {"k", "d"}) {
    auto lease = loras.Use({{name, 0.7}});
    ASSERT_TRUE(lease.ok()) << lease.error().message;
    EXPECT_TRUE(torch::allclose(unet_storage_, want_unet, 1e-5, 1e-5)) << name;
    EXPECT_TRUE(torch::allclose(text_storage_, want_text, 1e-5, 1e-5)) << name;
    EXPECT_TRUE(torch::allclose(text_2_storage, want_text_2, 1e-5, 1e-5)) << name;
  }
  auto deep = loras.Use({{"deep", 1.0}});
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.error().message.find("lora_te2_text_model_encoder_layers_5_self_attn_q_proj "
                                      "matches no weight of the second text encoder"),
            std::string::npos)
      << deep.error().message;
  // A refused LoRA leaves the set in use as it was.
  EXPECT_TRUE(torch::allclose(text_2_storage, want_text_2, 1e-5, 1e-5));
  auto none = loras.Use({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(torch::equal(unet_storage_, unet_before));
  EXPECT_TRUE(torch::equal(text_storage_, text_before));
  EXPECT_TRUE(torch::equal(text_2_storage, text_2_before));
  EXPECT_EQ(text_2.Changed(), 0u);
}

TEST_F(LoraWeightsTest, AnotherSetWaitsForTheLeasesOfTheFirst) {
  WriteKohya("k");
  const auto before = unet_storage_.clone();
  LoraWeights loras(dir_, &text_, &unet_);
  auto first = loras.Use({{"k", 1.0}});
  ASSERT_TRUE(first.ok());
  const auto merged = unet_storage_.clone();
  std::atomic<bool> switched{false};
  std::thread other([&] {
    auto lease = loras.Use({});
    switched = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(switched);  // the first lease still holds the merged weights
  EXPECT_TRUE(torch::equal(unet_storage_, merged));
  first->reset();
  other.join();
  EXPECT_TRUE(switched);
  EXPECT_TRUE(torch::equal(unet_storage_, before));
}

}  // namespace
}  // namespace imagegen::sd
