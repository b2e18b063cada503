// Graceful shutdown. main() blocks SIGTERM and SIGINT before any thread starts (so every
// thread inherits the mask) and one watcher thread takes them: it runs the callbacks that
// commands registered (stop accepting; in-flight work finishes), or exits 130/143 if none.
#pragma once

#include <functional>
#include <vector>

#include "app/config.h"
#include "http/api.h"

namespace imagegen {

void InstallSignalHandling();
void OnShutdown(std::function<void()> callback);

// Things `serve` attaches to the API before it starts (e.g. the jobs routes).
using ServeExtension = std::function<void(Api& api, const Config& config)>;
std::vector<ServeExtension>& ServeExtensions();

}  // namespace imagegen
