// POST /jobs, GET /jobs, GET /jobs/{id}, DELETE /jobs/{id}: the asynchronous door as routes on
// an Api (the same handlers serve HTTP, the Lambda API Gateway adapters and tests).
//
//   POST /jobs          body as POST /generate; optional Idempotency-Key header (scoped by the
//                       caller's credential). 202 + the job (status "queued", status_url) and
//                       Location: /jobs/{id}; a replay answers the existing job with
//                       Idempotent-Replayed: true; the same key/job_id with another body: 409
//                       "conflict". With API keys on, job ids live in the caller's key's
//                       namespace: another key's job is 404 here and its id is free to reuse.
//   GET /jobs/{id}      200 + the job: queued | running (progress) | succeeded (result with image
//                       keys and URLs) | failed (error) | cancelled; 404 unknown or expired.
//   DELETE /jobs/{id}   cancels a queued or running job; 200 + the job; 404 unknown. A finished
//                       job is returned unchanged.
//   GET /jobs?limit=&cursor=   {"jobs": [...], "next_cursor": id | null}; limit 1..100 (20).
//
// POST /jobs also takes "webhook" (an http/https URL, checked against the address policy: 400
// invalid_request, field "webhook") and "webhook_events_filter" (see jobs/webhook.h); the job
// shows both. Over the caller's concurrent-job quota: 429 rate_limited with Retry-After.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "http/router.h"
#include "jobs/job_service.h"

namespace imagegen {

// JobViewJson under the request's base URL.
nlohmann::json JobView(const JobRecord& record, const HttpRequest& request);

// The four routes over `service`, for the Api's constructor (app/services.cc wires them). The
// handlers hold the service.
std::vector<RouteSpec> JobRoutes(std::shared_ptr<JobService> service);

// The record as clients see it (GET /jobs/{id}, webhook bodies): internal fields removed, the
// status URL and image URLs absolute under `base_url`.
nlohmann::json JobViewJson(const JobRecord& record, const std::string& base_url);

}  // namespace imagegen
