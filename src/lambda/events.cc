#include "lambda/events.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "aws/encoding.h"
#include "core/strings.h"

namespace imagegen::lambda {
namespace {

using json = nlohmann::json;

// A string member, or "" when absent, null or not a string (API Gateway sends nulls freely).
std::string Str(const json& object, const char* name) {
  if (!object.is_object()) return "";
  auto it = object.find(name);
  if (it == object.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

const json& Member(const json& object, const char* name) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(name);
  return it == object.end() ? kNull : *it;
}

void AddHeader(HttpRequest* request, const std::string& name, const std::string& value) {
  std::string key = Lower(name);
  auto it = request->headers.find(key);
  if (it == request->headers.end()) {
    request->headers.emplace(key, value);
  } else {
    it->second += "," + value;  // HTTP's rule for repeated headers
  }
}

Status DecodeBody(const json& event, std::string* body) {
  const json& raw = Member(event, "body");
  *body = raw.is_string() ? raw.get<std::string>() : "";
  const json& b64 = Member(event, "isBase64Encoded");
  if (b64.is_boolean() && b64.get<bool>() && !body->empty()) {
    auto decoded = aws::Base64Decode(*body);
    if (!decoded) return Error::Invalid("body", "the event's base64 body is not valid base64");
    *body = std::move(*decoded);
  }
  return Status::Ok();
}

// API Gateway's default endpoint names the stage as the first path segment; custom domains
// (base path mappings) do not, and neither does the $default stage.
std::string BaseUrl(const HttpRequest& request, const std::string& domain,
                    const std::string& stage) {
  std::string host = domain.empty() ? request.Header("host") : domain;
  if (host.empty()) return "";
  std::string proto = request.Header("x-forwarded-proto");
  if (proto.empty()) proto = "https";
  std::string base = proto + "://" + host;
  bool default_endpoint = host.find(".execute-api.") != std::string::npos;
  if (default_endpoint && !stage.empty() && stage != "$default") base += "/" + stage;
  return base;
}

}  // namespace

EventKind ClassifyEvent(const json& event) {
  if (!event.is_object()) return EventKind::kUnknown;
  const json& records = Member(event, "Records");
  if (records.is_array() && !records.empty() && Str(records.front(), "eventSource") == "aws:sqs") {
    return EventKind::kSqs;
  }
  const json& context = Member(event, "requestContext");
  if (context.is_object()) {
    if (Member(context, "http").is_object() || Str(event, "version") == "2.0") {
      return EventKind::kApiGatewayV2;
    }
    if (!Str(event, "httpMethod").empty()) return EventKind::kApiGatewayV1;
  }
  if (event.contains("prompt")) return EventKind::kDirect;
  return EventKind::kUnknown;
}

const char* EventKindName(EventKind kind) {
  switch (kind) {
    case EventKind::kApiGatewayV1:
      return "apigw-v1";
    case EventKind::kApiGatewayV2:
      return "apigw-v2";
    case EventKind::kSqs:
      return "sqs";
    case EventKind::kDirect:
      return "direct";
    case EventKind::kUnknown:
      break;
  }
  return "unknown";
}

Result<HttpRequest> RequestFromApiGatewayV1(const json& event) {
  HttpRequest request;
  request.method = Str(event, "httpMethod");
  request.path = Str(event, "path");
  if (request.method.empty() || request.path.empty()) {
    return Error::Invalid("event", "API Gateway event without httpMethod or path");
  }
  std::transform(request.method.begin(), request.method.end(), request.method.begin(),
                 [](unsigned char c) { return std::toupper(c); });
  // multiValue* members carry every value; the single-value maps keep only the last one.
  const json& multi_headers = Member(event, "multiValueHeaders");
  if (multi_headers.is_object() && !multi_headers.empty()) {
    for (const auto& [name, values] : multi_headers.items()) {
      if (!values.is_array()) continue;
      for (const auto& v : values) {
        if (v.is_string()) AddHeader(&request, name, v.get<std::string>());
      }
    }
  } else if (const json& headers = Member(event, "headers"); headers.is_object()) {
    for (const auto& [name, v] : headers.items()) {
      if (v.is_string()) AddHeader(&request, name, v.get<std::string>());
    }
  }
  // REST APIs hand over query values already decoded.
  const json& multi_query = Member(event, "multiValueQueryStringParameters");
  if (multi_query.is_object() && !multi_query.empty()) {
    for (const auto& [name, values] : multi_query.items()) {
      if (!values.is_array()) continue;
      for (const auto& v : values) {
        if (v.is_string()) request.query.emplace(name, v.get<std::string>());
      }
    }
  } else if (const json& query = Member(event, "queryStringParameters"); query.is_object()) {
    for (const auto& [name, v] : query.items()) {
      if (v.is_string()) request.query.emplace(name, v.get<std::string>());
    }
  }
  if (auto s = DecodeBody(event, &request.body); !s) return s.error();
  const json& context = Member(event, "requestContext");
  request.remote_addr = Str(Member(context, "identity"), "sourceIp");
  request.request_id = Str(context, "requestId");
  request.base_url = BaseUrl(request, Str(context, "domainName"), Str(context, "stage"));
  return request;
}

Result<HttpRequest> RequestFromApiGatewayV2(const json& event) {
  HttpRequest request;
  const json& context = Member(event, "requestContext");
  const json& http = Member(context, "http");
  request.method = Str(http, "method");
  std::string raw_path = Str(event, "rawPath");
  if (raw_path.empty()) raw_path = Str(http, "path");
  if (request.method.empty() || raw_path.empty()) {
    return Error::Invalid("event", "HTTP API event without requestContext.http.method or rawPath");
  }
  std::transform(request.method.begin(), request.method.end(), request.method.begin(),
                 [](unsigned char c) { return std::toupper(c); });
  // A named stage on the default endpoint arrives as the first path segment; the routes the
  // handlers know start after it.
  std::string stage = Str(context, "stage");
  bool stage_in_path = false;
  if (!stage.empty() && stage != "$default") {
    std::string stage_prefix = "/" + stage;
    if (raw_path == stage_prefix) {
      raw_path = "/";
      stage_in_path = true;
    } else if (raw_path.rfind(stage_prefix + "/", 0) == 0) {
      raw_path = raw_path.substr(stage_prefix.size());
      stage_in_path = true;
    }
  }
  request.path = UrlDecode(raw_path, false);
  request.query = ParseQueryString(Str(event, "rawQueryString"));
  if (const json& headers = Member(event, "headers"); headers.is_object()) {
    for (const auto& [name, v] : headers.items()) {
      if (v.is_string()) AddHeader(&request, name, v.get<std::string>());
    }
  }
  // Payload 2.0 moves Cookie headers into their own array.
  if (const json& cookies = Member(event, "cookies"); cookies.is_array() && !cookies.empty()) {
    std::string joined;
    for (const auto& c : cookies) {
      if (!c.is_string()) continue;
      if (!joined.empty()) joined += "; ";
      joined += c.get<std::string>();
    }
    request.headers["cookie"] = joined;
  }
  if (auto s = DecodeBody(event, &request.body); !s) return s.error();
  request.remote_addr = Str(http, "sourceIp");
  request.request_id = Str(context, "requestId");
  request.base_url =
      BaseUrl(request, Str(context, "domainName"), stage_in_path ? stage : std::string());
  return request;
}

bool IsTextContentType(const std::string& content_type) {
  std::string type = Lower(content_type.substr(0, content_type.find(';')));
  type.erase(
      std::remove_if(type.begin(), type.end(), [](unsigned char c) { return std::isspace(c); }),
      type.end());
  if (type.empty()) return true;
  if (type.rfind("text/", 0) == 0) return true;
  auto ends_with = [&](const std::string& suffix) {
    return type.size() >= suffix.size() &&
           type.compare(type.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return type == "application/json" || type == "application/javascript" ||
         type == "application/xml" || type == "image/svg+xml" || ends_with("+json") ||
         ends_with("+xml");
}

json ProxyResponse(const HttpResponse& response, EventKind kind) {
  json headers = json::object();
  json multi = json::object();
  if (!response.content_type.empty()) headers["Content-Type"] = response.content_type;
  for (const auto& [name, value] : response.headers) {
    headers[name] = value;
    multi[name].push_back(value);
  }
  json out = {{"statusCode", response.status}, {"headers", headers}};
  if (kind == EventKind::kApiGatewayV1) out["multiValueHeaders"] = multi;
  if (IsTextContentType(response.content_type)) {
    out["body"] = response.body;
    out["isBase64Encoded"] = false;
  } else {
    out["body"] = aws::Base64Encode(response.body);
    out["isBase64Encoded"] = true;
  }
  return out;
}

QueueMessage MessageFromSqsRecord(const json& record) {
  auto text = [&](const json& object, const char* key) {
    return object.is_object() && object.contains(key) && object[key].is_string()
               ? object[key].get<std::string>()
               : std::string();
  };
  auto number = [](const std::string& digits, int64_t fallback) {
    if (digits.empty() || digits.size() > 18 ||
        digits.find_first_not_of("0123456789") != std::string::npos) {
      return fallback;
    }
    return static_cast<int64_t>(std::stoll(digits));
  };
  QueueMessage message;
  message.id = text(record, "messageId");
  message.body = text(record, "body");
  const json attrs =
      record.is_object() && record.contains("attributes") ? record["attributes"] : json();
  message.receive_count = static_cast<int>(
      std::clamp<int64_t>(number(text(attrs, "ApproximateReceiveCount"), 1), 1, 1000000));
  message.sent_ms = number(text(attrs, "SentTimestamp"), 0);
  return message;
}

}  // namespace imagegen::lambda
