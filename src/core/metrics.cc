#include "core/metrics.h"

#include <sstream>

namespace imagegen {
namespace {

// Seconds: from a fast test model (ms) to a slow remote model (minutes).
const std::vector<double> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                      2.5,   5,    10,    30,   60,  120,  300};

std::string Escape(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string FormatNumber(double v) {
  std::ostringstream out;
  out.precision(15);
  out << v;
  return out.str();
}

}  // namespace

std::string Metrics::RenderLabels(const Labels& labels, const std::string& extra) {
  if (labels.empty() && extra.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ",";
    out += labels[i].first + "=\"" + Escape(labels[i].second) + "\"";
  }
  if (!extra.empty()) out += (labels.empty() ? "" : ",") + extra;
  return out + "}";
}

void Metrics::Describe(const std::string& name, const std::string& type, const std::string& help) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& family = families_[name];
  family.type = type;
  family.help = help;
}

void Metrics::Add(const std::string& name, const Labels& labels, double delta) {
  std::lock_guard<std::mutex> lock(mu_);
  families_[name].values[RenderLabels(labels)] += delta;
}

void Metrics::Set(const std::string& name, const Labels& labels, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  families_[name].values[RenderLabels(labels)] = value;
}

void Metrics::Observe(const std::string& name, const Labels& labels, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& h = families_[name].histograms[RenderLabels(labels)];
  if (h.counts.empty()) h.counts.assign(kBuckets.size(), 0);
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (value <= kBuckets[i]) {
      h.counts[i] += 1;
      break;
    }
  }
  h.sum += value;
  h.count += 1;
}

double Metrics::Value(const std::string& name, const Labels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto family = families_.find(name);
  if (family == families_.end()) return 0;
  auto it = family->second.values.find(RenderLabels(labels));
  if (it != family->second.values.end()) return it->second;
  auto h = family->second.histograms.find(RenderLabels(labels));
  return h == family->second.histograms.end() ? 0 : static_cast<double>(h->second.count);
}

std::string Metrics::Render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::ostringstream out;
  for (const auto& [name, family] : families_) {
    if (!family.help.empty()) out << "# HELP " << name << " " << family.help << "\n";
    if (!family.type.empty()) out << "# TYPE " << name << " " << family.type << "\n";
    for (const auto& [labels, value] : family.values) {
      out << name << labels << " " << FormatNumber(value) << "\n";
    }
    for (const auto& [labels, h] : family.histograms) {
      // Re-open the label set to append le="...".
      std::string base = labels.empty() ? "" : labels.substr(1, labels.size() - 2);
      double cumulative = 0;
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        cumulative += h.counts[i];
        out << name << "_bucket{" << base << (base.empty() ? "" : ",") << "le=\""
            << FormatNumber(kBuckets[i]) << "\"} " << FormatNumber(cumulative) << "\n";
      }
      out << name << "_bucket{" << base << (base.empty() ? "" : ",") << "le=\"+Inf\"} " << h.count
          << "\n";
      out << name << "_sum" << labels << " " << FormatNumber(h.sum) << "\n";
      out << name << "_count" << labels << " " << h.count << "\n";
    }
  }
  return out.str();
}

Metrics& GlobalMetrics() {
  static Metrics* metrics = [] {
    auto* m = new Metrics();
    m->Describe("imagegen_http_requests_total", "counter",
                "HTTP requests by route, method and status.");
    m->Describe("imagegen_generation_seconds", "histogram", "Time to generate images, by model.");
    m->Describe("imagegen_images_stored_total", "counter", "Images written to the object store.");
    m->Describe("imagegen_errors_total", "counter", "Failed requests and jobs by error code.");
    m->Describe("imagegen_generations_in_flight", "gauge", "Generations running now.");
    m->Set("imagegen_generations_in_flight", {}, 0);
    m->Add("imagegen_images_stored_total", {}, 0);
    return m;
  }();
  return *metrics;
}

}  // namespace imagegen
