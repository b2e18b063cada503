#include "model/routed/routed_model.h"

#include <gtest/gtest.h>

#include <set>
#include <sstream>

namespace imagegen {
namespace {

// A model with a fixed vocabulary whose output names it (in warnings) and its request's model.
class VocabularyModel final : public ImageModel {
 public:
  VocabularyModel(std::string name, std::set<std::string> words, int default_steps)
      : name_(std::move(name)), words_(std::move(words)) {
    limits_.sizes = {{32, 32}};
    limits_.default_steps = default_steps;
  }
  std::string Name() const override { return name_; }
  const ModelLimits& Limits() const override { return limits_; }
  std::optional<int> KnownWordCount(const std::string& prompt) const override {
    std::istringstream in(prompt);
    int known = 0;
    for (std::string word; in >> word;) known += words_.contains(word) ? 1 : 0;
    return known;
  }
  Result<ModelOutput> Generate(const ValidRequest& request, const GenerateContext&) override {
    ModelOutput out;
    out.warnings = {"drawn by " + name_ + " for " + request.model};
    return out;
  }

 private:
  std::string name_;
  std::set<std::string> words_;
  ModelLimits limits_;
};

std::unique_ptr<ImageModel> ShapesAndEmoji() {
  std::vector<std::unique_ptr<ImageModel>> members;
  members.push_back(std::make_unique<VocabularyModel>(
      "shapes", std::set<std::string>{"a", "red", "circle", "two"}, 40));
  members.push_back(std::make_unique<VocabularyModel>(
      "emoji", std::set<std::string>{"a", "red", "croissant", "apple"}, 25));
  return std::move(MakeRoutedModel("bundled", std::move(members))).value();
}

std::string ServedBy(const ImageModel& router, const std::string& model,
                     const std::string& prompt) {
  const ImageModel* serving = router.Serving(model, prompt);
  return serving ? serving->Name() : "(none)";
}

TEST(RoutedModel, APromptGoesToTheMemberThatKnowsMoreOfItsWords) {
  auto router = ShapesAndEmoji();
  EXPECT_EQ(ServedBy(*router, "", "a croissant"), "emoji");
  EXPECT_EQ(ServedBy(*router, "", "two red circle"), "shapes");
  EXPECT_EQ(ServedBy(*router, "bundled", "a red apple"), "emoji");
}

TEST(RoutedModel, TiesAndUnknownPromptsGoToTheFirstMember) {
  auto router = ShapesAndEmoji();
  EXPECT_EQ(ServedBy(*router, "", "a red thing"), "shapes");  // 2 words each
  EXPECT_EQ(ServedBy(*router, "", "a cat"), "shapes");
  EXPECT_EQ(ServedBy(*router, "", ""), "shapes");
  EXPECT_EQ(router->Limits().default_steps, 40);  // the first member's
}

TEST(RoutedModel, ARequestNamingAMemberGetsThatMember) {
  auto router = ShapesAndEmoji();
  EXPECT_EQ(ServedBy(*router, "shapes", "a croissant"), "shapes");
  EXPECT_EQ(ServedBy(*router, "emoji", "two red circle"), "emoji");
  EXPECT_EQ(ServedBy(*router, "dall-e-3", "a croissant"), "(none)");
  EXPECT_EQ(router->ServedNames(), (std::vector<std::string>{"bundled", "shapes", "emoji"}));
  EXPECT_EQ(router->Serving("emoji", "x")->Limits().default_steps, 25);
}

TEST(RoutedModel, GenerateRunsTheServingMember) {
  auto router = ShapesAndEmoji();
  ValidRequest request;
  request.prompt = "a croissant";
  request.model = "emoji";  // as the pipeline sets it from Serving()
  EXPECT_EQ(router->Generate(request, {})->warnings.at(0), "drawn by emoji for emoji");
  request.model = "shapes";
  EXPECT_EQ(router->Generate(request, {})->warnings.at(0), "drawn by shapes for shapes");
  request.model = "";  // not through the pipeline: routed by words
  EXPECT_EQ(router->Generate(request, {})->warnings.at(0), "drawn by emoji for ");
  request.model = "other";
  EXPECT_EQ(router->Generate(request, {}).error().code, ErrorCode::kInvalidRequest);
}

TEST(RoutedModel, RefusesNoMembersAndRepeatedNames) {
  EXPECT_FALSE(MakeRoutedModel("bundled", {}).ok());
  std::vector<std::unique_ptr<ImageModel>> twins;
  twins.push_back(std::make_unique<VocabularyModel>("m", std::set<std::string>{}, 1));
  twins.push_back(std::make_unique<VocabularyModel>("m", std::set<std::string>{}, 1));
  EXPECT_FALSE(MakeRoutedModel("bundled", std::move(twins)).ok());
  std::vector<std::unique_ptr<ImageModel>> self;
  self.push_back(std::make_unique<VocabularyModel>("bundled", std::set<std::string>{}, 1));
  EXPECT_FALSE(MakeRoutedModel("bundled", std::move(self)).ok());
}

}  // namespace
}  // namespace imagegen
