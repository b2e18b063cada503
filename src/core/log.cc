#include "core/log.h"

#include <chrono>
#include <iostream>

namespace imagegen {

void LogLine(nlohmann::json line) {
  line["ts"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  // One write per line, so lines from several threads never interleave.
  std::cerr << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"
            << std::flush;
}

void Log(const char* level, const std::string& msg, nlohmann::json fields) {
  fields["level"] = level;
  fields["msg"] = msg;
  LogLine(std::move(fields));
}

}  // namespace imagegen
