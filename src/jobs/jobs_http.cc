#include "jobs/jobs_http.h"

#include <mutex>
#include <nlohmann/json.hpp>

#include "core/request_json.h"
#include "http/http_types.h"
#include "jobs/webhook.h"

namespace imagegen {
namespace {

using json = nlohmann::json;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

HttpResponse Respond(int status, const json& body, const std::string& route) {
  HttpResponse response = JsonResponse(status, Dump(body));
  response.route = route;
  return response;
}

HttpResponse Fail(const Error& error, const std::string& route) {
  HttpResponse response = ErrorResponse(error);
  response.route = route;
  return response;
}

int ParseLimit(const std::string& text) {
  if (text.empty()) return 20;
  if (text.size() > 4 || text.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoi(text);
}

}  // namespace

json JobView(const JobRecord& record, const HttpRequest& request) {
  return JobViewJson(record, request.base_url);
}

json JobViewJson(const JobRecord& record, const std::string& base_url) {
  json j = JobRecordToJson(record);
  j.erase("request_hash");
  j.erase("enqueued");
  j.erase("owner");  // internal: the caller's namespace
  j.erase("max_attempts");
  j.erase("lease_expires_ms");
  j.erase("preview");  // the events stream's (GET /jobs/{id}/events?preview=1)
  j.erase("webhook");
  if (auto spec = WebhookSpecFromJson(record.webhook)) {
    j["webhook"] = spec->url;
    if (!spec->events.empty()) j["webhook_events_filter"] = spec->events;
  }
  j["status_url"] = base_url + "/jobs/" + record.job_id;
  if (j.contains("result") && j["result"].is_object()) {
    json& result = j["result"];
    if (result.contains("key")) result["url"] = ImageUrlAt(base_url, result["key"]);
    if (result.contains("images") && result["images"].is_array()) {
      for (auto& image : result["images"]) {
        if (image.contains("key")) image["url"] = ImageUrlAt(base_url, image["key"]);
      }
    }
  }
  return j;
}

std::vector<RouteSpec> JobRoutes(std::shared_ptr<JobService> service) {
  std::vector<RouteSpec> routes;
  routes.push_back(
      {"POST", "/jobs", [service](HttpRequest& request) {
         const std::string route = "/jobs";
         if (auto s = CheckJsonContentType(request); !s) return Fail(s.error(), route);
         auto body = ParseJsonObject(request.body);
         if (!body.ok()) return Fail(body.error(), route);
         auto webhook = TakeWebhookFields(&body.value());
         if (!webhook.ok()) return Fail(webhook.error(), route);
         if (webhook.value()) webhook.value()->base_url = request.base_url;
         auto generate = ParseGenerateJson(body.value());
         if (!generate.ok()) return Fail(generate.error(), route);
         generate->owner = request.principal;
         // Idempotency keys are per caller: scope them by the credential presented (if any).
         std::string scope = request.Header("x-api-key") + "\n" + request.Header("authorization");
         auto submitted = service->Submit(generate.value(), scope,
                                          request.Header("idempotency-key"), webhook.value());
         if (!submitted.ok()) return Fail(submitted.error(), route);
         HttpResponse response = Respond(202, JobView(submitted->record, request), route);
         response.SetHeader("Location", "/jobs/" + submitted->record.job_id);
         if (!submitted->created) response.SetHeader("Idempotent-Replayed", "true");
         return response;
       }});
  routes.push_back(
      {"GET", "/jobs", [service](HttpRequest& request) {
         const std::string route = "/jobs";
         int limit = ParseLimit(request.Query("limit"));
         if (limit < 1 || limit > 100) {
           return Fail(Error::Invalid("limit", "limit must be between 1 and 100"), route);
         }
         auto page = service->List(limit, request.Query("cursor"), request.principal);
         if (!page.ok()) return Fail(page.error(), route);
         json list = json::array();
         for (const auto& record : page->jobs) list.push_back(JobView(record, request));
         return Respond(
             200,
             {{"jobs", list},
              {"next_cursor", page->next_cursor.empty() ? json(nullptr) : json(page->next_cursor)}},
             route);
       }});
  routes.push_back({"GET", "/jobs/{id}", [service](HttpRequest& request) {
                      const std::string route = "/jobs/{id}";
                      auto record = service->Get(request.path_params["id"], request.principal);
                      if (!record.ok()) return Fail(record.error(), route);
                      HttpResponse response = Respond(200, JobView(record.value(), request), route);
                      if (!IsFinished(record->status)) response.SetHeader("Retry-After", "1");
                      return response;
                    }});
  routes.push_back({"DELETE", "/jobs/{id}", [service](HttpRequest& request) {
                      const std::string route = "/jobs/{id}";
                      auto record = service->Cancel(request.path_params["id"], request.principal);
                      if (!record.ok()) return Fail(record.error(), route);
                      return Respond(200, JobView(record.value(), request), route);
                    }});
  return routes;
}

}  // namespace imagegen
