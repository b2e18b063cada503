#include "cli/signals.h"

#include <pthread.h>
#include <signal.h>

#include <cstdlib>
#include <mutex>
#include <thread>

namespace imagegen {
namespace {

std::mutex g_mu;
std::vector<std::function<void()>>* g_callbacks = new std::vector<std::function<void()>>();

}  // namespace

void InstallSignalHandling() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    int signal_number = 0;
    sigwait(&set, &signal_number);
    std::vector<std::function<void()>> callbacks;
    {
      std::lock_guard<std::mutex> lock(g_mu);
      callbacks = *g_callbacks;
    }
    if (callbacks.empty()) std::_Exit(128 + signal_number);
    for (auto& callback : callbacks) callback();
  }).detach();
}

void OnShutdown(std::function<void()> callback) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_callbacks->push_back(std::move(callback));
}

std::vector<ServeExtension>& ServeExtensions() {
  static auto* extensions = new std::vector<ServeExtension>();
  return *extensions;
}

}  // namespace imagegen
