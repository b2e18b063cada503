// Method + path pattern -> handler. Patterns are literal segments, "{name}" (one segment) and a
// final "{name...}" (the rest of the path). Unknown path: 404; known path, other method: 405.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "http/http_types.h"

namespace imagegen {

using Handler = std::function<HttpResponse(HttpRequest&)>;

// A route a module contributes (jobs/): the Api installs them when it is constructed.
struct RouteSpec {
  std::string method;
  std::string pattern;
  Handler handler;
};

class Router {
 public:
  void Add(const std::string& method, const std::string& pattern, Handler handler);
  HttpResponse Dispatch(HttpRequest& request) const;
  // (method, pattern) of every route, for checking the OpenAPI document against the code.
  std::vector<std::pair<std::string, std::string>> Routes() const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    Handler handler;
  };
  static bool Match(const Route& route, const std::vector<std::string>& path,
                    std::map<std::string, std::string>* params);
  std::vector<Route> routes_;
};

}  // namespace imagegen
