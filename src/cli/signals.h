// Graceful shutdown. main() installs handlers for SIGTERM and SIGINT that wake one watcher
// thread: it runs the callbacks that commands registered (stop accepting; in-flight work
// finishes), or exits 130/143 if none.
#pragma once

#include <functional>
#include <vector>

namespace imagegen {

void InstallSignalHandling();
void OnShutdown(std::function<void()> callback);

}  // namespace imagegen
