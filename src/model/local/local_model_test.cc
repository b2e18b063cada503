#include "model/local/local_model.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "model/local/network.h"
#include "model/local/safetensors.h"
#include "model/local/synth.h"

namespace imagegen {
namespace {

namespace fs = std::filesystem;

// A tiny randomly initialised model of the shipped architecture: fast enough for unit tests.
local::ModelConfig TinyConfig() {
  local::ModelConfig c;
  c.vocab = synth::Vocabulary();
  c.text_dim = 16;
  c.text_heads = 2;
  c.text_layers = 1;
  c.channels = {8, 16, 16};
  c.time_dim = 32;
  c.attn_heads = 2;
  c.groups = 4;
  c.default_steps = 4;
  return c;
}

std::string WriteTinyModel(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("imagegen_local_" + name);
  fs::create_directories(dir);
  torch::manual_seed(3);
  local::ModelConfig c = TinyConfig();
  local::Network net(c);
  EXPECT_TRUE(
      WriteSafetensors((dir / "model.safetensors").string(), local::ToSafetensors(*net), {}).ok());
  std::ofstream(dir / "config.json") << c.ToJson();
  return dir.string();
}

ValidRequest Request(const std::string& prompt, int64_t seed) {
  ValidRequest r;
  r.prompt = prompt;
  r.width = r.height = 32;
  r.seed = seed;
  r.steps = 3;
  r.guidance = 3.0;
  r.count = 1;
  return r;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class LocalModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = new std::string(WriteTinyModel("tiny")); }
  static std::string* dir_;
};
std::string* LocalModelTest::dir_ = nullptr;

TEST(NetworkTest, WordContextAddsOnePlainRowPerTokenAndSurvivesConfigJson) {
  local::ModelConfig c = TinyConfig();
  c.word_context = true;
  auto parsed = local::ModelConfig::FromJson(c.ToJson());
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_TRUE(parsed->word_context);
  local::Network net(*parsed);
  auto tokens = torch::tensor(local::Tokenize(c, "a red circle").ids).view({1, -1});
  auto ctx = net->text(tokens);
  auto mask = net->text->KeyMask(tokens);
  EXPECT_EQ(ctx.size(1), 2 * c.max_tokens);
  EXPECT_EQ(mask.size(1), 2 * c.max_tokens);
  EXPECT_EQ(mask.sum().item<int64_t>(), 2 * 4);  // <s> a red circle, twice
  // The plain rows are the same for "circle" beside any colour; the contextual ones are not.
  auto other = torch::tensor(local::Tokenize(c, "a blue circle").ids).view({1, -1});
  auto ctx2 = net->text(other);
  const int64_t circle = 3, plain = c.max_tokens + circle;
  EXPECT_TRUE(torch::equal(ctx[0][plain], ctx2[0][plain]));
  EXPECT_FALSE(torch::equal(ctx[0][circle], ctx2[0][circle]));
  // A config written before word_context existed loads as the contextual-only network.
  auto old_json = nlohmann::json::parse(TinyConfig().ToJson());
  ASSERT_EQ(old_json.erase("word_context"), 1u);
  auto old = local::ModelConfig::FromJson(old_json.dump());
  ASSERT_TRUE(old.ok()) << old.error().message;
  EXPECT_FALSE(old->word_context);
}

TEST_F(LocalModelTest, SameSeedSameBytesDifferentSeedDifferentImage) {
  auto model = LoadLocalModel(*dir_, 1);
  ASSERT_TRUE(model.ok()) << model.error().message;
  EXPECT_EQ((*model)->Name(), "local");
  auto a = (*model)->Generate(Request("a red circle", 5), {});
  auto b = (*model)->Generate(Request("a red circle", 5), {});
  auto c = (*model)->Generate(Request("a red circle", 6), {});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->images[0].rgb, b->images[0].rgb);
  EXPECT_NE(a->images[0].rgb, c->images[0].rgb);
}

TEST_F(LocalModelTest, ImageIUsesSeedPlusI) {
  auto model = LoadLocalModel(*dir_, 1);
  ASSERT_TRUE(model.ok());
  ValidRequest r = Request("two blue squares", 10);
  r.count = 3;
  auto batch = (*model)->Generate(r, {});
  ASSERT_TRUE(batch.ok());
  ASSERT_EQ(batch->images.size(), 3u);
  auto single = (*model)->Generate(Request("two blue squares", 12), {});
  ASSERT_TRUE(single.ok());
  // Batched and single runs may differ in the last bit of float arithmetic, not visibly.
  int max_diff = 0;
  for (size_t i = 0; i < single->images[0].rgb.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(single->images[0].rgb[i] - batch->images[2].rgb[i]));
  }
  EXPECT_LE(max_diff, 2);
}

TEST_F(LocalModelTest, ConcurrentCallsAreDeterministic) {
  auto model = LoadLocalModel(*dir_, 1);
  ASSERT_TRUE(model.ok());
  auto expected = (*model)->Generate(Request("a green triangle", 1), {});
  ASSERT_TRUE(expected.ok());
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      auto got = (*model)->Generate(Request("a green triangle", 1), {});
      if (!got.ok() || got->images[0].rgb != expected->images[0].rgb) ++mismatches;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST_F(LocalModelTest, UnknownWordsAreWarningsNotErrors) {
  auto model = LoadLocalModel(*dir_, 1);
  ASSERT_TRUE(model.ok());
  auto out = (*model)->Generate(Request("a red croissant on a blue background", 1), {});
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->images.size(), 1u);
  ASSERT_EQ(out->warnings.size(), 1u);
  EXPECT_EQ(out->warnings[0], "unknown word: \"croissant\"");
}

TEST_F(LocalModelTest, LimitsAndUpscaling) {
  auto model = LoadLocalModel(*dir_, 1);
  ASSERT_TRUE(model.ok());
  const ModelLimits& l = (*model)->Limits();
  ASSERT_FALSE(l.sizes.empty());
  EXPECT_EQ(l.sizes.front(), std::make_pair(32, 32));
  EXPECT_EQ(l.sizes.back(), std::make_pair(512, 512));
  ValidRequest r = Request("a red circle", 2);
  auto native = (*model)->Generate(r, {});
  r.width = r.height = 128;
  auto big = (*model)->Generate(r, {});
  ASSERT_TRUE(native.ok() && big.ok());
  ASSERT_EQ(big->images[0].width, 128);
  // Nearest-neighbour upscaling: every 4x4 block repeats one native pixel.
  for (int y = 0; y < 128; y += 7) {
    for (int x = 0; x < 128; x += 5) {
      EXPECT_EQ(0,
                std::memcmp(big->images[0].Pixel(x, y), native->images[0].Pixel(x / 4, y / 4), 3));
    }
  }
}

TEST_F(LocalModelTest, CancellationAndDeadlineStopBetweenSteps) {
  auto model = LoadLocalModel(*dir_, 1);
  ASSERT_TRUE(model.ok());
  std::atomic<bool> cancelled{false};
  GenerateContext ctx;
  ctx.cancelled = &cancelled;
  int seen = 0;
  ctx.on_progress = [&](int step, int total) {
    seen = step;
    EXPECT_EQ(total, 3);
    if (step == 1) cancelled = true;
  };
  auto out = (*model)->Generate(Request("a red circle", 1), ctx);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kCancelled);
  EXPECT_EQ(seen, 1);
  GenerateContext late;
  late.deadline = Clock::now() - std::chrono::seconds(1);
  auto timed_out = (*model)->Generate(Request("a red circle", 1), late);
  ASSERT_FALSE(timed_out.ok());
  EXPECT_EQ(timed_out.error().code, ErrorCode::kDeadlineExceeded);
}

// Previews are the sampler's x0 estimates: at every preview_every-th step before the last, one
// per image at the native size, and asking for them leaves the images themselves unchanged.
TEST_F(LocalModelTest, PreviewsComeAtTheAskedStepsAndChangeNothing) {
  auto model = LoadLocalModel(*dir_, 1);
  ASSERT_TRUE(model.ok());
  ValidRequest r = Request("a red circle", 3);
  r.steps = 7;
  r.count = 2;
  auto plain = (*model)->Generate(r, {});
  ASSERT_TRUE(plain.ok());
  GenerateContext ctx;
  ctx.preview_every = 3;
  std::vector<Preview> previews;
  ctx.on_preview = [&](const Preview& p) { previews.push_back(p); };
  auto watched = (*model)->Generate(r, ctx);
  ASSERT_TRUE(watched.ok());
  ASSERT_EQ(previews.size(), 4u);  // steps 3 and 6 of 7, two images each
  for (size_t i = 0; i < previews.size(); ++i) {
    EXPECT_EQ(previews[i].step, i < 2 ? 3 : 6);
    EXPECT_EQ(previews[i].total, 7);
    EXPECT_EQ(previews[i].index, static_cast<int>(i % 2));
    EXPECT_EQ(previews[i].width, 32);
    EXPECT_EQ(previews[i].rgb.size(), 32u * 32u * 3u);
  }
  EXPECT_NE(previews[0].rgb, previews[2].rgb);  // the estimate moves with the steps
  for (int i = 0; i < 2; ++i) EXPECT_EQ(plain->images[i].rgb, watched->images[i].rgb);
}

TEST_F(LocalModelTest, LoaderRefusesBrokenFiles) {
  fs::path dir = fs::temp_directory_path() / "imagegen_local_broken";
  fs::create_directories(dir);
  std::string weights = ReadAll(fs::path(*dir_) / "model.safetensors");
  std::string config = ReadAll(fs::path(*dir_) / "config.json");
  auto try_load = [&](const std::string& w, const std::string& c) {
    std::ofstream(dir / "model.safetensors", std::ios::binary | std::ios::trunc) << w;
    std::ofstream(dir / "config.json", std::ios::trunc) << c;
    return LoadLocalModel(dir.string(), 1);
  };
  ASSERT_TRUE(try_load(weights, config).ok());
  // Truncated weights.
  auto r = try_load(weights.substr(0, weights.size() / 2), config);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("invalid safetensors"), std::string::npos) << r.error().message;
  // Weights of a different size (config says a wider text encoder: same names, other shapes).
  local::ModelConfig wide = TinyConfig();
  wide.text_dim = 32;
  r = try_load(weights, wide.ToJson());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("shape"), std::string::npos) << r.error().message;
  // Corrupt config.
  r = try_load(weights, "{\"format\": \"imagegen-local\"");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("config"), std::string::npos) << r.error().message;
  // Every byte-prefix of the weights: an error, never a crash.
  for (size_t len = 0; len < weights.size(); len += 997) {
    EXPECT_FALSE(try_load(weights.substr(0, len), config).ok());
  }
  // Missing directory.
  r = LoadLocalModel((dir / "nope").string(), 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
}

// An absurd config beside small weights is refused from the tensor table, before the network
// it describes (here about 2.5 GB of parameters) is allocated.
TEST_F(LocalModelTest, AbsurdConfigIsRefusedBeforeAllocating) {
  fs::path dir = fs::temp_directory_path() / "imagegen_local_absurd";
  fs::create_directories(dir);
  fs::copy_file(fs::path(*dir_) / "model.safetensors", dir / "model.safetensors",
                fs::copy_options::overwrite_existing);
  auto peak_kib = [] {
    struct rusage usage {};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
  };
  struct Case {
    const char* what;
    std::function<void(local::ModelConfig*)> change;
    const char* tensor;
  };
  const std::vector<Case> cases = {
      {"channels",
       [](local::ModelConfig* c) {
         c->channels = {2048, 2048, 2048};
       },
       "unet.conv_in.weight"},
      {"text_layers", [](local::ModelConfig* c) { c->text_layers = 64; }, "text.layers.63"},
      {"time_dim", [](local::ModelConfig* c) { c->time_dim = 4096; }, "unet.time1.weight"},
      {"vocab", [](local::ModelConfig* c) { c->vocab.resize(90000, "w"); }, "text.tok_emb"},
      {"max_tokens", [](local::ModelConfig* c) { c->max_tokens = 500; }, "text.pos_emb"},
  };
  for (const auto& test : cases) {
    local::ModelConfig config = TinyConfig();
    test.change(&config);
    std::ofstream(dir / "config.json", std::ios::trunc) << config.ToJson();
    long before = peak_kib();
    auto r = LoadLocalModel(dir.string(), 1);
    ASSERT_FALSE(r.ok()) << test.what;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidRequest);
    EXPECT_NE(r.error().message.find("does not match the weights"), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find(test.tensor), std::string::npos) << r.error().message;
    EXPECT_LT(peak_kib() - before, 64 * 1024) << test.what << ": the network was allocated";
  }
  // A config that sizes fewer text layers than the weights hold is refused too.
  local::ModelConfig two = TinyConfig();
  two.text_layers = 2;
  local::Network wide(two);
  ASSERT_TRUE(
      WriteSafetensors((dir / "model.safetensors").string(), local::ToSafetensors(*wide), {}).ok());
  std::ofstream(dir / "config.json", std::ios::trunc) << TinyConfig().ToJson();
  auto r = LoadLocalModel(dir.string(), 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("more than text_layers = 1"), std::string::npos)
      << r.error().message;
}

TEST(LocalModelLoaderTest, RefusesWrongDtypeAndMissingTensor) {
  local::ModelConfig c = TinyConfig();
  local::Network net(c);
  auto tensors = local::ToSafetensors(*net);
  fs::path p = fs::temp_directory_path() / "imagegen_local_dtype.safetensors";
  auto half = tensors;
  half[0].dtype = "F16";
  half[0].bytes.resize(half[0].bytes.size() / 2);
  ASSERT_TRUE(WriteSafetensors(p.string(), half, {}).ok());
  auto f = ReadSafetensors(p.string());
  ASSERT_TRUE(f.ok());
  Status st = local::LoadWeights(*net, *f);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("dtype F16"), std::string::npos) << st.error().message;
  auto missing = tensors;
  missing.pop_back();
  ASSERT_TRUE(WriteSafetensors(p.string(), missing, {}).ok());
  f = ReadSafetensors(p.string());
  ASSERT_TRUE(f.ok());
  st = local::LoadWeights(*net, *f);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("missing tensor"), std::string::npos) << st.error().message;
}

// OpenBLAS (the system BLAS that scripts/setup.sh installs) must not add threads inside torch's.
TEST(LocalModelThreadsTest, SetEngineThreadsLeavesOpenBlasOneThread) {
  using GetThreads = int (*)();
  using SetThreads = void (*)(int);
  void* get = dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
  void* set = dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
  if (get == nullptr || set == nullptr) GTEST_SKIP() << "the BLAS in use is not OpenBLAS";
  reinterpret_cast<SetThreads>(set)(2);  // as OpenBLAS starts on a 2-core machine
  ASSERT_EQ(reinterpret_cast<GetThreads>(get)(), 2);
  SetEngineThreads(2);
  EXPECT_EQ(reinterpret_cast<GetThreads>(get)(), 1);
  EXPECT_EQ(torch::get_num_threads(), 2);
}

// End to end with the shipped model: the prompt from the issue, checked by the evaluator.
// How many of 4 seeds of `prompt`, run through the shipped model with its defaults, the checker
// reads as exactly one `colour` `shape` on `background`; skips when no model is shipped.
int ShippedModelMatches(const std::string& prompt, synth::Colour colour, synth::Shape shape,
                        synth::Colour background) {
  fs::path dir = fs::path(IMAGEGEN_SOURCE_DIR) / "models" / "local";
  if (!fs::exists(dir / "model.safetensors")) return -1;
  auto model = LoadLocalModel(dir.string(), 1);
  EXPECT_TRUE(model.ok()) << model.error().message;
  if (!model.ok()) return 0;
  ValidRequest r;
  r.prompt = prompt;
  r.width = r.height = 32;
  r.steps = (*model)->Limits().default_steps;
  r.guidance = (*model)->Limits().default_guidance;
  r.count = 4;
  r.seed = 1;
  auto out = (*model)->Generate(r, {});
  EXPECT_TRUE(out.ok()) << out.error().message;
  if (!out.ok()) return 0;
  EXPECT_TRUE(out->warnings.empty());
  int good = 0;
  for (const auto& img : out->images) {
    synth::Reading reading = synth::Check(img);
    good += reading.colour == colour && reading.shape == shape && reading.count == 1 &&
            reading.background == background;
  }
  return good;
}

TEST(LocalModelShippedTest, RedCircleOnBlueBackground) {
  int good = ShippedModelMatches("a red circle on a blue background", synth::Colour::kRed,
                                 synth::Shape::kCircle, synth::Colour::kBlue);
  if (good < 0) GTEST_SKIP() << "no shipped model";
  EXPECT_GE(good, 3) << "of 4 seeds, fewer than 3 show one red circle on blue";
}

// Green triangles never appear in training (synth::HeldOutPairs): the model has to compose the
// colour and the shape it learnt separately. The prompt states every attribute, like the
// evaluation's headline table; shorter prompts are followed less often (MODEL_CARD.md).
TEST(LocalModelShippedTest, HeldOutGreenTriangleOnBlack) {
  ASSERT_TRUE(synth::IsHeldOut(synth::Scene{.colour = synth::Colour::kGreen,
                                            .shape = synth::Shape::kTriangle,
                                            .background = synth::Colour::kBlack}));
  int good =
      ShippedModelMatches("a large green triangle in the centre on a black background",
                          synth::Colour::kGreen, synth::Shape::kTriangle, synth::Colour::kBlack);
  if (good < 0) GTEST_SKIP() << "no shipped model";
  EXPECT_GE(good, 3) << "of 4 seeds, fewer than 3 show one green triangle on black";
}

}  // namespace
}  // namespace imagegen
