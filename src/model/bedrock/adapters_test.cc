#include "model/bedrock/adapters.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "aws/encoding.h"
#include "image/codec.h"

namespace imagegen::bedrock {
namespace {

using json = nlohmann::json;

ValidRequest Req(int w, int h, int count = 1) {
  ValidRequest r;
  r.prompt = "a red circle";
  r.negative_prompt = "blur";
  r.width = w;
  r.height = h;
  r.seed = 7;
  r.guidance = 8.0;
  r.count = count;
  return r;
}

TEST(Adapters, Families) {
  EXPECT_EQ(FamilyOf("amazon.titan-image-generator-v1"), Family::kTitan);
  EXPECT_EQ(FamilyOf("amazon.titan-image-generator-v2:0"), Family::kTitan);
  EXPECT_EQ(FamilyOf("amazon.nova-canvas-v1:0"), Family::kNovaCanvas);
  EXPECT_EQ(FamilyOf("us.stability.sd3-5-large-v1:0"), Family::kStability);
  EXPECT_EQ(FamilyOf(kDefaultModelId), Family::kStability);
  EXPECT_EQ(FamilyOf("meta.llama3"), Family::kUnknown);
  EXPECT_EQ(LifecycleNote(kDefaultModelId), "");
  EXPECT_NE(LifecycleNote("amazon.nova-canvas-v1:0").find("2026-09-30"), std::string::npos);
}

TEST(Adapters, TitanBody) {
  json body = BuildBody(Family::kTitan, Req(1152, 768, 2), 0);
  EXPECT_EQ(body["taskType"], "TEXT_IMAGE");
  EXPECT_EQ(body["textToImageParams"]["text"], "a red circle");
  EXPECT_EQ(body["textToImageParams"]["negativeText"], "blur");
  EXPECT_EQ(body["imageGenerationConfig"]["numberOfImages"], 2);
  EXPECT_EQ(body["imageGenerationConfig"]["width"], 1152);
  EXPECT_EQ(body["imageGenerationConfig"]["height"], 768);
  EXPECT_EQ(body["imageGenerationConfig"]["seed"], 7);
  EXPECT_EQ(TitanSizes().size(), 25u);
}

std::string Png(const Image& image) {
  return EncodeImage(image, {}, ImageFormat::kPng, 0).value().bytes;
}

Image DecodeB64(const std::string& b64) {
  return DecodeImage(*aws::Base64Decode(b64)).value().image;
}

TEST(Adapters, EditBodies) {
  EXPECT_TRUE(LimitsFor(Family::kTitan).edits);
  EXPECT_TRUE(LimitsFor(Family::kNovaCanvas).edits);
  EXPECT_FALSE(LimitsFor(Family::kStability).edits);
  ValidRequest r = Req(512, 512);
  Image source(2, 1);
  source.rgb = {10, 20, 30, 40, 50, 60};
  Image mask(2, 1);
  mask.rgb = {255, 255, 255, 0, 0, 0};  // imagegen's: repaint the left pixel
  r.init_image = Png(source);
  r.mask = Png(mask);
  auto images = PrepareEditImages(r);
  ASSERT_TRUE(images.ok()) << images.error().message;
  json body = BuildEditBody(Family::kNovaCanvas, r, images.value());
  EXPECT_EQ(body["taskType"], "INPAINTING");
  EXPECT_EQ(body["inPaintingParams"]["text"], "a red circle");
  EXPECT_EQ(body["inPaintingParams"]["negativeText"], "blur");
  EXPECT_FALSE(body["imageGenerationConfig"].contains("width"));
  Image sent = DecodeB64(body["inPaintingParams"]["image"]);
  Image sent_mask = DecodeB64(body["inPaintingParams"]["maskImage"]);
  ASSERT_EQ(sent.width, 512);
  ASSERT_EQ(sent_mask.height, 512);
  EXPECT_EQ(sent.Pixel(0, 0)[0], 10);
  EXPECT_EQ(sent.Pixel(511, 511)[2], 60);
  EXPECT_EQ(sent_mask.Pixel(0, 0)[0], 0);      // Bedrock's: black = change
  EXPECT_EQ(sent_mask.Pixel(511, 0)[0], 255);  // white = keep
  r.mask.clear();
  r.strength = 0.25;
  body = BuildEditBody(Family::kTitan, r, PrepareEditImages(r).value());
  EXPECT_EQ(body["taskType"], "IMAGE_VARIATION");
  EXPECT_DOUBLE_EQ(body["imageVariationParams"]["similarityStrength"].get<double>(), 0.75);
  EXPECT_EQ(body["imageVariationParams"]["images"].size(), 1u);
  EXPECT_EQ(body["imageGenerationConfig"]["width"], 512);
  EXPECT_DOUBLE_EQ(SimilarityFor(0.95), 0.2);
  r.init_image = "not an image";
  auto bad = PrepareEditImages(r);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().field, "image");
}

TEST(Adapters, StabilityEditsPerModel) {
  EXPECT_EQ(StabilityEditOf("stability.sd3-5-large-v1:0"), StabilityEdit::kImageToImageMode);
  EXPECT_EQ(StabilityEditOf("us.stability.sd3-5-large-v1:0"), StabilityEdit::kImageToImageMode);
  EXPECT_EQ(StabilityEditOf("stability.stable-image-ultra-v1:1"), StabilityEdit::kImageAndStrength);
  EXPECT_EQ(StabilityEditOf("stability.stable-image-core-v1:1"), StabilityEdit::kNone);
  ModelLimits large = LimitsForModel("stability.sd3-5-large-v1:0");
  EXPECT_TRUE(large.edits);
  EXPECT_FALSE(large.masks);
  EXPECT_DOUBLE_EQ(large.default_strength, 0.8);
  EXPECT_TRUE(LimitsForModel("arn:aws:bedrock:us-west-2::foundation-model/"
                             "stability.stable-image-ultra-v1:1")
                  .edits);
  EXPECT_FALSE(LimitsForModel("stability.stable-image-core-v1:1").edits);
  // Titan and Nova keep their family's limits, masks included.
  EXPECT_TRUE(LimitsForModel("amazon.nova-canvas-v1:0").masks);
  EXPECT_TRUE(LimitsForModel("amazon.titan-image-generator-v2:0").edits);
}

TEST(Adapters, StabilityEditBodies) {
  ValidRequest r = Req(1344, 768, 2);
  r.strength = 0.35;
  Image source(4, 2);
  source.rgb.assign(4 * 2 * 3, 0);
  source.rgb[0] = 200;  // the top-left pixel, to find again after scaling
  r.init_image = Png(source);
  auto images = PrepareEditImages(r);
  ASSERT_TRUE(images.ok()) << images.error().message;
  EXPECT_TRUE(images->mask.empty());
  json large = BuildStabilityEditBody(StabilityEdit::kImageToImageMode, r, images->image, 1);
  EXPECT_EQ(large["mode"], "image-to-image");
  EXPECT_DOUBLE_EQ(large["strength"].get<double>(), 0.35);
  EXPECT_EQ(large["seed"], 8);
  EXPECT_EQ(large["prompt"], "a red circle");
  EXPECT_EQ(large["negative_prompt"], "blur");
  EXPECT_EQ(large["output_format"], "png");
  EXPECT_FALSE(large.contains("aspect_ratio"));  // refused in image-to-image
  Image sent = DecodeB64(large["image"]);
  EXPECT_EQ(sent.width, 1344);  // scaled to the requested size: the output follows the input
  EXPECT_EQ(sent.height, 768);
  EXPECT_EQ(sent.Pixel(0, 0)[0], 200);
  EXPECT_EQ(sent.Pixel(1343, 767)[0], 0);
  json ultra = BuildStabilityEditBody(StabilityEdit::kImageAndStrength, r, images->image, 0);
  EXPECT_FALSE(ultra.contains("mode"));
  EXPECT_FALSE(ultra.contains("aspect_ratio"));
  EXPECT_EQ(ultra["image"], large["image"]);
  EXPECT_EQ(ultra["seed"], 7);
  r.negative_prompt.clear();
  EXPECT_FALSE(BuildStabilityEditBody(StabilityEdit::kImageAndStrength, r, images->image, 0)
                   .contains("negative_prompt"));
}

TEST(Adapters, StabilityBodyUsesAspectRatio) {
  json body = BuildBody(Family::kStability, Req(1344, 768, 2), 1);
  EXPECT_EQ(body["aspect_ratio"], "16:9");
  EXPECT_EQ(body["seed"], 8);
  EXPECT_EQ(body["output_format"], "png");
  EXPECT_FALSE(body.contains("cfg_scale"));
  EXPECT_EQ(CallsFor(Family::kStability, Req(1024, 1024, 3)), 3);
}

TEST(Adapters, NovaSizesFollowItsRule) {
  for (const auto& [w, h] : LimitsFor(Family::kNovaCanvas).sizes) {
    EXPECT_TRUE(NovaSizeAllowed(w, h)) << w << "x" << h;
  }
  EXPECT_FALSE(NovaSizeAllowed(1000, 1000));  // not a multiple of 16
  EXPECT_FALSE(NovaSizeAllowed(2048, 2048));  // 4,194,304 pixels is not fewer than the cap
  EXPECT_FALSE(NovaSizeAllowed(320, 1600));   // 1:5
}

TEST(Adapters, ParseResponses) {
  auto ok = ParseImages(Family::kTitan, R"({"images":["aGk="],"error":null})");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->images.size(), 1u);
  EXPECT_TRUE(ok->seeds.empty());  // Titan does not report seeds
  auto blocked =
      ParseImages(Family::kNovaCanvas, R"({"images":[],"error":"blocked by our content filters"})");
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.error().code, ErrorCode::kContentRejected);
  auto filtered =
      ParseImages(Family::kStability,
                  R"({"seeds":[1],"finish_reasons":["Filter reason: prompt"],"images":[]})");
  ASSERT_FALSE(filtered.ok());
  EXPECT_EQ(filtered.error().code, ErrorCode::kContentRejected);
  auto good = ParseImages(Family::kStability,
                          R"({"seeds":["1"],"finish_reasons":[null],"images":["aGk="]})");
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->seeds, std::vector<int64_t>{1});
  auto numeric = ParseImages(Family::kStability,
                             R"({"seeds":[4294967294],"finish_reasons":[null],"images":["aGk="]})");
  ASSERT_TRUE(numeric.ok());
  EXPECT_EQ(numeric->seeds, std::vector<int64_t>{4294967294});
  auto junk = ParseImages(Family::kStability,
                          R"({"seeds":["x"],"finish_reasons":[null],"images":["aGk="]})");
  ASSERT_TRUE(junk.ok());
  EXPECT_TRUE(junk->seeds.empty());  // unusable seeds: the request's own are kept
}

TEST(Adapters, RegionTable) {
  EXPECT_EQ(RegionRefusal("stability.stable-image-core-v1:1", "us-west-2"), "");
  std::string why = RegionRefusal("stability.sd3-5-large-v1:0", "us-east-1");
  EXPECT_NE(why.find("us-west-2"), std::string::npos) << why;
  EXPECT_NE(why.find("IMAGEGEN_BEDROCK_REGION"), std::string::npos) << why;
  EXPECT_NE(RegionRefusal("arn:aws:bedrock:us-east-1::foundation-model/"
                          "stability.stable-image-ultra-v1:1",
                          "us-east-1"),
            "");
  EXPECT_EQ(RegionRefusal("us.stability.stable-image-core-v1:1", "us-east-1"), "");
  EXPECT_EQ(RegionsServing("us.stability.stable-image-core-v1:1"), nullptr);
  EXPECT_EQ(RegionRefusal("amazon.titan-image-generator-v1", "eu-west-2"), "");
  EXPECT_NE(RegionRefusal("amazon.titan-image-generator-v1", "eu-central-1"), "");
  EXPECT_EQ(RegionRefusal("amazon.nova-canvas-v1:0", "us-east-1"), "");  // not in the table
  EXPECT_TRUE(NeedsMarketplaceSubscription("stability.stable-image-core-v1:1"));
  EXPECT_FALSE(NeedsMarketplaceSubscription("amazon.nova-canvas-v1:0"));
}

TEST(Adapters, NovaCanvasSeedLimit) {
  EXPECT_EQ(LimitsFor(Family::kNovaCanvas).max_seed, 858'993'459);
  EXPECT_EQ(LimitsFor(Family::kTitan).max_seed, 2'147'483'646);
}

}  // namespace
}  // namespace imagegen::bedrock
