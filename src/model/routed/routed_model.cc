#include "model/routed/routed_model.h"

#include <set>
#include <utility>

namespace imagegen {
namespace {

class RoutedModel final : public ImageModel {
 public:
  RoutedModel(std::string name, std::vector<std::unique_ptr<ImageModel>> members)
      : name_(std::move(name)), members_(std::move(members)) {}

  std::string Name() const override { return name_; }
  const ModelLimits& Limits() const override { return members_.front()->Limits(); }

  const ImageModel* Serving(const std::string& model, const std::string& prompt) const override {
    if (model.empty() || model == name_) return &ByWords(prompt);
    for (const auto& member : members_) {
      if (member->Name() == model) return member.get();
    }
    return nullptr;
  }

  std::vector<std::string> ServedNames() const override {
    std::vector<std::string> names = {name_};
    for (const auto& member : members_) names.push_back(member->Name());
    return names;
  }

  std::optional<int> KnownWordCount(const std::string& prompt) const override {
    return ByWords(prompt).KnownWordCount(prompt);
  }

  // The pipeline has put the serving member's name in request.model (Serving); a request that
  // did not come through it is routed here the same way.
  Result<ModelOutput> Generate(const ValidRequest& request, const GenerateContext& ctx) override {
    const ImageModel* serving = Serving(request.model, request.prompt);
    for (const auto& member : members_) {
      if (member.get() == serving) return member->Generate(request, ctx);
    }
    return Error::Invalid("model", "unknown model \"" + request.model + "\"");
  }

 private:
  const ImageModel& ByWords(const std::string& prompt) const {
    const ImageModel* best = members_.front().get();
    int best_count = best->KnownWordCount(prompt).value_or(0);
    for (size_t i = 1; i < members_.size(); ++i) {
      const int count = members_[i]->KnownWordCount(prompt).value_or(0);
      if (count > best_count) best = members_[i].get(), best_count = count;
    }
    return *best;
  }

  std::string name_;
  std::vector<std::unique_ptr<ImageModel>> members_;
};

}  // namespace

Result<std::unique_ptr<ImageModel>> MakeRoutedModel(
    std::string name, std::vector<std::unique_ptr<ImageModel>> members) {
  if (members.empty()) return Error::Invalid("model", name + ": a router needs a member");
  std::set<std::string> names = {name};
  for (const auto& member : members) {
    if (!names.insert(member->Name()).second) {
      return Error::Invalid("model", name + ": two models are named \"" + member->Name() + "\"");
    }
  }
  return std::unique_ptr<ImageModel>(new RoutedModel(std::move(name), std::move(members)));
}

}  // namespace imagegen
