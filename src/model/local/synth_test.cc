#include "model/local/synth.h"

#include <gtest/gtest.h>

#include <set>

#include "image/png.h"

namespace imagegen::synth {
namespace {

TEST(SynthTest, CheckerIsExactOnGroundTruthAtEverySize) {
  Rng rng(11);
  int wrong = 0;
  const int n = 600;
  for (int i = 0; i < n; ++i) {
    Scene scene = RandomScene(rng, /*held_out=*/i % 3 == 0);
    std::string caption = RandomCaption(scene, rng, /*full=*/true, nullptr);
    Image img = Render(scene, kNativeSize, &rng);
    int size = kNativeSize << (i % 5);
    if (size != kNativeSize) img = ResizeNearest(img, size, size);
    Verdict v = Judge(ParseCaption(caption), Check(img));
    if (!v.All()) ++wrong;
  }
  EXPECT_LE(wrong, n / 200) << "checker must be near-perfect on the dataset's own images";
}

TEST(SynthTest, ParseCaptionRecoversEveryAttributeOfFullCaptions) {
  Rng rng(3);
  for (int i = 0; i < 2000; ++i) {
    Scene s = RandomScene(rng, i % 2 == 0);
    std::string caption = RandomCaption(s, rng, /*full=*/true, nullptr);
    ParsedCaption p = ParseCaption(caption);
    ASSERT_EQ(p.colour, s.colour) << caption;
    ASSERT_EQ(p.shape, s.shape) << caption;
    ASSERT_EQ(p.count, s.count) << caption;
    ASSERT_EQ(p.position, s.position) << caption;
    ASSERT_EQ(p.size, s.size) << caption;
    ASSERT_EQ(p.background, s.background) << caption;
  }
}

TEST(SynthTest, ParsesTheIssuesExamples) {
  ParsedCaption p = ParseCaption("a red circle on a blue background");
  EXPECT_EQ(p.colour, Colour::kRed);
  EXPECT_EQ(p.shape, Shape::kCircle);
  EXPECT_EQ(p.count, 1);
  EXPECT_EQ(p.background, Colour::kBlue);
  EXPECT_FALSE(p.position.has_value());
  p = ParseCaption("two small yellow squares at the top");
  EXPECT_EQ(p.count, 2);
  EXPECT_EQ(p.size, Size::kSmall);
  EXPECT_EQ(p.colour, Colour::kYellow);
  EXPECT_EQ(p.position, Position::kTop);
  EXPECT_FALSE(p.background.has_value());
}

TEST(SynthTest, HeldOutCombinationsNeverReachTraining) {
  Rng rng(5);
  for (int i = 0; i < 20000; ++i) {
    Scene s = RandomScene(rng, /*held_out=*/false);
    ASSERT_FALSE(IsHeldOut(s));
    ASSERT_TRUE(IsValidScene(s));
  }
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(IsHeldOut(RandomScene(rng, /*held_out=*/true)));
}

TEST(SynthTest, CaptionsUseOnlyVocabularyWordsAndSeveralPhrasings) {
  std::set<std::string> vocab(Vocabulary().begin(), Vocabulary().end());
  std::set<std::string> openings;
  Rng rng(9);
  for (int i = 0; i < 3000; ++i) {
    Scene s = RandomScene(rng, false);
    std::string c = RandomCaption(s, rng, i % 2 == 0, nullptr);
    std::string word;
    for (char ch : c + " ") {
      if (std::isalpha(static_cast<unsigned char>(ch))) {
        word.push_back(ch);
      } else if (!word.empty()) {
        ASSERT_TRUE(vocab.count(word)) << word << " in " << c;
        word.clear();
      }
    }
    openings.insert(c.substr(0, c.find(' ')));
  }
  EXPECT_GE(openings.size(), 5u);
}

TEST(SynthTest, WithoutShapeColourDropsOnlyTheShapesColour) {
  Scene s{Colour::kRed, Shape::kTriangle, 2, Position::kTop, Size::kSmall, Colour::kBlue};
  EXPECT_EQ(WithoutShapeColour(CanonicalCaption(s), s),
            "two small triangles at the top on a blue background");
  Rng rng(4);
  for (int i = 0; i < 2000; ++i) {
    Scene scene = RandomScene(rng, false);
    std::string caption = RandomCaption(scene, rng, i % 2 == 0, nullptr);
    ParsedCaption without = ParseCaption(WithoutShapeColour(caption, scene));
    ParsedCaption with = ParseCaption(caption);
    ASSERT_FALSE(without.colour.has_value()) << caption;
    ASSERT_EQ(without.shape, with.shape) << caption;
    ASSERT_EQ(without.count, with.count) << caption;
    ASSERT_EQ(without.background, with.background) << caption;
  }
}

TEST(SynthTest, RenderIsDeterministic) {
  Scene s;
  Rng a(1), b(1);
  EXPECT_EQ(Render(s, 32, &a).rgb, Render(s, 32, &b).rgb);
}

}  // namespace
}  // namespace imagegen::synth
