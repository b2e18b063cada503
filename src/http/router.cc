#include "http/router.h"

namespace imagegen {
namespace {

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 1;
  if (path.empty() || path == "/") return out;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

void Router::Add(const std::string& method, const std::string& pattern, Handler handler) {
  routes_.push_back(Route{method, pattern, Split(pattern), std::move(handler)});
}

bool Router::Match(const Route& route, const std::vector<std::string>& path,
                   std::map<std::string, std::string>* params) {
  params->clear();
  for (size_t i = 0; i < route.segments.size(); ++i) {
    const std::string& seg = route.segments[i];
    bool is_param = seg.size() > 2 && seg.front() == '{' && seg.back() == '}';
    if (is_param && seg.size() > 5 && seg.compare(seg.size() - 4, 4, "...}") == 0) {
      if (i >= path.size()) return false;
      std::string rest;
      for (size_t k = i; k < path.size(); ++k) rest += (k == i ? "" : "/") + path[k];
      (*params)[seg.substr(1, seg.size() - 5)] = rest;
      return true;
    }
    if (i >= path.size()) return false;
    if (is_param) {
      if (path[i].empty()) return false;
      (*params)[seg.substr(1, seg.size() - 2)] = path[i];
    } else if (seg != path[i]) {
      return false;
    }
  }
  return route.segments.size() == path.size();
}

HttpResponse Router::Dispatch(HttpRequest& request) const {
  std::vector<std::string> path = Split(request.path);
  std::string allowed;
  std::string matched_pattern;
  std::map<std::string, std::string> params;
  for (const auto& route : routes_) {
    if (!Match(route, path, &params)) continue;
    std::string method = request.method == "HEAD" ? "GET" : request.method;
    if (route.method == method) {
      request.path_params = params;
      HttpResponse response = route.handler(request);
      response.route = route.pattern;
      return response;
    }
    allowed += (allowed.empty() ? "" : ", ") + route.method;
    matched_pattern = route.pattern;
  }
  if (!allowed.empty()) {
    HttpResponse response = ErrorResponse(Error::Make(
        ErrorCode::kMethodNotAllowed,
        request.method + " is not allowed on " + request.path + "; allowed: " + allowed));
    response.SetHeader("Allow", allowed);
    response.route = matched_pattern;
    return response;
  }
  return ErrorResponse(Error::Make(ErrorCode::kNotFound, "no route for " + request.path));
}

std::vector<std::pair<std::string, std::string>> Router::Routes() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& route : routes_) out.emplace_back(route.method, route.pattern);
  return out;
}

}  // namespace imagegen
