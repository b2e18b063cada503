#include "aws/credentials_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "aws/encoding.h"

extern char** environ;

namespace imagegen::aws {
namespace {

using Clock = std::chrono::steady_clock;

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }
  int get() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

bool MakePipe(Fd* read_end, Fd* write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  read_end->Reset(fds[0]);
  write_end->Reset(fds[1]);
  return true;
}

int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

void KillAndReap(pid_t pid) {
  ::kill(-pid, SIGKILL);  // the whole group: `sh -c` may have started children of its own
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

std::string FirstLine(const std::string& text) {
  std::string t = Trim(text);
  size_t nl = t.find('\n');
  return Trim(nl == std::string::npos ? t : t.substr(0, nl));
}

}  // namespace

Result<ProcessOutput> RunShellCommand(const std::string& command, const ProcessOptions& options) {
  Fd out_r, out_w, err_r, err_w;
  if (!MakePipe(&out_r, &out_w) || !MakePipe(&err_r, &err_w)) {
    return Error::Make(ErrorCode::kInternal, std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 clears O_CLOEXEC on the target, so only stdout and stderr reach the child.
  posix_spawn_file_actions_adddup2(&actions, out_w.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_w.get(), STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t empty, defaults;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  // A server ignores SIGPIPE; the command should not inherit that.
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);

  std::string sh = "sh", dash_c = "-c", cmd = command;
  char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, "/bin/sh", &actions, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return Error::Make(ErrorCode::kInternal,
                       std::string("cannot start /bin/sh: ") + std::strerror(rc));
  }
  out_w.Close();
  err_w.Close();

  ProcessOutput result;
  const auto deadline = Clock::now() + std::chrono::milliseconds(options.timeout_ms);
  auto remaining_ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  };
  auto timed_out = [&] {
    KillAndReap(pid);
    return Error::Make(ErrorCode::kUpstreamTimeout,
                       "timed out after " + std::to_string(options.timeout_ms) + " ms");
  };
  char buf[4096];
  while (out_r.get() >= 0 || err_r.get() >= 0) {
    int64_t left = remaining_ms();
    if (left <= 0) return timed_out();
    pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
    int n = ::poll(fds, 2, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (n < 0 && errno != EINTR) {
      KillAndReap(pid);
      return Error::Make(ErrorCode::kInternal, std::string("poll: ") + std::strerror(errno));
    }
    for (int i = 0; i < 2 && n > 0; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      Fd& fd = i == 0 ? out_r : err_r;
      if (got <= 0) {
        fd.Close();
        continue;
      }
      if (i == 0) {
        result.out.append(buf, static_cast<size_t>(got));
        if (result.out.size() > options.max_output_bytes) {
          KillAndReap(pid);
          return Error::Make(
              ErrorCode::kUpstreamUnavailable,
              "printed more than " + std::to_string(options.max_output_bytes) + " bytes");
        }
      } else if (result.err.size() < options.max_stderr_bytes) {
        result.err.append(
            buf, std::min(static_cast<size_t>(got), options.max_stderr_bytes - result.err.size()));
      }
    }
  }
  // Both pipes are closed; the command may still be running (it closed them itself).
  int status = 0;
  while (true) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      return Error::Make(ErrorCode::kInternal, std::string("waitpid: ") + std::strerror(errno));
    }
    if (remaining_ms() <= 0) return timed_out();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  result.exit_code = ExitCode(status);
  return result;
}

Result<Credentials> ParseProcessCredentials(const std::string& json, const std::string& source) {
  auto bad = [&](const std::string& why) {
    return Error::Make(ErrorCode::kUpstreamUnavailable, source + ": " + why);
  };
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("output is not a JSON object");
  if (!j.contains("Version") || !j["Version"].is_number_integer() || j["Version"] != 1) {
    return bad("output needs \"Version\": 1");
  }
  auto str = [&](const char* k) {
    return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
  };
  Credentials c;
  c.keys = {str("AccessKeyId"), str("SecretAccessKey"), str("SessionToken")};
  c.source = source;
  if (c.keys.access_key_id.empty() || c.keys.secret_access_key.empty()) {
    return bad("output lacks AccessKeyId or SecretAccessKey");
  }
  if (j.contains("Expiration") && !j["Expiration"].is_null()) {
    std::string expiration = str("Expiration");
    auto ms = ParseIso8601Ms(expiration);
    if (!ms) return bad("bad Expiration '" + expiration + "' (want ISO 8601)");
    c.expiration_ms = *ms;
  }
  return c;
}

Result<Credentials> CredentialsFromProcess(const std::string& command, const std::string& source,
                                           const ProcessOptions& options) {
  auto out = RunShellCommand(command, options);
  if (!out.ok()) {
    Error e = out.error();
    e.message = source + ": credential_process " + e.message;
    return e;
  }
  if (out->exit_code != 0) {
    std::string line = FirstLine(out->err);
    return Error::Make(ErrorCode::kUpstreamUnavailable,
                       source + ": credential_process exited with status " +
                           std::to_string(out->exit_code) + (line.empty() ? "" : ": " + line));
  }
  return ParseProcessCredentials(out->out, source);
}

}  // namespace imagegen::aws
