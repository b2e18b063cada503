// Where AWS settings come from: environment variables, the shared config and credentials files
// (profiles), and the rules that turn a service and a region into an endpoint.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace imagegen::aws {

// Reads an environment variable; tests pass a map instead of the process environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup ProcessEnv();
EnvLookup MapEnv(std::map<std::string, std::string> vars);
// A non-empty value of `name`, or nullopt.
std::optional<std::string> NonEmpty(const EnvLookup& env, const std::string& name);

// How one AWS service is named in each place that matters.
struct ServiceId {
  std::string signing_name;     // credential scope: "s3", "sqs", "bedrock"
  std::string endpoint_prefix;  // host: "s3", "sqs", "bedrock-runtime"
  std::string env_name;         // AWS_ENDPOINT_URL_<env_name>: "S3", "SQS", "BEDROCK_RUNTIME"
};
ServiceId S3Service();
ServiceId SqsService();
ServiceId BedrockRuntimeService();

// An INI file as the AWS CLI writes it: [section] then key = value; '#'/';' comments; indented
// continuation lines (nested settings such as "s3 =") are attached to their parent key as
// "parent.child".
using IniSections = std::map<std::string, std::map<std::string, std::string>>;
IniSections ParseIni(std::string_view text);

// The settings of the active profile (AWS_PROFILE, else "default"), merged from the config
// file (AWS_CONFIG_FILE, else ~/.aws/config, section "[profile NAME]" or "[default]") and the
// credentials file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials, section "[NAME]"),
// the credentials file winning. Missing files are not an error.
struct Profile {
  std::string name;
  std::map<std::string, std::string> settings;
  std::string Get(const std::string& key) const;
};
Profile LoadProfile(const EnvLookup& env);

// AWS_REGION, then AWS_DEFAULT_REGION, then the profile's "region"; "" when none is set.
std::string ResolveRegion(const EnvLookup& env);

// The base URL (scheme://host[:port][/base-path], no trailing '/') for `service`:
// `explicit_endpoint` when given, else AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL (both
// skipped when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true), else
// https://<prefix>.<region>.amazonaws.com (".com.cn" in China regions).
// kInvalidRequest when the region is empty and no endpoint is configured, or the URL is not
// http(s).
Result<std::string> ResolveEndpoint(const ServiceId& service, const std::string& region,
                                    const std::string& explicit_endpoint, const EnvLookup& env);

// Whether an endpoint was configured for `service` (explicitly or through the environment),
// i.e. this is not AWS's own default endpoint. S3 uses it to prefer path-style addressing.
bool HasEndpointOverride(const ServiceId& service, const std::string& explicit_endpoint,
                         const EnvLookup& env);

// Parts of an http(s) URL, for callers that rebuild URLs (S3 virtual hosts).
struct UrlParts {
  std::string scheme;     // "http" or "https"
  std::string authority;  // host[:port] as written
  std::string path;       // "" or "/..." without a trailing '/'
};
Result<UrlParts> SplitUrl(std::string_view url);

}  // namespace imagegen::aws
