// Reading diffusers config.json fields for the networks: per-block lists that may be written
// as one number, and the fields whose non-default values select architectures imagegen does
// not implement (refused by name rather than silently computed wrong).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"

namespace imagegen::sd {

// `key` as `count` integers: a number repeated, or a list of exactly `count`; `fallback`
// when the key is absent or null. Each value must be in [1, 65536].
Result<std::vector<int>> PerBlockInts(const nlohmann::json& config, const std::string& key,
                                      int fallback, size_t count);

// One field that must hold its default (null, false, a name) for the network to be the one
// implemented; absent or null always passes.
struct RequiredDefault {
  const char* key;
  nlohmann::json value;
};
Status CheckDefaults(const nlohmann::json& config, const std::string& component,
                     const std::vector<RequiredDefault>& fields);

// A kInvalidRequest error for `component`'s config.json naming the field.
Error ConfigError(const std::string& component, const std::string& message);

}  // namespace imagegen::sd
