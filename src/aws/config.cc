#include "aws/config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "aws/encoding.h"

namespace imagegen::aws {

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

EnvLookup MapEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::optional<std::string> NonEmpty(const EnvLookup& env, const std::string& name) {
  auto v = env(name);
  if (!v || Trim(*v).empty()) return std::nullopt;
  return Trim(*v);
}

ServiceId S3Service() { return {"s3", "s3", "S3"}; }
ServiceId SqsService() { return {"sqs", "sqs", "SQS"}; }
ServiceId BedrockRuntimeService() { return {"bedrock", "bedrock-runtime", "BEDROCK_RUNTIME"}; }

IniSections ParseIni(std::string_view text) {
  IniSections sections;
  std::string section;
  std::string parent;  // last top-level key, for indented sub-settings
  bool in_section = false;
  std::istringstream in{std::string(text)};
  std::string raw;
  while (std::getline(in, raw)) {
    if (!raw.empty() && raw.back() == '\r') raw.pop_back();
    bool indented = !raw.empty() && (raw[0] == ' ' || raw[0] == '\t');
    std::string line = Trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = Trim(line.substr(1, line.size() - 2));
      sections[section];
      in_section = true;
      parent.clear();
      continue;
    }
    if (!in_section) continue;
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = Lower(Trim(line.substr(0, eq)));
    std::string value = Trim(line.substr(eq + 1));
    // Inline comments need whitespace before the marker, so secrets may contain '#'.
    for (const char* marker : {" #", "\t#", " ;", "\t;"}) {
      size_t c = value.find(marker);
      if (c != std::string::npos) value = Trim(value.substr(0, c));
    }
    if (indented && !parent.empty()) {
      sections[section][parent + "." + key] = value;
    } else {
      sections[section][key] = value;
      parent = key;
    }
  }
  return sections;
}

std::string Profile::Get(const std::string& key) const {
  auto it = settings.find(key);
  return it == settings.end() ? "" : it->second;
}

namespace {

std::string HomeDir(const EnvLookup& env) {
  if (auto home = NonEmpty(env, "HOME")) return *home;
  return "";
}

std::string ExpandHome(const std::string& path, const EnvLookup& env) {
  if (path.starts_with("~/")) return HomeDir(env) + path.substr(1);
  return path;
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

Profile LoadProfile(const EnvLookup& env) {
  Profile profile;
  profile.name = NonEmpty(env, "AWS_PROFILE").value_or("default");
  std::string home = HomeDir(env);
  std::string config_path = ExpandHome(
      NonEmpty(env, "AWS_CONFIG_FILE").value_or(home.empty() ? "" : home + "/.aws/config"), env);
  std::string creds_path = ExpandHome(NonEmpty(env, "AWS_SHARED_CREDENTIALS_FILE")
                                          .value_or(home.empty() ? "" : home + "/.aws/credentials"),
                                      env);
  if (!config_path.empty()) {
    if (auto text = ReadFile(config_path)) {
      IniSections ini = ParseIni(*text);
      // The config file names non-default profiles "[profile NAME]"; "[default]" stays bare.
      for (const std::string& section :
           {profile.name == "default" ? std::string("default") : std::string(),
            "profile " + profile.name}) {
        if (section.empty()) continue;
        auto it = ini.find(section);
        if (it == ini.end()) continue;
        for (const auto& [k, v] : it->second) profile.settings[k] = v;
      }
    }
  }
  if (!creds_path.empty()) {
    if (auto text = ReadFile(creds_path)) {
      IniSections ini = ParseIni(*text);
      auto it = ini.find(profile.name);
      if (it != ini.end()) {
        for (const auto& [k, v] : it->second) profile.settings[k] = v;
      }
    }
  }
  return profile;
}

std::string ResolveRegion(const EnvLookup& env) {
  if (auto r = NonEmpty(env, "AWS_REGION")) return *r;
  if (auto r = NonEmpty(env, "AWS_DEFAULT_REGION")) return *r;
  return LoadProfile(env).Get("region");
}

Result<UrlParts> SplitUrl(std::string_view url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return Error::Invalid("endpoint", "not an http(s) URL: " + std::string(url));
  }
  UrlParts parts;
  parts.scheme = Lower(url.substr(0, scheme_end));
  if (parts.scheme != "http" && parts.scheme != "https") {
    return Error::Invalid("endpoint", "not an http(s) URL: " + std::string(url));
  }
  std::string_view rest = url.substr(scheme_end + 3);
  size_t slash = rest.find_first_of("/?#");
  parts.authority = std::string(rest.substr(0, slash));
  if (parts.authority.empty()) {
    return Error::Invalid("endpoint", "URL without a host: " + std::string(url));
  }
  if (slash != std::string_view::npos && rest[slash] == '/') {
    std::string_view path = rest.substr(slash);
    size_t q = path.find_first_of("?#");
    if (q != std::string_view::npos) path = path.substr(0, q);
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    parts.path = std::string(path);
  }
  return parts;
}

namespace {

std::optional<std::string> ConfiguredEndpoint(const ServiceId& service,
                                              const std::string& explicit_endpoint,
                                              const EnvLookup& env) {
  if (!Trim(explicit_endpoint).empty()) return Trim(explicit_endpoint);
  auto ignore = NonEmpty(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
  if (ignore && Lower(*ignore) == "true") return std::nullopt;
  if (auto v = NonEmpty(env, "AWS_ENDPOINT_URL_" + service.env_name)) return v;
  if (auto v = NonEmpty(env, "AWS_ENDPOINT_URL")) return v;
  return std::nullopt;
}

}  // namespace

bool HasEndpointOverride(const ServiceId& service, const std::string& explicit_endpoint,
                         const EnvLookup& env) {
  return ConfiguredEndpoint(service, explicit_endpoint, env).has_value();
}

Result<std::string> ResolveEndpoint(const ServiceId& service, const std::string& region,
                                    const std::string& explicit_endpoint, const EnvLookup& env) {
  if (auto configured = ConfiguredEndpoint(service, explicit_endpoint, env)) {
    auto parts = SplitUrl(*configured);
    if (!parts.ok()) return parts.error();
    return parts->scheme + "://" + parts->authority + parts->path;
  }
  if (region.empty()) {
    return Error::Invalid("region", "no AWS region for " + service.endpoint_prefix +
                                        ": set AWS_REGION (or AWS_DEFAULT_REGION, or a profile "
                                        "region) or configure an endpoint");
  }
  std::string suffix = region.starts_with("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
  return "https://" + service.endpoint_prefix + "." + region + "." + suffix;
}

}  // namespace imagegen::aws
