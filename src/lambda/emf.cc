#include "lambda/emf.h"

#include <chrono>
#include <nlohmann/json.hpp>

#include "core/clock.h"

namespace imagegen::lambda {
namespace {

using json = nlohmann::json;

}  // namespace

std::string EmfLine(int64_t timestamp_ms,
                    const std::vector<std::vector<std::string>>& dimension_sets,
                    const std::map<std::string, std::string>& dimensions,
                    const std::vector<EmfMetric>& metrics,
                    const std::map<std::string, std::string>& properties) {
  json doc = json::object();
  // Properties first, so that a property can never overwrite a dimension or a metric value.
  for (const auto& [name, value] : properties) doc[name] = value;
  json definitions = json::array();
  for (const auto& metric : metrics) {
    definitions.push_back({{"Name", metric.name}, {"Unit", metric.unit}});
    doc[metric.name] = metric.value;
  }
  for (const auto& [name, value] : dimensions) doc[name] = value;
  doc["_aws"] = {{"Timestamp", timestamp_ms},
                 {"CloudWatchMetrics", json::array({{{"Namespace", kEmfNamespace},
                                                     {"Dimensions", dimension_sets},
                                                     {"Metrics", definitions}}})}};
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

EmfWriter::EmfWriter(std::ostream* out, std::function<int64_t()> now_ms)
    : out_(out), now_ms_(now_ms ? std::move(now_ms) : NowEpochMs) {}

void EmfWriter::Generation(const std::string& model, double latency_ms, int images,
                           const std::map<std::string, std::string>& properties) {
  Write(EmfLine(now_ms_(), {{"Model"}}, {{"Model", model}},
                {{"GenerationLatency", "Milliseconds", latency_ms},
                 {"ImagesGenerated", "Count", static_cast<double>(images)}},
                properties));
}

void EmfWriter::Failure(const std::string& model, const std::string& code,
                        const std::map<std::string, std::string>& properties) {
  Write(EmfLine(now_ms_(), {{"Model", "Code"}, {"Model"}}, {{"Model", model}, {"Code", code}},
                {{"Errors", "Count", 1}}, properties));
}

void EmfWriter::Write(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  *out_ << line << '\n' << std::flush;
}

MeteredModel::MeteredModel(std::shared_ptr<ImageModel> inner, std::shared_ptr<EmfWriter> emf,
                           std::function<std::map<std::string, std::string>()> properties)
    : ModelDecorator(std::move(inner)), emf_(std::move(emf)), properties_(std::move(properties)) {}

Result<ModelOutput> MeteredModel::Generate(const ValidRequest& request,
                                           const GenerateContext& ctx) {
  auto start = Clock::now();
  auto out = inner().Generate(request, ctx);
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (out.ok()) {
    emf_->Generation(request.model.empty() ? Name() : request.model, ms,
                     static_cast<int>(out->images.size()),
                     properties_ ? properties_() : std::map<std::string, std::string>{});
  }
  return out;
}

}  // namespace imagegen::lambda
