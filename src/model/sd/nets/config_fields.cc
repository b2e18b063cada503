#include "model/sd/nets/config_fields.h"

#include <algorithm>

namespace imagegen::sd {

Error ConfigError(const std::string& component, const std::string& message) {
  return Error::Make(ErrorCode::kInvalidRequest, component + " config.json: " + message);
}

Result<std::vector<int>> PerBlockInts(const nlohmann::json& config, const std::string& key,
                                      int fallback, size_t count) {
  const auto it = config.find(key);
  std::vector<int> values;
  if (it == config.end() || it->is_null()) {
    values.assign(count, fallback);
  } else if (it->is_number_integer()) {
    values.assign(count, it->get<int>());
  } else if (it->is_array() && it->size() == count &&
             std::all_of(it->begin(), it->end(),
                         [](const auto& v) { return v.is_number_integer(); })) {
    for (const auto& v : *it) values.push_back(v.get<int>());
  } else {
    return Error::Make(ErrorCode::kInvalidRequest, key + " must be an integer or a list of " +
                                                       std::to_string(count) + " integers");
  }
  for (int v : values) {
    if (v < 1 || v > 65536) return Error::Make(ErrorCode::kInvalidRequest, key + " out of range");
  }
  return values;
}

Status CheckDefaults(const nlohmann::json& config, const std::string& component,
                     const std::vector<RequiredDefault>& fields) {
  for (const auto& field : fields) {
    const auto it = config.find(field.key);
    if (it == config.end() || it->is_null() || *it == field.value) continue;
    return ConfigError(component, std::string(field.key) + " = " + it->dump() +
                                      " is not supported (only " + field.value.dump() + ")");
  }
  return Status::Ok();
}

}  // namespace imagegen::sd
