// A1111's <lora:NAME:SCALE> tags taken out of prompts (lora_tags.h).
#include "model/sd/model/lora_tags.h"

#include <gtest/gtest.h>

namespace imagegen::sd {
namespace {

TEST(LoraTags, TakesTagsOutAndKeepsTheRest) {
  auto tags = ExtractLoraTags("a cat <lora:style_v2:0.8>, watercolor <lora:detail>");
  ASSERT_TRUE(tags.ok()) << tags.error().message;
  EXPECT_EQ(tags->prompt, "a cat , watercolor ");
  ASSERT_EQ(tags->loras.size(), 2u);
  EXPECT_EQ(tags->loras[0].name, "style_v2");
  EXPECT_DOUBLE_EQ(tags->loras[0].scale, 0.8);
  EXPECT_EQ(tags->loras[1].name, "detail");
  EXPECT_DOUBLE_EQ(tags->loras[1].scale, 1.0);
}

TEST(LoraTags, APromptWithoutTagsIsUnchanged) {
  auto tags = ExtractLoraTags("a <b> c: 1 < 2 > 0");
  ASSERT_TRUE(tags.ok());
  EXPECT_EQ(tags->prompt, "a <b> c: 1 < 2 > 0");
  EXPECT_TRUE(tags->loras.empty());
}

TEST(LoraTags, NegativeAndSpacedScalesParse) {
  auto tags = ExtractLoraTags("<lora: my lora : -1.5 >x");
  ASSERT_TRUE(tags.ok()) << tags.error().message;
  EXPECT_EQ(tags->prompt, "x");
  EXPECT_EQ(tags->loras.at(0).name, "my lora");
  EXPECT_DOUBLE_EQ(tags->loras.at(0).scale, -1.5);
}

TEST(LoraTags, BadTagsAreRefusedNamingThePrompt) {
  for (const char* bad : {"a <lora:x", "<lora:>", "<lora::1>", "<lora:x:abc>", "<lora:x:1:2>",
                          "<lora:x:nan>", "<lora:x:11>", "<lora:x:1e400>"}) {
    auto tags = ExtractLoraTags(bad);
    ASSERT_FALSE(tags.ok()) << bad;
    EXPECT_EQ(tags.error().code, ErrorCode::kInvalidRequest) << bad;
    EXPECT_EQ(tags.error().field, "prompt") << bad;
  }
}

TEST(LoraTags, AtMostEightTags) {
  std::string prompt;
  for (int i = 0; i < 9; ++i) prompt += "<lora:l" + std::to_string(i) + ">";
  EXPECT_FALSE(ExtractLoraTags(prompt).ok());
  prompt.erase(prompt.rfind('<'));
  EXPECT_TRUE(ExtractLoraTags(prompt).ok());
}

}  // namespace
}  // namespace imagegen::sd
