// One JSON line per event on stderr, the only log format imagegen writes (CloudWatch with the
// JSON log format, and `jq`, read it as is). Thread-safe: each line is written whole.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace imagegen {

// `fields` plus "ts" (epoch ms), "level" and "msg".
void Log(const char* level, const std::string& msg,
         nlohmann::json fields = nlohmann::json::object());
// A line whose fields the caller composed (it should hold "level" and "msg"); "ts" is added.
void LogLine(nlohmann::json line);

}  // namespace imagegen
