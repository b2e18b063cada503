// Graceful shutdown. main() installs handlers for SIGTERM and SIGINT that wake one watcher
// thread: it runs the callbacks that commands registered (stop accepting; in-flight work
// finishes), or exits 130/143 if none.
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
