#include "aws/credentials_util.h"

#include <chrono>
#include <fstream>

namespace imagegen::aws {

int64_t CredentialsNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::optional<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::string out(max_bytes, '\0');
  f.read(out.data(), static_cast<std::streamsize>(max_bytes));
  if (f.bad()) return std::nullopt;
  out.resize(static_cast<size_t>(f.gcount()));
  return out;
}

std::string ExpandUserPath(const std::string& path, const EnvLookup& env) {
  if (!path.starts_with("~/")) return path;
  return NonEmpty(env, "HOME").value_or("") + path.substr(1);
}

std::string SharedConfigPath(const EnvLookup& env) {
  if (auto p = NonEmpty(env, "AWS_CONFIG_FILE")) return ExpandUserPath(*p, env);
  if (auto home = NonEmpty(env, "HOME")) return *home + "/.aws/config";
  return "";
}

Error CredentialsServiceError(const AwsFailure& failure) {
  Error e = MapAwsError(failure);
  if (e.code == ErrorCode::kInvalidRequest || e.code == ErrorCode::kNotFound) {
    e.code = ErrorCode::kForbidden;
  }
  return e;
}

std::string DefaultRoleSessionName(int64_t now_ms) { return "imagegen-" + std::to_string(now_ms); }

}  // namespace imagegen::aws
