#include "core/request.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "core/ids.h"
#include "core/request_json.h"

namespace imagegen {
namespace {

ModelLimits TestLimits() {
  ModelLimits limits;
  limits.max_prompt_chars = 10;
  limits.sizes = {{64, 64}, {128, 128}};
  limits.min_steps = 1;
  limits.max_steps = 50;
  limits.default_steps = 20;
  limits.max_count = 2;
  return limits;
}

TEST(ValidateTest, AppliesDefaultsAndTrims) {
  GenerateRequest req;
  req.prompt = "  a cat \n";
  auto v = Validate(req, TestLimits());
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->prompt, "a cat");
  EXPECT_EQ(v->width, 64);
  EXPECT_EQ(v->height, 64);
  EXPECT_EQ(v->steps, 20);
  EXPECT_GE(v->seed, 0);
  EXPECT_LE(v->seed, kMaxSeed);
}

TEST(ValidateTest, RejectsEmptyPromptNamingTheField) {
  GenerateRequest req;
  req.prompt = " \t ";
  auto v = Validate(req, TestLimits());
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().code, ErrorCode::kInvalidRequest);
  EXPECT_EQ(v.error().field, "prompt");
}

TEST(ValidateTest, CountsCharactersNotBytes) {
  GenerateRequest req;
  req.prompt = "ééééééééé";  // 9 characters, 18 bytes
  EXPECT_TRUE(Validate(req, TestLimits()).ok());
  req.prompt = "ééééééééééé";  // 11 characters
  auto v = Validate(req, TestLimits());
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error().message.find("at most 10"), std::string::npos);
}

TEST(ValidateTest, RejectsInvalidUtf8AndControlCharacters) {
  GenerateRequest req;
  req.prompt = std::string("a\xff");
  EXPECT_FALSE(Validate(req, TestLimits()).ok());
  req.prompt = std::string("a\x01");
  EXPECT_FALSE(Validate(req, TestLimits()).ok());
}

TEST(ValidateTest, SizeMustBeInTheModelsTable) {
  GenerateRequest req;
  req.prompt = "x";
  req.width = 100;
  req.height = 100;
  auto v = Validate(req, TestLimits());
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().field, "size");
  EXPECT_NE(v.error().message.find("64x64, 128x128"), std::string::npos);
  req.width = 128;
  req.height.reset();  // one side given: square
  ASSERT_TRUE(Validate(req, TestLimits()).ok());
  EXPECT_EQ(Validate(req, TestLimits())->height, 128);
}

TEST(ValidateTest, RangesNameFieldAndBounds) {
  GenerateRequest req;
  req.prompt = "x";
  req.seed = kMaxSeed + 1;
  auto v = Validate(req, TestLimits());
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().field, "seed");
  EXPECT_NE(v.error().message.find("between 0 and 2147483647"), std::string::npos);
  req.seed = 7;
  req.count = 3;
  EXPECT_EQ(Validate(req, TestLimits()).error().field, "count");
  req.count = 1;
  req.steps = 51;
  EXPECT_EQ(Validate(req, TestLimits()).error().field, "steps");
}

TEST(ValidateTest, GivenSeedIsKept) {
  GenerateRequest req;
  req.prompt = "x";
  req.seed = 0;
  EXPECT_EQ(Validate(req, TestLimits())->seed, 0);
}

// A given zero is a value, not "absent": guidance 0 means no guidance; steps/width/height 0
// are refused naming the model's range, never replaced by the default.
TEST(ValidateTest, GivenZeroIsCheckedAsGivenNotDefaulted) {
  auto parse = [](const char* body) {
    auto request = ParseGenerateJson(nlohmann::json::parse(body));
    EXPECT_TRUE(request.ok()) << body;
    return Validate(request.value(), TestLimits());
  };
  auto zero_guidance = parse(R"({"prompt":"a","guidance_scale":0})");
  ASSERT_TRUE(zero_guidance.ok());
  EXPECT_EQ(zero_guidance->guidance, 0.0);
  EXPECT_EQ(parse(R"({"prompt":"a"})")->guidance, 7.5);
  EXPECT_EQ(parse(R"({"prompt":"a","guidance_scale":null})")->guidance, 7.5);

  auto zero_steps = parse(R"({"prompt":"a","steps":0})");
  ASSERT_FALSE(zero_steps.ok());
  EXPECT_EQ(zero_steps.error().field, "steps");
  EXPECT_NE(zero_steps.error().message.find("between 1 and 50"), std::string::npos)
      << zero_steps.error().message;
  for (const char* body : {R"({"prompt":"a","width":0})", R"({"prompt":"a","height":0})",
                           R"({"prompt":"a","width":0,"height":0})"}) {
    auto zero_size = parse(body);
    ASSERT_FALSE(zero_size.ok()) << body;
    EXPECT_EQ(zero_size.error().field, "size");
    EXPECT_NE(zero_size.error().message.find("allowed: 64x64"), std::string::npos)
        << zero_size.error().message;
  }
  EXPECT_EQ(parse(R"({"prompt":"a","seed":0})")->seed, 0);

  ModelLimits strict = TestLimits();
  strict.min_guidance = 1.0;  // a model with no unguided mode refuses 0, naming its range
  GenerateRequest request;
  request.prompt = "a";
  request.guidance = 0.0;
  auto refused = Validate(request, strict);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().field, "guidance_scale");
  EXPECT_NE(refused.error().message.find("between 1"), std::string::npos)
      << refused.error().message;
}

TEST(ValidateTest, OutputFormatQualityAndBackground) {
  GenerateRequest req;
  req.prompt = "a cat";
  auto v = Validate(req, TestLimits());
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->format, ImageFormat::kPng);
  EXPECT_EQ(v->quality, TestLimits().default_quality);
  EXPECT_EQ(v->background, Background::kAuto);
  EXPECT_TRUE(v->warnings.empty());

  req.format = "webp";
  req.quality = 55;
  v = Validate(req, TestLimits());
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->format, ImageFormat::kWebp);
  EXPECT_EQ(v->quality, 55);

  req.format = "gif";
  EXPECT_EQ(Validate(req, TestLimits()).error().field, "format");
  req.format = "jpeg";
  req.quality = 101;
  auto bad = Validate(req, TestLimits());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().field, "quality");
  EXPECT_NE(bad.error().message.find("between 0 and 100"), std::string::npos);
  req.quality = -1;
  EXPECT_EQ(Validate(req, TestLimits()).error().field, "quality");
  req.quality.reset();
  req.background = "striped";
  EXPECT_EQ(Validate(req, TestLimits()).error().field, "background");
}

TEST(ValidateTest, TransparencyNeedsAlphaInTheFormatAndTheModel) {
  GenerateRequest req;
  req.prompt = "a cat";
  req.background = "transparent";
  req.format = "jpeg";
  auto jpeg = Validate(req, TestLimits());
  ASSERT_FALSE(jpeg.ok());
  EXPECT_EQ(jpeg.error().field, "background");
  EXPECT_EQ(jpeg.error().code, ErrorCode::kInvalidRequest);

  req.format = "png";
  auto no_alpha = Validate(req, TestLimits());  // makes_alpha is false by default
  ASSERT_TRUE(no_alpha.ok());
  ASSERT_EQ(no_alpha->warnings.size(), 1u);
  EXPECT_NE(no_alpha->warnings[0].find("cannot make alpha"), std::string::npos);

  ModelLimits alpha = TestLimits();
  alpha.makes_alpha = true;
  auto with_alpha = Validate(req, alpha);
  ASSERT_TRUE(with_alpha.ok());
  EXPECT_TRUE(with_alpha->warnings.empty());
  EXPECT_EQ(with_alpha->background, Background::kTransparent);

  req.background.clear();
  req.quality = 50;  // PNG is lossless: said, not silently ignored
  auto png = Validate(req, alpha);
  ASSERT_TRUE(png.ok());
  ASSERT_EQ(png->warnings.size(), 1u);
  EXPECT_NE(png->warnings[0].find("lossless"), std::string::npos);
}

TEST(ValidateTest, QualityPresetsChooseTheSteps) {
  GenerateRequest req;
  req.prompt = "a cat";
  auto steps_for = [&](const std::string& preset) {
    req.quality_preset = preset;
    auto v = Validate(req, TestLimits());
    EXPECT_TRUE(v.ok()) << preset;
    return v.ok() ? v->steps : -1;
  };
  EXPECT_EQ(steps_for("low"), 10);
  EXPECT_EQ(steps_for("medium"), 20);
  EXPECT_EQ(steps_for("standard"), 20);
  EXPECT_EQ(steps_for("auto"), 20);
  EXPECT_EQ(steps_for("high"), 40);
  EXPECT_EQ(steps_for("hd"), 40);
  req.quality_preset = "auto";
  EXPECT_EQ(Validate(req, TestLimits())->quality_preset, "medium");
  req.steps = 7;  // explicit steps win
  req.quality_preset = "high";
  EXPECT_EQ(Validate(req, TestLimits())->steps, 7);
  req.quality_preset = "ultra";
  EXPECT_EQ(Validate(req, TestLimits()).error().field, "quality");
  ModelLimits few = TestLimits();
  few.default_steps = 30;
  few.max_steps = 50;
  req.steps.reset();
  req.quality_preset = "high";
  EXPECT_EQ(Validate(req, few)->steps, 50);  // capped at the model's maximum
}

TEST(ParseGenerateJsonTest, FormatFieldsAndSizeAuto) {
  auto r = ParseGenerateJson(nlohmann::json::parse(
      R"({"prompt":"x","format":"jpeg","quality":70,"background":"opaque","size":"auto"})"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->format, "jpeg");
  EXPECT_EQ(r->quality, 70);
  EXPECT_EQ(r->background, "opaque");
  EXPECT_FALSE(r->width.has_value());  // "auto": the model's default size
  EXPECT_EQ(
      ParseGenerateJson(nlohmann::json::parse(R"({"prompt":"x","quality":"high"})")).error().field,
      "quality");
  EXPECT_EQ(ParseGenerateJson(nlohmann::json::parse(R"({"prompt":"x","format":5})")).error().field,
            "format");
}

TEST(IdsTest, KeyExtensionFollowsTheFormat) {
  EXPECT_EQ(ImageKey("p/", "j", 0, ImageExtension(ImageFormat::kJpeg)), "p/j.jpg");
  EXPECT_EQ(ImageKey("", "j", 1, ImageExtension(ImageFormat::kWebp)), "j-1.webp");
  EXPECT_TRUE(HasImageExtension("a/b.webp"));
  EXPECT_TRUE(HasImageExtension("b.jpg"));
  EXPECT_FALSE(HasImageExtension(".png"));
  EXPECT_FALSE(HasImageExtension("a/readyz.txt"));
  EXPECT_EQ(ImageFormatFromName("jpg"), ImageFormat::kJpeg);
  EXPECT_FALSE(ImageFormatFromName("PNG"));
}

TEST(ParseSizeTest, Formats) {
  EXPECT_EQ(ParseSize("512x256"), std::make_pair(512, 256));
  EXPECT_FALSE(ParseSize("512"));
  EXPECT_FALSE(ParseSize("x512"));
  EXPECT_FALSE(ParseSize("-1x5"));
  EXPECT_FALSE(ParseSize("99999999x1"));
}

TEST(ParseGenerateJsonTest, StrictFieldsAndTypes) {
  auto j = nlohmann::json::parse(R"({"prompt":"a","seed":5,"size":"128x128","guidance_scale":3})");
  auto r = ParseGenerateJson(j);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->seed, 5);
  EXPECT_EQ(r->width, 128);
  EXPECT_EQ(r->guidance, 3.0);
  EXPECT_EQ(ParseGenerateJson(nlohmann::json::parse(R"({"prompt":"a","negative_promt":"x"})"))
                .error()
                .field,
            "negative_promt");
  EXPECT_EQ(ParseGenerateJson(nlohmann::json::parse(R"({"prompt":5})")).error().field, "prompt");
  EXPECT_EQ(ParseGenerateJson(nlohmann::json::parse(R"({"prompt":"a","seed":1.5})")).error().field,
            "seed");
  EXPECT_EQ(ParseGenerateJson(nlohmann::json::parse(R"({"prompt":"a","seed":-1})")).error().field,
            "seed");
  EXPECT_EQ(
      ParseGenerateJson(nlohmann::json::parse(R"({"prompt":"a","seed":18446744073709551615})"))
          .error()
          .field,
      "seed");
  EXPECT_FALSE(ParseGenerateJson(nlohmann::json::parse(R"({})")).ok());
}

TEST(ParseJsonObjectTest, HugeNumbersAreInvalidNotExceptions) {
  auto r = ParseJsonObject(R"({"prompt":"x","seed":3e333})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidRequest);
  EXPECT_FALSE(ParseJobMessage(R"({"prompt":"x","seed":1e999})", "m").ok() &&
               ParseJobMessage(R"({"prompt":"x","seed":1e999})", "m")->seed.has_value());
}

TEST(ParseJobMessageTest, JsonOrPlainText) {
  auto plain = ParseJobMessage("A croissant", "msg-1");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->prompt, "A croissant");
  EXPECT_EQ(plain->job_id, "msg-1");
  auto json = ParseJobMessage(R"({"prompt":"x","job_id":"j1"})", "msg-2");
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(json->job_id, "j1");
  auto quoted = ParseJobMessage(R"("a string")", "m");
  EXPECT_EQ(quoted->prompt, "a string");
  EXPECT_FALSE(ParseJobMessage(R"({"prompt":"x","bogus":1})", "m").ok());
}

TEST(ErrorTest, TaxonomyMapsOnce) {
  EXPECT_EQ(HttpStatusFor(ErrorCode::kInvalidRequest), 400);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kContentRejected), 400);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kRateLimited), 429);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kUpstreamTimeout), 504);
  EXPECT_EQ(ExitCodeFor(ErrorCode::kInvalidRequest), 2);
  EXPECT_FALSE(IsRetryable(ErrorCode::kInvalidRequest));
  EXPECT_TRUE(IsRetryable(ErrorCode::kUpstreamUnavailable));
  EXPECT_EQ(ErrorCodeFromName("content_rejected"), ErrorCode::kContentRejected);
  EXPECT_FALSE(ErrorCodeFromName("nope"));
}

TEST(IdsTest, NewIdsSortNewestFirstAndPassTheirOwnCheck) {
  std::string a = NewJobId();
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  std::string b = NewJobId();
  EXPECT_LT(b, a);
  EXPECT_TRUE(CheckJobId(a).ok());
  EXPECT_FALSE(CheckJobId("../x").ok());
  EXPECT_FALSE(CheckJobId("").ok());
  EXPECT_FALSE(CheckJobId(std::string(65, 'a')).ok());
  EXPECT_EQ(ImageKey("p/", "j", 0), "p/j.png");
  EXPECT_EQ(ImageKey("", "j", 2), "j-2.png");
}

TEST(IdsTest, MetadataEncodingRoundTrips) {
  std::string value = "un café 100% \n ok";
  std::string encoded = EncodeMetadataValue(value);
  for (unsigned char c : encoded) EXPECT_TRUE(c >= 0x20 && c < 0x7F);
  EXPECT_EQ(DecodeMetadataValue(encoded), value);
}

TEST(ValidateTest, SamplerFromTheModelsListOrItsDefault) {
  ModelLimits limits = TestLimits();
  limits.samplers = {"euler", "ddim"};
  GenerateRequest req;
  req.prompt = "a";
  EXPECT_EQ(Validate(req, limits)->sampler, "euler");
  req.sampler = "ddim";
  EXPECT_EQ(Validate(req, limits)->sampler, "ddim");
  req.sampler = "plms";
  auto v = Validate(req, limits);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().field, "sampler");
  EXPECT_NE(v.error().message.find("euler, ddim"), std::string::npos);
  auto plain = Validate(req, TestLimits());  // a model without a choice: warned, not refused
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->sampler, "");
  ASSERT_EQ(plain->warnings.size(), 1u);
}

TEST(ValidateTest, EditsOnlyWhereTheModelCanWithinLimits) {
  ModelLimits limits = TestLimits();
  GenerateRequest req;
  req.prompt = "a";
  req.init_image = "bytes";
  EXPECT_EQ(Validate(req, limits).error().field, "image");
  limits.edits = true;
  EXPECT_DOUBLE_EQ(Validate(req, limits)->strength, limits.default_strength);
  req.strength = 0;
  EXPECT_EQ(Validate(req, limits).error().field, "strength");
  req.strength = 1;
  EXPECT_DOUBLE_EQ(Validate(req, limits)->strength, 1.0);
  limits.max_init_image_bytes = 4;
  EXPECT_EQ(Validate(req, limits).error().field, "image");
  GenerateRequest mask_only;
  mask_only.prompt = "a";
  mask_only.mask = "m";
  EXPECT_EQ(Validate(mask_only, limits).error().field, "mask");
}

TEST(ValidateTest, AMaskIsRefusedByAModelThatEditsWithoutOne) {
  ModelLimits limits = TestLimits();
  limits.edits = true;
  limits.masks = false;
  GenerateRequest req;
  req.prompt = "a";
  req.init_image = "bytes";
  EXPECT_TRUE(Validate(req, limits).ok());  // image-to-image is fine
  req.mask = "m";
  auto refused = Validate(req, limits);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidRequest);
  EXPECT_EQ(refused.error().field, "mask");
  limits.masks = true;
  EXPECT_EQ(Validate(req, limits)->mask, "m");
}

}  // namespace
}  // namespace imagegen
