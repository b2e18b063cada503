// A small Prometheus registry (counters, gauges, histograms with labels) rendered in the text
// exposition format. prometheus-cpp is not packaged for Debian 12, and we need a handful of
// series, so this is written by hand. Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace imagegen {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  void Describe(const std::string& name, const std::string& type, const std::string& help);
  void Add(const std::string& name, const Labels& labels, double delta = 1);
  void Set(const std::string& name, const Labels& labels, double value);
  void Observe(const std::string& name, const Labels& labels, double value);
  double Value(const std::string& name, const Labels& labels) const;
  std::string Render() const;

 private:
  struct Histogram {
    std::vector<double> counts;  // per bucket, non-cumulative
    double sum = 0;
    uint64_t count = 0;
  };
  struct Family {
    std::string type, help;
    std::map<std::string, double> values;         // rendered labels -> value
    std::map<std::string, Histogram> histograms;  // rendered labels -> histogram
  };
  static std::string RenderLabels(const Labels& labels, const std::string& extra = "");

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;  // GUARDED_BY(mu_)
};

// The process-wide registry that /metrics renders.
Metrics& GlobalMetrics();

}  // namespace imagegen
