// Test-only helpers for the credential-source tests: a scratch directory and canned STS
// answers. Header-only; nothing in the library includes it.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

namespace imagegen::aws {

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class ScratchDir {
 public:
  ScratchDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("imagegen_creds_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  // Writes `text` to `relative` (parent folders created) and returns its full path.
  std::string Write(const std::string& relative, const std::string& text) const {
    auto p = path_ / relative;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  std::string Path(const std::string& relative = "") const {
    return relative.empty() ? path_.string() : (path_ / relative).string();
  }

 private:
  std::filesystem::path path_;
};

// An AssumeRole / AssumeRoleWithWebIdentity answer as STS writes it.
inline std::string StsAnswer(const std::string& action, const std::string& access_key_id,
                             const std::string& expiration = "2027-01-15T09:00:00Z") {
  return "<" + action + "Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <" +
         action + "Result>\n    <Credentials>\n      <AccessKeyId>" + access_key_id +
         "</AccessKeyId>\n      <SecretAccessKey>secret/" + access_key_id +
         "</SecretAccessKey>\n      <SessionToken>token-" + access_key_id +
         "</SessionToken>\n      <Expiration>" + expiration +
         "</Expiration>\n    </Credentials>\n  </" + action +
         "Result>\n  <ResponseMetadata>"
         "<RequestId>rid-1</RequestId></ResponseMetadata>\n</" +
         action + "Response>\n";
}

inline std::string StsErrorAnswer(const std::string& code, const std::string& message) {
  return "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
         "<Type>Sender</Type><Code>" +
         code + "</Code><Message>" + message +
         "</Message></Error><RequestId>rid-err</RequestId></ErrorResponse>";
}

}  // namespace imagegen::aws
