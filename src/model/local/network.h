// The bundled model's network and its pieces, in LibTorch: the model config (config.json),
// the word tokenizer, the text encoder, the conditional UNet with cross-attention, the
// diffusion schedule, and the safetensors <-> module bridge. Internal to the engine, the
// trainer and the benchmark; the pipeline sees only local_model.h.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "model/local/safetensors.h"

namespace imagegen::local {

// Everything needed to rebuild the network and run it; stored as config.json beside the
// weights. A larger checkpoint of the same architecture only changes these numbers.
struct ModelConfig {
  int native_size = 32;
  std::vector<std::string> vocab;  // token ids: 0 <pad>, 1 <s>, then vocab[i] -> i + 2
  int max_tokens = 24;             // including <s>
  int text_dim = 64;
  int text_layers = 2;
  int text_heads = 4;
  // The UNet also attends to the plain word embeddings beside the contextual ones, so a
  // shape word looks the same to it next to any colour word (composition of unseen pairs).
  bool word_context = false;
  std::vector<int> channels = {32, 64, 96};  // per UNet level: full, 1/2, 1/4 resolution
  int time_dim = 128;
  int attn_heads = 4;
  int groups = 8;
  int timesteps = 1000;
  int default_steps = 20;
  double default_guidance = 2.0;  // chosen on validation draws (MODEL_CARD.md)
  std::string json_extra;         // training provenance, carried through unchanged

  static Result<ModelConfig> FromJson(const std::string& text);
  std::string ToJson() const;
};

// Words -> ids. Unknown words are skipped and reported; the prompt is truncated to
// max_tokens - 1 words.
struct Tokens {
  std::vector<int64_t> ids;  // max_tokens long, <s> first, <pad> after the words
  std::vector<std::string> unknown;
  bool truncated = false;
};
Tokens Tokenize(const ModelConfig& config, const std::string& text);

struct AttentionBlockImpl : torch::nn::Module {
  AttentionBlockImpl(int dim, int heads);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_mask);
  torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
  torch::nn::Linear qkv{nullptr}, proj{nullptr}, fc1{nullptr}, fc2{nullptr};
  int heads;
};
TORCH_MODULE(AttentionBlock);

struct TextEncoderImpl : torch::nn::Module {
  explicit TextEncoderImpl(const ModelConfig& c);
  // tokens [B, L] int64 -> context [B, L, text_dim] ([B, 2L, text_dim] with word_context).
  torch::Tensor forward(const torch::Tensor& tokens);
  // Which context rows are real words: [B, L] or [B, 2L] bool, matching forward().
  torch::Tensor KeyMask(const torch::Tensor& tokens) const;
  bool word_context;
  torch::nn::Embedding tok_emb{nullptr};
  torch::Tensor pos_emb;
  torch::nn::ModuleList layers;
  torch::nn::LayerNorm ln_f{nullptr};
};
TORCH_MODULE(TextEncoder);

struct ResBlockImpl : torch::nn::Module {
  ResBlockImpl(int in, int out, int time_dim, int groups);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb);
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, skip{nullptr};
  torch::nn::Linear temb{nullptr};
};
TORCH_MODULE(ResBlock);

struct CrossAttentionImpl : torch::nn::Module {
  CrossAttentionImpl(int channels, int context_dim, int heads, int groups);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& ctx,
                        const torch::Tensor& key_mask);
  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, out{nullptr};
  int heads;
};
TORCH_MODULE(CrossAttention);

struct UNetImpl : torch::nn::Module {
  explicit UNetImpl(const ModelConfig& c);
  // x [B,3,S,S], t [B] float, ctx [B,L,D], key_mask [B,L] bool -> v prediction [B,3,S,S]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& ctx,
                        const torch::Tensor& key_mask);
  torch::nn::Linear time1{nullptr}, time2{nullptr};
  torch::nn::Conv2d conv_in{nullptr}, down0{nullptr}, down1{nullptr}, up1{nullptr}, up0{nullptr},
      conv_out{nullptr};
  ResBlock res0{nullptr}, res1{nullptr}, mid0{nullptr}, mid1{nullptr}, dec1{nullptr}, dec0{nullptr};
  CrossAttention attn1{nullptr}, attn_mid{nullptr}, attn_dec1{nullptr};
  torch::nn::GroupNorm norm_out{nullptr};
  int time_freq_dim;
};
TORCH_MODULE(UNet);

// The whole denoiser: parameter names are "text.*" and "unet.*" (the safetensors names).
struct NetworkImpl : torch::nn::Module {
  explicit NetworkImpl(const ModelConfig& c);
  // Predicts v for noisy images x at timesteps t given prompt tokens.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t,
                        const torch::Tensor& tokens);
  TextEncoder text{nullptr};
  UNet unet{nullptr};
};
TORCH_MODULE(Network);

// Cosine schedule: alpha_bar(t) for t in [0, timesteps).
std::vector<double> AlphaBar(int timesteps);
// The DDIM timesteps for `steps` steps, from noisiest to cleanest.
std::vector<int> DdimTimesteps(int timesteps, int steps);

// Weights <-> safetensors. Load checks that every parameter is present with dtype F32 and
// the expected shape and that the file has no unexpected tensors.
std::vector<TensorToWrite> ToSafetensors(torch::nn::Module& module);
// Checks, before a Network is built, that `config` sizes the same network as the weights'
// tensor table: every config number that sizes a parameter (vocab, max_tokens, text_dim,
// text_layers, time_dim, channels) is read back from a tensor's shape. Building a network
// costs its size in memory, so an absurd config beside small weights (channels of 4096: 7 GB)
// is refused here instead; once these agree, the network is no larger than the weight file.
Status CheckConfigMatchesWeights(const ModelConfig& config, const SafetensorsFile& file);
Status LoadWeights(torch::nn::Module& module, const SafetensorsFile& file);

}  // namespace imagegen::local
